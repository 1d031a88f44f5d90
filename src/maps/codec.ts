// Encode/decode of every struct in bpf/lb_abi.h, at the offsets of src/maps/abi.ts. Fields
// named *_be are network order (big-endian); the rest are host order, little-endian on every
// platform Caplance runs on (x86-64, arm64). Addresses are 16 bytes, IPv4 in the first 4.
import { isAddressFamily } from "../lib/addr.js";
import type { AddressFamily } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import {
  BackendLayout,
  DecapAddrKeyLayout,
  DecapSettingsLayout,
  FlowKeyLayout,
  FlowLayout,
  SettingsLayout,
  TrafficLayout,
  VipAddrKeyLayout,
  VipAddrLayout,
  VipKeyLayout,
  VipLayout,
} from "./abi.js";
import { perCpuValueSize } from "./map-backend.js";

const LE = true;

export interface Settings {
  /** Outer IPv4 source, 4 bytes network order. */
  readonly srcV4: Uint8Array;
  /** Outer IPv6 source, 16 bytes. */
  readonly srcV6: Uint8Array;
  /** Maglev table size M; 0 = not configured. */
  readonly maglevSize: number;
  /** LB_SETTINGS_F_*. */
  readonly flags: number;
}

export interface VipAddrKey {
  readonly address: Uint8Array;
  readonly family: AddressFamily;
  /** IPPROTO_TCP (6) or IPPROTO_UDP (17). */
  readonly proto: number;
}

export interface VipAddrValue {
  /** LB_VIP_ADDR_F_*. */
  readonly flags: number;
  /** With LB_VIP_ADDR_F_INLINE: the address's one port VIP (host-order port) and that VIP. */
  readonly port: number;
  readonly vip: Vip;
}

export interface VipKey {
  readonly address: Uint8Array;
  /** Destination port, host number (stored big-endian); 0 = all ports. */
  readonly port: number;
  readonly family: AddressFamily;
  readonly proto: number;
}

export interface Vip {
  readonly vipId: number;
  /** LB_VIP_F_*. */
  readonly flags: number;
}

export interface Backend {
  /** Outer destination, 16 bytes. */
  readonly address: Uint8Array;
  readonly family: AddressFamily;
  /** LB_BACKEND_F_*. */
  readonly flags: number;
  /** Outer UDP destination port, host number (stored big-endian). */
  readonly encapPort: number;
  readonly vipId: number;
  readonly ifindex: number;
  readonly mtu: number;
  /** Next hop's MAC, 6 bytes. */
  readonly dmac: Uint8Array;
  /** Egress interface's MAC, 6 bytes. */
  readonly smac: Uint8Array;
}

export interface FlowKey {
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  /** Ports as host numbers (stored big-endian). */
  readonly sport: number;
  readonly dport: number;
  readonly family: AddressFamily;
  readonly proto: number;
}

export interface Flow {
  /** Index into lb_backends. */
  readonly backend: number;
  readonly hash: number;
}

export interface Traffic {
  readonly packets: bigint;
  /** Received frame bytes, L2 header included. */
  readonly bytes: bigint;
}

export interface DecapSettings {
  /** Outer UDP port to decapsulate, host number (stored big-endian). */
  readonly encapPort: number;
  readonly flags: number;
}

export interface DecapAddrKey {
  readonly address: Uint8Array;
  readonly family: AddressFamily;
}

// ---- field helpers

