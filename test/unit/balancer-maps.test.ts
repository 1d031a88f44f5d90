// BalancerMaps over the in-memory backends: typed round trips, the C maps' sizes, index checks.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AF_INET, parseAddress } from "../../src/lib/addr.js";
import * as abi from "../../src/maps/abi.js";
import { BalancerMaps } from "../../src/maps/balancer-maps.js";
import { encodeU32Key } from "../../src/maps/codec.js";
import type { Backend } from "../../src/maps/codec.js";

const backend: Backend = {
  address: parseAddress("198.18.0.11").bytes,
  family: AF_INET,
  flags: abi.LB_BACKEND_F_IN_USE,
  encapPort: abi.LB_ENCAP_PORT_DEFAULT,
  vipId: 1,
  ifindex: 2,
  mtu: 1500,
  dmac: new Uint8Array(6),
  smac: new Uint8Array(6),
};

void test("in-memory maps have the C maps' sizes", () => {
  const { maps } = BalancerMaps.inMemory({ ncpus: 2, flowTableSize: 8 });
  assert.equal(maps.vips.keySize, abi.VipKeyLayout.size);
  assert.equal(maps.vips.maxEntries, abi.LB_MAX_VIPS);
  assert.equal(maps.backends.valueSize, abi.BackendLayout.size);
  assert.equal(maps.backends.maxEntries, abi.LB_MAX_BACKENDS);
  assert.equal(maps.flows.maxEntries, 8);
  assert.equal(maps.vipStats.valueStride, 32);
  assert.equal(maps.counters.valueStride, 16);
  assert.equal(maps.counters.maxEntries, abi.LB_COUNTERS_SIZE);
});

void test("settings, VIPs, backends, flows and tables round trip", () => {
  const m = BalancerMaps.inMemory({ flowTableSize: 2 });
  assert.equal(m.getSettings().maglevSize, 0);
  const settings = {
    srcV4: Uint8Array.from([198, 18, 0, 1]),
    srcV6: new Uint8Array(16),
    maglevSize: 7,
    flags: 1,
  };
  m.setSettings(settings);
  assert.deepEqual(m.getSettings(), settings);

  const vipKey = { address: parseAddress("198.18.1.1").bytes, port: 80, family: AF_INET, proto: 6 } as const;
  m.putVip(vipKey, { vipId: 1, flags: 0 });
  assert.deepEqual(m.getVip(vipKey), { vipId: 1, flags: 0 });
  assert.equal(m.deleteVip(vipKey), true);
  assert.equal(m.getVip(vipKey), undefined);
  const addrKey = { address: vipKey.address, family: AF_INET, proto: 6 } as const;
  const addrValue = {
    flags: abi.LB_VIP_ADDR_F_PORTS | abi.LB_VIP_ADDR_F_INLINE,
    port: 80,
    vip: { vipId: 3, flags: 0 },
  };
  m.putVipAddr(addrKey, addrValue);
  assert.deepEqual(m.getVipAddr(addrKey), addrValue);
  assert.equal(m.deleteVipAddr(addrKey), true);

  m.putBackend(5, backend);
  assert.deepEqual(m.getBackend(5), backend);
  m.deleteBackend(5);
  assert.equal(m.getBackend(5), undefined);
  assert.throws(() => {
    m.putBackend(abi.LB_MAX_BACKENDS, backend);
  }, /map lb_backends: backend index 65536 out of range/);

  m.replaceTable(1, Uint32Array.from([5, 5, abi.LB_NO_BACKEND]));
  assert.deepEqual(m.readTable(1), Uint32Array.from([5, 5, abi.LB_NO_BACKEND]));
  m.clearTable(1);
  assert.equal(m.readTable(1), undefined);

  const flowKey = (sport: number) =>
    ({
      src: parseAddress("198.18.0.2").bytes,
      dst: vipKey.address,
      sport,
      dport: 80,
      family: AF_INET,
      proto: 6,
    }) as const;
  m.putFlow(flowKey(1000), { backend: 5, hash: 42 });
  m.putFlow(flowKey(1001), { backend: 5, hash: 43 });
  m.putFlow(flowKey(1002), { backend: 5, hash: 44 }); // LRU of 2: 1000 goes
  assert.equal(m.getFlow(flowKey(1000)), undefined);
  assert.deepEqual(m.getFlow(flowKey(1002)), { backend: 5, hash: 44 });
  assert.equal(m.deleteFlow(flowKey(1002)), true);
});

void test("counters and stats are summed over CPUs", () => {
  const m = BalancerMaps.inMemory({ ncpus: 2 });
  const perCpu = new Uint8Array(16);
  const view = new DataView(perCpu.buffer);
  view.setBigUint64(0, 3n, true);
  view.setBigUint64(8, 4n, true);
  m.maps.counters.update(encodeU32Key(abi.LbCounter.LB_C_RX), perCpu);
  const counters = m.readCounters();
  assert.equal(counters.length, abi.LB_COUNTERS_SIZE);
  assert.equal(counters[abi.LbCounter.LB_C_RX], 7n);
  assert.equal(counters[abi.LbCounter.LB_C_DROP], 0n);

  const traffic = new Uint8Array(32);
  const tv = new DataView(traffic.buffer);
  tv.setBigUint64(0, 1n, true);
  tv.setBigUint64(8, 60n, true);
  tv.setBigUint64(16, 2n, true);
  tv.setBigUint64(24, 120n, true);
  m.maps.vipStats.update(encodeU32Key(3), traffic);
  assert.deepEqual(m.readVipStats(3), { packets: 3n, bytes: 180n });
  m.resetVipStats(3);
  assert.deepEqual(m.readVipStats(3), { packets: 0n, bytes: 0n });
  assert.deepEqual(m.readBackendStats(0), { packets: 0n, bytes: 0n });
});
