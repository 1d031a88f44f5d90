// The flow hash of bpf/hash.h over a flow key's bytes: addresses and ports are the wire bytes
// read as little-endian 32-bit words, as the BPF program loads them.
import { LB_AF_INET, LB_HASH_SEED, LB_VIP_F_HASH_SRC_IP, LB_VIP_F_HASH_SRC_IP_PORT } from "../maps/abi.js";
import { jhash2, jhash3Words } from "../lib/jhash.js";

export interface FlowTuple {
  family: number;
  proto: number;
  src: Uint8Array; // 16 bytes
  dst: Uint8Array; // 16 bytes
  /** The four port bytes as on the wire: source then destination. */
  ports: Uint8Array;
}

function word(bytes: Uint8Array, at: number): number {
  return (
    ((bytes[at] ?? 0) |
      ((bytes[at + 1] ?? 0) << 8) |
      ((bytes[at + 2] ?? 0) << 16) |
      ((bytes[at + 3] ?? 0) << 24)) >>>
    0
  );
}

function portsForMode(ports: number, vipFlags: number): number {
  if (vipFlags & LB_VIP_F_HASH_SRC_IP) return 0;
  if (vipFlags & LB_VIP_F_HASH_SRC_IP_PORT) return ports & 0xffff;
  return ports;
}

export function flowHash(tuple: FlowTuple, vipFlags: number): number {
  const all = (vipFlags & (LB_VIP_F_HASH_SRC_IP | LB_VIP_F_HASH_SRC_IP_PORT)) === 0;
  const seed = (LB_HASH_SEED + (all ? tuple.proto : 0)) >>> 0;
  const ports = portsForMode(word(tuple.ports, 0), vipFlags);
  if (tuple.family === LB_AF_INET) {
    return jhash3Words(word(tuple.src, 0), all ? word(tuple.dst, 0) : 0, ports, seed);
  }
  const words = [0, 4, 8, 12].map((at) => word(tuple.src, at));
  for (const at of [0, 4, 8, 12]) words.push(all ? word(tuple.dst, at) : 0);
  words.push(ports);
  return jhash2(words, seed);
}
