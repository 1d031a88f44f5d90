// Packet fixtures through the real balancer (BPF_PROG_TEST_RUN, real maps filled through the map
// layer) and through the NFQUEUE worker's userspace engine (FFI), each against the reference
// model: same action, same bytes, same counters, and the expected decision of each fixture
// stated on its own.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { LB_C_DROP_BASE, LbCounter, LbDropReason } from "../../src/maps/abi.js";
import { XdpAction } from "../../src/model/xdp-action.js";
import {
  buildArpFrame,
  buildFrame,
  IpProto,
  Ipv4Flag,
  TcpFlag,
  type FrameSpec,
  type L4Spec,
} from "../../src/model/packet-builder.js";
import { BalancerHarness, PLANES } from "../support/balancer-harness.js";
import { installScenario, writeBackend, writeTable, type VipSpec } from "../support/scenario.js";

const WEB: VipSpec = {
  vipId: 0,
  proto: "tcp",
  address: "198.18.1.1",
  port: 80,
  backends: [
    { index: 0, address: "198.18.0.11" },
    { index: 1, address: "198.18.0.12" },
    { index: 2, address: "198.18.0.13" },
  ],
};
const VIPS: VipSpec[] = [
  WEB,
  {
    vipId: 1,
    proto: "udp",
    address: "198.18.1.1",
    port: 53,
    backends: [{ index: 3, address: "198.18.0.11" }],
  },
  {
    vipId: 2,
    proto: "tcp",
    address: "198.18.1.2",
    port: 0,
    hash: "src-ip",
    backends: [
      { index: 4, address: "198.18.0.14" },
      { index: 5, address: "198.18.0.15", port: 7000 },
    ],
  },
  {
    vipId: 3,
    proto: "tcp",
    address: "2001:db8:1::1",
    port: 80,
    backends: [
      { index: 6, address: "2001:db8::11" },
      { index: 7, address: "2001:db8::12" },
    ],
  },
  {
    vipId: 4,
    proto: "udp",
    address: "2001:db8:1::1",
    port: 53,
    hash: "src-ip-port",
    backends: [{ index: 8, address: "198.18.0.16" }],
  },
  { vipId: 5, proto: "tcp", address: "198.18.1.3", port: 80, backends: [] },
  {
    vipId: 6,
    proto: "tcp",
    address: "198.18.1.4",
    port: 80,
    backends: [{ index: 9, address: "198.18.0.17", neigh: false }],
  },
  {
    vipId: 7,
    proto: "tcp",
    address: "198.18.1.5",
    port: 80,
    backends: [{ index: 10, address: "198.18.0.18", mtu: 600 }],
  },
  {
    vipId: 8,
    proto: "tcp",
    address: "198.18.1.6",
    port: 80,
    backends: [{ index: 11, address: "198.18.2.11", ifindex: 7 }],
  },
  {
    vipId: 9,
    proto: "tcp",
    address: "198.18.1.7",
    port: 80,
    backends: [{ index: 12, address: "198.18.0.19" }],
    table: false,
  },
  {
    vipId: 10,
    proto: "udp",
    address: "198.18.1.8",
    port: 4789,
    backends: [{ index: 13, address: "2001:db8::13" }],
  },
  // Two port VIPs on one address (no inline VIP: lb_vips by port) ...
  {
    vipId: 11,
    proto: "tcp",
    address: "198.18.1.9",
    port: 80,
    backends: [{ index: 15, address: "198.18.0.11" }],
  },
  {
    vipId: 12,
    proto: "tcp",
    address: "198.18.1.9",
    port: 443,
    backends: [{ index: 16, address: "198.18.0.12" }],
  },
  // ... and one port VIP beside a wildcard (inline VIP, then port 0).
  {
    vipId: 13,
    proto: "tcp",
    address: "198.18.1.10",
    port: 0,
    backends: [{ index: 17, address: "198.18.0.13" }],
  },
  {
    vipId: 14,
    proto: "tcp",
    address: "198.18.1.10",
    port: 22,
    backends: [{ index: 18, address: "198.18.0.14" }],
  },
];