class Writer {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(
    private readonly struct: string,
    size: number,
  ) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  private check(field: string, value: number, max: number): void {
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new LbError("LB_ERR_MAP", `${this.struct}.${field}: ${value} is not an integer in 0..${max}`);
    }
  }
  u8(field: string, offset: number, value: number): this {
    this.check(field, value, 0xff);
    this.view.setUint8(offset, value);
    return this;
  }
  u16(field: string, offset: number, value: number): this {
    this.check(field, value, 0xffff);
    this.view.setUint16(offset, value, LE);
    return this;
  }
  u16be(field: string, offset: number, value: number): this {
    this.check(field, value, 0xffff);
    this.view.setUint16(offset, value, false);
    return this;
  }
  u32(field: string, offset: number, value: number): this {
    this.check(field, value, 0xffffffff);
    this.view.setUint32(offset, value, LE);
    return this;
  }
  u64(field: string, offset: number, value: bigint): this {
    if (value < 0n || value > 0xffffffffffffffffn) {
      throw new LbError("LB_ERR_MAP", `${this.struct}.${field}: ${value} is not a __u64`);
    }
    this.view.setBigUint64(offset, value, LE);
    return this;
  }
  raw(field: string, offset: number, value: Uint8Array, size: number): this {
    if (value.length !== size) {
      throw new LbError("LB_ERR_MAP", `${this.struct}.${field}: ${value.length} bytes, expected ${size}`);
    }
    this.bytes.set(value, offset);
    return this;
  }
}

function reader(struct: string, bytes: Uint8Array, size: number): DataView {
  if (bytes.length < size) {
    throw new LbError("LB_ERR_MAP", `${struct}: ${bytes.length} bytes, expected ${size}`);
  }
  return new DataView(bytes.buffer, bytes.byteOffset, size);
}

function family(struct: string, n: number): AddressFamily {
  if (!isAddressFamily(n)) throw new LbError("LB_ERR_MAP", `${struct}.family: unknown address family ${n}`);
  return n;
}

function slice(bytes: Uint8Array, offset: number, size: number): Uint8Array {
  return bytes.slice(offset, offset + size);
}

// ---- lb_settings

export function encodeSettings(s: Settings): Uint8Array {
  const f = SettingsLayout.fields;
  return new Writer(SettingsLayout.name, SettingsLayout.size)
    .raw("src_v4", f.src_v4, s.srcV4, 4)
    .raw("src_v6", f.src_v6, s.srcV6, 16)
    .u32("maglev_size", f.maglev_size, s.maglevSize)
    .u32("flags", f.flags, s.flags).bytes;
}

export function decodeSettings(b: Uint8Array): Settings {
  const f = SettingsLayout.fields;
  const v = reader(SettingsLayout.name, b, SettingsLayout.size);
  return {
    srcV4: slice(b, f.src_v4, 4),
    srcV6: slice(b, f.src_v6, 16),
    maglevSize: v.getUint32(f.maglev_size, LE),
    flags: v.getUint32(f.flags, LE),
  };
}

// ---- lb_vip_addr_key / lb_vip_addr

export function encodeVipAddrKey(k: VipAddrKey): Uint8Array {
  const f = VipAddrKeyLayout.fields;
  return new Writer(VipAddrKeyLayout.name, VipAddrKeyLayout.size)
    .raw("addr", f.addr, k.address, 16)
    .u8("family", f.family, k.family)
    .u8("proto", f.proto, k.proto).bytes;
}

export function decodeVipAddrKey(b: Uint8Array): VipAddrKey {
  const f = VipAddrKeyLayout.fields;
  const v = reader(VipAddrKeyLayout.name, b, VipAddrKeyLayout.size);
  return {
    address: slice(b, f.addr, 16),
    family: family(VipAddrKeyLayout.name, v.getUint8(f.family)),
    proto: v.getUint8(f.proto),
  };
}

export function encodeVipAddr(a: VipAddrValue): Uint8Array {
  const f = VipAddrLayout.fields;
  const out = new Writer(VipAddrLayout.name, VipAddrLayout.size)
    .u32("flags", f.flags, a.flags)
    .u16be("port_be", f.port_be, a.port).bytes;
  out.set(encodeVip(a.vip), f.vip);
  return out;
}

export function decodeVipAddr(b: Uint8Array): VipAddrValue {
  const f = VipAddrLayout.fields;
  const v = reader(VipAddrLayout.name, b, VipAddrLayout.size);
  return {
    flags: v.getUint32(f.flags, LE),
    port: v.getUint16(f.port_be, false),
    vip: decodeVip(b.subarray(f.vip, f.vip + VipLayout.size)),
  };
}

