// Reference model of bpf/decap.bpf.c: the same decision on the same bytes, the frame the
// program leaves behind and the counters it bumps. Pure. Stages mirror the C ones: L2, outer
// IP, match (port + local address), check (lengths + inner version), strip.
import { LB_AF_INET, LB_AF_INET6 } from "../maps/abi.js";
import { XdpAction } from "./xdp-action.js";

export interface DecapState {
  /** Outer UDP destination port to decapsulate (host order); 0 = not configured. */
  encapPort: number;
  /** decapAddrKeyHex() of each local address whose encap traffic is ours. */
  localAddrs: ReadonlySet<string>;
}

/** Deltas of lb_decap_counters for one frame: rx is always 1, exactly one other is 1. */
export interface DecapCounters {
  rx: number;
  decap: number;
  pass: number;
  malformed: number;
}

export interface DecapResult {
  action: "pass" | "drop";
  xdpAction: XdpAction;
  /** The frame after the program: the input itself when passed untouched or dropped. */
  output: Uint8Array;
  counters: DecapCounters;
  /** Why, for test messages: "decap", "not-ours: …" or "malformed: …". */
  reason: string;
}

/** The lb_decap_addrs key of an address (4 or 16 bytes): struct lb_decap_addr_key, 20 bytes. */
export function decapAddrKeyBytes(addr: Uint8Array): Uint8Array {
  if (addr.length !== 4 && addr.length !== 16) {
    throw new Error(`decap: address must be 4 or 16 bytes, got ${addr.length}`);
  }
  const key = new Uint8Array(20);
  key.set(addr, 0);
  key[16] = addr.length === 4 ? LB_AF_INET : LB_AF_INET6;
  return key;
}

/** The model's form of a key: hex of the 16 address bytes followed by the family byte. */
export function decapAddrKeyHex(addr: Uint8Array): string {
  return Buffer.from(decapAddrKeyBytes(addr).subarray(0, 17)).toString("hex");
}

interface Outer {
  l2Len: number; // 14 or 18
  ipLen: number; // 20 or 40
  ipPayload: number; // outer IP's stated payload length (may be < 0 for a bogus IPv4 tot_len)
  key: string; // decapAddrKeyHex of the outer destination
}

type Stage<T> = { ok: true; value: T } | { ok: false; result: DecapResult };

function be16(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
}

function verdict(frame: Uint8Array, kind: "pass" | "malformed", why: string): DecapResult {
  const malformed = kind === "malformed";
  return {
    action: malformed ? "drop" : "pass",
    xdpAction: malformed ? XdpAction.XDP_DROP : XdpAction.XDP_PASS,
    output: frame,
    counters: { rx: 1, decap: 0, pass: malformed ? 0 : 1, malformed: malformed ? 1 : 0 },
    reason: `${malformed ? "malformed" : "not-ours"}: ${why}`,
  };
}

/** Ethernet, one optional 802.1Q tag, then IPv4 (IHL 5, unfragmented) or IPv6, to UDP. */
function parseOuter(f: Uint8Array): Stage<Outer> {
  const notOurs = (why: string): Stage<Outer> => ({ ok: false, result: verdict(f, "pass", why) });
  if (f.length < 14) return notOurs("short Ethernet header");
  let l2Len = 14;
  let etherType = be16(f, 12);
  if (etherType === 0x8100) {
    if (f.length < 18) return notOurs("short VLAN tag");
    l2Len = 18;
    etherType = be16(f, 16);
  }
  if (etherType === 0x0800) {
    if (f.length < l2Len + 20 || (f[l2Len] ?? 0) >> 4 !== 4) return notOurs("no IPv4 header");
    const ihl = (f[l2Len] ?? 0) & 0xf;
    if (ihl < 5 || f.length < l2Len + ihl * 4) return notOurs("bad or truncated IHL");
    if (f[l2Len + 9] !== 17) return notOurs("not UDP");
    if (ihl !== 5) return notOurs("IPv4 options");
    if ((be16(f, l2Len + 6) & 0x3fff) !== 0) return notOurs("IPv4 fragment");
    const key = decapAddrKeyHex(f.subarray(l2Len + 16, l2Len + 20));
    return { ok: true, value: { l2Len, ipLen: 20, ipPayload: be16(f, l2Len + 2) - 20, key } };
  }
  if (etherType === 0x86dd) {
    if (f.length < l2Len + 40 || (f[l2Len] ?? 0) >> 4 !== 6) return notOurs("no IPv6 header");
    if (f[l2Len + 6] !== 17) return notOurs("next header not UDP");
    const key = decapAddrKeyHex(f.subarray(l2Len + 24, l2Len + 40));
    return { ok: true, value: { l2Len, ipLen: 40, ipPayload: be16(f, l2Len + 4), key } };
  }
  return notOurs(`ethertype 0x${etherType.toString(16).padStart(4, "0")}`);
}

