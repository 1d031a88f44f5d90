// Test frames, byte by byte: Ethernet (+ one 802.1Q tag), IPv4 (options, fragments, checksum),
// IPv6 (+ extension headers), TCP / UDP / ICMP / raw payloads with correct checksums, ARP.
// Pure: no I/O. Every field a test may want wrong has an override (lengths, checksums, IHL).
import { AF_INET, AF_INET6, tryParseAddress } from "../lib/addr.js";

export const EtherType = { IPV4: 0x0800, ARP: 0x0806, VLAN: 0x8100, IPV6: 0x86dd } as const;

export const IpProto = {
  HOPOPTS: 0,
  ICMP: 1,
  IPIP: 4,
  TCP: 6,
  UDP: 17,
  IPV6: 41,
  ROUTING: 43,
  FRAGMENT: 44,
  ICMPV6: 58,
  NONE: 59,
  DSTOPTS: 60,
  EXPERIMENT: 253,
} as const;

export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** The IPv4 header's 3-bit flags field. */
export const Ipv4Flag = { DF: 0x2, MF: 0x1 } as const;

export const DEFAULT_SRC_MAC = "02:00:00:00:00:01";
export const DEFAULT_DST_MAC = "02:00:00:00:00:02";
export const BROADCAST_MAC = "ff:ff:ff:ff:ff:ff";

// ---- addresses and bytes ------------------------------------------------------------------

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** "02:00:00:00:00:01" (or with "-") → 6 bytes. */
export function macBytes(mac: string): Uint8Array {
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new Error(`packet-builder: bad MAC address "${mac}"`);
  }
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

/** Text of the given family → its bytes (4 or 16), through the project's one address parser. */
function familyBytes(addr: string, family: typeof AF_INET | typeof AF_INET6, what: string): Uint8Array {
  const parsed = tryParseAddress(addr);
  if (parsed?.family !== family) throw new Error(`packet-builder: bad ${what} address "${addr}"`);
  return parsed.bytes.slice(0, family === AF_INET ? 4 : 16);
}

/** Dotted quad → 4 bytes. */
export function ipv4Bytes(addr: string): Uint8Array {
  return familyBytes(addr, AF_INET, "IPv4");
}

/** RFC 4291 text → 16 bytes. */
export function ipv6Bytes(addr: string): Uint8Array {
  return familyBytes(addr, AF_INET6, "IPv6");
}

/** An address of either family: 4 bytes for IPv4, 16 for IPv6. */
export function ipBytes(addr: string): Uint8Array {
  return addr.includes(":") ? ipv6Bytes(addr) : ipv4Bytes(addr);
}

function u16(value: number): Uint8Array {
  return Uint8Array.of((value >> 8) & 0xff, value & 0xff);
}

function u32(value: number): Uint8Array {
  return Uint8Array.of((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
}

// ---- checksums ----------------------------------------------------------------------------

/** Unfolded one's-complement sum of big-endian 16-bit words (odd tail padded with a zero). */
export function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < bytes.length; i += 2) sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
  return sum;
}

/** RFC 1071 checksum over the concatenation of parts (each part's length must be even but
 * the last's). Returned in host order: write it big-endian. */
