// `npm run bench [-- --json]`: every figure beside its baseline from the same run, the ratio
// and its target. With --json the last line of stdout is one JSON object of all figures.
import { buildTimeMs1000, survivorChurnPct, weightErrorPct } from "../src/maglev/metrics.js";
import { runXdpBench, type XdpFigures } from "./xdp-bench.js";
import { runControlPlaneBench, type ControlPlaneFigures } from "./control-plane-bench.js";
import { runNfqBench, type NfqFigures } from "./nfq-bench.js";
import { runTunBench, type TunFigures } from "./tun-bench.js";

interface Target {
  figure: string;
  limit: (f: Figures) => number;
  describe: string;
  /** The figure must reach the limit (a floor), rather than stay under it. */
  atLeast?: boolean;
}

type Figures = XdpFigures &
  ControlPlaneFigures &
  NfqFigures &
  TunFigures & {
    maglev_build_1000_ms: number;
    maglev_survivor_churn_pct: number;
    maglev_weight_error_pct: number;
  };

const TARGETS: Target[] = [
  { figure: "established_v4_ns", limit: (f) => 2.0 * f.floor_encap_ns, describe: "≤ 2.0 × floor_encap_ns" },
  { figure: "new_flow_v4_ns", limit: (f) => 3.0 * f.floor_encap_ns, describe: "≤ 3.0 × floor_encap_ns" },
  { figure: "nonvip_ns", limit: (f) => 1.3 * f.floor_lookup_ns, describe: "≤ 1.3 × floor_lookup_ns" },
  {
    figure: "established_1m_flows_v4_ns",
    limit: (f) => 1.5 * f.established_v4_ns,
    describe: "≤ 1.5 × established_v4_ns",
  },
  { figure: "maglev_build_1000_ms", limit: () => 5, describe: "≤ 5 ms" },
  { figure: "maglev_survivor_churn_pct", limit: () => 1.0, describe: "≤ 1.0 %" },
  { figure: "maglev_weight_error_pct", limit: () => 1.0, describe: "≤ 1.0 %" },
  // From starting `lbctl backend add` (the wording): add_to_table_socket_ms, from the
  // control socket, is reported beside it without a target.
  { figure: "add_to_table_ms", limit: () => 10, describe: "≤ 10 ms" },
  // A lower bound unless daemon_rss_backends = 6400 and daemon_rss_churn_ops = 10000 (--full).
  { figure: "daemon_rss_mb", limit: () => 100, describe: "≤ 100 MB" },
  {
    figure: "nfq_pps",
    limit: (f) => 0.8 * f.nfq_floor_pps,
    describe: "≥ 0.8 × nfq_floor_pps",
    atLeast: true,
  },
  // The same ratio per second of the worker's CPU time: steady when other work shares the CPUs.
  {
    figure: "nfq_pps_per_cpu",
    limit: (f) => 0.8 * f.nfq_floor_pps_per_cpu,
    describe: "≥ 0.8 × nfq_floor_pps_per_cpu",
    atLeast: true,
  },
  // Per second of the receiver's CPU: on 2 CPUs the generator sets the packet rate (tun-bench.ts).
  {
    figure: "tun_decap_pps_per_cpu",
    limit: (f) => 0.8 * f.tun_floor_pps_per_cpu,
    describe: "≥ 0.8 × tun_floor_pps_per_cpu",
    atLeast: true,
  },
];

const round = (n: number): number => Math.round(n * 1000) / 1000;

async function main(): Promise<void> {
  const json = process.argv.includes("--json");
  const log = (line: string): void => {
    (json ? process.stderr : process.stdout).write(`${line}\n`);
  };
  if (process.getuid?.() !== 0) {
    process.stderr.write("bench: BPF_PROG_TEST_RUN needs root (sudo npm run bench)\n");
    process.exit(1);
  }
  log("bench: XDP programs under BPF_PROG_TEST_RUN (medians of 7 interleaved rounds)");
  const xdp = runXdpBench(log);
  log("bench: Maglev");
  const maglev = {
    maglev_build_1000_ms: buildTimeMs1000(),
    maglev_survivor_churn_pct: survivorChurnPct(),
    maglev_weight_error_pct: weightErrorPct(),
  };
  log("bench: control plane (namespace lab; --full for the whole RSS load)");
  const controlPlane = await runControlPlaneBench(log, { full: process.argv.includes("--full") });
  log("bench: NFQUEUE data path (namespace lab, 64-byte UDP)");
  const nfq = await runNfqBench(log);
  log("bench: TUN decap on a backend (namespace lab, 50-byte inner UDP)");
  const tun = await runTunBench(log);
  const figures: Figures = {
    ...xdp,
    ...maglev,
    ...controlPlane,
    ...nfq,
    ...tun,
  };
  const rows = (Object.entries(figures) as [string, number][]).map(
    ([k, v]) => `  ${k.padEnd(30)} ${round(v).toString().padStart(10)}`,
  );
  log(rows.join("\n"));
  let missed = 0;
  for (const t of TARGETS) {
    const value = figures[t.figure as keyof Figures];
    const limit = t.limit(figures);
    const ok = t.atLeast ? value >= limit : value <= limit;
    if (!ok) missed++;
    log(`  ${ok ? "meets" : "MISSES"}  ${t.figure} = ${round(value)} (${t.describe} = ${round(limit)})`);
  }
  log(missed === 0 ? "bench: every target met" : `bench: ${missed} target(s) missed`);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(figures) as [string, number][]) out[k] = round(v);
  if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
