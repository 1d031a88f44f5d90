// The NFQUEUE worker (native/worker/nfq_worker.c) as the daemon sees it: a supervised child
// process and the EngineSink behind its BalancerMaps. State goes down the worker's stdin as
// map writes (the reconciler's, unchanged); counters come back through the stats file the
// worker mmaps (read like per-CPU maps, one "CPU" per packet thread). A worker that dies is
// logged and restarted with backoff, and the whole mirrored state is replayed into it; the
// daemon never goes down with it.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Logger } from "pino";
import { LbError } from "../lib/errors.js";
import { packageRoot } from "../lib/paths.js";
import { LB_COUNTERS_SIZE, LB_MAX_BACKENDS, LB_MAX_VIPS } from "../maps/abi.js";
import { BalancerMaps } from "../maps/balancer-maps.js";
import { EngineMapId, EngineMapSet, type EngineSink } from "../maps/engine-maps.js";

/** native/worker/nfq_worker.c: struct lb_wmsg and LB_WOP_*. */
const OP_UPDATE = 1;
const OP_DELETE = 2;
const OP_TABLE = 3;
const OP_SYNC = 4;
const MSG_HEADER = 16;
/** Stats file: LB_STATS_HEADER_SIZE, then struct lb_engine_stats per runner. */
const STATS_HEADER = 8192;
const COUNTERS_OFF = 0;
const VIPS_OFF = LB_COUNTERS_SIZE * 8;
const BACKENDS_OFF = VIPS_OFF + LB_MAX_VIPS * 16;
const STATS_SIZE = BACKENDS_OFF + LB_MAX_BACKENDS * 16;
/** Worker counters in the header: 8 x __u64 per runner from offset 24. */
const WORKER_COUNTERS_OFF = 24;

const BACKOFF_MS = [200, 500, 1000, 2000, 5000];

export function nfqWorkerPath(): string {
  return join(packageRoot(), "build", "Release", "caplance-nfq");
}

export interface NfqWorkerOptions {
  /** Queue numbers first .. first + count - 1, one packet thread each. */
  readonly firstQueue: number;
  readonly queues: number;
  readonly statsPath: string;
  readonly flowTableSize: number;
  readonly log: Logger;
  /** Called after every write to lb_vip_addrs (the iptables rules follow the VIP addresses). */
  readonly onVipAddrsChanged?: () => void;
}

export interface NfqWorkerCounters {
  packets: number;
  batches: number;
  enobufs: number;
  sendErrors: number;
  verdictErrors: number;
}

export class NfqWorker implements EngineSink {
  readonly runners: number;
  readonly maps: BalancerMaps;
  private readonly mapSet: EngineMapSet;
  private child: ChildProcess | undefined;
  private alive = false;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private syncSeq = 0;
  private readonly syncWaiters = new Map<number, () => void>();
  private statsFd: number | undefined;
  /** Restarts so far (status, tests). */
  restarts = 0;
  lastExit: string | undefined;

  private constructor(private readonly opts: NfqWorkerOptions) {
    this.runners = opts.queues;
    this.mapSet = new EngineMapSet(this, opts.flowTableSize);
    this.maps = new BalancerMaps(this.mapSet);
  }

  /** Starts the worker and waits until its queues are bound. */
  static async start(opts: NfqWorkerOptions): Promise<NfqWorker> {
    const path = nfqWorkerPath();
    if (!existsSync(path)) {
      throw new LbError("LB_ERR_NATIVE", `NFQUEUE worker ${path} is missing`, {
        hint: "build it: npm run setup (needs libnetfilter-queue-dev)",
      });
    }
    const worker = new NfqWorker(opts);
    await worker.spawn();
    return worker;
  }

  get pid(): number | undefined {
    return this.alive ? this.child?.pid : undefined;
  }

