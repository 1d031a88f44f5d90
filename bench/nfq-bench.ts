// NFQUEUE data-path benchmarks in a namespace lab of their own (docs/benchmarks.md, "NFQUEUE"):
// `lbctl load --mode nfqueue` balancing 64-byte UDP datagrams over 2 backends (nfq_pps), the
// worker's --floor mode on the daemon's own rules and queues (nfq_floor_pps), the kernel
// forwarding the same datagrams (kernel_forward_pps), and the round-trip time the NFQUEUE path
// adds over kernel forwarding. Rounds interleave the three so drift and other work on the
// machine hit them alike.
import type { ChildProcess } from "node:child_process";
import { availableParallelism } from "node:os";
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { nfqWorkerPath } from "../src/dataplane/nfq-worker.js";
import { Lab, run, uniquePrefix } from "../src/lab/lab.js";
import {
  anchor,
  backlogDrops,
  cpuTimeNs,
  ksoftirqd,
  linkTxDrops,
  nfqueueState,
  pin,
  steerReceive,
  type QueueState,
} from "./lab-host.js";
import {
  blast,
  Echo,
  ipInReceives,
  ping,
  runIn,
  waitUntil,
  windowRate,
  type BlastResult,
  type PingResult,
} from "./lab-traffic.js";
import { spawnReady } from "./spawn-ready.js";

export interface NfqFigures {
  /** VIP datagrams balanced by the worker, counted at the backends, per second. The best of the
   * rounds: other work on the machine only ever takes CPU away (the medians are logged). */
  nfq_pps: number;
  /** The same through `caplance-nfq --floor` (sent unchanged: no parsing, no lookup). */
  nfq_floor_pps: number;
  /** Per second of CPU time of the worker (and ksoftirqd on its CPU): what other work on the
   * machine takes from the worker does not move it (median of rounds). */
  nfq_pps_per_cpu: number;
  nfq_floor_pps_per_cpu: number;
  /** The same datagrams forwarded by the balancer namespace's kernel (ip_forward). */
  kernel_forward_pps: number;
  /** Round-trip percentiles through the NFQUEUE path minus through kernel forwarding (median of rounds). */
  nfq_added_latency_p50_us: number;
  nfq_added_latency_p99_us: number;
}

const ROUNDS = 5;
const VIP = "198.18.1.2"; // on every backend's lo
// Routed by the balancer's kernel to backend 1 (also on every backend's lo): the kernel
// forwarding path, pinged in turns with the VIP while the daemon runs.
const FORWARDED = "198.18.1.3";
const BLAST_PORT = 9; // dropped in each backend's raw PREROUTING (no ICMP back), counted before that
const ECHO_PORT = 7;
const BLAST_SECONDS = 2.5;
// The receive window inside each blast: after the queue has filled, before the generator stops.
const WINDOW_START_MS = 700;
const WINDOW_END_MS = 2200;
const FLOWS = 256;
const FRAME = 64;
const PINGS = 1000;
const DRAIN_MS = 10_000;
const SETTLE_MS = 2000;
const HELPER_SECONDS = 900; // echo servers and the anchor end by themselves after this
// The generator runs on GEN_CPU; the balancer's work (the worker, or the kernel's forwarding
// through RPS) on the last CPU, so neither takes the other's.
const GEN_CPU = 0;

const CONFIG = `vips:
  - vip: udp/${VIP}:${BLAST_PORT}
    backends: [{ address: 198.18.0.11 }, { address: 198.18.0.12 }]
  - vip: udp/${VIP}:${ECHO_PORT}
    backends: [{ address: 198.18.0.11 }, { address: 198.18.0.12 }]
`;

const median = (v: readonly number[]): number =>
  [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] ?? NaN;
const k = (n: number): string => `${Math.round(n / 1000)}k`;

interface Rate {
  pps: number;
  /** NFQUEUE phases: packets per second of CPU time of the worker and ksoftirqd on its CPU. */
  cpuPps?: number;
  /** NFQUEUE phases: the share of one CPU the worker (and ksoftirqd) had in the window. */
  cpuShare?: number;
  blast: BlastResult;
  /** Datagrams the backends received during the whole blast. */
  received: number;
  /** Whether the balancer was the bound in the window (else the figure is a lower bound). */
  saturated: boolean;
  evidence: string;
}