const CLIENT4 = "198.18.0.2";
const CLIENT6 = "2001:db8::2";

function tcp4(
  dst: string,
  dport: number,
  flags: number = TcpFlag.ACK,
  extra: Partial<FrameSpec> = {},
  sport = 40000,
): Uint8Array {
  return buildFrame({
    l3: { family: 4, src: CLIENT4, dst, tos: 0x10 },
    l4: { kind: "tcp", sport, dport, flags, payload: new Uint8Array([1, 2, 3, 4]) },
    ...extra,
  });
}

function frame(family: 4 | 6, dst: string, l4: L4Spec, extra: Partial<FrameSpec> = {}): Uint8Array {
  const src = family === 4 ? CLIENT4 : CLIENT6;
  return buildFrame({ l3: { family, src, dst }, l4, ...extra });
}

interface Fixture {
  name: string;
  frame: () => Uint8Array;
  action: number;
  /** The counter the decision must be counted under (a pass reason or LB_C_DROP_BASE + reason). */
  counter?: number;
  /** Expected backend index for forwarded packets (from backendTraffic). */
  backend?: number;
}

const pass = LbCounter.LB_C_PASS_NOT_VIP;
const malformed = LbCounter.LB_C_PASS_MALFORMED;
const drop = (reason: number): number => LB_C_DROP_BASE + reason;

