// Runs iproute2's `ip -j ...` as a child process and validates its JSON. A child inherits the
// daemon's network namespace (it runs under `nsenter --net`, where /sys/class/net still shows the
// host's devices), so this reads the right link, route and neighbour tables without netlink code.
import { execFile } from "node:child_process";

import { z } from "zod";

import { LbError } from "../lib/errors.js";

/** Wall-clock limit for one `ip` invocation, in milliseconds. */
export const IP_TIMEOUT_MS = 2000;

/** What one `ip` invocation produced; a non-zero exit is data here, not an exception. */
export type IpResult =
  | { readonly ok: true; readonly stdout: string }
  | { readonly ok: false; readonly stderr: string; readonly exitCode: number | undefined };

/** Runs `ip -j ARGS...`. Replaced by canned output in unit tests. */
export type IpRunner = (args: readonly string[]) => Promise<IpResult>;

/** `ip -j route get 198.18.0.11`, as messages name the command. */
export function ipCommandText(args: readonly string[]): string {
  return ["ip", "-j", ...args].join(" ");
}

/** The real runner: execFile (no shell) with IP_TIMEOUT_MS. Throws only when `ip` cannot run. */
export const execIp: IpRunner = (args) =>
  new Promise((resolve, reject) => {
    execFile(
      "ip",
      ["-j", ...args],
      { encoding: "utf8", timeout: IP_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ ok: true, stdout });
          return;
        }
        const cmd = ipCommandText(args);
        // @types/node says signal is never null; node sets null when the child exited by itself.
        if (err.killed === true || typeof err.signal === "string") {
          reject(
            new LbError("LB_ERR_NETLINK", `\`${cmd}\` did not finish within ${IP_TIMEOUT_MS} ms`, {
              detail: stderr,
              cause: err,
            }),
          );
        } else if (typeof err.code === "string") {
          // ENOENT and friends: the program itself could not be started.
          reject(
            new LbError("LB_ERR_NETLINK", `cannot run \`${cmd}\`: ${err.code}`, {
              hint: "install iproute2 (npm run setup does)",
              cause: err,
            }),
          );
        } else {
          resolve({ ok: false, stderr, exitCode: typeof err.code === "number" ? err.code : undefined });
        }
      },
    );
  });

/** First non-empty line of stderr, for one-line messages. */
export function firstLine(text: string): string {
  return (
    text
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l !== "") ?? "no message"
  );
}

/**
 * Maps a failed invocation to a domain error (e.g. "Device does not exist" → LB_ERR_IFACE);
 * undefined falls back to LB_ERR_NETLINK naming the command and its stderr.
 */
export type IpFailureMapper = (stderr: string, exitCode: number | undefined) => LbError | undefined;

/** Parses `ip -j` stdout against a schema. Empty output counts as an empty list. */
export function parseIpJson<S extends z.ZodType>(
  args: readonly string[],
  stdout: string,
  schema: S,
): z.output<S> {
  const cmd = ipCommandText(args);
  let value: unknown;
  try {
    value = stdout.trim() === "" ? [] : JSON.parse(stdout);
  } catch (err) {
    throw new LbError("LB_ERR_NETLINK", `\`${cmd}\` printed invalid JSON`, {
      detail: stdout.slice(0, 2000),
      cause: err,
    });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? "" : ` at ${issue.path.join(".") || "top level"}: ${issue.message}`;
    throw new LbError("LB_ERR_NETLINK", `unexpected output from \`${cmd}\`${where}`, {
      detail: stdout.slice(0, 2000),
    });
  }
  return parsed.data;
}

/** Runs `ip -j ARGS` and parses its output; a non-zero exit goes through onFailure first. */
export async function ipJson<S extends z.ZodType>(
  run: IpRunner,
  args: readonly string[],
  schema: S,
  onFailure?: IpFailureMapper,
): Promise<z.output<S>> {
  const result = await run(args);
  if (!result.ok) {
    throw (
      onFailure?.(result.stderr, result.exitCode) ??
      new LbError("LB_ERR_NETLINK", `\`${ipCommandText(args)}\` failed: ${firstLine(result.stderr)}`, {
        detail: result.stderr,
      })
    );
  }
  return parseIpJson(args, result.stdout, schema);
}

// Schemas: only the fields Caplance reads; zod drops the rest, so newer iproute2 keys are harmless.

/** One entry of `ip -j link show` (and the link part of `ip -j addr show`). */
export const ipLinkSchema = z.object({
  ifindex: z.number().int().positive(),
  ifname: z.string(),
  flags: z.array(z.string()).default([]),
  mtu: z.number().int().nonnegative(),
  operstate: z.string().optional(),
  link_type: z.string().default("none"),
  /** Absent on links without a hardware address (tun, wireguard). */
  address: z.string().optional(),
});
export type IpLink = z.output<typeof ipLinkSchema>;

/** One address of `ip -j addr show`; filtered listings print `{}` for skipped addresses. */
export const ipAddrInfoSchema = z.object({
  family: z.string().optional(),
  local: z.string().optional(),
  prefixlen: z.number().int().optional(),
  scope: z.string().optional(),
  secondary: z.boolean().optional(),
  tentative: z.boolean().optional(),
  deprecated: z.boolean().optional(),
  dadfailed: z.boolean().optional(),
  temporary: z.boolean().optional(),
});
export type IpAddrInfo = z.output<typeof ipAddrInfoSchema>;

export const ipAddrLinkSchema = ipLinkSchema.extend({
  addr_info: z.array(ipAddrInfoSchema).default([]),
});
export type IpAddrLink = z.output<typeof ipAddrLinkSchema>;

/** One entry of `ip -j route get`. `type` is absent for unicast routes. */
export const ipRouteSchema = z.object({
  type: z.string().optional(),
  dst: z.string(),
  gateway: z.string().optional(),
  /** RFC 5549: an IPv4 route through an IPv6 next hop (`via inet6 fe80::1`). */
  via: z.object({ family: z.string(), host: z.string() }).optional(),
  dev: z.string().optional(),
  prefsrc: z.string().optional(),
  /** Route metrics, e.g. `[{"mtu": 1400}]` for `ip route add ... mtu 1400` or a cached path MTU. */
  metrics: z.array(z.record(z.string(), z.unknown())).optional(),
});
export type IpRoute = z.output<typeof ipRouteSchema>;

/** One entry of `ip -j neigh show`. INCOMPLETE and FAILED entries have no lladdr. */
export const ipNeighSchema = z.object({
  dst: z.string(),
  dev: z.string().optional(),
  lladdr: z.string().optional(),
  state: z.array(z.string()).default([]),
});
export type IpNeigh = z.output<typeof ipNeighSchema>;

export const ipLinkListSchema = z.array(ipLinkSchema);
export const ipAddrListSchema = z.array(ipAddrLinkSchema);
export const ipRouteListSchema = z.array(ipRouteSchema);
export const ipNeighListSchema = z.array(ipNeighSchema);
