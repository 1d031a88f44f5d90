// TUN decap benchmark in a namespace lab of its own (docs/benchmarks.md, "TUN decap"): the
// client blasts encapsulated 50-byte inner UDP packets (a 64-byte frame as a client sent it)
// at backend 1's encap port; caplance-tun (tun_decap_pps) or the bare reader/writer
// bench/tun_floor.c (tun_floor_pps) moves them into a TUN device, counted as the device's
// received packets. Same socket, same device, same CPU for both; rounds interleave them. On
// two CPUs the generator, not the receiver, sets the packet rate, so the comparison that
// means something is per second of the receiver's CPU time: tun_decap_ratio.
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

import { tunDecapPath } from "../src/dataplane/tun-decap.js";
import { tunDeviceName } from "../src/dataplane/tun-device.js";
import { Lab, uniquePrefix } from "../src/lab/lab.js";
import { packageRoot } from "../src/lib/paths.js";
import { buildIpPacket } from "../src/model/packet-builder.js";
import { spawnReady } from "./spawn-ready.js";

export interface TunFigures {
  /** Inner packets caplance-tun wrote into the TUN device per second (median of rounds). */
  tun_decap_pps: number;
  /** The same through the bare reader/writer (no validation). */
  tun_floor_pps: number;
  /** Packets per second of the receiver's CPU time (median of rounds). */
  tun_decap_pps_per_cpu: number;
  tun_floor_pps_per_cpu: number;
  /** tun_decap_pps_per_cpu / tun_floor_pps_per_cpu. */
  tun_decap_ratio: number;
  /** Datagrams per second the generator sent during the caplance-tun rounds (median). */
  tun_offered_pps: number;
}

const ROUNDS = 5;
const BLAST_SECONDS = 2.5;
const WINDOW_START_MS = 700;
const WINDOW_END_MS = 2200;
const BACKEND = "198.18.0.11";
const VIP = "198.18.1.1";
const PORT = 6080;
const TUN = tunDeviceName(PORT);
// Generator and receiver on different CPUs, so neither measures the other.
const SENDER_CPU = 0;
const RECEIVER_CPU = 1;
const BIN = join(packageRoot(), "build", "Release");

/** The inner packet: UDP to the VIP's port 9, where nothing listens (the kernel drops it). */
function innerHex(): string {
  const payload = new Uint8Array(50 - 28).fill(0x5a);
  const p = buildIpPacket(
    { family: 4, src: "198.18.0.2", dst: VIP },
    { kind: "udp", sport: 40000, dport: 9, payload },
  );
  return Buffer.from(p).toString("hex");
}

/** Packets the TUN device received (written by the process), from the namespace of pid. */
function tunRxPackets(pid: number): number {
  const line = readFileSync(`/proc/${pid}/net/dev`, "utf8")
    .split("\n")
    .find((l) => l.trim().startsWith(`${TUN}:`));
  const rx = line?.split(":")[1]?.trim().split(/\s+/)[1];
  if (rx === undefined) throw new Error(`/proc/${pid}/net/dev: no ${TUN}`);
  return Number(rx);
}

/** CPU time (ns) of pid. The inner packet's trip through the stack is in it: the TUN write
 * hands it to netif_receive_skb synchronously (tun_rx_batched), not to a softirq. */
function cpuNs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]);
}

/** Starts a receiver in the backend's namespace on RECEIVER_CPU; resolves once it is ready. */
async function startReceiver(lab: Lab, argv: string[]): Promise<ChildProcess> {
  // nsenter and taskset exec: the child's pid is the receiver's.
  return spawnReady(
    "nsenter",
    [`--net=${lab.ns("b1")}`, "taskset", "-c", String(RECEIVER_CPU), ...argv],
    argv[0] ?? "receiver",
  );
}

async function stopReceiver(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

interface Round {
  pps: number;
  ppsPerCpu: number;
  offered: number;
}

/** One blast against one receiver: its rate over the window, per CPU second, and the offer. */
async function round(lab: Lab, receiver: string[], payload: string): Promise<Round> {
  const child = await startReceiver(lab, receiver);
  try {
    const pid = child.pid;
    if (pid === undefined) throw new Error("receiver without pid");
    const args = ["--dst", BACKEND, "--port", String(PORT), "--payload", payload];
    args.push("--seconds", String(BLAST_SECONDS), "--cpu", String(SENDER_CPU));
    const blaster = lab.inNs("cl", join(BIN, "tun_blast"), args, (BLAST_SECONDS + 10) * 1000);
    const t0 = performance.now();
    const sample = async (atMs: number): Promise<{ t: number; n: number; cpu: number }> => {
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + atMs - performance.now())));
      return { t: performance.now(), n: tunRxPackets(pid), cpu: cpuNs(pid) };
    };
    const a = await sample(WINDOW_START_MS);
    const b = await sample(WINDOW_END_MS);
    const sent = await blaster;
    if (sent.code !== 0) throw new Error(`tun_blast failed: ${sent.stderr}`);
    const cpuS = (b.cpu - a.cpu) / 1e9;
    return {
      pps: ((b.n - a.n) * 1000) / (b.t - a.t),
      ppsPerCpu: cpuS > 0 ? (b.n - a.n) / cpuS : 0,
      offered: (JSON.parse(sent.stdout) as { pps: number }).pps,
    };
  } finally {
    await stopReceiver(child);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

export async function runTunBench(log: (line: string) => void): Promise<TunFigures> {
  const lab = new Lab(uniquePrefix(), 1, "none");
  try {
    await lab.up(["--owner", String(process.pid)]);
    for (const args of [
      ["tuntap", "add", "dev", TUN, "mode", "tun"],
      ["link", "set", "dev", TUN, "up"],
    ]) {
      const r = await lab.inNs("b1", "ip", args);
      if (r.code !== 0) throw new Error(`ip ${args.join(" ")} in b1: ${r.stderr}`);
    }
    const ours = [tunDecapPath(), "--tun", TUN, "--listen", BACKEND, "--vip", VIP, "--stats-interval", "0"];
    const floor = [join(BIN, "tun_floor"), "--tun", TUN, "--listen", BACKEND];
    const payload = innerHex();
    const decap: Round[] = [];
    const floors: Round[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // Alternate which goes first, so drift within a round favours neither.
      const order = i % 2 === 0 ? (["floor", "ours"] as const) : (["ours", "floor"] as const);
      for (const which of order) {
        const r = await round(lab, which === "ours" ? ours : floor, payload);
        (which === "ours" ? decap : floors).push(r);
        log(
          `  tun round ${i + 1} ${which.padEnd(5)} ${Math.round(r.pps)} pps, ` +
            `${Math.round(r.ppsPerCpu)} per CPU second (offered ${Math.round(r.offered)})`,
        );
      }
    }
    const perCpu = median(decap.map((r) => r.ppsPerCpu));
    const floorPerCpu = median(floors.map((r) => r.ppsPerCpu));
    return {
      tun_decap_pps: median(decap.map((r) => r.pps)),
      tun_floor_pps: median(floors.map((r) => r.pps)),
      tun_decap_pps_per_cpu: perCpu,
      tun_floor_pps_per_cpu: floorPerCpu,
      tun_decap_ratio: floorPerCpu > 0 ? perCpu / floorPerCpu : 0,
      tun_offered_pps: median(decap.map((r) => r.offered)),
    };
  } finally {
    await lab.down();
  }
}
