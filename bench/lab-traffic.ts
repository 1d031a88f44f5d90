// Traffic for benchmarks in a namespace lab: the C generator (bench/udp_blast.c) and
// ping/echo (bench/udp_ping.c) run inside lab namespaces, and the receive side is counted from
// /proc/PID/net/snmp of a process living in the receiving namespace (a read, no child process,
// so the window's clock is exact).
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../src/lib/paths.js";
import { spawnReady } from "./spawn-ready.js";

export const UDP_BLAST = join(packageRoot(), "build", "Release", "udp_blast");
export const UDP_PING = join(packageRoot(), "build", "Release", "udp_ping");

export interface BlastOptions {
  readonly dst: string;
  readonly port: number;
  readonly seconds: number;
  /** Source ports sport .. sport + flows - 1, one flow each. */
  readonly flows?: number;
  readonly sport?: number;
  /** Ethernet frame length without FCS. */
  readonly frame?: number;
  readonly cpu?: number;
}

export interface BlastResult {
  sent: number;
  errors: number;
  seconds: number;
  pps: number;
}

/** Runs a command in a namespace (nsenter keeps the host's mounts); stdout, bounded by timeoutMs. */
export async function runIn(
  netns: string,
  cmd: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<string> {
  const child = spawn("nsenter", [`--net=${netns}`, cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code] = (await once(child, "close")) as [number | null]; // close: stdout read to its end
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} in ${netns}: exit ${code}: ${err.trim()}`);
  return out;
}

/** Starts the generator in netns; resolves with its report once it has finished. */
export function blast(netns: string, o: BlastOptions): Promise<BlastResult> {
  const args = ["--dst", o.dst, "--port", String(o.port), "--seconds", String(o.seconds)];
  if (o.flows !== undefined) args.push("--flows", String(o.flows));
  if (o.sport !== undefined) args.push("--sport", String(o.sport));
  if (o.frame !== undefined) args.push("--frame", String(o.frame));
  if (o.cpu !== undefined) args.push("--cpu", String(o.cpu));
  return runIn(netns, UDP_BLAST, args, (o.seconds + 10) * 1000).then(
    (out) => JSON.parse(out.trim().split("\n").pop() ?? "") as BlastResult,
  );
}

export interface PingResult {
  dst: string;
  sent: number;
  received: number;
  lost: number;
  min_us: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  max_us: number;
}

/**
 * count request/response round trips to each of dsts (port), one at a time, the destinations
 * taking turns, from netns (on opts.cpu when given); one result per destination, in order.
 */
export async function ping(
  netns: string,
  dsts: readonly string[],
  port: number,
  count: number,
  opts: { warmup?: number; cpu?: number } = {},
): Promise<PingResult[]> {
  const args = ["ping", ...dsts.flatMap((d) => ["--dst", d]), "--port", String(port)];
  const warmup = opts.warmup ?? 100;
  args.push("--count", String(count), "--warmup", String(warmup), "--timeout-ms", "200");
  const timeoutMs = (count + warmup) * dsts.length * 250 + 10_000;
  const out =
    opts.cpu === undefined
      ? await runIn(netns, UDP_PING, args, timeoutMs)
      : await runIn(netns, "taskset", ["-c", String(opts.cpu), UDP_PING, ...args], timeoutMs);
  const results = out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as PingResult);
  if (results.length !== dsts.length)
    throw new Error(`udp_ping: ${results.length} results for ${dsts.length} destinations`);
  return results;
}

/** A UDP echo server bound to address:port in netns (bounded by its own --seconds). */
export class Echo {
  private constructor(private readonly child: ChildProcess) {}

  static async start(netns: string, address: string, port: number, seconds: number): Promise<Echo> {
    const args = ["echo", "--bind", address, "--port", String(port), "--seconds", String(seconds)];
    // nsenter (network namespace only) execs the program: the child's pid is the server's.
    const child = await spawnReady(
      "nsenter",
      [`--net=${netns}`, UDP_PING, ...args],
      `udp_ping echo on ${address}:${port} in ${netns}`,
    );
    return new Echo(child);
  }

  /** A process in the echo's namespace: /proc/PID/net shows that namespace. */
  get pid(): number {
    if (this.child.pid === undefined) throw new Error("udp_ping echo has no pid");
    return this.child.pid;
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }
}

/** IPv4 InReceives of the namespace pid lives in (every IPv4 packet entering ip_rcv). */
export function ipInReceives(pid: number): number {
  const lines = readFileSync(`/proc/${pid}/net/snmp`, "utf8").split("\n");
  const header = lines.find((l) => l.startsWith("Ip: Forwarding"));
  const values = lines.find((l) => l.startsWith("Ip: ") && !l.startsWith("Ip: Forwarding"));
  const i = header?.split(/\s+/).indexOf("InReceives") ?? -1;
  const v = values?.split(/\s+/)[i];
  if (i < 0 || v === undefined) throw new Error(`/proc/${pid}/net/snmp: no Ip InReceives`);
  return Number(v);
}

export interface Window {
  /** Counted per second over the window. */
  pps: number;
  count: number;
  seconds: number;
}

/**
 * A rate over a window of a running load: count() read at startMs and endMs after the call,
 * each read timestamped by itself; atSample runs right after each read.
 */
export async function windowRate(
  count: () => number,
  startMs: number,
  endMs: number,
  atSample?: (which: "start" | "end") => void,
): Promise<Window> {
  const t0 = performance.now();
  const sample = async (atMs: number, which: "start" | "end"): Promise<{ t: number; n: number }> => {
    const wait = t0 + atMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const before = performance.now();
    const n = count();
    const t = (before + performance.now()) / 2;
    atSample?.(which);
    return { t, n };
  };
  const a = await sample(startMs, "start");
  const b = await sample(endMs, "end");
  const seconds = (b.t - a.t) / 1000;
  return { pps: (b.n - a.n) / seconds, count: b.n - a.n, seconds };
}

/** Waits (bounded) until fn() holds, polling every 20 ms; whether it did. */
export async function waitUntil(fn: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return fn();
}
