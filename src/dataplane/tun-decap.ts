// The backend's userspace decapsulator (native/tun/tun_decap.c) as its supervisor sees it: a
// child process that receives the encapsulated UDP and writes inner packets into a TUN device.
// A child that dies is logged and restarted with backoff; counters come from the JSON lines it
// prints (periodically, and on SIGUSR1 when asked), summed across restarts. Used by
// `lbctl agent --decap tun|auto` and by the lab's tun-attach helper.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Logger } from "pino";

import { addressToString, type IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { packageRoot } from "../lib/paths.js";

/** enum lb_tun_reason (native/tun_decide.h), index = value; checked against the C names. */
export const TUN_REASONS = [
  "decap",
  "empty",
  "version",
  "short",
  "length",
  "not_vip",
  "oversize",
  "tun_write",
] as const;
export type TunReason = (typeof TUN_REASONS)[number];
export type TunDropReason = Exclude<TunReason, "decap">;
const DROP_REASONS = TUN_REASONS.filter((r): r is TunDropReason => r !== "decap");

export interface TunCounters {
  /** Datagrams received on the encap port. */
  rx: number;
  /** Inner packets written into the TUN device. */
  decap: number;
  /** Datagrams dropped, by reason (never written). */
  drops: Record<TunDropReason, number>;
  /** Datagrams the kernel dropped on a full socket buffer (SO_RXQ_OVFL). */
  socketDrops: number;
  /** recvmmsg calls that returned datagrams. */
  batches: number;
}

const BACKOFF_MS = [200, 500, 1000, 2000, 5000];
/** A child that ran this long before dying starts the backoff over. */
const STABLE_MS = 10_000;
const READY_TIMEOUT_MS = 5000;

export function tunDecapPath(): string {
  return join(packageRoot(), "build", "Release", "caplance-tun");
}

export function zeroTunCounters(): TunCounters {
  const drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<TunDropReason, number>;
  return { rx: 0, decap: 0, drops, socketDrops: 0, batches: 0 };
}

function addCounters(a: TunCounters, b: TunCounters): TunCounters {
  const drops = { ...a.drops };
  for (const r of DROP_REASONS) drops[r] += b.drops[r];
  return {
    rx: a.rx + b.rx,
    decap: a.decap + b.decap,
    drops,
    socketDrops: a.socketDrops + b.socketDrops,
    batches: a.batches + b.batches,
  };
}

/** One counters line of caplance-tun; undefined for anything else (the ready line). */
export function parseTunCounters(line: string): TunCounters | undefined {
  if (!line.startsWith("{")) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  const r = raw as {
    rx?: unknown;
    decap?: unknown;
    drops?: Record<string, unknown>;
    socket_drops?: unknown;
    batches?: unknown;
  };
  const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);
  const out = zeroTunCounters();
  const rx = num(r.rx);
  const decap = num(r.decap);
  if (rx === undefined || decap === undefined || typeof r.drops !== "object") return undefined;
  out.rx = rx;
  out.decap = decap;
  for (const reason of DROP_REASONS) out.drops[reason] = num(r.drops[reason]) ?? 0;
  out.socketDrops = num(r.socket_drops) ?? 0;
  out.batches = num(r.batches) ?? 0;
  return out;
}

export interface TunDecapOptions {
  /** An existing TUN device (createTunDevice). */
  readonly tun: string;
  readonly encapPort: number;
  /** Local addresses to receive on (outer destinations), at least one. */
  readonly listen: readonly IpAddress[];
  /** Write only inner packets to these destinations; empty or absent: any. */
  readonly vips?: readonly IpAddress[];
  readonly log: Logger;
  /** How often the child reports its counters (ms; default 1000). */
  readonly statsIntervalMs?: number;
}

export class TunDecap {
  private child: ChildProcess | undefined;
  private alive = false;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private backoff = 0;
  /** The live child's latest counters, and the sum over children that are gone. */
  private current = zeroTunCounters();
  private carried = zeroTunCounters();
  private readonly waiters: (() => void)[] = [];
  private closed: Promise<void> = Promise.resolve();
  /** Restarts so far (status, tests). */
  restarts = 0;
  lastExit: string | undefined;

  private constructor(private readonly opts: TunDecapOptions) {}