interface Ctx {
  lab: Lab;
  log: (line: string) => void;
  /** Processes in each backend's namespace (the echo servers): /proc/PID/net/snmp. */
  receivers: number[];
  /** A process in the balancer's namespace: /proc/PID/net/netfilter/nfnetlink_queue. */
  lbPid: number;
  /** CPU of the balancer's work, or undefined on a 1-CPU machine (nothing pinned). */
  lbCpu: number | undefined;
}

interface QueueRange {
  first: number;
  count: number;
}

interface Helpers {
  echoes: Echo[];
  /** One process in each backend's namespace. */
  receivers: number[];
  lbAnchor: ChildProcess;
}

function queues(ctx: Ctx, q: QueueRange): QueueState {
  const total = { waiting: 0, dropped: 0, userDropped: 0 };
  for (let n = q.first; n < q.first + q.count; n++) {
    const s = nfqueueState(ctx.lbPid, n);
    if (!s) continue;
    total.waiting += s.waiting;
    total.dropped += s.dropped;
    total.userDropped += s.userDropped;
  }
  return total;
}

const labNamespaces = (lab: Lab): string[] =>
  ["lb", "cl", "sw", "b1", "b2"].map((host) => `/run/netns/${lab.prefix}-${host}`);

const backendTotal = (ctx: Ctx): number => ctx.receivers.reduce((s, pid) => s + ipInReceives(pid), 0);

/** Where a datagram can end up, counted: received by a backend, or dropped by a full queue or
 * by a lab veth (its tx_dropped: the peer's CPU backlog or XDP ring was full). */
interface Fate {
  received: number;
  queueDrops: number;
  vethDrops: number;
}

async function fates(ctx: Ctx, q?: QueueRange): Promise<Fate> {
  const qs = q && queues(ctx, q);
  return {
    received: backendTotal(ctx),
    queueDrops: qs ? qs.dropped + qs.userDropped : 0,
    vethDrops: await linkTxDrops(labNamespaces(ctx.lab)),
  };
}

/**
 * Fails unless every datagram sent is accounted for (within 0.1 %): nothing may vanish unseen.
 * Packets still in flight in deferred softirq work are waited for (SETTLE_MS).
 */
async function account(ctx: Ctx, name: string, before: Fate, sent: number, q?: QueueRange): Promise<Fate> {
  const after = await fates(ctx, q);
  const delta = (): Fate => ({
    received: backendTotal(ctx) - before.received,
    queueDrops: after.queueDrops - before.queueDrops,
    vethDrops: after.vethDrops - before.vethDrops,
  });
  const total = (f: Fate): number => f.received + f.queueDrops + f.vethDrops;
  await waitUntil(() => total(delta()) >= sent, SETTLE_MS);
  const d = delta();
  agree(`${name}: datagrams sent vs accounted for (${JSON.stringify(d)})`, sent, total(d), 0.001);
  return d;
}

/**
 * One blast through the current set-up; the backends' receive rate inside it. With q (NFQUEUE),
 * saturated means the queue held a backlog at both ends of the window (the worker never ran
 * dry); without, that full backlogs dropped packets during the window (the forwarding CPU
 * could not keep up).
 */