export function internetChecksum(...parts: readonly Uint8Array[]): number {
  let sum = 0;
  for (const p of parts) sum = onesComplementSum(p, sum);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** Checksum of an IPv4 header (any IHL), ignoring whatever its check field holds. */
export function ipv4Checksum(header: Uint8Array): number {
  const copy = Uint8Array.from(header);
  copy[10] = 0;
  copy[11] = 0;
  return internetChecksum(copy);
}

/** The pseudo-header of RFC 768 / RFC 8200 8.1 for an upper-layer checksum. */
export function pseudoHeader(src: string, dst: string, proto: number, length: number): Uint8Array {
  const s = ipBytes(src);
  const d = ipBytes(dst);
  if (s.length === 4) return concatBytes(s, d, Uint8Array.of(0, proto), u16(length));
  return concatBytes(s, d, u32(length), Uint8Array.of(0, 0, 0, proto));
}

// ---- L2 -----------------------------------------------------------------------------------

export interface EthernetSpec {
  dst?: string;
  src?: string;
  /** 802.1Q TCI: VID in the low 12 bits, PCP << 13. Absent: untagged. */
  vlan?: number;
  etherType: number;
}

/** 14 bytes, or 18 with the tag (TPID 0x8100, then the ethertype of what follows). */
export function ethernetHeader(spec: EthernetSpec): Uint8Array {
  const macs = concatBytes(macBytes(spec.dst ?? DEFAULT_DST_MAC), macBytes(spec.src ?? DEFAULT_SRC_MAC));
  if (spec.vlan === undefined) return concatBytes(macs, u16(spec.etherType));
  return concatBytes(macs, u16(EtherType.VLAN), u16(spec.vlan), u16(spec.etherType));
}

export interface ArpSpec {
  op?: 1 | 2; // 1 request (default), 2 reply
  senderMac?: string;
  senderIp: string;
  targetMac?: string; // default 00:00:00:00:00:00
  targetIp: string;
  dst?: string; // Ethernet destination, default broadcast
  src?: string; // Ethernet source, default senderMac
  vlan?: number;
}

/** An Ethernet/IPv4 ARP frame (28-byte ARP body, no padding). */
export function buildArpFrame(spec: ArpSpec): Uint8Array {
  const senderMac = spec.senderMac ?? DEFAULT_SRC_MAC;
  const eth: EthernetSpec = {
    dst: spec.dst ?? BROADCAST_MAC,
    src: spec.src ?? senderMac,
    etherType: EtherType.ARP,
  };
  if (spec.vlan !== undefined) eth.vlan = spec.vlan;
  const body = concatBytes(
    Uint8Array.of(0, 1, 0x08, 0x00, 6, 4),
    u16(spec.op ?? 1),
    macBytes(senderMac),
    ipv4Bytes(spec.senderIp),
    macBytes(spec.targetMac ?? "00:00:00:00:00:00"),
    ipv4Bytes(spec.targetIp),
  );
  return concatBytes(ethernetHeader(eth), body);
}

// ---- L3 -----------------------------------------------------------------------------------

export interface Ipv4Spec {
  family: 4;
  src: string;
  dst: string;
  /** Protocol field; default from the L4 kind (raw: IpProto.EXPERIMENT). */
  proto?: number;
  tos?: number;
  ttl?: number; // default 64
  id?: number; // default 0
  flags?: number; // Ipv4Flag bits, default 0
  fragOffset?: number; // in 8-byte units
  /** Option bytes, zero-padded (EOL) to a multiple of 4; IHL follows. */
  options?: Uint8Array;
  ihl?: number; // override (malformed headers)
  totalLength?: number; // override
  checksum?: number; // override
}

/** One IPv6 extension header. A fragment header (type 44) is 8 bytes built from fragOffset,
 * mf and id; any other type is next header, length, then data zero-padded (Pad1) to a
 * multiple of 8 (default: 6 zero bytes, the smallest such header). */
export interface Ipv6Extension {
  type: number;
  data?: Uint8Array;
  fragOffset?: number; // in 8-byte units
  mf?: boolean;
  id?: number;
}

export interface Ipv6Spec {
  family: 6;
  src: string;
  dst: string;
  /** Next header of the last header before the payload; default from the L4 kind. */
  proto?: number;
  tos?: number; // traffic class
  flowLabel?: number;
  ttl?: number; // hop limit, default 64
  extensions?: readonly Ipv6Extension[];
  payloadLength?: number; // override
}

export type L3Spec = Ipv4Spec | Ipv6Spec;

/** An IPv4 header for a payload of payloadLength bytes. */
export function ipv4Header(spec: Ipv4Spec, proto: number, payloadLength: number): Uint8Array {
  const optLen = spec.options ? Math.ceil(spec.options.length / 4) * 4 : 0;
  const h = new Uint8Array(20 + optLen);
  const view = new DataView(h.buffer);
  h[0] = 0x40 | ((spec.ihl ?? 5 + optLen / 4) & 0xf);
  h[1] = spec.tos ?? 0;
  view.setUint16(2, spec.totalLength ?? h.length + payloadLength);
  view.setUint16(4, spec.id ?? 0);
  view.setUint16(6, (((spec.flags ?? 0) & 0x7) << 13) | ((spec.fragOffset ?? 0) & 0x1fff));
  h[8] = spec.ttl ?? 64;
  h[9] = spec.proto ?? proto;
  h.set(ipv4Bytes(spec.src), 12);
  h.set(ipv4Bytes(spec.dst), 16);
  if (spec.options) h.set(spec.options, 20);
  view.setUint16(10, spec.checksum ?? ipv4Checksum(h));
  return h;
}

function ipv6Extension(ext: Ipv6Extension, next: number): Uint8Array {
  if (ext.type === IpProto.FRAGMENT) {
    const offsetFlags = (((ext.fragOffset ?? 0) & 0x1fff) << 3) | (ext.mf ? 1 : 0);
    return concatBytes(Uint8Array.of(next, 0), u16(offsetFlags), u32(ext.id ?? 0));
  }
  const data = ext.data ?? new Uint8Array(6);
  const total = Math.max(8, Math.ceil((data.length + 2) / 8) * 8);
  const h = new Uint8Array(total);
  h[0] = next;
  h[1] = total / 8 - 1;
  h.set(data, 2);
  return h;
}

/** The fixed IPv6 header followed by its extension headers; payloadLength counts what follows
 * the extension headers. */
export function ipv6Header(spec: Ipv6Spec, proto: number, payloadLength: number): Uint8Array {
  const exts = spec.extensions ?? [];
  const last = spec.proto ?? proto;
  const extBytes = exts.map((e, i) => ipv6Extension(e, exts[i + 1]?.type ?? last));
  const extLen = extBytes.reduce((n, e) => n + e.length, 0);
  const h = new Uint8Array(40);
  const view = new DataView(h.buffer);
  view.setUint32(0, ((6 << 28) | ((spec.tos ?? 0) << 20) | ((spec.flowLabel ?? 0) & 0xfffff)) >>> 0);
  view.setUint16(4, spec.payloadLength ?? extLen + payloadLength);
  h[6] = exts[0]?.type ?? last;
  h[7] = spec.ttl ?? 64;
  h.set(ipv6Bytes(spec.src), 8);
  h.set(ipv6Bytes(spec.dst), 24);
  return concatBytes(h, ...extBytes);
}

// ---- L4 -----------------------------------------------------------------------------------

export interface TcpSpec {
  kind: "tcp";
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags?: number; // TcpFlag bits, default ACK
  window?: number; // default 65535
  urgent?: number;
  options?: Uint8Array; // zero-padded to a multiple of 4
  payload?: Uint8Array;
  checksum?: number; // override
}

export interface UdpSpec {
  kind: "udp";
  sport: number;
  dport: number;
  payload?: Uint8Array;
  length?: number; // override of the length field
  checksum?: number; // override; 0 = no checksum
}

/** ICMP under IPv4, ICMPv6 under IPv6 (default type: echo request of the family). */
export interface IcmpSpec {
  kind: "icmp";
  type?: number;
  code?: number;
  id?: number;
  seq?: number;
  payload?: Uint8Array;
  checksum?: number;
}

/** Arbitrary bytes after the IP header (protocol: l3.proto, default IpProto.EXPERIMENT). */
export interface RawSpec {
  kind: "raw";
  payload: Uint8Array;
}

export type L4Spec = TcpSpec | UdpSpec | IcmpSpec | RawSpec;

/** The IP protocol number an L4 spec implies under a family. */
export function l4Proto(l4: L4Spec, family: 4 | 6): number {
  switch (l4.kind) {
    case "tcp":
      return IpProto.TCP;
    case "udp":
      return IpProto.UDP;
    case "icmp":
      return family === 4 ? IpProto.ICMP : IpProto.ICMPV6;
    case "raw":
      return IpProto.EXPERIMENT;
  }
}

function checksumInto(
  bytes: Uint8Array,
  at: number,
  override: number | undefined,
  pseudo: Uint8Array | null,
): void {
  const sum = override ?? (pseudo ? internetChecksum(pseudo, bytes) : internetChecksum(bytes));
  bytes[at] = sum >> 8;
  bytes[at + 1] = sum & 0xff;
}

/** The L4 bytes for l4 between src and dst (their family picks the pseudo-header). */
export function l4Bytes(l4: L4Spec, src: string, dst: string, family: 4 | 6): Uint8Array {
  const payload = l4.kind === "raw" ? l4.payload : (l4.payload ?? new Uint8Array(0));
  switch (l4.kind) {
    case "tcp": {
      const optLen = l4.options ? Math.ceil(l4.options.length / 4) * 4 : 0;
      const h = new Uint8Array(20 + optLen);
      const view = new DataView(h.buffer);
      view.setUint16(0, l4.sport);
      view.setUint16(2, l4.dport);
      view.setUint32(4, (l4.seq ?? 0) >>> 0);
      view.setUint32(8, (l4.ack ?? 0) >>> 0);
      h[12] = ((20 + optLen) / 4) << 4;
      h[13] = l4.flags ?? TcpFlag.ACK;
      view.setUint16(14, l4.window ?? 65535);
      view.setUint16(18, l4.urgent ?? 0);
      if (l4.options) h.set(l4.options, 20);
      const seg = concatBytes(h, payload);
      checksumInto(seg, 16, l4.checksum, pseudoHeader(src, dst, IpProto.TCP, seg.length));
      return seg;
    }
    case "udp": {
      const dgram = concatBytes(
        u16(l4.sport),
        u16(l4.dport),
        u16(l4.length ?? 8 + payload.length),
        u16(0),
        payload,
      );
      const computed = internetChecksum(pseudoHeader(src, dst, IpProto.UDP, dgram.length), dgram);
      // A computed 0 is sent as 0xffff (RFC 768): 0 means "no checksum".
      checksumInto(dgram, 6, l4.checksum ?? (computed === 0 ? 0xffff : computed), null);
      return dgram;
    }
    case "icmp": {
      const type = l4.type ?? (family === 4 ? 8 : 128);
      const msg = concatBytes(
        Uint8Array.of(type, l4.code ?? 0, 0, 0),
        u16(l4.id ?? 0),
        u16(l4.seq ?? 0),
        payload,
      );
      const pseudo = family === 6 ? pseudoHeader(src, dst, IpProto.ICMPV6, msg.length) : null;
      checksumInto(msg, 2, l4.checksum, pseudo);
      return msg;
    }
    case "raw":
      return Uint8Array.from(payload);
  }
}

// ---- whole packets ------------------------------------------------------------------------

/** An IP packet from its IP header on (what an encapsulation carries). */
export function buildIpPacket(l3: L3Spec, l4: L4Spec): Uint8Array {
  const body = l4Bytes(l4, l3.src, l3.dst, l3.family);
  const proto = l4Proto(l4, l3.family);
  const header = l3.family === 4 ? ipv4Header(l3, proto, body.length) : ipv6Header(l3, proto, body.length);
  return concatBytes(header, body);
}

export interface FrameSpec {
  dst?: string; // MAC, default DEFAULT_DST_MAC
  src?: string; // MAC, default DEFAULT_SRC_MAC
  vlan?: number; // 802.1Q TCI
  l3: L3Spec;
  l4: L4Spec;
  /** Bytes after the IP packet (not counted by any length field). */
  trailer?: Uint8Array;
  /** Zero-pad the frame to at least this many bytes (60: Ethernet's minimum without FCS). */
  padTo?: number;
}

/** Ethernet (+ tag) / IP / L4 frame, as a NIC would hand it to XDP (no FCS). */
export function buildFrame(spec: FrameSpec): Uint8Array {
  const eth: EthernetSpec = { etherType: spec.l3.family === 4 ? EtherType.IPV4 : EtherType.IPV6 };
  if (spec.dst !== undefined) eth.dst = spec.dst;
  if (spec.src !== undefined) eth.src = spec.src;
  if (spec.vlan !== undefined) eth.vlan = spec.vlan;
  const frame = concatBytes(
    ethernetHeader(eth),
    buildIpPacket(spec.l3, spec.l4),
    spec.trailer ?? new Uint8Array(0),
  );
  if (spec.padTo === undefined || frame.length >= spec.padTo) return frame;
  return concatBytes(frame, new Uint8Array(spec.padTo - frame.length));
}
