// A daemon context without a kernel, for the REST and metrics tests: in-memory maps, a real
// Reconciler whose next hops come from a static table, readStats, the real handler, and
// helpers that write per-CPU counters the way the data plane would.
import type { DaemonContext } from "../../src/api/handlers.js";
import { makeHandler } from "../../src/api/handlers.js";
import type { Handler } from "../../src/api/control-server.js";
import type { StatusResult } from "../../src/api/protocol.js";
import { ReconcileTimings } from "../../src/api/metrics.js";
import { Reconciler, type NextHop, type NextHopSource } from "../../src/core/reconciler.js";
import { readStats } from "../../src/core/stats.js";
import { formatAddress, type IpAddress } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";
import { BalancerMaps } from "../../src/maps/balancer-maps.js";
import { encodeU32Key } from "../../src/maps/codec.js";

export const NCPUS = 2;

/** Resolves every address except those in `unreachable` (a test double of src/net). */
export class StaticNextHops implements NextHopSource {
  readonly unreachable = new Set<string>();
  resolve(address: IpAddress): Promise<NextHop | undefined> {
    if (this.unreachable.has(formatAddress(address.bytes, address.family))) return Promise.resolve(undefined);
    return Promise.resolve({
      ifindex: 3,
      smac: new Uint8Array(6).fill(1),
      dmac: new Uint8Array(6).fill(2),
      mtu: 1500,
    });
  }
  recheck(address: IpAddress): Promise<NextHop | undefined> {
    return this.resolve(address);
  }
}

export interface TestContext {
  readonly maps: BalancerMaps;
  readonly hops: StaticNextHops;
  readonly reconciler: Reconciler;
  readonly timings: ReconcileTimings;
  readonly context: DaemonContext;
  readonly handler: Handler;
}

export function testContext(mode: StatusResult["mode"] = "native"): TestContext {
  const maps = BalancerMaps.inMemory({ ncpus: NCPUS, flowTableSize: 1024 });
  const hops = new StaticNextHops();
  const timings = new ReconcileTimings();
  const reconciler = new Reconciler(maps, hops, {
    maglevSize: 251,
    resolveWaitMs: 20,
    onChange: timings.observe,
  });
  const context: DaemonContext = {
    reconciler,
    status: (): StatusResult => ({
      iface: "eth0",
      ifindex: 2,
      mode,
      modeReason: "requested",
      pid: process.pid,
      socket: "/nonexistent/lbd.sock",
      config: null,
      vips: reconciler.listVips().length,
      backends: reconciler.backendCount,
      uptimeSeconds: 0,
      settings: {},
    }),
    stats: () => readStats(maps, reconciler),
    reload: () => Promise.reject(new LbError("LB_ERR_CONFIG", "nothing to reload in a test")),
  };
  return { maps, hops, reconciler, timings, context, handler: makeHandler(context) };
}

/** A per-CPU value: one u64 (counters) or packets+bytes (traffic) per CPU, little-endian. */
function perCpu(values: readonly (readonly bigint[])[]): Uint8Array {
  const width = (values[0]?.length ?? 1) * 8;
  const out = new Uint8Array(width * values.length);
  const view = new DataView(out.buffer);
  values.forEach((fields, cpu) => {
    fields.forEach((v, i) => {
      view.setBigUint64(cpu * width + i * 8, v, true);
    });
  });
  return out;
}

/** Sets a counter (LbCounter index or LB_C_DROP_BASE + reason) to total, split over the CPUs. */
export function setCounter(maps: BalancerMaps, index: number, total: number): void {
  const first = BigInt(Math.floor(total / 2));
  maps.maps.counters.update(encodeU32Key(index), perCpu([[first], [BigInt(total) - first]]));
}

/** Sets a VIP's (vipStats) or a backend's (backendStats) traffic, split over the CPUs. */
export function setTraffic(
  maps: BalancerMaps,
  which: "vipStats" | "backendStats",
  index: number,
  packets: number,
  bytes: number,
): void {
  maps.maps[which].update(
    encodeU32Key(index),
    perCpu([
      [1n, 60n],
      [BigInt(packets - 1), BigInt(bytes - 60)],
    ]),
  );
}
