// Randomized differential test: valid flows, non-VIP traffic, mutated, truncated and garbage
// frames through each data plane (the real XDP balancer, and the NFQUEUE worker's userspace
// engine through FFI) and the reference model, with backend-set changes along the
// way. Zero mismatches allowed. CAPLANCE_DIFF_PACKETS (default 100000) and CAPLANCE_DIFF_SEED
// replay or enlarge a run; the seed is printed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { LbCounter } from "../../src/maps/abi.js";
import { BalancerHarness, PLANES, type PlaneKind } from "../support/balancer-harness.js";
import { Prng } from "../support/prng.js";
import { changeState, nextFrame, VIPS } from "../support/differential-traffic.js";
import { installScenario } from "../support/scenario.js";

const PACKETS = Number(process.env.CAPLANCE_DIFF_PACKETS ?? 100_000);
const SEED = Number(process.env.CAPLANCE_DIFF_SEED ?? 0x5eed1234);
const FLOW_TABLE = 262144;

for (const plane of PLANES) {
  test(`differential: ${PACKETS} random frames, ${plane} and model agree`, () => {
    differential(plane);
  });
}

function differential(plane: PlaneKind): void {
  console.log(
    `differential seed ${SEED} (replay: CAPLANCE_DIFF_SEED=${SEED} CAPLANCE_DIFF_PACKETS=${PACKETS})`,
  );
  const rng = new Prng(SEED);
  const harness = BalancerHarness.open(FLOW_TABLE, plane);
  try {
    harness.apply((maps) => {
      installScenario(maps, VIPS);
    });
    const modelCounters = new Array<number>(64).fill(0);
    const vipBytes = new Map<number, number>();
    const backendBytes = new Map<number, number>();
    const weights = new Map<number, number>();
    const actions = new Map<number, number>();
    for (let i = 0; i < PACKETS; i++) {
      if (i > 0 && i % 5000 === 0) changeState(rng, harness, weights);
      const frame = nextFrame(rng);
      const d = harness.compare(frame, `packet #${i} (seed ${SEED})`);
      d.counters.forEach((n, c) => (modelCounters[c] = (modelCounters[c] ?? 0) + n));
      if (d.vipTraffic)
        vipBytes.set(d.vipTraffic.index, (vipBytes.get(d.vipTraffic.index) ?? 0) + d.vipTraffic.bytes);
      if (d.backendTraffic)
        backendBytes.set(
          d.backendTraffic.index,
          (backendBytes.get(d.backendTraffic.index) ?? 0) + d.backendTraffic.bytes,
        );
      actions.set(d.action, (actions.get(d.action) ?? 0) + 1);
    }
    assert.deepEqual(harness.dataplaneCounters(), modelCounters, `lb_counters totals (${plane} vs model)`);
    for (const [vipId, bytes] of vipBytes)
      assert.equal(Number(harness.dataplane.readVipStats(vipId).bytes), bytes, `VIP ${vipId} bytes`);
    for (const [index, bytes] of backendBytes)
      assert.equal(Number(harness.dataplane.readBackendStats(index).bytes), bytes, `backend ${index} bytes`);
    const c = modelCounters;
    console.log(
      `differential (${plane}): ${PACKETS} frames; actions ${JSON.stringify(Object.fromEntries(actions))}; ` +
        `flow hits ${c[LbCounter.LB_C_FLOW_HIT]}, misses ${c[LbCounter.LB_C_FLOW_MISS]}, stale ${c[LbCounter.LB_C_FLOW_STALE]}`,
    );
    // The mix must exercise every path, or the test proves little.
    for (const action of [1, 2, 3, 4])
      assert.ok((actions.get(action) ?? 0) > 100, `action ${action} exercised`);
  } finally {
    harness.close();
  }
}
