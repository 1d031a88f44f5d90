// Packet-path benchmarks under BPF_PROG_TEST_RUN: the balancer beside the floors of
// bench/floors.bpf.c, measured in the same run. Programs that rewrite the packet run behind
// bench/restore.bpf.c (input restored every iteration); its cost is measured and subtracted.
import { BpfObject } from "../src/dataplane/bpf-object.js";
import { Native } from "../src/dataplane/native.js";
import { bpfObjectPath } from "../src/lib/paths.js";
import { LibbpfMap } from "../src/maps/libbpf-map.js";
import { BalancerMaps } from "../src/maps/balancer-maps.js";
import { encodeFlow, encodeFlowKey, encodeU32Key } from "../src/maps/codec.js";
import { parseAddress } from "../src/lib/addr.js";
import { buildFrame, TcpFlag } from "../src/model/packet-builder.js";
import { installScenario, type VipSpec } from "../test/support/scenario.js";

const REPEAT = 200_000;
const ROUNDS = 7;
const MANY_FLOWS = 1 << 20;
const FRAME_MAX = 256; // struct bench_input's frame[]

const VIPS: VipSpec[] = [
  {
    vipId: 0,
    proto: "tcp",
    address: "198.18.1.1",
    port: 80,
    backends: [
      { index: 0, address: "198.18.0.11" },
      { index: 1, address: "198.18.0.12" },
      { index: 2, address: "198.18.0.13" },
    ],
  },
  {
    vipId: 1,
    proto: "tcp",
    address: "2001:db8:1::1",
    port: 80,
    backends: [
      { index: 3, address: "2001:db8::11" },
      { index: 4, address: "2001:db8::12" },
    ],
  },
];

const tcpV4 = (dst: string, flags: number): Uint8Array =>
  buildFrame({
    l3: { family: 4, src: "198.18.0.2", dst },
    l4: { kind: "tcp", sport: 40000, dport: 80, flags, payload: new Uint8Array(64) },
  });
const tcpV6 = (flags: number): Uint8Array =>
  buildFrame({
    l3: { family: 6, src: "2001:db8::2", dst: "2001:db8:1::1" },
    l4: { kind: "tcp", sport: 40000, dport: 80, flags, payload: new Uint8Array(64) },
  });
// Offsets in the untagged IPv4/TCP frame the restore wrapper rewrites per flow.
const V4_SADDR_OFFSET = 14 + 12;
const V4_SPORT_OFFSET = 14 + 20;

export interface XdpFigures {
  floor_pass_ns: number;
  floor_lookup_ns: number;
  floor_encap_ns: number;
  nonvip_ns: number;
  new_flow_v4_ns: number;
  established_v4_ns: number;
  established_v6_ns: number;
  established_1m_flows_v4_ns: number;
  restore_wrapper_ns: number;
  /** Flow-table variants alone (bench/flowtable.bpf.c): inserts of new keys, and lookups. */
  ft_insert_lru_ns: number;
  ft_insert_lru_nocommon_ns: number;
  ft_insert_lru_percpu_ns: number;
  ft_insert_hash_ns: number;
  ft_lookup_lru_hot_ns: number;
  ft_lookup_lru_1m_ns: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

class Bench {
  private readonly native = Native.get();
  private readonly floors: BpfObject;
  private readonly balancer: BpfObject;
  private readonly restore: BpfObject;
  private readonly flowtable: BpfObject;
  readonly maps: BalancerMaps;

  constructor() {
    this.floors = BpfObject.open(bpfObjectPath("floors"));
    this.floors.load();
    this.balancer = BpfObject.open(bpfObjectPath("balancer"), { maxEntries: { lb_flows: 2 * MANY_FLOWS } });
    this.balancer.load();
    this.restore = BpfObject.open(bpfObjectPath("restore"));
    this.restore.load();
    this.flowtable = BpfObject.open(bpfObjectPath("flowtable"));
    this.flowtable.load();
    this.maps = BalancerMaps.fromObject(this.balancer);
    installScenario(this.maps, VIPS);
    // floor_lookup/floor_encap's one service: 198.18.1.1:80/tcp -> 198.18.0.11.
    const services = LibbpfMap.fromFd(this.floors.mapFd("floor_services"), "floor_services");
    const key = new Uint8Array(8);
    key.set(parseAddress("198.18.1.1").bytes.subarray(0, 4), 0);
    new DataView(key.buffer).setUint16(4, 80);
    key[6] = 6;
    services.update(key, parseAddress("198.18.0.11").bytes.slice(0, 4));
  }