// ---- lb_vip_key / lb_vip

export function encodeVipKey(k: VipKey): Uint8Array {
  const f = VipKeyLayout.fields;
  return new Writer(VipKeyLayout.name, VipKeyLayout.size)
    .raw("addr", f.addr, k.address, 16)
    .u16be("port_be", f.port_be, k.port)
    .u8("family", f.family, k.family)
    .u8("proto", f.proto, k.proto).bytes;
}

export function decodeVipKey(b: Uint8Array): VipKey {
  const f = VipKeyLayout.fields;
  const v = reader(VipKeyLayout.name, b, VipKeyLayout.size);
  return {
    address: slice(b, f.addr, 16),
    port: v.getUint16(f.port_be, false),
    family: family(VipKeyLayout.name, v.getUint8(f.family)),
    proto: v.getUint8(f.proto),
  };
}

export function encodeVip(vip: Vip): Uint8Array {
  const f = VipLayout.fields;
  return new Writer(VipLayout.name, VipLayout.size)
    .u32("vip_id", f.vip_id, vip.vipId)
    .u32("flags", f.flags, vip.flags).bytes;
}

export function decodeVip(b: Uint8Array): Vip {
  const f = VipLayout.fields;
  const v = reader(VipLayout.name, b, VipLayout.size);
  return { vipId: v.getUint32(f.vip_id, LE), flags: v.getUint32(f.flags, LE) };
}

// ---- lb_backend

export function encodeBackend(be: Backend): Uint8Array {
  const f = BackendLayout.fields;
  return new Writer(BackendLayout.name, BackendLayout.size)
    .raw("addr", f.addr, be.address, 16)
    .u8("family", f.family, be.family)
    .u8("flags", f.flags, be.flags)
    .u16be("encap_port_be", f.encap_port_be, be.encapPort)
    .u32("vip_id", f.vip_id, be.vipId)
    .u32("ifindex", f.ifindex, be.ifindex)
    .u16("mtu", f.mtu, be.mtu)
    .raw("dmac", f.dmac, be.dmac, 6)
    .raw("smac", f.smac, be.smac, 6).bytes;
}

/** An unused slot (family 0): what deleting a backend writes. */
export function encodeEmptyBackend(): Uint8Array {
  return new Uint8Array(BackendLayout.size);
}

/** undefined for an unused slot (family 0). */
export function decodeBackend(b: Uint8Array): Backend | undefined {
  const f = BackendLayout.fields;
  const v = reader(BackendLayout.name, b, BackendLayout.size);
  const fam = v.getUint8(f.family);
  if (fam === 0) return undefined;
  return {
    address: slice(b, f.addr, 16),
    family: family(BackendLayout.name, fam),
    flags: v.getUint8(f.flags),
    encapPort: v.getUint16(f.encap_port_be, false),
    vipId: v.getUint32(f.vip_id, LE),
    ifindex: v.getUint32(f.ifindex, LE),
    mtu: v.getUint16(f.mtu, LE),
    dmac: slice(b, f.dmac, 6),
    smac: slice(b, f.smac, 6),
  };
}

// ---- lb_flow_key / lb_flow

export function encodeFlowKey(k: FlowKey): Uint8Array {
  const f = FlowKeyLayout.fields;
  return new Writer(FlowKeyLayout.name, FlowKeyLayout.size)
    .raw("src", f.src, k.src, 16)
    .raw("dst", f.dst, k.dst, 16)
    .u16be("sport_be", f.sport_be, k.sport)
    .u16be("dport_be", f.dport_be, k.dport)
    .u8("family", f.family, k.family)
    .u8("proto", f.proto, k.proto).bytes;
}

export function decodeFlowKey(b: Uint8Array): FlowKey {
  const f = FlowKeyLayout.fields;
  const v = reader(FlowKeyLayout.name, b, FlowKeyLayout.size);
  return {
    src: slice(b, f.src, 16),
    dst: slice(b, f.dst, 16),
    sport: v.getUint16(f.sport_be, false),
    dport: v.getUint16(f.dport_be, false),
    family: family(FlowKeyLayout.name, v.getUint8(f.family)),
    proto: v.getUint8(f.proto),
  };
}

