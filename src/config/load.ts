// YAML config file → validated Config (desired VIPs and backends, daemon settings). Every problem
// in the file is reported at once, one "FILE:LINE:COL: PATH: message" line each.
import { readFileSync } from "node:fs";
import { LineCounter, parseDocument } from "yaml";
import type { Document } from "yaml";

import { DEFAULT_ENCAP_PORT, DEFAULT_WEIGHT } from "../core/types.js";
import type { BackendSpec, DesiredState, VipSpec } from "../core/types.js";
import { parseBackendAddress, parseVip } from "../core/vip-syntax.js";
import { addressToString } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { formatPath, positionOf } from "./positions.js";
import { configSchema, crossFieldIssues } from "./schema.js";
import type { ConfigIssue, LogLevel, RawBackend, RawConfig, RawHealth, RawVip } from "./schema.js";
import { formatVip } from "../core/vip-syntax.js";
import { HEALTH_DEFAULTS, type HealthCheckSpec } from "../health/spec.js";

export interface ConfigSettings {
  /** Maglev table size M (prime); the daemon's default applies when absent. */
  readonly maglevSize?: number;
  readonly logLevel?: LogLevel;
  /** Absolute path; absent = log to stderr. */
  readonly logFile?: string;
}

export interface Config {
  /** The file name as given, used in messages and to re-read the file on reload. */
  readonly file: string;
  readonly desired: DesiredState;
  readonly settings: ConfigSettings;
  /** Active health checks by canonical VIP text (formatVip); VIPs without `health` are absent. */
  readonly health: ReadonlyMap<string, HealthCheckSpec>;
  /** A backend's own `health` merged over its VIP's, keyed "VIP ADDR" (canonical texts). */
  readonly healthOverrides: ReadonlyMap<string, HealthCheckSpec>;
}

interface PlacedLine {
  readonly offset: number;
  readonly text: string;
}

// A bracketed IPv6 address left unquoted: YAML reads "[" as the start of a list.
const UNQUOTED_BRACKETS = /\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]/;
const QUOTE_HINT = 'quote values holding a bracketed IPv6 address, e.g. "[2001:db8::11]:6080"';

function fail(file: string, lines: readonly PlacedLine[], hint?: string): LbError {
  const sorted = [...lines].sort((a, b) => a.offset - b.offset);
  return new LbError("LB_ERR_CONFIG", sorted.map((l) => `${file}:${l.text}`).join("\n"), { hint });
}

function syntaxError(file: string, text: string, doc: Document, lineCounter: LineCounter): LbError {
  const sourceLines = text.split("\n");
  let hint: string | undefined;
  const lines = doc.errors.map((e): PlacedLine => {
    const offset = e.pos[0];
    const { line, col } = lineCounter.linePos(offset);
    let message = `${line}:${col}: YAML syntax error: ${e.message}`;
    if (UNQUOTED_BRACKETS.test(sourceLines[line - 1] ?? "")) {
      message += ` (${QUOTE_HINT})`;
      hint = QUOTE_HINT;
    }
    return { offset, text: message };
  });
  return fail(file, lines, hint);
}

/** zod's issues as ConfigIssues: one per unknown key, each pointing at the key itself. */
function schemaIssues(raw: unknown): { data: RawConfig | undefined; issues: ConfigIssue[] } {
  const result = configSchema.safeParse(raw);
  if (result.success) return { data: result.data, issues: [] };
  const issues: ConfigIssue[] = [];
  for (const iss of result.error.issues) {
    const path = iss.path.map((seg) => (typeof seg === "number" ? seg : String(seg)));
    if (iss.code === "unrecognized_keys") {
      for (const key of iss.keys) issues.push({ path: [...path, key], message: iss.message, atKey: true });
    } else {
      issues.push({ path, message: iss.message });
    }
  }
  return { data: undefined, issues };
}

function toBackend(b: RawBackend): BackendSpec {
  const { address, encapPort } = parseBackendAddress(b.address);
  return {
    address,
    encapPort: encapPort ?? b.encap_port ?? DEFAULT_ENCAP_PORT,
    weight: b.weight ?? DEFAULT_WEIGHT,
    ...(b.name === undefined ? {} : { name: b.name }),
  };
}

