// Maglev quality and speed figures for the benchmark (build time, survivor churn, weight error),
// all on fixed lab-like backend sets so every run measures the same thing.

import { performance } from "node:perf_hooks";
import { LB_ENCAP_PORT_DEFAULT, LB_MAGLEV_SIZE_DEFAULT, LB_NO_BACKEND } from "../maps/abi.js";
import type { MaglevBackend } from "./maglev.js";
import { buildMaglevTable, slotCounts } from "./maglev.js";

/**
 * `count` distinct IPv4 backends in 198.18.0.0/15 (RFC 2544 benchmarking space): 198.18.0.1,
 * ..., 198.18.0.250, 198.18.1.1, ...; data-plane index = position in the list.
 */
export function labBackends(count: number, weightOf: (i: number) => number = () => 1): MaglevBackend[] {
  if (count > 2 * 256 * 250) throw new Error(`maglev: ${count} lab backends do not fit in 198.18.0.0/15`);
  return Array.from({ length: count }, (_, i) => {
    const address = new Uint8Array(16);
    const net = Math.floor(i / 250);
    address.set([198, 18 + (net >> 8), net & 0xff, 1 + (i % 250)]);
    return { address, encapPort: LB_ENCAP_PORT_DEFAULT, weight: weightOf(i), index: i };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Median of 5 warm builds of a 1000-backend, M=65537 table, in milliseconds. */
export function buildTimeMs1000(): number {
  const backends = labBackends(1000);
  // Enough warm-up builds for V8 to finish optimising the fill loop; fewer leave the timed runs
  // straddling a tier-up and the median jumps by up to 2x between processes.
  for (let i = 0; i < 20; i++) buildMaglevTable(backends, LB_MAGLEV_SIZE_DEFAULT);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    buildMaglevTable(backends, LB_MAGLEV_SIZE_DEFAULT);
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * Slots moved between surviving backends when one of 100 equal-weight backends is removed, in %
 * of M; the worst of 5 removals. Slots of the removed backend must move and are not counted.
 */
export function survivorChurnPct(): number {
  const m = LB_MAGLEV_SIZE_DEFAULT;
  const all = labBackends(100);
  const before = buildMaglevTable(all, m);
  let worst = 0;
  for (const removed of [0, 23, 50, 77, 99]) {
    const after = buildMaglevTable(
      all.filter((b) => b.index !== removed),
      m,
    );
    let moved = 0;
    for (let s = 0; s < m; s++) {
      const was = before[s];
      if (was !== removed && was !== LB_NO_BACKEND && after[s] !== was) moved++;
    }
    worst = Math.max(worst, (moved / m) * 100);
  }
  return worst;
}

/** Worst relative error of slot share vs weight share, in %, for 100 backends of weights 1..4. */
export function weightErrorPct(): number {
  const m = LB_MAGLEV_SIZE_DEFAULT;
  const backends = labBackends(100, (i) => 1 + (i % 4));
  const counts = slotCounts(buildMaglevTable(backends, m));
  const total = backends.reduce((s, b) => s + b.weight, 0);
  let worst = 0;
  for (const b of backends) {
    const want = b.weight / total;
    const got = (counts.get(b.index) ?? 0) / m;
    worst = Math.max(worst, (Math.abs(got - want) / want) * 100);
  }
  return worst;
}
