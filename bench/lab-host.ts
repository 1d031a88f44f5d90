// Host-side probes and knobs for benchmarks in a namespace lab: CPU placement (taskset, RPS),
// CPU time of tasks, drop counters (NFQUEUE queues, CPU backlogs, links), and placeholder
// processes whose /proc/PID/net shows a namespace. Reads are of /proc, no child process, where
// they are timed.
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { run } from "../src/lab/lab.js";
import { runIn } from "./lab-traffic.js";

/** A process that only holds a place in netns (its /proc/PID/net is that namespace's). */
export function anchor(netns: string, seconds: number): ChildProcess {
  return spawn("nsenter", [`--net=${netns}`, "sleep", String(seconds)], { stdio: "ignore" });
}

/** All threads of pid onto cpu (taskset -a). */
export async function pin(pid: number, cpu: number | undefined): Promise<void> {
  if (cpu === undefined) return;
  const r = await run("taskset", ["-a", "-p", "-c", String(cpu), String(pid)]);
  if (r.code !== 0) throw new Error(`taskset ${pid} to CPU ${cpu}: ${r.stderr}`);
}

/** RPS on dev of the named namespace: its receive processing on cpu (undefined: on the CPU
 * where each packet arrives). */
export async function steerReceive(netnsName: string, dev: string, cpu: number | undefined): Promise<void> {
  const mask = cpu === undefined ? "0" : (1n << BigInt(cpu)).toString(16);
  // ip netns exec mounts the namespace's own /sys, where dev is the namespace's.
  const file = `/sys/class/net/${dev}/queues/rx-0/rps_cpus`;
  const r = await run("ip", ["netns", "exec", netnsName, "sh", "-c", `echo ${mask} > ${file}`]);
  if (r.code !== 0) throw new Error(`${file} in ${netnsName}: ${r.stderr}`);
}

/** CPU time (ns) the tasks of pids have run so far (/proc/PID/task/TID/schedstat: exact, and
 * without IRQ time accounting it includes the softirq work done in their context). */
export function cpuTimeNs(pids: readonly number[]): number {
  let ns = 0;
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone: counts nothing more
    }
    for (const tid of tids) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended between the listing and the read
      }
    }
  }
  return ns;
}

/** The pid of ksoftirqd/cpu: it runs the softirq work a busy CPU defers. */
export function ksoftirqd(cpu: number): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === `ksoftirqd/${cpu}`) return Number(entry);
    } catch {
      // exited while listing
    }
  }
  throw new Error(`no ksoftirqd/${cpu}`);
}

export interface QueueState {
  /** Packets waiting for a verdict. */
  waiting: number;
  /** Packets the kernel dropped because the queue was full. */
  dropped: number;
  /** Packets lost on the way to userspace (netlink buffer full). */
  userDropped: number;
}

/** NFQUEUE queue `queue` of the namespace pid lives in (/proc/net/netfilter/nfnetlink_queue). */
export function nfqueueState(pid: number, queue: number): QueueState | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/netfilter/nfnetlink_queue`, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f[0] === queue && f.length >= 7)
      return { waiting: f[2] ?? 0, dropped: f[5] ?? 0, userDropped: f[6] ?? 0 };
  }
  return undefined;
}

/** Packets dropped from full per-CPU backlogs (/proc/net/softnet_stat: one line per CPU), on cpu
 * or, undefined, on all. */
export function backlogDrops(cpu: number | undefined): number {
  return readFileSync("/proc/net/softnet_stat", "utf8")
    .split("\n")
    .filter((l, i) => l.trim() && (cpu === undefined || i === cpu))
    .reduce((sum, l) => sum + parseInt(l.trim().split(/\s+/)[1] ?? "0", 16), 0);
}

/** tx_dropped summed over every link of the namespaces (paths): a veth counts there, once, a
 * packet its peer could not take (the peer's CPU backlog or XDP ring full). */
export async function linkTxDrops(namespaces: readonly string[]): Promise<number> {
  let total = 0;
  for (const ns of namespaces) {
    const out = await runIn(ns, "ip", ["-s", "-j", "link"], 10_000);
    for (const link of JSON.parse(out) as { stats64?: { tx?: { dropped?: number } } }[])
      total += link.stats64?.tx?.dropped ?? 0;
  }
  return total;
}
