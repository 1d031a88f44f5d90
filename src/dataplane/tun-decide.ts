// caplance-tun's decision (native/tun_decide.c) in-process through libcaplance, so tests hold
// the very C code the decapsulator runs against the decap reference model.
import type { IpAddress } from "../lib/addr.js";
import { AF_INET } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { Native } from "./native.js";
import { TUN_REASONS, type TunReason } from "./tun-decap.js";

/** LB_TUN_KEY_SIZE (native/tun_decide.h). */
export const TUN_KEY_SIZE = 17;

/** A VIP as caplance-tun keys it: the IP version, then the 16 address bytes (IPv4 first 4). */
export function tunVipKey(addr: IpAddress): Uint8Array {
  const key = new Uint8Array(TUN_KEY_SIZE);
  key[0] = addr.family === AF_INET ? 4 : 6;
  key.set(addr.bytes.subarray(0, 16), 1);
  return key;
}

/** Packs VIP keys back to back, ready for tunDecide. */
export function tunVipKeys(vips: readonly IpAddress[]): Uint8Array {
  const out = new Uint8Array(vips.length * TUN_KEY_SIZE);
  vips.forEach((v, i) => {
    out.set(tunVipKey(v), i * TUN_KEY_SIZE);
  });
  return out;
}

/** The verdict on one datagram payload; "decap" means it is written to the TUN unchanged. */
export function tunDecide(payload: Uint8Array, vipKeys: Uint8Array = new Uint8Array(0)): TunReason {
  const r = Native.get().tunDecide(payload, vipKeys);
  const reason = TUN_REASONS[r];
  if (reason === undefined) throw new LbError("LB_ERR_NATIVE", `lb_tun_decide_ffi returned ${r}`);
  return reason;
}