async function measure(ctx: Ctx, name: string, q?: QueueRange, worker?: number): Promise<Rate> {
  const before = await fates(ctx, q);
  const sent = blast(ctx.lab.ns("cl"), {
    dst: VIP,
    port: BLAST_PORT,
    seconds: BLAST_SECONDS,
    flows: FLOWS,
    frame: FRAME,
    ...(ctx.lbCpu !== undefined ? { cpu: GEN_CPU } : {}),
  });
  const qs: QueueState[] = [];
  const drops: number[] = [];
  const cpu: number[] = [];
  // The worker's CPU time, and ksoftirqd's on its CPU (softirq work the worker's sends defer).
  const cpuPids =
    worker === undefined ? [] : [worker, ...(ctx.lbCpu === undefined ? [] : [ksoftirqd(ctx.lbCpu)])];
  const window = await windowRate(
    () => backendTotal(ctx),
    WINDOW_START_MS,
    WINDOW_END_MS,
    () => {
      if (cpuPids.length) cpu.push(cpuTimeNs(cpuPids));
      if (q) qs.push(queues(ctx, q));
      else drops.push(backlogDrops(ctx.lbCpu));
    },
  );
  const result = await sent;
  let saturated: boolean;
  let evidence: string;
  const [a, b] = qs;
  if (q && a && b) {
    saturated = a.waiting > 0 && b.waiting > 0;
    evidence =
      `queue backlog ${a.waiting} -> ${b.waiting}, ${b.dropped - a.dropped} dropped full, ` +
      `${b.userDropped - a.userDropped} lost to the socket`;
    if (!(await waitUntil(() => queues(ctx, q).waiting === 0, DRAIN_MS))) {
      const alive = worker !== undefined && existsSync(`/proc/${worker}`);
      throw new Error(
        `${name}: NFQUEUE ${q.first}:${q.count} not drained within ${DRAIN_MS} ms: ` +
          `${JSON.stringify(queues(ctx, q))}, worker ${alive ? "alive" : "gone"}`,
      );
    }
  } else {
    const dropped = (drops[1] ?? 0) - (drops[0] ?? 0);
    saturated = dropped > 0;
    evidence = `${dropped} dropped from the forwarding CPU's full backlog`;
  }
  const fate = await account(ctx, name, before, result.sent, q);
  if (q && fate.vethDrops > 0) evidence += `; ${fate.vethDrops} dropped by the lab's veths`;
  const rate: Rate = { pps: window.pps, blast: result, received: fate.received, saturated, evidence };
  const [c0, c1] = cpu;
  if (c0 !== undefined && c1 !== undefined && c1 > c0) {
    rate.cpuPps = window.count / ((c1 - c0) / 1e9);
    rate.cpuShare = (c1 - c0) / 1e9 / window.seconds;
  }
  return rate;
}

function describe(name: string, r: Rate): string {
  const bound = r.saturated ? "" : " NOT SATURATED (a lower bound)";
  const cpu =
    r.cpuPps !== undefined && r.cpuShare !== undefined
      ? `, ${k(r.cpuPps)} per CPU-second (${Math.round(r.cpuShare * 100)} % of a CPU)`
      : "";
  return (
    `  ${name}: ${k(r.pps)} pps received${bound}${cpu} (offered ${k(r.blast.pps)} pps, ` +
    `${r.blast.sent} sent; ${r.evidence})`
  );
}

interface Worker {
  daemon: number;
  worker: number;
  queues: QueueRange;
}

async function daemonWorker(lab: Lab): Promise<Worker> {
  const status = JSON.parse((await lab.lbctl(["status", "--json"])).stdout) as { pid: number };
  const ps = await run("ps", ["-o", "pid=,args=", "--ppid", String(status.pid)]);
  const line = ps.stdout.split("\n").find((l) => l.includes(nfqWorkerPath()));
  const m = line ? /^\s*(\d+) .*--queues (\d+):(\d+)/.exec(line) : null;
  if (!m) throw new Error(`no caplance-nfq among the daemon's children:\n${ps.stdout}`);
  return {
    daemon: status.pid,
    worker: Number(m[1]),
    queues: { first: Number(m[2]), count: Number(m[3]) },
  };
}

async function txCounter(lab: Lab): Promise<number> {
  const r = await lab.lbctl(["stats", "--json"]);
  return (JSON.parse(r.stdout) as { counters: Record<string, number> }).counters.tx ?? 0;
}

/** Counts that must agree (within `tolerance`, at least 20): the bench fails rather than
 * print a figure its own counters contradict. */
function agree(what: string, a: number, b: number, tolerance = 0.01): void {
  if (Math.abs(a - b) > Math.max(20, a * tolerance)) throw new Error(`${what}: ${a} vs ${b}`);
}