function toVip(v: RawVip): VipSpec {
  return { vip: parseVip(v.vip), hash: v.hash ?? "5tuple", backends: (v.backends ?? []).map(toBackend) };
}

/** Defaults applied; the port defaults to the VIP's (the schema required one where that is 0 or UDP). */
export function toHealth(h: RawHealth, vipPort: number): HealthCheckSpec {
  return {
    type: h.type ?? HEALTH_DEFAULTS.type,
    port: h.port ?? vipPort,
    path: h.path ?? HEALTH_DEFAULTS.path,
    expectStatus: h.expect_status ?? HEALTH_DEFAULTS.expectStatus,
    intervalMs: h.interval_ms ?? HEALTH_DEFAULTS.intervalMs,
    timeoutMs: h.timeout_ms ?? HEALTH_DEFAULTS.timeoutMs,
    rise: h.rise ?? HEALTH_DEFAULTS.rise,
    fall: h.fall ?? HEALTH_DEFAULTS.fall,
  };
}

function healthOf(vips: readonly RawVip[]): Map<string, HealthCheckSpec> {
  const out = new Map<string, HealthCheckSpec>();
  for (const v of vips) {
    if (v.health === undefined) continue;
    const ref = parseVip(v.vip);
    out.set(formatVip(ref), toHealth(v.health, ref.port));
  }
  return out;
}

/** Backends with a `health` of their own: its keys over the VIP's, then the defaults. */
function healthOverridesOf(vips: readonly RawVip[]): Map<string, HealthCheckSpec> {
  const out = new Map<string, HealthCheckSpec>();
  for (const v of vips) {
    const ref = parseVip(v.vip);
    for (const b of v.backends ?? []) {
      if (b.health === undefined) continue;
      const address = addressToString(parseBackendAddress(b.address).address);
      out.set(`${formatVip(ref)} ${address}`, toHealth({ ...v.health, ...b.health }, ref.port));
    }
  }
  return out;
}

function toSettings(s: RawConfig["settings"]): ConfigSettings {
  return {
    ...(s?.maglev_size === undefined ? {} : { maglevSize: s.maglev_size }),
    ...(s?.log_level === undefined ? {} : { logLevel: s.log_level }),
    ...(s?.log_file === undefined ? {} : { logFile: s.log_file }),
  };
}

/**
 * Parses and validates config text; `fileName` prefixes every message. Throws LbError
 * LB_ERR_CONFIG listing every problem, one "FILE:LINE:COL: PATH: message" per line.
 * Pure: no I/O. An empty document is a valid config without VIPs.
 */
export function parseConfig(text: string, fileName: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) throw syntaxError(fileName, text, doc, lineCounter);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new LbError("LB_ERR_CONFIG", `${fileName}:1:1: ${(err as Error).message}`, { cause: err });
  }
  raw ??= {}; // empty file, or comments only
  const { data, issues } = schemaIssues(raw);
  issues.push(...crossFieldIssues(raw));
  if (data === undefined || issues.length > 0) {
    const lines = issues.map((iss): PlacedLine => {
      const pos = positionOf(doc, lineCounter, iss.path, iss.atKey === true);
      const where = iss.path.length === 0 ? "" : `${formatPath(iss.path)}: `;
      return { offset: pos.offset, text: `${pos.line}:${pos.col}: ${where}${iss.message}` };
    });
    throw fail(fileName, lines);
  }
  return {
    file: fileName,
    desired: { vips: (data.vips ?? []).map(toVip) },
    settings: toSettings(data.settings),
    health: healthOf(data.vips ?? []),
    healthOverrides: healthOverridesOf(data.vips ?? []),
  };
}

/** Reads and parses a config file; read failures are LB_ERR_CONFIG naming the file. */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new LbError("LB_ERR_CONFIG", `${path}: cannot read config file: ${e.code ?? e.message}`, {
      errno: e.errno === undefined ? undefined : Math.abs(e.errno),
      cause: err,
    });
  }
  return parseConfig(text, path);
}
