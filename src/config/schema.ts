// The config file's shape as a zod schema, with messages in Caplance's "expected X, got Y" form,
// plus the rules across fields and items (duplicates, port conflicts) that it cannot express.
//
// Keys, types and defaults (docs/config.md is the full reference):
//   vips                list of VIPs                       default []  (null = [])
//     vip               PROTO/ADDR:PORT, required          e.g. tcp/198.18.1.1:80, udp/[2001:db8:1::1]:53
//     hash              5tuple | src-ip | src-ip-port      default 5tuple
//     backends          list of backends                   default []  (null = [])
//       address         ADDR or ADDR:ENCAP_PORT, required  e.g. 198.18.0.11, "[2001:db8::11]:6080"
//       weight          integer 0..65535                   default 1 (0 = drained: no new flows)
//       name            1..64 characters, no whitespace    default none
//       encap_port      integer 1..65535                   default 6080, or the port in address
//       health          map, keys as the VIP's             default the VIP's; merged over them
//     health            map                                default none (no active checks)
//       type            tcp | http | https | none          default tcp
//       port            integer 1..65535                   default the VIP's port (required: UDP, port 0)
//       path            /... (http, https only)            default /
//       expect_status   integer 100..599 (http, https)     default 200
//       interval_ms     integer 100..3600000               default 1000
//       timeout_ms      integer 10..60000                  default 1000
//       rise            integer 1..100                     default 2
//       fall            integer 1..100                     default 3
//   settings            map                                default {}  (null = {})
//     maglev_size       prime 257..1048573                 default 65537 (chosen by the daemon)
//     log_level         fatal|error|warn|info|debug|trace  default info (chosen by the daemon)
//     log_file          absolute path                      default none (log to stderr)
// Unknown keys are errors everywhere; VIPs are unique by canonical text, backends by address
// within their VIP (whatever their encap port); a backend's family may differ from its VIP's.
import { z } from "zod";

import { isPrime } from "../maglev/maglev.js";
import { LB_MAGLEV_SIZE_MAX, LB_MAX_VIPS } from "../maps/abi.js";
import { addressToString } from "../lib/addr.js";
import { HEALTH_LIMITS, HEALTH_TYPES } from "../health/spec.js";
import {
  HASH_MODES,
  VIP_EXAMPLE,
  parseBackendAddressResult,
  parseVipResult,
  vipKey,
} from "../core/vip-syntax.js";
import type { VipRef } from "../core/types.js";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Smallest Maglev table accepted: below it, weights and spread get coarse. Must be prime. */
export const MAGLEV_SIZE_MIN = 257;
export const NAME_MAX_LENGTH = 64;

/** A path into the document: map keys and list indices, as zod reports them. */
export type ConfigPath = readonly (string | number)[];

/** One problem found in a document, before it is given a file position. */
export interface ConfigIssue {
  readonly path: ConfigPath;
  readonly message: string;
  /** Point at the key itself (unknown keys), not at its value. */
  readonly atKey?: boolean;
}

/** How a received value reads in a message: strings quoted, collections named by kind. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "an empty value";
  if (typeof value === "string")
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
    return String(value);
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "a map" : typeof value;
}

interface RawIssueView {
  readonly code?: string | undefined;
  readonly input?: unknown;
}

/** zod error map: "expected WHAT, got VALUE", or "required key is missing" for an absent key. */
function expected(
  what: string,
  hint?: (input: unknown) => string | undefined,
): (iss: RawIssueView) => string {
  return (iss) => {
    if (iss.input === undefined) return `required key is missing (expected ${what})`;
    const extra = hint?.(iss.input);
    return `expected ${what}, got ${describeValue(iss.input)}${extra === undefined ? "" : ` (${extra})`}`;
  };
}

function intRange(min: number, max: number, note = ""): z.ZodInt {
  const error = expected(`an integer ${min}..${max}${note}`);
  return z.int({ error }).min(min, { error }).max(max, { error });
}

/** A strict map whose unknown-key message lists the keys it does accept. */
function strictMap<T extends z.core.$ZodLooseShape>(shape: T, what: string) {
  const keys = Object.keys(shape).join(", ");
  const wrongType = expected(`${what} with keys ${keys}`);
  return z.strictObject(shape, {
    error: (iss) =>
      iss.code === "unrecognized_keys" ? `unknown key (expected one of ${keys})` : wrongType(iss),
  });
}