  /** Starts the decapsulator and waits until its sockets and the device are open. */
  static async start(opts: TunDecapOptions): Promise<TunDecap> {
    const path = tunDecapPath();
    if (!existsSync(path))
      throw new LbError("LB_ERR_NATIVE", `TUN decapsulator ${path} is missing`, {
        hint: "build it: npm run setup",
      });
    if (opts.listen.length === 0)
      throw new LbError("LB_ERR_CONFIG", `TUN decap on ${opts.tun}: no local address to receive on`);
    const d = new TunDecap(opts);
    await d.spawn();
    return d;
  }

  get pid(): number | undefined {
    return this.alive ? this.child?.pid : undefined;
  }

  private args(): string[] {
    const o = this.opts;
    return [
      "--tun",
      o.tun,
      "--port",
      String(o.encapPort),
      ...o.listen.flatMap((a) => ["--listen", addressToString(a)]),
      ...(o.vips ?? []).flatMap((a) => ["--vip", addressToString(a)]),
      "--stats-interval",
      String(o.statsIntervalMs ?? 1000),
    ];
  }

  private spawn(): Promise<void> {
    const { log } = this.opts;
    const child = spawn(tunDecapPath(), this.args(), { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.closed = new Promise((resolve) =>
      child.once("close", () => {
        resolve();
      }),
    );
    const stderr: string[] = [];
    return new Promise((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        if (ready) return;
        child.kill("SIGKILL");
        reject(new LbError("LB_ERR_NATIVE", `TUN decapsulator not ready within ${READY_TIMEOUT_MS} ms`));
      }, READY_TIMEOUT_MS);
      createInterface({ input: child.stdout }).on("line", (line) => {
        if (line.startsWith("ready")) {
          ready = true;
          clearTimeout(timer);
          this.alive = true;
          this.startedAt = Date.now();
          log.info({ pid: child.pid, tun: this.opts.tun, encapPort: this.opts.encapPort }, "TUN decap ready");
          resolve();
          return;
        }
        const c = parseTunCounters(line);
        if (c === undefined) return;
        this.current = c;
        for (const w of this.waiters.splice(0)) w();
      });
      createInterface({ input: child.stderr }).on("line", (line) => {
        stderr.push(line);
        log.warn({ pid: child.pid }, line);
      });
      child.on("error", (err) => {
        clearTimeout(timer);
        if (!ready) reject(new LbError("LB_ERR_NATIVE", `TUN decapsulator: ${err.message}`, { cause: err }));
      });
      // "close": after exit and after its last counters line has been read.
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        this.alive = false;
        this.lastExit = signal ? `signal ${signal}` : `exit ${String(code)}`;
        this.carried = addCounters(this.carried, this.current);
        this.current = zeroTunCounters();
        for (const w of this.waiters.splice(0)) w();
        if (!ready) {
          reject(
            new LbError(
              "LB_ERR_NATIVE",
              `TUN decapsulator exited at start (${this.lastExit}): ${stderr.join("; ") || "no message"}`,
            ),
          );
          return;
        }
        if (this.stopping) return;
        if (Date.now() - this.startedAt >= STABLE_MS) this.backoff = 0;
        log.error(
          { pid: child.pid, exit: this.lastExit },
          "TUN decap died; encapsulated traffic is not delivered until it is back",
        );
        this.scheduleRestart();
      });
    });
  }

  /** Restarts after the next backoff step; a failed restart schedules the next one. */
  private scheduleRestart(): void {
    const { log } = this.opts;
    const delay = BACKOFF_MS[Math.min(this.backoff++, BACKOFF_MS.length - 1)] ?? 5000;
    log.info({ restartInMs: delay }, "TUN decap restart scheduled");
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.restarts++;
      this.spawn()
        .then(() => {
          log.info({ pid: this.child?.pid, restarts: this.restarts }, "TUN decap restarted");
        })
        .catch((err: unknown) => {
          log.error({ err }, "TUN decap restart failed");
          if (!this.stopping) this.scheduleRestart();
        });
    }, delay);
  }

  /** Fresh counters (asks the child with SIGUSR1), summed over restarts. */
  async counters(timeoutMs = 2000): Promise<TunCounters> {
    const child = this.child;
    if (this.alive && child) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
        child.kill("SIGUSR1");
      });
    }
    return addCounters(this.carried, this.current);
  }

  /** Stops supervising and ends the child (SIGTERM, then SIGKILL after 3 s); final counters. */
  async stop(): Promise<TunCounters> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      child.kill("SIGTERM");
      await this.closed;
      clearTimeout(timer);
    }
    return addCounters(this.carried, this.current);
  }

  /** Sends the child a signal as a crash would (tests). */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.child?.kill(signal);
  }
}
