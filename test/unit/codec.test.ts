// Codec round trips for every struct of lb_abi.h, and the byte order of *_be fields.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AF_INET, AF_INET6, parseAddress } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";
import * as abi from "../../src/maps/abi.js";
import * as codec from "../../src/maps/codec.js";

const v4 = parseAddress("198.18.0.11").bytes;
const v6 = parseAddress("2001:db8::11").bytes;
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

void test("settings round trip at the layout's offsets", () => {
  const s = { srcV4: v4.slice(0, 4), srcV6: v6, maglevSize: 65537, flags: abi.LB_SETTINGS_F_HAVE_V4 };
  const b = codec.encodeSettings(s);
  assert.equal(b.length, abi.SettingsLayout.size);
  assert.deepEqual(codec.decodeSettings(b), s);
  assert.equal(hex(b.subarray(0, 4)), "c612000b");
  // maglev_size is host order (little-endian): 65537 = 0x00010001.
  assert.equal(hex(b.subarray(abi.SettingsLayout.fields.maglev_size, 24)), "01000100");
});

void test("vip addr key/value round trip", () => {
  const k = { address: v6, family: AF_INET6, proto: 17 } as const;
  const b = codec.encodeVipAddrKey(k);
  assert.equal(b.length, abi.VipAddrKeyLayout.size);
  assert.deepEqual(codec.decodeVipAddrKey(b), k);
  assert.equal(b[16], 10);
  assert.equal(b[17], 17);
  assert.equal(hex(b.subarray(18)), "0000");
  const value = {
    flags: abi.LB_VIP_ADDR_F_PORTS | abi.LB_VIP_ADDR_F_WILDCARD | abi.LB_VIP_ADDR_F_INLINE,
    port: 8080,
    vip: { vipId: 7, flags: abi.LB_VIP_F_HASH_SRC_IP },
  };
  const encoded = codec.encodeVipAddr(value);
  assert.equal(hex(encoded.subarray(4, 6)), "1f90", "port_be is network order");
  assert.deepEqual(codec.decodeVipAddr(encoded), value);
});

void test("vip key stores the port in network order", () => {
  const k = { address: v4, port: 0x1f90, family: AF_INET, proto: 6 } as const; // 8080
  const b = codec.encodeVipKey(k);
  assert.equal(b.length, abi.VipKeyLayout.size);
  assert.equal(hex(b.subarray(abi.VipKeyLayout.fields.port_be, abi.VipKeyLayout.fields.port_be + 2)), "1f90");
  assert.deepEqual(codec.decodeVipKey(b), k);
  const vip = { vipId: 7, flags: abi.LB_VIP_F_HASH_SRC_IP };
  const vb = codec.encodeVip(vip);
  assert.equal(hex(vb), "0700000001000000");
  assert.deepEqual(codec.decodeVip(vb), vip);
});

void test("backend round trip; encap port big-endian, the rest little-endian", () => {
  const be: codec.Backend = {
    address: v4,
    family: AF_INET,
    flags: abi.LB_BACKEND_F_IN_USE | abi.LB_BACKEND_F_NEIGH,
    encapPort: 6080, // 0x17c0
    vipId: 0x01020304,
    ifindex: 5,
    mtu: 1500, // 0x05dc
    dmac: Uint8Array.from([2, 0, 0, 0, 0, 1]),
    smac: Uint8Array.from([2, 0, 0, 0, 0, 2]),
  };
  const b = codec.encodeBackend(be);
  const f = abi.BackendLayout.fields;
  assert.equal(b.length, abi.BackendLayout.size);
  assert.equal(hex(b.subarray(f.encap_port_be, f.encap_port_be + 2)), "17c0");
  assert.equal(hex(b.subarray(f.vip_id, f.vip_id + 4)), "04030201");
  assert.equal(hex(b.subarray(f.mtu, f.mtu + 2)), "dc05");
  assert.equal(hex(b.subarray(f.dmac, f.dmac + 6)), "020000000001");
  assert.equal(hex(b.subarray(f.smac, f.smac + 6)), "020000000002");
  assert.deepEqual(codec.decodeBackend(b), be);
  assert.equal(codec.decodeBackend(codec.encodeEmptyBackend()), undefined);
});