const quoteBrackets = (input: unknown): string | undefined =>
  Array.isArray(input) ? 'quote a bracketed IPv6 address: "[2001:db8::11]:6080"' : undefined;

const vipText = z
  .string({ error: expected(`a VIP, PROTO/ADDR:PORT, e.g. ${VIP_EXAMPLE}`) })
  .superRefine((text, ctx) => {
    const r = parseVipResult(text);
    if (!r.ok) ctx.addIssue({ code: "custom", message: r.message, input: text });
  });

const backendAddressText = z
  .string({ error: expected("a backend address, ADDR or ADDR:ENCAP_PORT, e.g. 198.18.0.11", quoteBrackets) })
  .superRefine((text, ctx) => {
    const r = parseBackendAddressResult(text);
    if (!r.ok) ctx.addIssue({ code: "custom", message: r.message, input: text });
  });

const nameText = z
  .string({ error: expected(`a name of 1..${NAME_MAX_LENGTH} characters without whitespace`) })
  .regex(new RegExp(`^[^\\s\\p{Cc}]{1,${NAME_MAX_LENGTH}}$`, "u"), {
    error: expected(`a name of 1..${NAME_MAX_LENGTH} characters without whitespace`),
  });

const PATH_EXPECTED = `an HTTP path starting with "/", 1..${HEALTH_LIMITS.pathLength} printable characters without spaces`;
const pathText = z
  .string({ error: expected(PATH_EXPECTED) })
  .regex(new RegExp(`^/[\\x21-\\x7e]{0,${HEALTH_LIMITS.pathLength - 1}}$`), {
    error: expected(PATH_EXPECTED),
  });

export const healthSchema = strictMap(
  {
    type: z.enum(HEALTH_TYPES, { error: expected(`one of ${HEALTH_TYPES.join(", ")}`) }).optional(),
    port: intRange(1, 65535).optional(),
    path: pathText.optional(),
    expect_status: intRange(100, 599).optional(),
    interval_ms: intRange(...HEALTH_LIMITS.intervalMs).optional(),
    timeout_ms: intRange(...HEALTH_LIMITS.timeoutMs).optional(),
    rise: intRange(...HEALTH_LIMITS.rise).optional(),
    fall: intRange(...HEALTH_LIMITS.fall).optional(),
  },
  "a health-check map",
);

export const backendSchema = strictMap(
  {
    address: backendAddressText,
    weight: intRange(0, 65535).optional(),
    name: nameText.optional(),
    encap_port: intRange(1, 65535).optional(),
    health: healthSchema.optional(),
  },
  "a backend map",
);

export const vipSchema = strictMap(
  {
    vip: vipText,
    hash: z.enum(HASH_MODES, { error: expected(`one of ${HASH_MODES.join(", ")}`) }).optional(),
    backends: z.array(backendSchema, { error: expected("a list of backends") }).nullish(),
    health: healthSchema.optional(),
  },
  "a VIP map",
);

export const settingsSchema = strictMap(
  {
    maglev_size: z
      .int({ error: expected(`a prime ${MAGLEV_SIZE_MIN}..${LB_MAGLEV_SIZE_MAX}, e.g. 65537`) })
      .refine((n) => n >= MAGLEV_SIZE_MIN && n <= LB_MAGLEV_SIZE_MAX && isPrime(n), {
        error: expected(`a prime ${MAGLEV_SIZE_MIN}..${LB_MAGLEV_SIZE_MAX}, e.g. 65537`),
      }),
    log_level: z.enum(LOG_LEVELS, { error: expected(`one of ${LOG_LEVELS.join(", ")}`) }),
    log_file: z
      .string({ error: expected("an absolute path") })
      .refine((p) => p.startsWith("/"), { error: expected("an absolute path") }),
  },
  "a settings map",
).partial();

export const configSchema = strictMap(
  {
    vips: z
      .array(vipSchema, { error: expected("a list of VIPs") })
      .max(LB_MAX_VIPS, { error: `expected at most ${LB_MAX_VIPS} VIPs` })
      .nullish(),
    settings: settingsSchema.nullish(),
  },
  "a map",
);