const FIXTURES: Fixture[] = [
  { name: "v4 tcp SYN to VIP", frame: () => tcp4("198.18.1.1", 80, TcpFlag.SYN), action: XdpAction.XDP_TX },
  { name: "v4 tcp ACK to VIP", frame: () => tcp4("198.18.1.1", 80), action: XdpAction.XDP_TX },
  {
    name: "v4 tcp with VLAN tag",
    frame: () => tcp4("198.18.1.1", 80, TcpFlag.ACK, { vlan: 0x2064 }),
    action: XdpAction.XDP_TX,
  },
  {
    name: "v4 tcp with Ethernet padding",
    frame: () =>
      buildFrame({
        l3: { family: 4, src: CLIENT4, dst: "198.18.1.1" },
        l4: { kind: "tcp", sport: 1, dport: 80 },
        padTo: 60,
      }),
    action: XdpAction.XDP_TX,
  },
  {
    name: "v4 udp to VIP",
    frame: () => frame(4, "198.18.1.1", { kind: "udp", sport: 5353, dport: 53 }),
    action: XdpAction.XDP_TX,
    backend: 3,
  },
  { name: "v4 wildcard port VIP, port 443", frame: () => tcp4("198.18.1.2", 443), action: XdpAction.XDP_TX },
  {
    name: "v4 wildcard port VIP, port 22 SYN",
    frame: () => tcp4("198.18.1.2", 22, TcpFlag.SYN),
    action: XdpAction.XDP_TX,
  },
  {
    name: "v6 tcp SYN to VIP",
    frame: () => frame(6, "2001:db8:1::1", { kind: "tcp", sport: 50000, dport: 80, flags: TcpFlag.SYN }),
    action: XdpAction.XDP_TX,
  },
  {
    name: "v6 tcp with traffic class",
    frame: () =>
      buildFrame({
        l3: { family: 6, src: CLIENT6, dst: "2001:db8:1::1", tos: 0xb8, flowLabel: 0x12345 },
        l4: { kind: "tcp", sport: 50001, dport: 80 },
      }),
    action: XdpAction.XDP_TX,
  },
  {
    name: "v6 udp to VIP, v4 backend",
    frame: () => frame(6, "2001:db8:1::1", { kind: "udp", sport: 5353, dport: 53 }),
    action: XdpAction.XDP_TX,
    backend: 8,
  },
  {
    name: "v4 udp to VIP, v6 backend",
    frame: () => frame(4, "198.18.1.8", { kind: "udp", sport: 1, dport: 4789 }),
    action: XdpAction.XDP_TX,
    backend: 13,
  },
  {
    name: "v4 tcp to VIP address, other port",
    frame: () => tcp4("198.18.1.1", 81),
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "v4 tcp to non-VIP address in VIP /24",
    frame: () => tcp4("198.18.1.200", 80),
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "v4 udp to tcp-only VIP port",
    frame: () => frame(4, "198.18.1.2", { kind: "udp", sport: 1, dport: 80 }),
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "v6 tcp to non-VIP",
    frame: () => frame(6, "2001:db8:1::99", { kind: "tcp", sport: 1, dport: 80 }),
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "ARP request for VIP",
    frame: () => buildArpFrame({ senderIp: CLIENT4, targetIp: "198.18.1.1" }),
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "ICMP echo to VIP",
    frame: () => frame(4, "198.18.1.1", { kind: "icmp" }),
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "ICMPv6 echo to VIP",
    frame: () => frame(6, "2001:db8:1::1", { kind: "icmp" }),
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "v4 IP options to VIP",
    frame: () =>
      tcp4("198.18.1.1", 80, TcpFlag.ACK, {
        l3: { family: 4, src: CLIENT4, dst: "198.18.1.1", options: Uint8Array.of(1, 1, 1, 0) },
      }),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_IP_OPTIONS),
  },
  {
    name: "v4 IP options to non-VIP",
    frame: () =>
      tcp4("198.18.1.99", 80, TcpFlag.ACK, {
        l3: { family: 4, src: CLIENT4, dst: "198.18.1.99", options: Uint8Array.of(1, 1, 1, 0) },
      }),
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "v4 first fragment (MF) to VIP",
    frame: () =>
      tcp4("198.18.1.1", 80, TcpFlag.ACK, {
        l3: { family: 4, src: CLIENT4, dst: "198.18.1.1", flags: Ipv4Flag.MF },
      }),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_FRAGMENT),
  },
  {
    name: "v4 later fragment to VIP",
    frame: () =>
      frame(
        4,
        "198.18.1.1",
        { kind: "raw", payload: new Uint8Array(16) },
        { l3: { family: 4, src: CLIENT4, dst: "198.18.1.1", proto: IpProto.TCP, fragOffset: 185 } },
      ),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_FRAGMENT),
  },
  {
    name: "v4 DF set is fine",
    frame: () =>
      tcp4("198.18.1.1", 80, TcpFlag.ACK, {
        l3: { family: 4, src: CLIENT4, dst: "198.18.1.1", flags: Ipv4Flag.DF },
      }),
    action: XdpAction.XDP_TX,
  },
  {
    name: "v6 fragment header to VIP",
    frame: () =>
      buildFrame({
        l3: {
          family: 6,
          src: CLIENT6,
          dst: "2001:db8:1::1",
          extensions: [{ type: IpProto.FRAGMENT, mf: true }],
        },
        l4: { kind: "tcp", sport: 1, dport: 80 },
      }),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_IPV6_EXT),
  },
  {
    name: "v6 hop-by-hop to VIP",
    frame: () =>
      buildFrame({
        l3: { family: 6, src: CLIENT6, dst: "2001:db8:1::1", extensions: [{ type: IpProto.HOPOPTS }] },
        l4: { kind: "udp", sport: 1, dport: 53 },
      }),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_IPV6_EXT),
  },
  {
    name: "v6 extension header to non-VIP",
    frame: () =>
      buildFrame({
        l3: { family: 6, src: CLIENT6, dst: "2001:db8:1::77", extensions: [{ type: IpProto.DSTOPTS }] },
        l4: { kind: "tcp", sport: 1, dport: 80 },
      }),
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "v4 total length beyond the frame",
    frame: () =>
      tcp4("198.18.1.1", 80, TcpFlag.ACK, {
        l3: { family: 4, src: CLIENT4, dst: "198.18.1.1", totalLength: 400 },
      }),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_TRUNCATED),
  },
  {
    name: "v4 IHL 4 to VIP",
    frame: () =>
      tcp4("198.18.1.1", 80, TcpFlag.ACK, { l3: { family: 4, src: CLIENT4, dst: "198.18.1.1", ihl: 4 } }),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_TRUNCATED),
  },
  {
    name: "v6 payload length beyond the frame",
    frame: () =>
      buildFrame({
        l3: { family: 6, src: CLIENT6, dst: "2001:db8:1::1", payloadLength: 500 },
        l4: { kind: "tcp", sport: 1, dport: 80 },
      }),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_TRUNCATED),
  },
  {
    name: "IPv4 ethertype with IPv6 version nibble",
    frame: () => {
      const f = tcp4("198.18.1.1", 80);
      f[14] = 0x65;
      return f;
    },
    action: XdpAction.XDP_PASS,
    counter: malformed,
  },
  {
    name: "QinQ (second tag) passes",
    frame: () => {
      const inner = tcp4("198.18.1.1", 80, TcpFlag.ACK, { vlan: 5 });
      const f = new Uint8Array(inner.length + 4);
      f.set(inner.subarray(0, 16));
      f.set([0x81, 0x00, 0x00, 0x06], 16);
      f.set(inner.subarray(16), 20);
      return f;
    },
    action: XdpAction.XDP_PASS,
    counter: pass,
  },
  {
    name: "VIP without backends",
    frame: () => tcp4("198.18.1.3", 80, TcpFlag.SYN),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_NO_BACKEND),
  },
  {
    name: "VIP without a table",
    frame: () => tcp4("198.18.1.7", 80),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_NO_BACKEND),
  },
  {
    name: "backend next hop unresolved",
    frame: () => tcp4("198.18.1.4", 80, TcpFlag.SYN),
    action: XdpAction.XDP_PASS,
    counter: LbCounter.LB_C_NO_NEIGH,
  },
  {
    name: "encapsulated packet over the egress MTU",
    frame: () =>
      tcp4("198.18.1.5", 80, TcpFlag.ACK, {
        l4: { kind: "tcp", sport: 9, dport: 80, payload: new Uint8Array(560) },
      }),
    action: XdpAction.XDP_DROP,
    counter: drop(LbDropReason.LB_DROP_TOO_BIG),
  },
  {
    name: "encapsulated packet exactly at the egress MTU",
    frame: () =>
      tcp4("198.18.1.5", 80, TcpFlag.ACK, {
        l4: { kind: "tcp", sport: 9, dport: 80, payload: new Uint8Array(532) },
      }),
    action: XdpAction.XDP_TX,
  },
  {
    name: "backend behind another interface: redirect",
    frame: () => tcp4("198.18.1.6", 80),
    action: XdpAction.XDP_REDIRECT,
    backend: 11,
  },
];

