// Operations figures (issue: operations): the daemon-side cost of one `lbctl stats` refresh
// and of a reload changing one weight, with 64 VIPs × 100 backends on real kernel maps
// (next hops answered at once, to leave ARP out). Run: sudo node dist/bench/ops-bench.js
import { Reconciler, type NextHop } from "../src/core/reconciler.js";
import { readStats } from "../src/core/stats.js";
import type { VipSpec } from "../src/core/types.js";
import { BpfObject } from "../src/dataplane/bpf-object.js";
import { parseAddress } from "../src/lib/addr.js";
import { bpfObjectPath } from "../src/lib/paths.js";
import { BalancerMaps } from "../src/maps/balancer-maps.js";

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main(): Promise<void> {
  const obj = BpfObject.open(bpfObjectPath("balancer"), { maxEntries: { lb_flows: 4096 } });
  obj.load();
  try {
    const maps = BalancerMaps.fromObject(obj);
    const nh: NextHop = { ifindex: 1, smac: new Uint8Array(6), dmac: new Uint8Array(6), mtu: 1500 };
    const rec = new Reconciler(
      maps,
      { resolve: () => Promise.resolve(nh), recheck: () => Promise.resolve(nh) },
      { maglevSize: 65537 },
    );
    const vips: VipSpec[] = Array.from({ length: 64 }, (_, v) => ({
      vip: { proto: "tcp", address: parseAddress(`198.18.1.${v + 1}`), port: 80 },
      hash: "5tuple",
      backends: Array.from({ length: 100 }, (_, b) => ({
        address: parseAddress(`198.19.${v}.${b + 1}`),
        encapPort: 6080,
        weight: 1,
      })),
    }));
    let t = performance.now();
    await rec.applyConfig({ vips });
    const applyMs = performance.now() - t;
    const stats: number[] = [];
    for (let i = 0; i < 7; i++) {
      t = performance.now();
      readStats(maps, rec);
      stats.push(performance.now() - t);
    }
    const reloads: number[] = [];
    for (let w = 2; w < 7; w++) {
      const changed = vips.map((v, i) =>
        i === 3 ? { ...v, backends: v.backends.map((b, j) => (j === 0 ? { ...b, weight: w } : b)) } : v,
      );
      t = performance.now();
      await rec.applyConfig({ vips: changed });
      reloads.push(performance.now() - t);
    }
    const out = {
      apply_64x100_ms: Math.round(applyMs),
      stats_refresh_64x100_ms: Math.round(median(stats)),
      reload_one_weight_64x100_ms: Math.round(median(reloads)),
    };
    console.log(JSON.stringify(out));
  } finally {
    obj.close();
  }
}

void main();
