// The control socket's protocol (docs/control-socket.md): JSON lines over a unix socket, one
// request per line, one response line per request, matched by id. Shared by the daemon and
// every client (lbctl); the shapes here are the contract between them.

export const DEFAULT_SOCKET = "/run/caplance/lbd.sock";
export const DEFAULT_AGENT_SOCKET = "/run/caplance/agent.sock";
/** Longest request line the daemon reads; longer ones get an error and the connection closes. */
export const MAX_REQUEST_BYTES = 64 * 1024;

export type Command =
  | { cmd: "status" }
  | { cmd: "vip.add"; vip: string; hash?: "5tuple" | "src-ip" | "src-ip-port" }
  | { cmd: "vip.remove"; vip: string }
  | { cmd: "vip.list" }
  | {
      cmd: "backend.add";
      vip: string;
      /** ADDR or ADDR:ENCAP_PORT per the CLI contract. */
      backend: string;
      weight?: number;
      name?: string;
    }
  | { cmd: "backend.remove"; vip: string; backend: string }
  | { cmd: "backend.drain"; vip: string; backend: string }
  | { cmd: "backend.resume"; vip: string; backend: string }
  | { cmd: "backend.list"; vip?: string }
  | { cmd: "stats" }
  // `lbctl agent pause|resume|deregister|status` over the agent's own socket (src/agent/agent.ts).
  | { cmd: "agent.pause" }
  | { cmd: "agent.resume" }
  | { cmd: "agent.deregister" }
  | { cmd: "agent.status" }
  | { cmd: "reload" };

export type Request = Command & { id: number };

export interface ErrorBody {
  /** Stable LB_ERR_* code. */
  code: string;
  message: string;
  hint?: string;
}

export type Response =
  | { id: number; ok: true; result: unknown; warnings?: string[] }
  | { id: number; ok: false; error: ErrorBody };

// ---- results (what `--json` prints)

export interface VipInfo {
  vip: string;
  hash: "5tuple" | "src-ip" | "src-ip-port";
  /** Number of backends (any state). */
  backends: number;
}

export interface BackendInfo {
  vip: string;
  address: string;
  /** Encap port. */
  port: number;
  name: string;
  /** Configured weight. */
  weight: number;
  state: "active" | "draining" | "down" | "pending";
  // Beyond the contract's fields (optional: a daemon of an older version sends none of them).
  /** "static": the config file, lbctl or the API; "registered": an agent. */
  source?: "static" | "registered";
  health?: BackendHealth;
  /** ISO 8601 time of the last change of its state or settings, and why. */
  changedAt?: string;
  changeReason?: string;
}

/** A backend's active health checks (docs/config.md#health-checks--health). */
export interface BackendHealth {
  /** "none": not probed. */
  kind: "tcp" | "http" | "https" | "none";
  /** "http:80/healthz"; null for none. */
  check: string | null;
  /** The latest probe: success, timeout, refused, bad_status, error; null before the first. */
  result: string | null;
  detail: string | null;
  /** Consecutive successes and failures. */
  passes: number;
  fails: number;
  /** ISO 8601 time of the latest probe. */
  lastCheckAt: string | null;
}

export interface StatsResult {
  vips: Record<string, { packets: number; bytes: number }>;
  /** Keyed "VIP ADDR". */
  backends: Record<string, { packets: number; bytes: number }>;
  drops: Record<string, number>;
  /** Other data-plane counters (pass, tx, redirect, flow hits/misses, no_neigh…). */
  counters: Record<string, number>;
  /** nfqueue mode only: the queues as the kernel and the worker see them (docs/fallback.md). */
  nfqueue?: NfqueueStats;
}

export interface NfqueueStats {
  /** Queues the rules balance over, and how many of them a worker thread is bound to. */
  queues: number;
  bound: number;
  /** Packets in the queues awaiting a verdict right now. */
  waiting: number;
  /** Dropped by the kernel: queue at its maximum length / worker's netlink socket full. */
  queue_dropped: number;
  user_dropped: number;
  /** The worker's own counters (since its last start). */
  packets: number;
  batches: number;
  enobufs: number;
  send_errors: number;
  verdict_errors: number;
  worker_restarts: number;
}

/** `lbctl reload`: what a re-read of the config file changed ("VIP" or "VIP ADDR" strings). */
export interface ReloadResult {
  config: string;
  added: string[];
  removed: string[];
  changed: string[];
  warnings: string[];
}

export interface SettingOrigin {
  value: string | number | boolean | null;
  /** Where the value came from, in precedence order: flag > env > config > default. */
  from: "flag" | "env" | "config" | "default";
}

export interface StatusResult {
  iface: string;
  ifindex: number;
  mode: "native" | "generic" | "nfqueue";
  /** Why that mode (auto's reasoning, or "requested"). */
  modeReason: string;
  pid: number;
  socket: string;
  config: string | null;
  vips: number;
  backends: number;
  uptimeSeconds: number;
  settings: Record<string, SettingOrigin>;
  /** Hitless restart: took over a data plane a previous daemon left pinned; its program was swapped. */
  adopted?: boolean;
  upgraded?: boolean;
  /** --keep: stopping leaves the data plane pinned and forwarding. */
  keep?: boolean;
}