export type RawConfig = z.output<typeof configSchema>;
export type RawVip = z.output<typeof vipSchema>;
export type RawBackend = z.output<typeof backendSchema>;
export type RawHealth = z.output<typeof healthSchema>;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function listAt(value: unknown, key: string): readonly unknown[] {
  if (!isRecord(value)) return [];
  const list = value[key];
  return Array.isArray(list) ? (list as unknown[]) : [];
}

/** An encap_port that disagrees with the port written in the backend's address. */
function encapConflict(backend: Record<string, unknown>, path: ConfigPath): ConfigIssue | undefined {
  const address = backend["address"];
  const port = backend["encap_port"];
  if (typeof address !== "string" || typeof port !== "number") return undefined;
  const r = parseBackendAddressResult(address);
  const inAddress = r.ok ? r.value.encapPort : undefined;
  if (inAddress === undefined || port === inAddress) return undefined;
  return {
    path: [...path, "encap_port"],
    message: `${port} conflicts with the encap port ${inAddress} in address "${address}"`,
  };
}

/**
 * health (a VIP's, or a backend's merged over its VIP's `inherited`): a port where the VIP's own
 * cannot serve (UDP, port 0); HTTP-only keys on a tcp or none check.
 */
function healthIssues(
  health: unknown,
  vip: VipRef | undefined,
  path: ConfigPath,
  inherited: Record<string, unknown> = {},
): ConfigIssue[] {
  if (!isRecord(health)) return [];
  const issues: ConfigIssue[] = [];
  const type = health["type"] ?? inherited["type"] ?? "tcp";
  const port = health["port"] ?? inherited["port"];
  if (port === undefined && type !== "none" && vip !== undefined && (vip.proto !== "tcp" || vip.port === 0)) {
    issues.push({
      path,
      message: `port is required for a ${vip.proto === "tcp" ? "port-0" : "UDP"} VIP (the check is a TCP connect or HTTP GET to that port on each backend)`,
    });
  }
  // Only for a valid non-HTTP type: a bad type is reported on its own.
  for (const key of ["path", "expect_status"]) {
    if ((type === "tcp" || type === "none") && health[key] !== undefined)
      issues.push({
        path: [...path, key],
        message: `applies to types http and https only (type is ${type})`,
        atKey: true,
      });
  }
  return issues;
}

/**
 * The rules across fields and sibling items: duplicate VIPs (same canonical text), duplicate
 * backend addresses within a VIP, encap_port against ADDR:PORT. They read the raw document
 * defensively, so they are reported alongside any other error in the file (zod skips an
 * object's refinements once one of its fields failed).
 */
export function crossFieldIssues(raw: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const vipSeen = new Map<string, number>();
  for (const [i, item] of listAt(raw, "vips").entries()) {
    const text = isRecord(item) ? item["vip"] : undefined;
    const vip = typeof text === "string" ? parseVipResult(text) : undefined;
    if (vip?.ok === true) {
      const key = vipKey(vip.value);
      const first = vipSeen.get(key);
      if (first === undefined) vipSeen.set(key, i);
      else
        issues.push({ path: ["vips", i, "vip"], message: `duplicate VIP ${key} (first at vips[${first}])` });
    }
    const vipRef = vip?.ok === true ? vip.value : undefined;
    const vipHealth = isRecord(item) ? item["health"] : undefined;
    issues.push(...healthIssues(vipHealth, vipRef, ["vips", i, "health"]));
    const backendSeen = new Map<string, number>();
    for (const [j, backend] of listAt(item, "backends").entries()) {
      if (!isRecord(backend)) continue;
      const conflict = encapConflict(backend, ["vips", i, "backends", j]);
      if (conflict !== undefined) issues.push(conflict);
      issues.push(
        ...healthIssues(
          backend["health"],
          vipRef,
          ["vips", i, "backends", j, "health"],
          isRecord(vipHealth) ? vipHealth : {},
        ),
      );
      const addr = backend["address"];
      const parsed = typeof addr === "string" ? parseBackendAddressResult(addr) : undefined;
      if (parsed?.ok !== true) continue;
      const key = addressToString(parsed.value.address);
      const firstBackend = backendSeen.get(key);
      if (firstBackend === undefined) {
        backendSeen.set(key, j);
        continue;
      }
      issues.push({
        path: ["vips", i, "backends", j, "address"],
        message: `duplicate backend ${key} in this VIP (first at vips[${i}].backends[${firstBackend}])`,
      });
    }
  }
  return issues;
}
