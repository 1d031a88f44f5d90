// Data-plane counters as `lbctl stats` shows them: per VIP and per backend packets/bytes
// summed over CPUs, drops by reason, the other counters by name.
import { DROP_REASON_NAMES, LB_C_DROP_BASE, LbCounter } from "../maps/abi.js";
import type { BalancerMaps } from "../maps/balancer-maps.js";
import type { StatsResult } from "../api/protocol.js";
import type { Reconciler } from "./reconciler.js";

const COUNTER_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(LbCounter)
    .filter(([name]) => name !== "LB_C_COUNTERS_USED")
    .map(([name, index]) => [index, name.replace(/^LB_C_/, "").toLowerCase()]),
);

export function readStats(maps: BalancerMaps, reconciler: Reconciler): StatsResult {
  const result: StatsResult = { vips: {}, backends: {}, drops: {}, counters: {} };
  for (const vip of reconciler.listVips()) {
    const t = maps.readVipStats(vip.id);
    result.vips[vip.vip] = { packets: Number(t.packets), bytes: Number(t.bytes) };
  }
  for (const b of reconciler.listBackends()) {
    const t = maps.readBackendStats(b.index);
    result.backends[`${b.vip} ${b.address}`] = { packets: Number(t.packets), bytes: Number(t.bytes) };
  }
  const counters = maps.readCounters();
  for (const [index, name] of Object.entries(COUNTER_NAMES))
    result.counters[name] = Number(counters[Number(index)] ?? 0n);
  for (const [reason, name] of Object.entries(DROP_REASON_NAMES)) {
    result.drops[name] = Number(counters[LB_C_DROP_BASE + Number(reason)] ?? 0n);
  }
  return result;
}