/** UDP to the encap port and a local address, then the length and inner-version checks.
 * Returns the UDP length field. */
function matchAndCheck(f: Uint8Array, o: Outer, state: DecapState): Stage<number> {
  const fail = (kind: "pass" | "malformed", why: string): Stage<number> => ({
    ok: false,
    result: verdict(f, kind, why),
  });
  const udpOff = o.l2Len + o.ipLen;
  if (f.length < udpOff + 8) return fail("pass", "truncated UDP header");
  if (state.encapPort === 0) return fail("pass", "no encap port configured");
  if (be16(f, udpOff + 2) !== state.encapPort) return fail("pass", "other UDP port");
  if (!state.localAddrs.has(o.key)) return fail("pass", "other destination address");
  const udpLen = be16(f, udpOff + 4);
  if (o.ipPayload < 0 || udpOff + o.ipPayload > f.length)
    return fail("malformed", "IP length beyond the frame");
  if (udpLen < 8 || udpLen > o.ipPayload) return fail("malformed", "bad UDP length");
  const innerLen = udpLen - 8;
  if (innerLen < 1) return fail("malformed", "empty payload");
  const first = f[udpOff + 8] ?? 0;
  switch (first >> 4) {
    case 4:
      if (innerLen < 20 || (first & 0xf) < 5) return fail("malformed", "inner IPv4 too short");
      return { ok: true, value: udpLen };
    case 6:
      if (innerLen < 40) return fail("malformed", "inner IPv6 too short");
      return { ok: true, value: udpLen };
    default:
      return fail("malformed", `inner IP version ${first >> 4}`);
  }
}

/** Same MACs, same tag, the inner packet's ethertype, then exactly the UDP payload. */
function strip(f: Uint8Array, o: Outer, udpLen: number): Uint8Array {
  const innerStart = o.l2Len + o.ipLen + 8;
  const inner = f.subarray(innerStart, o.l2Len + o.ipLen + udpLen);
  const out = new Uint8Array(o.l2Len + inner.length);
  out.set(f.subarray(0, o.l2Len), 0);
  const innerType = (inner[0] ?? 0) >> 4 === 4 ? 0x0800 : 0x86dd;
  out[o.l2Len - 2] = innerType >> 8;
  out[o.l2Len - 1] = innerType & 0xff;
  out.set(inner, o.l2Len);
  return out;
}

/** What lb_decap does with frame, given the maps' contents. */
export function decapDecide(frame: Uint8Array, state: DecapState): DecapResult {
  const outer = parseOuter(frame);
  if (!outer.ok) return outer.result;
  const checked = matchAndCheck(frame, outer.value, state);
  if (!checked.ok) return checked.result;
  return {
    action: "pass",
    xdpAction: XdpAction.XDP_PASS,
    output: strip(frame, outer.value, checked.value),
    counters: { rx: 1, decap: 1, pass: 0, malformed: 0 },
    reason: "decap",
  };
}