interface NfqRound {
  rate: Rate;
  viaNfq: PingResult;
  viaKernel: PingResult;
  rules: string;
  queues: QueueRange;
}

const forwarding = (lab: Lab, v: 0 | 1): Promise<string> =>
  runIn(lab.ns("lb"), "sysctl", ["-qw", `net.ipv4.ip_forward=${v}`], 10_000);

/**
 * nfq_pps: the real daemon; its tx counter must equal what the backends received. The round
 * trips go to the VIP and to the kernel-forwarded address in turns, the client on the
 * generator's CPU and the worker on its own (as in the rate runs: its wake-up crosses CPUs).
 */
async function nfqPhase(ctx: Ctx, config: string, warm: boolean): Promise<NfqRound> {
  const { lab, log } = ctx;
  await lab.startDaemon({ mode: "nfqueue", config });
  try {
    const w = await daemonWorker(lab);
    if (warm)
      await blast(lab.ns("cl"), { dst: VIP, port: BLAST_PORT, seconds: 0.5, flows: FLOWS, frame: FRAME });
    await waitUntil(() => queues(ctx, w.queues).waiting === 0, DRAIN_MS);
    await pin(w.worker, ctx.lbCpu);
    await forwarding(lab, 1);
    const pings = ping(lab.ns("cl"), [VIP, FORWARDED], ECHO_PORT, PINGS, {
      ...(ctx.lbCpu !== undefined ? { cpu: GEN_CPU } : {}),
    });
    const [viaNfq, viaKernel] = await pings.finally(() => forwarding(lab, 0));
    if (!viaNfq || !viaKernel) throw new Error("udp_ping: missing results");
    const tx0 = await txCounter(lab);
    const rate = await measure(ctx, "nfq", w.queues, w.worker);
    const tx = (await txCounter(lab)) - tx0;
    log(`${describe("nfq", rate)}; daemon tx counter +${tx}, backends +${rate.received}`);
    agree("nfq: datagrams encapsulated and sent (tx counter) vs received by the backends", tx, rate.received);
    const rules = await runIn(lab.ns("lb"), "iptables-save", ["-t", "raw"], 10_000);
    return { rate, viaNfq, viaKernel, rules, queues: w.queues };
  } finally {
    const code = await lab.stopDaemon();
    if (code !== 0) log(`  daemon exit code ${code}:\n${lab.daemonLog.slice(-2000)}`);
  }
}

/** The worker counters of a stats file: packets taken from the queue, summed over threads. */
function queuedPackets(statsPath: string, threads: number): number {
  const fd = openSync(statsPath, "r");
  try {
    const buf = Buffer.alloc(8);
    let n = 0;
    for (let r = 0; r < threads; r++) {
      readSync(fd, buf, 0, 8, 24 + r * 64); // struct lb_stats_header: worker[r].packets
      n += Number(buf.readBigUInt64LE(0));
    }
    return n;
  } finally {
    closeSync(fd);
  }
}

/** Starts `caplance-nfq --floor` in the balancer's namespace; resolves once its queues are bound. */
async function startFloor(lab: Lab, q: QueueRange, statsPath: string): Promise<ChildProcess> {
  const args = ["--floor", "--queues", `${q.first}:${q.count}`, "--stats", statsPath];
  return spawnReady("nsenter", [`--net=${lab.ns("lb")}`, nfqWorkerPath(), ...args], "caplance-nfq --floor", {
    stdin: "pipe",
  });
}