  private spawn(): Promise<void> {
    const { opts } = this;
    const args = [
      "--queues",
      `${opts.firstQueue}:${opts.queues}`,
      "--stats",
      opts.statsPath,
      "--flow-table",
      String(opts.flowTableSize),
    ];
    const child = spawn(nfqWorkerPath(), args, { stdio: ["pipe", "pipe", "pipe"] });
    this.child = child;
    const log = opts.log;
    return new Promise((resolve, reject) => {
      let ready = false;
      const lines = createInterface({ input: child.stdout });
      lines.on("line", (line) => {
        if (line.startsWith("ready")) {
          ready = true;
          this.alive = true;
          log.info({ pid: child.pid, queues: `${opts.firstQueue}:${opts.queues}` }, "NFQUEUE worker ready");
          resolve();
        } else if (line.startsWith("sync ")) {
          const seq = Number(line.slice(5));
          this.syncWaiters.get(seq)?.();
          this.syncWaiters.delete(seq);
        }
      });
      let lastStderr = "";
      createInterface({ input: child.stderr }).on("line", (line) => {
        lastStderr = line;
        log.warn({ pid: child.pid }, line);
      });
      child.stdin.on("error", (err) => {
        log.debug({ err }, "NFQUEUE worker stdin closed");
      });
      child.on("error", (err) => {
        log.error({ err }, "NFQUEUE worker could not run");
        if (!ready) reject(new LbError("LB_ERR_NATIVE", `NFQUEUE worker: ${err.message}`, { cause: err }));
      });
      child.on("exit", (code, signal) => {
        this.alive = false;
        this.lastExit = signal ? `signal ${signal}` : `exit ${code}`;
        for (const done of this.syncWaiters.values()) done();
        this.syncWaiters.clear();
        if (!ready) {
          // 127: the loader could not start it, typically libnetfilter_queue missing at run time.
          const said = lastStderr === "" ? "" : `: ${lastStderr}`;
          reject(
            new LbError("LB_ERR_NATIVE", `NFQUEUE worker exited at start (${this.lastExit})${said}`, {
              hint:
                code === 127
                  ? "a shared library of caplance-nfq is missing: install libnetfilter-queue1 (npm run setup)"
                  : "its stderr is in the log above; the queues may be owned by another process",
            }),
          );
          return;
        }
        if (this.stopping) return;
        const delay = BACKOFF_MS[Math.min(this.restarts, BACKOFF_MS.length - 1)] ?? 5000;
        log.error(
          { pid: child.pid, exit: this.lastExit, restartInMs: delay },
          "NFQUEUE worker died; VIP traffic bypasses the queue until it is back (fail open)",
        );
        this.restartTimer = setTimeout(() => {
          this.restarts++;
          this.spawn()
            .then(() => {
              this.mapSet.replayInto(this);
              log.info(
                { pid: this.child?.pid, restarts: this.restarts },
                "NFQUEUE worker restarted, state replayed",
              );
            })
            .catch((err: unknown) => {
              log.error({ err }, "NFQUEUE worker restart failed");
            });
        }, delay);
      });
    });
  }

  private send(op: number, map: number, count: number, arg: number, payload: Uint8Array[]): void {
    if (!this.alive || this.child === undefined) return; // replayed on restart from the mirror
    const len = payload.reduce((n, p) => n + p.length, 0);
    const msg = Buffer.alloc(MSG_HEADER + len);
    msg.writeUInt32LE(len, 0);
    msg.writeUInt16LE(op, 4);
    msg.writeUInt16LE(map, 6);
    msg.writeUInt32LE(count, 8);
    msg.writeUInt32LE(arg, 12);
    let off = MSG_HEADER;
    for (const p of payload) {
      msg.set(p, off);
      off += p.length;
    }
    this.child.stdin?.write(msg);
  }

  // ---- EngineSink

  update(map: EngineMapId, keys: Uint8Array, values: Uint8Array, count: number): void {
    if (map >= EngineMapId.FLOWS) {
      if (map === EngineMapId.FLOWS)
        throw new LbError("LB_ERR_UNSUPPORTED", "the NFQUEUE worker's flow tables are its own");
      this.writeStats(map, keys, values, count);
      return;
    }
    this.send(OP_UPDATE, map, count, 0, [keys, values]);
    if (map === EngineMapId.VIP_ADDRS) this.opts.onVipAddrsChanged?.();
  }

  delete(map: EngineMapId, key: Uint8Array): boolean {
    if (map === EngineMapId.FLOWS)
      throw new LbError("LB_ERR_UNSUPPORTED", "the NFQUEUE worker's flow tables are its own");
    this.send(OP_DELETE, map, 1, 0, [key]);
    if (map === EngineMapId.VIP_ADDRS) this.opts.onVipAddrsChanged?.();
    return true;
  }

  lookup(map: EngineMapId, key: Uint8Array): Uint8Array | undefined {
    if (map === EngineMapId.FLOWS)
      throw new LbError(
        "LB_ERR_UNSUPPORTED",
        "the NFQUEUE worker's flow tables cannot be read by the daemon",
      );
    const { offset, size } = this.statsSlot(map, key);
    const out = new Uint8Array(size * this.runners);
    const fd = this.stats();
    if (fd === undefined) return out;
    for (let r = 0; r < this.runners; r++) {
      readSync(fd, out, r * size, size, STATS_HEADER + r * STATS_SIZE + offset);
    }
    return out;
  }

