// Active health-check settings of a VIP (config `vips[].health`, docs/config.md): what to probe on
// each backend's own address, how often, and how many results in a row flip its state. Pure data.

/** tcp: a connect; http/https: a GET whose status must match (https: TLS, certificate not
 * verified); none: no probe (a backend-level `type: none` exempts one backend). */
export const HEALTH_TYPES = ["tcp", "http", "https", "none"] as const;
export type HealthType = (typeof HEALTH_TYPES)[number];

/** Defaults in the spirit of keepalived/GLB: a dead backend leaves within fall × interval (3 s). */
export const HEALTH_DEFAULTS = {
  type: "tcp",
  path: "/",
  expectStatus: 200,
  intervalMs: 1000,
  timeoutMs: 1000,
  rise: 2,
  fall: 3,
} as const;

/** Bounds the config accepts (milliseconds, counts). */
export const HEALTH_LIMITS = {
  intervalMs: [100, 3_600_000],
  timeoutMs: [10, 60_000],
  rise: [1, 100],
  fall: [1, 100],
  pathLength: 1024,
} as const;

/** One VIP's checks, defaults applied; port resolved (the VIP's port when not given). */
export interface HealthCheckSpec {
  readonly type: HealthType;
  /** TCP port probed on the backend's address. */
  readonly port: number;
  /** HTTP(S) only: request path and the status that counts as healthy. */
  readonly path: string;
  readonly expectStatus: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Consecutive successes that bring a down backend back. */
  readonly rise: number;
  /** Consecutive failures that take an up backend down. */
  readonly fall: number;
}

/**
 * The check of a VIP with no `health` of its own (config or `lbctl vip add`): a TCP connect to
 * each backend's address on the VIP's port for a TCP VIP with a port; none for UDP and port-0
 * VIPs, where no port or protocol can be guessed. `health: { type: none }` turns it off.
 */
export function defaultCheck(proto: "tcp" | "udp", port: number): HealthCheckSpec | undefined {
  if (proto !== "tcp" || port === 0) return undefined;
  return {
    type: "tcp",
    port,
    path: HEALTH_DEFAULTS.path,
    expectStatus: HEALTH_DEFAULTS.expectStatus,
    intervalMs: HEALTH_DEFAULTS.intervalMs,
    timeoutMs: HEALTH_DEFAULTS.timeoutMs,
    rise: HEALTH_DEFAULTS.rise,
    fall: HEALTH_DEFAULTS.fall,
  };
}

/** "tcp:80", "http:80/healthz", "https:443/" or "none": how a check names itself in logs. */
export function describeCheck(spec: HealthCheckSpec): string {
  if (spec.type === "none") return "none";
  return spec.type === "tcp" ? `tcp:${spec.port}` : `${spec.type}:${spec.port}${spec.path}`;
}