/** nfq_floor_pps: the daemon's rules restored verbatim, its queue numbers, caplance-nfq --floor. */
async function floorPhase(ctx: Ctx, nfq: NfqRound): Promise<Rate> {
  const { lab, log } = ctx;
  const dir = `/run/caplance-lab/${lab.prefix}`; // lab.sh down removes it
  const rulesFile = join(dir, "nfq-rules.save");
  const statsPath = join(dir, "nfq-floor.stats");
  writeFileSync(rulesFile, nfq.rules);
  rmSync(statsPath, { force: true }); // the worker keeps an existing file's counters
  const lb = lab.ns("lb");
  await runIn(lb, "iptables-restore", ["-w", "5", "-T", "raw", rulesFile], 10_000);
  let child: ChildProcess | undefined;
  try {
    child = await startFloor(lab, nfq.queues, statsPath);
    if (child.pid === undefined) throw new Error("caplance-nfq --floor has no pid");
    await pin(child.pid, ctx.lbCpu);
    const rate = await measure(ctx, "floor", nfq.queues, child.pid);
    const queued = queuedPackets(statsPath, nfq.queues.count);
    log(`${describe("floor", rate)}; floor took ${queued} from the queue, backends +${rate.received}`);
    agree("floor: packets taken from the queue vs received by the backends", queued, rate.received);
    return rate;
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once("exit", resolve));
      child.stdin?.end(); // EOF ends the worker
      const timer = setTimeout(() => child?.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(timer);
    }
    await runIn(lb, "iptables", ["-w", "5", "-t", "raw", "-F"], 10_000);
    await runIn(lb, "iptables", ["-w", "5", "-t", "raw", "-X"], 10_000);
  }
}

/**
 * kernel_forward_pps: no rules, ip_forward on, the VIP routed to backend 1, and RPS steering the
 * balancer's receive processing onto the balancer's CPU, so the forwarding gets a CPU of its
 * own as the worker does (else it would run in the generator's softirq, on the generator's CPU).
 */
async function forwardPhase(ctx: Ctx): Promise<Rate> {
  const { lab, log } = ctx;
  await forwarding(lab, 1);
  try {
    await steerReceive(`${lab.prefix}-lb`, "eth0", ctx.lbCpu);
    const rate = await measure(ctx, "kernel forward");
    log(describe("kernel forward", rate));
    return rate;
  } finally {
    await steerReceive(`${lab.prefix}-lb`, "eth0", undefined);
    await forwarding(lab, 0);
  }
}

/** The lab: 2 backends (XDP decap, VIPs on lo), echo servers on the VIP, counting drop rules. */
async function prepare(lab: Lab, log: (line: string) => void): Promise<Helpers> {
  // The switch is lab plumbing: bridged frames through iptables (br_netfilter, when loaded)
  // would cost every phase alike, and no real switch does it.
  const sw = `/run/netns/${lab.prefix}-sw`;
  const brnf = ["iptables", "ip6tables", "arptables"].map((t) => `net.bridge.bridge-nf-call-${t}=0`);
  await runIn(sw, "sysctl", ["-qw", ...brnf], 10_000).catch(() => {
    log("  (no br_netfilter in the switch namespace)");
  });
  const lb = lab.ns("lb");
  for (const address of [VIP, FORWARDED]) {
    const route = ["route", "replace", `${address}/32`, "via", "198.18.0.11", "dev", "eth0"];
    await runIn(lb, "ip", route, 10_000);
  }
  // Forwarding back out of eth0 would send an ICMP redirect per burst of packets.
  const noRedirects = ["net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0"];
  await runIn(lb, "sysctl", ["-qw", ...noRedirects], 10_000);
  const echoes: Echo[] = [];
  const receivers: number[] = [];
  for (const b of ["b1", "b2"] as const) {
    const ns = lab.ns(b);
    const drop = ["-A", "PREROUTING", "-p", "udp", "--dport", String(BLAST_PORT), "-j", "DROP"];
    await runIn(ns, "iptables", ["-w", "5", "-t", "raw", ...drop], 10_000);
    for (const address of [VIP, FORWARDED])
      echoes.push(await Echo.start(ns, address, ECHO_PORT, HELPER_SECONDS));
    receivers.push(echoes[echoes.length - 1]?.pid ?? 0);
  }
  return { echoes, receivers, lbAnchor: anchor(lb, HELPER_SECONDS) };
}