  table(vipId: number, table: Uint32Array | undefined): void {
    const bytes = table
      ? new Uint8Array(table.buffer, table.byteOffset, table.byteLength)
      : new Uint8Array(0);
    this.send(OP_TABLE, 0, table?.length ?? 0, vipId, [bytes]);
  }

  /** Resolves once the worker has applied every write sent before (immediately when it is down). */
  sync(): Promise<void> {
    if (!this.alive) return Promise.resolve();
    const seq = ++this.syncSeq;
    return new Promise((resolve) => {
      this.syncWaiters.set(seq, resolve);
      this.send(OP_SYNC, 0, 0, seq, []);
    });
  }

  /** The worker's own counters, summed over packet threads. */
  workerCounters(): NfqWorkerCounters {
    const total = { packets: 0, batches: 0, enobufs: 0, sendErrors: 0, verdictErrors: 0 };
    const fd = this.stats();
    if (fd === undefined) return total;
    const buf = Buffer.alloc(64);
    for (let r = 0; r < this.runners; r++) {
      readSync(fd, buf, 0, 64, WORKER_COUNTERS_OFF + r * 64);
      total.packets += Number(buf.readBigUInt64LE(0));
      total.batches += Number(buf.readBigUInt64LE(8));
      total.enobufs += Number(buf.readBigUInt64LE(16));
      total.sendErrors += Number(buf.readBigUInt64LE(24));
      total.verdictErrors += Number(buf.readBigUInt64LE(32));
    }
    return total;
  }

  /** Stops supervising and ends the worker (stdin EOF, then SIGTERM after 1 s). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && this.alive) {
      const exited = new Promise<void>((resolve) => {
        child.once("exit", () => {
          resolve();
        });
      });
      child.stdin?.end();
      const timer = setTimeout(() => child.kill("SIGTERM"), 1000);
      await exited;
      clearTimeout(timer);
    }
    if (this.statsFd !== undefined) closeSync(this.statsFd);
    this.statsFd = undefined;
    if (existsSync(this.opts.statsPath)) unlinkSync(this.opts.statsPath);
  }

  /** Kills the worker as a crash would (tests). */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.child?.kill(signal);
  }

  private stats(): number | undefined {
    if (this.statsFd === undefined && existsSync(this.opts.statsPath))
      this.statsFd = openSync(this.opts.statsPath, "r+");
    return this.statsFd;
  }

  private statsSlot(map: EngineMapId, key: Uint8Array): { offset: number; size: number } {
    const k = new DataView(key.buffer, key.byteOffset, 4).getUint32(0, true);
    const check = (max: number): void => {
      if (k >= max) throw new LbError("LB_ERR_MAP", `NFQUEUE stats map ${map}: index ${k} out of range`);
    };
    if (map === EngineMapId.COUNTERS) {
      check(LB_COUNTERS_SIZE);
      return { offset: COUNTERS_OFF + k * 8, size: 8 };
    }
    if (map === EngineMapId.VIP_STATS) {
      check(LB_MAX_VIPS);
      return { offset: VIPS_OFF + k * 16, size: 16 };
    }
    if (map === EngineMapId.BACKEND_STATS) {
      check(LB_MAX_BACKENDS);
      return { offset: BACKENDS_OFF + k * 16, size: 16 };
    }
    throw new LbError("LB_ERR_MAP", `NFQUEUE worker: map ${map} is not a stats map`);
  }

  /** Overwrites stats values (a reused VIP id / backend index is zeroed before use). */
  private writeStats(map: EngineMapId, keys: Uint8Array, values: Uint8Array, count: number): void {
    const fd = this.stats();
    if (fd === undefined) return;
    for (let i = 0; i < count; i++) {
      const key = keys.subarray(i * 4, i * 4 + 4);
      const { offset, size } = this.statsSlot(map, key);
      const stride = ((size + 7) & ~7) * this.runners;
      const value = values.subarray(i * stride, (i + 1) * stride);
      for (let r = 0; r < this.runners; r++) {
        const part = value.subarray(r * size, (r + 1) * size);
        writeAt(fd, part, STATS_HEADER + r * STATS_SIZE + offset);
      }
    }
  }
}

/** pwrite into the stats file: the worker's mapping sees it. */
function writeAt(fd: number, data: Uint8Array, position: number): void {
  writeSync(fd, data, 0, data.length, position);
}
