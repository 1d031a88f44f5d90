// The encapsulation of the reference model, mirroring bpf/encap.h: the frame the balancer sends
// for a parsed packet, byte for byte (DESIGN.md "Wire format").
import {
  LB_AF_INET,
  LB_ENCAP_SPORT_BASE,
  LB_ENCAP_SPORT_MASK,
  LB_ENCAP_TTL,
  LB_ENCAP_V4_OVERHEAD,
  LB_ENCAP_V6_OVERHEAD,
  LB_FLOW_LABEL_MASK,
} from "../maps/abi.js";
import type { ParsedPacket } from "./packet-parse.js";
import type { ModelBackend, ModelSettings } from "./state.js";

const IPPROTO_UDP = 17;
const IP_DF = 0x4000;

/** RFC 1071 checksum of a 20-byte header whose checksum field is zero. */
export function ipv4HeaderChecksum(header: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ((header[i] ?? 0) << 8) | (header[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function encapsulate(
  frame: Uint8Array,
  pkt: ParsedPacket,
  backend: ModelBackend,
  settings: ModelSettings,
  hash: number,
): Uint8Array {
  const v4 = backend.family === LB_AF_INET;
  const overhead = v4 ? LB_ENCAP_V4_OVERHEAD : LB_ENCAP_V6_OVERHEAD;
  const inner = frame.subarray(pkt.l2Len, pkt.l2Len + pkt.l3Len);
  const out = new Uint8Array(pkt.l2Len + overhead + pkt.l3Len);
  const view = new DataView(out.buffer);
  out.set(backend.dmac, 0);
  out.set(backend.smac, 6);
  if (pkt.l2Len === 18) out.set(frame.subarray(12, 16), 12); // the ingress VLAN tag
  view.setUint16(pkt.l2Len - 2, v4 ? 0x0800 : 0x86dd);

  const l3 = pkt.l2Len;
  const udp = l3 + (v4 ? 20 : 40);
  if (v4) {
    out[l3] = 0x45;
    out[l3 + 1] = pkt.tos;
    view.setUint16(l3 + 2, pkt.l3Len + overhead);
    view.setUint16(l3 + 6, IP_DF);
    out[l3 + 8] = LB_ENCAP_TTL;
    out[l3 + 9] = IPPROTO_UDP;
    out.set(settings.srcV4.subarray(0, 4), l3 + 12);
    out.set(backend.address.subarray(0, 4), l3 + 16);
    view.setUint16(l3 + 10, ipv4HeaderChecksum(out.subarray(l3, l3 + 20)));
  } else {
    const label = hash & LB_FLOW_LABEL_MASK;
    view.setUint32(l3, ((6 << 28) | (pkt.tos << 20) | label) >>> 0);
    view.setUint16(l3 + 4, pkt.l3Len + 8);
    out[l3 + 6] = IPPROTO_UDP;
    out[l3 + 7] = LB_ENCAP_TTL;
    out.set(settings.srcV6, l3 + 8);
    out.set(backend.address, l3 + 24);
  }
  view.setUint16(udp, LB_ENCAP_SPORT_BASE | (hash & LB_ENCAP_SPORT_MASK));
  view.setUint16(udp + 2, backend.encapPort);
  view.setUint16(udp + 4, pkt.l3Len + 8);
  out.set(inner, udp + 8);
  return out;
}