/** Every NFQUEUE figure; the lab is always brought down, whatever fails. */
export async function runNfqBench(log: (line: string) => void): Promise<NfqFigures> {
  const lab = new Lab(uniquePrefix(), 2);
  let helpers: Helpers | undefined;
  try {
    log(`bench: namespace lab ${lab.prefix} (load average ${readFileSync("/proc/loadavg", "utf8").trim()})`);
    await lab.up(["--owner", String(process.pid), "--vips", `${VIP} ${FORWARDED}`]);
    helpers = await prepare(lab, log);
    const config = `/run/caplance-lab/${lab.prefix}/nfq-bench.yaml`;
    writeFileSync(config, CONFIG);
    const lbPid = helpers.lbAnchor.pid;
    if (lbPid === undefined) throw new Error("no anchor process in the balancer's namespace");
    const cpus = availableParallelism();
    const ctx: Ctx = {
      lab,
      log,
      receivers: helpers.receivers,
      lbPid,
      lbCpu: cpus >= 2 ? cpus - 1 : undefined,
    };
    if (ctx.lbCpu === undefined) log("  one CPU: generator and balancer share it");
    const nfq: Rate[] = [];
    const floor: Rate[] = [];
    const fwd: Rate[] = [];
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    const added50: number[] = [];
    const added99: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      log(`bench: NFQUEUE round ${r + 1} of ${ROUNDS}`);
      const n = await nfqPhase(ctx, config, r === 0);
      const fl = await floorPhase(ctx, n);
      const f = await forwardPhase(ctx);
      nfq.push(n.rate);
      floor.push(fl);
      fwd.push(f);
      ratios.push(n.rate.pps / fl.pps);
      cpuRatios.push((n.rate.cpuPps ?? NaN) / (fl.cpuPps ?? NaN));
      const { viaNfq: a, viaKernel: b } = n;
      log(
        `  round trip (${PINGS} pings each, in turns): nfq p50 ${a.p50_us} p99 ${a.p99_us} µs (${a.lost} lost), ` +
          `kernel forward p50 ${b.p50_us} p99 ${b.p99_us} µs (${b.lost} lost)`,
      );
      if (a.lost > PINGS / 100 || b.lost > PINGS / 100)
        throw new Error(`round trips lost: nfq ${a.lost}, kernel forward ${b.lost} of ${PINGS}`);
      added50.push(a.p50_us - b.p50_us);
      added99.push(a.p99_us - b.p99_us);
    }
    const pps = (rs: Rate[]): string =>
      `best ${k(Math.max(...rs.map((x) => x.pps)))}, median ${k(median(rs.map((x) => x.pps)))}`;
    log(`  pps of the rounds: nfq ${pps(nfq)}; floor ${pps(floor)}; kernel forward ${pps(fwd)}`);
    const unsaturated = [...nfq, ...floor].filter((x) => !x.saturated).length;
    log(
      `  nfq / floor per round: ${ratios.map((x) => x.toFixed(2)).join(", ")} (median ${median(ratios).toFixed(3)}); ` +
        `per CPU-second: ${cpuRatios.map((x) => x.toFixed(2)).join(", ")} (median ${median(cpuRatios).toFixed(3)})` +
        (unsaturated ? `; ${unsaturated} NFQUEUE run(s) not saturated` : ""),
    );
    return {
      nfq_pps: Math.max(...nfq.map((x) => x.pps)),
      nfq_floor_pps: Math.max(...floor.map((x) => x.pps)),
      nfq_pps_per_cpu: median(nfq.map((x) => x.cpuPps ?? NaN)),
      nfq_floor_pps_per_cpu: median(floor.map((x) => x.cpuPps ?? NaN)),
      kernel_forward_pps: Math.max(...fwd.map((x) => x.pps)),
      nfq_added_latency_p50_us: median(added50),
      nfq_added_latency_p99_us: median(added99),
    };
  } catch (err) {
    if (lab.daemonLog) log(`bench: daemon output (last 2000 chars):\n${lab.daemonLog.slice(-2000)}`);
    throw err;
  } finally {
    for (const e of helpers?.echoes ?? []) e.stop();
    helpers?.lbAnchor.kill("SIGTERM");
    await lab.down();
  }
}