export function encodeFlow(flow: Flow): Uint8Array {
  const f = FlowLayout.fields;
  return new Writer(FlowLayout.name, FlowLayout.size)
    .u32("backend", f.backend, flow.backend)
    .u32("hash", f.hash, flow.hash).bytes;
}

export function decodeFlow(b: Uint8Array): Flow {
  const f = FlowLayout.fields;
  const v = reader(FlowLayout.name, b, FlowLayout.size);
  return { backend: v.getUint32(f.backend, LE), hash: v.getUint32(f.hash, LE) };
}

// ---- lb_traffic and __u64 counters (per-CPU)

/** One CPU's lb_traffic. */
export function encodeTraffic(t: Traffic): Uint8Array {
  const f = TrafficLayout.fields;
  return new Writer(TrafficLayout.name, TrafficLayout.size)
    .u64("packets", f.packets, t.packets)
    .u64("bytes", f.bytes, t.bytes).bytes;
}

/** Sum of a per-CPU lb_traffic value (ncpus x 16 bytes; a single value is one CPU). */
export function decodeTraffic(b: Uint8Array): Traffic {
  const f = TrafficLayout.fields;
  const stride = perCpuValueSize(TrafficLayout.size);
  if (b.length % stride !== 0) {
    throw new LbError(
      "LB_ERR_MAP",
      `${TrafficLayout.name}: ${b.length} bytes is not a multiple of ${stride}`,
    );
  }
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let packets = 0n;
  let bytes = 0n;
  for (let off = 0; off < b.length; off += stride) {
    packets += v.getBigUint64(off + f.packets, LE);
    bytes += v.getBigUint64(off + f.bytes, LE);
  }
  return { packets, bytes };
}

/** Sum of a per-CPU __u64 value (ncpus x 8 bytes). */
export function decodeCounter(b: Uint8Array): bigint {
  if (b.length % 8 !== 0)
    throw new LbError("LB_ERR_MAP", `__u64 counter: ${b.length} bytes is not a multiple of 8`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let sum = 0n;
  for (let off = 0; off < b.length; off += 8) sum += v.getBigUint64(off, LE);
  return sum;
}

// ---- decap

export function encodeDecapSettings(s: DecapSettings): Uint8Array {
  const f = DecapSettingsLayout.fields;
  return new Writer(DecapSettingsLayout.name, DecapSettingsLayout.size)
    .u16be("encap_port_be", f.encap_port_be, s.encapPort)
    .u32("flags", f.flags, s.flags).bytes;
}

export function decodeDecapSettings(b: Uint8Array): DecapSettings {
  const f = DecapSettingsLayout.fields;
  const v = reader(DecapSettingsLayout.name, b, DecapSettingsLayout.size);
  return { encapPort: v.getUint16(f.encap_port_be, false), flags: v.getUint32(f.flags, LE) };
}

export function encodeDecapAddrKey(k: DecapAddrKey): Uint8Array {
  const f = DecapAddrKeyLayout.fields;
  return new Writer(DecapAddrKeyLayout.name, DecapAddrKeyLayout.size)
    .raw("addr", f.addr, k.address, 16)
    .u8("family", f.family, k.family).bytes;
}

export function decodeDecapAddrKey(b: Uint8Array): DecapAddrKey {
  const f = DecapAddrKeyLayout.fields;
  const v = reader(DecapAddrKeyLayout.name, b, DecapAddrKeyLayout.size);
  return { address: slice(b, f.addr, 16), family: family(DecapAddrKeyLayout.name, v.getUint8(f.family)) };
}

// ---- array keys

/** A __u32 array index or vip_id key (host order). */
export function encodeU32Key(n: number): Uint8Array {
  return new Writer("__u32 key", 4).u32("index", 0, n).bytes;
}

export function decodeU32Key(b: Uint8Array): number {
  return reader("__u32 key", b, 4).getUint32(0, LE);
}
