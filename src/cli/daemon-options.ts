// What `lbctl load` and `lbctl unload` hand to the daemon side (src/daemon.ts, src/unload.ts):
// the parsed command line, nothing resolved yet, so the daemon can record where each setting
// came from (flag > env > config > default).

export type DaemonMode = "auto" | "native" | "generic" | "nfqueue";

export const DAEMON_MODES = ["auto", "native", "generic", "nfqueue"] as const satisfies readonly DaemonMode[];

export interface DaemonOptions {
  iface: string;
  config?: string;
  mode: DaemonMode;
  /** Outer source addresses, at most one per family (checked by the CLI). */
  sources: string[];
  /** Only when --socket was given; the daemon applies $LBCTL_SOCKET, then DEFAULT_SOCKET. */
  socket?: string;
  secretFile?: string;
  registrationPort?: number;
  /** ADDR:PORT (IPv6 bracketed), checked by the CLI. */
  api?: string;
  /** Bearer token file (mode 0600) that turns REST changes on. */
  apiTokenFile?: string;
  keep: boolean;
  /** --once: apply, leave the data plane pinned and forwarding, exit (no sockets served). */
  once?: boolean;
  logLevel?: string;
  logFile?: string;
}

export interface UnloadOptions {
  iface: string;
  /** Only when --socket was given; runUnload applies $LBCTL_SOCKET, then DEFAULT_SOCKET. */
  socket?: string;
}