  prog(obj: "floors" | "balancer" | "restore" | "flowtable", name: string): number {
    const objects = {
      floors: this.floors,
      balancer: this.balancer,
      restore: this.restore,
      flowtable: this.flowtable,
    };
    return objects[obj].progFd(name);
  }

  /** Average ns per run of prog over `frame`, repeat times in the kernel. */
  direct(progFd: number, frame: Uint8Array): number {
    return this.native.progTestRun(progFd, frame, { repeat: REPEAT }).durationNs;
  }

  /** Sets what the restore wrapper writes back and which program it tail-calls. */
  arm(targetFd: number, frame: Uint8Array, flows = 0): number {
    if (frame.length > FRAME_MAX) throw new Error(`bench frame of ${frame.length} bytes > ${FRAME_MAX}`);
    const input = new Uint8Array(16 + FRAME_MAX);
    const v = new DataView(input.buffer);
    v.setUint32(0, frame.length, true);
    v.setUint32(4, flows, true);
    v.setUint32(8, V4_SPORT_OFFSET, true);
    v.setUint32(12, V4_SADDR_OFFSET, true);
    input.set(frame, 16);
    LibbpfMap.fromFd(this.restore.mapFd("bench_input"), "bench_input").update(encodeU32Key(0), input);
    const target = LibbpfMap.fromFd(this.restore.mapFd("bench_target"), "bench_target");
    const fd = new Uint8Array(4);
    new DataView(fd.buffer).setUint32(0, targetFd, true);
    target.update(encodeU32Key(0), fd);
    return this.prog("restore", "bench_restore");
  }

  /** Fills a flow map (lb_flows by default) with MANY_FLOWS flows in the wrapper's numbering. */
  fillFlows(flows = this.maps.maps.flows): void {
    const chunk = 65536;
    const keys = new Uint8Array(chunk * flows.keySize);
    const values = new Uint8Array(chunk * flows.valueSize);
    const dst = parseAddress("198.18.1.1").bytes;
    for (let base = 0; base < MANY_FLOWS; base += chunk) {
      for (let j = 0; j < chunk; j++) {
        const i = base + j;
        const src = parseAddress(`198.18.0.${i >>> 16}`).bytes;
        keys.set(
          encodeFlowKey({ src, dst, sport: i & 0xffff, dport: 80, family: 2, proto: 6 }),
          j * flows.keySize,
        );
        values.set(encodeFlow({ backend: i % 3, hash: i }), j * flows.valueSize);
      }
      flows.updateBatch(keys, values, chunk);
    }
  }

  flowTableMap(name: string): LibbpfMap {
    return LibbpfMap.fromFd(this.flowtable.mapFd(name), name);
  }

