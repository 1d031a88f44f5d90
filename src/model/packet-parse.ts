// The parse stage of the reference model, mirroring bpf/balancer_parse.h: a frame becomes a
// parsed packet, a pass (with the counter it is counted under) or a drop (with its reason).
import {
  FlowKeyLayout,
  LB_AF_INET,
  LB_AF_INET6,
  LbCounter,
  LbDropReason,
  VipAddrKeyLayout,
} from "../maps/abi.js";
import type { BalancerView, ModelVipAddr } from "./state.js";

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_8021Q = 0x8100;
const IPV6_EXT_HEADERS = new Set([0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254]);

export interface ParsedPacket {
  /** struct lb_flow_key, encoded. */
  flowKey: Uint8Array;
  family: number;
  proto: number;
  src: Uint8Array;
  dst: Uint8Array;
  ports: Uint8Array; // sport, dport: 4 wire bytes
  dport: number;
  l2Len: number;
  l3Len: number;
  /** The destination address's lb_vip_addrs entry. */
  addr: ModelVipAddr;
  tos: number;
  tcpFlags: number;
}

export type ParseResult =
  { kind: "ok"; pkt: ParsedPacket } | { kind: "pass"; counter: number } | { kind: "drop"; reason: number };

const pass = (counter: number): ParseResult => ({ kind: "pass", counter });
const drop = (reason: number): ParseResult => ({ kind: "drop", reason });

export function vipAddrKey(dst: Uint8Array, family: number, proto: number): Uint8Array {
  const key = new Uint8Array(VipAddrKeyLayout.size);
  key.set(dst, VipAddrKeyLayout.fields.addr);
  key[VipAddrKeyLayout.fields.family] = family;
  key[VipAddrKeyLayout.fields.proto] = proto;
  return key;
}

function flowKey(pkt: Omit<ParsedPacket, "flowKey">): Uint8Array {
  const key = new Uint8Array(FlowKeyLayout.size);
  key.set(pkt.src, FlowKeyLayout.fields.src);
  key.set(pkt.dst, FlowKeyLayout.fields.dst);
  key.set(pkt.ports, FlowKeyLayout.fields.sport_be);
  key[FlowKeyLayout.fields.family] = pkt.family;
  key[FlowKeyLayout.fields.proto] = pkt.proto;
  return key;
}

function u16(frame: Uint8Array, at: number): number {
  return ((frame[at] ?? 0) << 8) | (frame[at + 1] ?? 0);
}

/** L4 ports and flags; the header must lie within both the frame and the IP packet. */
function parseL4(
  frame: Uint8Array,
  l4: number,
  l3End: number,
  base: Omit<ParsedPacket, "flowKey" | "ports" | "dport" | "tcpFlags">,
): ParseResult {
  const need = base.proto === IPPROTO_TCP ? 20 : 8;
  if (l4 + need > frame.length || l4 + need > l3End) return drop(LbDropReason.LB_DROP_TRUNCATED);
  const partial = {
    ...base,
    ports: frame.slice(l4, l4 + 4),
    dport: u16(frame, l4 + 2),
    tcpFlags: base.proto === IPPROTO_TCP ? (frame[l4 + 13] ?? 0) : 0,
  };
  return { kind: "ok", pkt: { ...partial, flowKey: flowKey(partial) } };
}

function parseIpv4(frame: Uint8Array, l3: number, view: BalancerView): ParseResult {
  if (l3 + 20 > frame.length) return pass(LbCounter.LB_C_PASS_MALFORMED);
  const first = frame[l3] ?? 0;
  if (first >> 4 !== 4) return pass(LbCounter.LB_C_PASS_MALFORMED);
  const proto = frame[l3 + 9] ?? 0;
  if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return pass(LbCounter.LB_C_PASS_NOT_VIP);
  const src = new Uint8Array(16);
  const dst = new Uint8Array(16);
  src.set(frame.subarray(l3 + 12, l3 + 16));
  dst.set(frame.subarray(l3 + 16, l3 + 20));
  const addr = view.vipAddr(vipAddrKey(dst, LB_AF_INET, proto));
  if (addr === undefined) return pass(LbCounter.LB_C_PASS_NOT_VIP);
  const ihl = first & 0x0f;
  if (ihl < 5) return drop(LbDropReason.LB_DROP_TRUNCATED);
  if (ihl !== 5) return drop(LbDropReason.LB_DROP_IP_OPTIONS);
  if (u16(frame, l3 + 6) & 0x3fff) return drop(LbDropReason.LB_DROP_FRAGMENT);
  const l3Len = u16(frame, l3 + 2);
  if (l3Len < 20 || l3 + l3Len > frame.length) return drop(LbDropReason.LB_DROP_TRUNCATED);
  const base = { family: LB_AF_INET, proto, src, dst, l2Len: l3, l3Len, addr, tos: frame[l3 + 1] ?? 0 };
  return parseL4(frame, l3 + 20, l3 + l3Len, base);
}

function parseIpv6(frame: Uint8Array, l3: number, view: BalancerView): ParseResult {
  if (l3 + 40 > frame.length) return pass(LbCounter.LB_C_PASS_MALFORMED);
  const first = frame[l3] ?? 0;
  if (first >> 4 !== 6) return pass(LbCounter.LB_C_PASS_MALFORMED);
  const src = frame.slice(l3 + 8, l3 + 24);
  const dst = frame.slice(l3 + 24, l3 + 40);
  const nexthdr = frame[l3 + 6] ?? 0;
  if (nexthdr !== IPPROTO_TCP && nexthdr !== IPPROTO_UDP) {
    const toVipAddress =
      view.vipAddr(vipAddrKey(dst, LB_AF_INET6, IPPROTO_TCP)) !== undefined ||
      view.vipAddr(vipAddrKey(dst, LB_AF_INET6, IPPROTO_UDP)) !== undefined;
    if (IPV6_EXT_HEADERS.has(nexthdr) && toVipAddress) return drop(LbDropReason.LB_DROP_IPV6_EXT);
    return pass(LbCounter.LB_C_PASS_NOT_VIP);
  }
  const addr = view.vipAddr(vipAddrKey(dst, LB_AF_INET6, nexthdr));
  if (addr === undefined) return pass(LbCounter.LB_C_PASS_NOT_VIP);
  const tos = ((first & 0x0f) << 4) | ((frame[l3 + 1] ?? 0) >> 4);
  const l3Len = 40 + u16(frame, l3 + 4);
  if (l3 + l3Len > frame.length) return drop(LbDropReason.LB_DROP_TRUNCATED);
  const base = { family: LB_AF_INET6, proto: nexthdr, src, dst, l2Len: l3, l3Len, addr, tos };
  return parseL4(frame, l3 + 40, l3 + l3Len, base);
}

export function parsePacket(frame: Uint8Array, view: BalancerView): ParseResult {
  if (frame.length < 14) return pass(LbCounter.LB_C_PASS_MALFORMED);
  let ethertype = u16(frame, 12);
  let l3 = 14;
  if (ethertype === ETH_P_8021Q) {
    if (frame.length < 18) return pass(LbCounter.LB_C_PASS_MALFORMED);
    ethertype = u16(frame, 16);
    l3 = 18;
  }
  if (ethertype === ETH_P_IP) return parseIpv4(frame, l3, view);
  if (ethertype === ETH_P_IPV6) return parseIpv6(frame, l3, view);
  return pass(LbCounter.LB_C_PASS_NOT_VIP);
}
