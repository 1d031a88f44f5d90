// Traffic for the differential test: a scenario of VIPs, a seeded stream of frames (valid,
// non-VIP, mutated, truncated, garbage) and backend-set changes applied to both sides.
import { LB_BACKEND_F_IN_USE } from "../../src/maps/abi.js";
import { buildFrame, TcpFlag, type FrameSpec } from "../../src/model/packet-builder.js";
import type { BalancerHarness } from "./balancer-harness.js";
import type { Prng } from "./prng.js";
import { writeBackend, writeTable, type BackendSpec, type VipSpec } from "./scenario.js";

const backends = (first: number, addrs: string[]): BackendSpec[] =>
  addrs.map((address, i) => ({ index: first + i, address }));

export const VIPS: VipSpec[] = [
  {
    vipId: 0,
    proto: "tcp",
    address: "198.18.1.1",
    port: 80,
    backends: backends(0, ["198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14"]),
  },
  {
    vipId: 1,
    proto: "udp",
    address: "198.18.1.1",
    port: 53,
    backends: backends(10, ["198.18.0.11", "198.18.0.12"]),
  },
  {
    vipId: 2,
    proto: "tcp",
    address: "198.18.1.2",
    port: 0,
    hash: "src-ip",
    backends: backends(20, ["198.18.0.15", "2001:db8::15"]),
  },
  {
    vipId: 3,
    proto: "tcp",
    address: "2001:db8:1::1",
    port: 443,
    backends: backends(30, ["2001:db8::11", "2001:db8::12", "198.18.0.16"]),
  },
  {
    vipId: 4,
    proto: "udp",
    address: "2001:db8:1::1",
    port: 0,
    hash: "src-ip-port",
    backends: backends(40, ["2001:db8::13"]),
  },
  {
    vipId: 5,
    proto: "tcp",
    address: "198.18.1.3",
    port: 80,
    backends: [{ index: 50, address: "198.18.2.11", ifindex: 9, mtu: 700 }],
  },
  {
    vipId: 6,
    proto: "tcp",
    address: "198.18.1.3",
    port: 443,
    backends: backends(60, ["198.18.0.17", "198.18.0.18"]),
  },
];

const TCP_FLAGS = [
  TcpFlag.SYN,
  TcpFlag.ACK,
  TcpFlag.SYN | TcpFlag.ACK,
  TcpFlag.FIN | TcpFlag.ACK,
  TcpFlag.RST,
  TcpFlag.PSH | TcpFlag.ACK,
];

function validFrame(rng: Prng, toVip: boolean): Uint8Array {
  const vip = rng.pick(VIPS);
  const v6 = vip.address.includes(":");
  const src = v6 ? `2001:db8::${(0x100 + rng.int(64)).toString(16)}` : `198.18.0.${100 + rng.int(64)}`;
  const dst = toVip
    ? vip.address
    : v6
      ? `2001:db8:1::${(2 + rng.int(200)).toString(16)}`
      : `198.18.1.${10 + rng.int(200)}`;
  const dport = vip.port === 0 || rng.chance(0.1) ? 1 + rng.int(65535) : vip.port;
  const sport = 30000 + rng.int(32);
  const payload = rng.bytes(rng.int(4) === 0 ? rng.int(900) : rng.int(64));
  const l4: FrameSpec["l4"] =
    vip.proto === "tcp"
      ? { kind: "tcp", sport, dport, flags: rng.pick(TCP_FLAGS), payload }
      : { kind: "udp", sport, dport, payload };
  const tos = rng.chance(0.2) ? rng.int(256) : 0;
  const spec: FrameSpec = { l3: v6 ? { family: 6, src, dst, tos } : { family: 4, src, dst, tos }, l4 };
  if (rng.chance(0.1)) spec.vlan = rng.int(4096);
  if (rng.chance(0.1)) spec.padTo = 60 + rng.int(40);
  return buildFrame(spec);
}

function mutate(rng: Prng, frame: Uint8Array): Uint8Array {
  const out = frame.slice();
  const flips = 1 + rng.int(4);
  for (let i = 0; i < flips; i++) out[rng.int(Math.min(out.length, 80))] = rng.int(256);
  return out;
}

export function nextFrame(rng: Prng): Uint8Array {
  const kind = rng.int(100);
  if (kind < 45) return validFrame(rng, true);
  if (kind < 60) return validFrame(rng, false);
  if (kind < 85) return mutate(rng, validFrame(rng, true));
  if (kind < 95) {
    const f = validFrame(rng, true);
    return f.slice(0, 14 + rng.int(f.length - 14));
  }
  return rng.bytes(14 + rng.int(120));
}

/** One backend-set change, decided once and applied alike to both sides: drain/resume,
 * remove/re-add, next hop lost/found. */
export function changeState(rng: Prng, harness: BalancerHarness, weights: Map<number, number>): string {
  const vip = rng.pick(VIPS.slice(0, 4));
  const backend = rng.pick(vip.backends);
  const change = rng.int(3);
  if (change === 0) {
    weights.set(backend.index, weights.get(backend.index) === 0 ? 1 : 0);
    const table = {
      ...vip,
      backends: vip.backends.map((b) => ({ ...b, weight: weights.get(b.index) ?? 1 })),
    };
    harness.apply((maps) => {
      writeTable(maps, table);
    });
    return `weight of backend ${backend.index} now ${weights.get(backend.index) ?? 1}`;
  }
  const inUse =
    change === 1
      ? ((harness.memory.getBackend(backend.index)?.flags ?? 0) & LB_BACKEND_F_IN_USE) === 0
      : true;
  const neigh = change === 2 ? rng.chance(0.7) : true;
  harness.apply((maps) => {
    writeBackend(maps, vip.vipId, { ...backend, inUse, neigh });
  });
  return `backend ${backend.index}: in use ${inUse}, next hop ${neigh}`;
}