  close(): void {
    this.flowtable.close();
    this.restore.close();
    this.balancer.close();
    this.floors.close();
  }
}

/** Runs every figure ROUNDS times, interleaved so drift hits all alike; reports medians. */
export function runXdpBench(log: (line: string) => void): XdpFigures {
  const b = new Bench();
  try {
    const synV4 = tcpV4("198.18.1.1", TcpFlag.SYN);
    // New flows come from 198.19/16, outside the prefilled 1M, so every SYN inserts a new key.
    const newSynV4 = buildFrame({
      l3: { family: 4, src: "198.19.0.2", dst: "198.18.1.1" },
      l4: { kind: "tcp", sport: 40000, dport: 80, flags: TcpFlag.SYN, payload: new Uint8Array(64) },
    });
    const ackV4 = tcpV4("198.18.1.1", TcpFlag.ACK);
    const ackV6 = tcpV6(TcpFlag.ACK);
    const nonVip = tcpV4("198.18.1.200", TcpFlag.ACK);
    const pass = b.prog("floors", "floor_pass");
    const lookup = b.prog("floors", "floor_lookup");
    const encap = b.prog("floors", "floor_encap");
    const lb = b.prog("balancer", "lb_balancer");

    // Put the established flows in the table once (an ACK miss inserts its flow).
    Native.get().progTestRun(lb, ackV4);
    Native.get().progTestRun(lb, ackV6);
    log("bench: filling lb_flows with 1M flows");
    b.fillFlows();
    b.fillFlows(b.flowTableMap("ft_lru"));
    const ft = (name: string): number => b.prog("flowtable", name);

    const samples: Record<string, number[]> = {};
    const add = (key: string, value: number): void => {
      (samples[key] ??= []).push(value);
    };
    for (let round = 0; round < ROUNDS; round++) {
      add("floor_pass", b.direct(pass, synV4));
      add("floor_lookup", b.direct(lookup, synV4));
      add("nonvip", b.direct(lb, nonVip));
      add("wrap_pass", b.direct(b.arm(pass, ackV4), ackV4));
      add("wrap_encap", b.direct(b.arm(encap, ackV4), ackV4));
      add("wrap_est_v4", b.direct(b.arm(lb, ackV4), ackV4));
      add("wrap_pass_v6", b.direct(b.arm(pass, ackV6), ackV6));
      add("wrap_est_v6", b.direct(b.arm(lb, ackV6), ackV6));
      add("wrap_pass_flows", b.direct(b.arm(pass, synV4, MANY_FLOWS), synV4));
      add("wrap_new_flow", b.direct(b.arm(lb, newSynV4, MANY_FLOWS), newSynV4));
      add("wrap_1m", b.direct(b.arm(lb, ackV4, MANY_FLOWS), ackV4));
      for (const p of ["ft_insert_lru", "ft_insert_lru_nocommon", "ft_insert_lru_percpu", "ft_insert_hash"]) {
        add(p, b.direct(b.arm(ft(p), newSynV4, MANY_FLOWS), newSynV4));
      }
      add("ft_lookup_hot", b.direct(b.arm(ft("ft_lookup_lru"), ackV4, 1), ackV4));
      add("wrap_pass_one_flow", b.direct(b.arm(pass, ackV4, 1), ackV4));
      add("ft_lookup_1m", b.direct(b.arm(ft("ft_lookup_lru"), ackV4, MANY_FLOWS), ackV4));
    }
    const m = (key: string): number => median(samples[key] ?? []);
    const floorPass = m("floor_pass");
    // wrapper + X − (wrapper + floor_pass) + floor_pass, each wrapper baseline with the same
    // per-iteration work (frame size, flow rewriting) as its subject.
    const unwrap = (subject: string, baseline: string): number => m(subject) - m(baseline) + floorPass;
    return {
      floor_pass_ns: floorPass,
      floor_lookup_ns: m("floor_lookup"),
      floor_encap_ns: unwrap("wrap_encap", "wrap_pass"),
      nonvip_ns: m("nonvip"),
      new_flow_v4_ns: unwrap("wrap_new_flow", "wrap_pass_flows"),
      established_v4_ns: unwrap("wrap_est_v4", "wrap_pass"),
      established_v6_ns: unwrap("wrap_est_v6", "wrap_pass_v6"),
      established_1m_flows_v4_ns: unwrap("wrap_1m", "wrap_pass_flows"),
      restore_wrapper_ns: m("wrap_pass") - floorPass,
      ft_insert_lru_ns: unwrap("ft_insert_lru", "wrap_pass_flows"),
      ft_insert_lru_nocommon_ns: unwrap("ft_insert_lru_nocommon", "wrap_pass_flows"),
      ft_insert_lru_percpu_ns: unwrap("ft_insert_lru_percpu", "wrap_pass_flows"),
      ft_insert_hash_ns: unwrap("ft_insert_hash", "wrap_pass_flows"),
      ft_lookup_lru_hot_ns: unwrap("ft_lookup_hot", "wrap_pass_one_flow"),
      ft_lookup_lru_1m_ns: unwrap("ft_lookup_1m", "wrap_pass_flows"),
    };
  } finally {
    b.close();
  }
}