// Truncation at every header boundary (and a byte either side) of a v4 TCP, v6 UDP and VLAN frame.
function truncations(): Fixture[] {
  const cases: Fixture[] = [];
  const bases: [string, Uint8Array, number[]][] = [
    ["v4 tcp", tcp4("198.18.1.1", 80), [14, 15, 33, 34, 35, 53, 54]],
    ["v6 udp", frame(6, "2001:db8:1::1", { kind: "udp", sport: 1, dport: 53 }), [14, 53, 54, 55, 61]],
    ["vlan v4 tcp", tcp4("198.18.1.1", 80, TcpFlag.ACK, { vlan: 7 }), [14, 17, 18, 37, 38, 57, 58]],
  ];
  for (const [name, full, cuts] of bases) {
    for (const cut of cuts)
      cases.push({ name: `${name} truncated to ${cut} bytes`, frame: () => full.slice(0, cut), action: -1 });
  }
  return cases;
}

// Each data plane: the XDP program ("kernel") and the NFQUEUE worker's engine ("engine").
for (const plane of PLANES) {
  describe(`${plane} data plane`, () => {
    let harness: BalancerHarness;

    before(() => {
      harness = BalancerHarness.open(65536, plane);
      harness.apply((maps) => {
        installScenario(maps, VIPS);
      });
    });

    after(() => {
      harness.close();
    });

    test("fixture table: data plane and model agree, with the expected decision", () => {
      const all = [...FIXTURES, ...truncations()];
      assert.ok(all.length >= 40, `at least 40 fixtures (have ${all.length})`);
      for (const fx of all) {
        const before = harness.dataplaneCounters();
        const decision = harness.compare(fx.frame(), fx.name);
        const deltas = harness.dataplaneCounters().map((v, i) => v - (before[i] ?? 0));
        assert.deepEqual(deltas, decision.counters, `${fx.name}: counter deltas (data plane vs model)`);
        if (fx.action >= 0) assert.equal(decision.action, fx.action, `${fx.name}: action`);
        if (fx.counter !== undefined)
          assert.equal(deltas[fx.counter], 1, `${fx.name}: counted under #${fx.counter}`);
        if (fx.backend !== undefined)
          assert.equal(decision.backendTraffic?.index, fx.backend, `${fx.name}: backend`);
        // A truncated frame is never sent: passed untouched or dropped.
        if (fx.action < 0)
          assert.ok(
            decision.action === XdpAction.XDP_PASS || decision.action === XdpAction.XDP_DROP,
            fx.name,
          );
      }
    });

    test("flow sticks to its backend after the backend set changes, SYN re-picks", () => {
      const sports = Array.from({ length: 64 }, (_, i) => 20000 + i);
      const first = new Map<number, number>();
      for (const sport of sports) {
        const d = harness.compare(tcp4("198.18.1.1", 80, TcpFlag.SYN, {}, sport), `SYN ${sport}`);
        first.set(sport, d.backendTraffic?.index ?? -1);
      }
      // Add a fourth backend: Maglev moves some slots to it, but established flows stay.
      const grown: VipSpec = { ...WEB, backends: [...WEB.backends, { index: 14, address: "198.18.0.20" }] };
      harness.apply((maps) => {
        writeBackend(maps, 0, { index: 14, address: "198.18.0.20" });
        writeTable(maps, grown);
      });
      let moved = 0;
      for (const sport of sports) {
        const ack = harness.compare(tcp4("198.18.1.1", 80, TcpFlag.ACK, {}, sport), `ACK ${sport}`);
        assert.equal(ack.backendTraffic?.index, first.get(sport), `flow ${sport} stays on its backend`);
        const syn = harness.compare(tcp4("198.18.1.1", 80, TcpFlag.SYN, {}, sport), `new SYN ${sport}`);
        if (syn.backendTraffic?.index === 14) moved++;
      }
      assert.ok(moved > 0, "a SYN reusing a 5-tuple takes a fresh pick (some land on the new backend)");

      // Drain backend 0 (weight 0): its flows stay; SYNs avoid it.
      const drained: VipSpec = {
        ...grown,
        backends: grown.backends.map((b) => (b.index === 0 ? { ...b, weight: 0 } : b)),
      };
      harness.apply((maps) => {
        writeTable(maps, drained);
      });
      for (const sport of sports) {
        const before = harness.compare(
          tcp4("198.18.1.1", 80, TcpFlag.ACK, {}, sport),
          `drained ACK ${sport}`,
        );
        if (before.backendTraffic?.index === 0) {
          const syn = harness.compare(tcp4("198.18.1.1", 80, TcpFlag.SYN, {}, sport), `drained SYN ${sport}`);
          assert.notEqual(syn.backendTraffic?.index, 0, "a SYN never lands on a drained backend");
        }
      }

      // Remove backend 1: its flows are re-picked (stale), the others stay.
      const removed: VipSpec = { ...drained, backends: drained.backends.filter((b) => b.index !== 1) };
      harness.apply((maps) => {
        writeBackend(maps, 0, { index: 1, address: "198.18.0.12", inUse: false });
        writeTable(maps, removed);
      });
      const staleBefore = harness.dataplaneCounters()[LbCounter.LB_C_FLOW_STALE] ?? 0;
      for (const sport of sports) {
        const d = harness.compare(tcp4("198.18.1.1", 80, TcpFlag.ACK, {}, sport), `after removal ${sport}`);
        assert.notEqual(d.backendTraffic?.index, 1, "no packet goes to a removed backend");
      }
      assert.ok(
        (harness.dataplaneCounters()[LbCounter.LB_C_FLOW_STALE] ?? 0) > staleBefore,
        "stale flows were counted",
      );
    });
  });
}