void test("flow key/value round trip with big-endian ports", () => {
  const k: codec.FlowKey = {
    src: v6,
    dst: parseAddress("2001:db8:1::1").bytes,
    sport: 40000,
    dport: 443,
    family: AF_INET6,
    proto: 6,
  };
  const b = codec.encodeFlowKey(k);
  const f = abi.FlowKeyLayout.fields;
  assert.equal(b.length, abi.FlowKeyLayout.size);
  assert.equal(hex(b.subarray(f.sport_be, f.sport_be + 2)), "9c40");
  assert.equal(hex(b.subarray(f.dport_be, f.dport_be + 2)), "01bb");
  assert.deepEqual(codec.decodeFlowKey(b), k);
  const flow = { backend: 3, hash: 0xdeadbeef };
  const fb = codec.encodeFlow(flow);
  assert.equal(hex(fb), "03000000efbeadde");
  assert.deepEqual(codec.decodeFlow(fb), flow);
});

void test("traffic and counters sum over CPUs as bigint", () => {
  const cpus = [
    { packets: 1n, bytes: 100n },
    { packets: 2n, bytes: 2n ** 40n },
    { packets: 2n ** 63n, bytes: 1n },
  ];
  const all = new Uint8Array(cpus.length * 16);
  cpus.forEach((t, i) => {
    all.set(codec.encodeTraffic(t), i * 16);
  });
  assert.deepEqual(codec.decodeTraffic(all), { packets: 2n ** 63n + 3n, bytes: 2n ** 40n + 101n });
  const counters = new Uint8Array(24);
  const view = new DataView(counters.buffer);
  view.setBigUint64(0, 5n, true);
  view.setBigUint64(16, 7n, true);
  assert.equal(codec.decodeCounter(counters), 12n);
  assert.throws(() => codec.decodeTraffic(new Uint8Array(20)), LbError);
});

void test("decap settings and address key round trip", () => {
  const s = { encapPort: 6080, flags: 1 };
  const b = codec.encodeDecapSettings(s);
  assert.equal(b.length, abi.DecapSettingsLayout.size);
  assert.equal(hex(b.subarray(0, 2)), "17c0");
  assert.deepEqual(codec.decodeDecapSettings(b), s);
  const k = { address: v4, family: AF_INET } as const;
  const kb = codec.encodeDecapAddrKey(k);
  assert.equal(kb.length, abi.DecapAddrKeyLayout.size);
  assert.deepEqual(codec.decodeDecapAddrKey(kb), k);
});

void test("out-of-range fields and wrong-size arrays are refused, naming the field", () => {
  const base = { address: v4, port: 80, family: AF_INET, proto: 6 } as const;
  assert.throws(() => codec.encodeVipKey({ ...base, port: 65536 }), /lb_vip_key\.port_be: 65536/);
  assert.throws(
    () => codec.encodeVipKey({ ...base, address: new Uint8Array(4) }),
    /lb_vip_key\.addr: 4 bytes, expected 16/,
  );
  assert.throws(() => codec.encodeVip({ vipId: -1, flags: 0 }), /lb_vip\.vip_id/);
  assert.throws(() => codec.decodeVipKey(new Uint8Array(20)), /unknown address family 0/);
  assert.throws(() => codec.decodeFlow(new Uint8Array(4)), /lb_flow: 4 bytes, expected 8/);
});

void test("u32 keys are host order", () => {
  assert.equal(hex(codec.encodeU32Key(0x01020304)), "04030201");
  assert.equal(codec.decodeU32Key(codec.encodeU32Key(65535)), 65535);
});
