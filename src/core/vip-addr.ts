// The lb_vip_addrs entry of one (address, protocol): the union of its VIPs' port kinds, and —
// when exactly one VIP there has a specific port — that VIP inline, which saves the data plane
// the lb_vips lookup on the common path. Pure; shared by the reconciler and the packet tests.
import { LB_VIP_ADDR_F_INLINE, LB_VIP_ADDR_F_PORTS, LB_VIP_ADDR_F_WILDCARD } from "../maps/abi.js";
import type { VipAddrValue } from "../maps/codec.js";

export interface VipOnAddress {
  readonly port: number;
  readonly vipId: number;
  /** LB_VIP_F_* of the VIP. */
  readonly flags: number;
}

/** undefined when no VIP is left on the address (the entry must go). */
export function vipAddrEntry(vips: readonly VipOnAddress[]): VipAddrValue | undefined {
  if (vips.length === 0) return undefined;
  const withPort = vips.filter((v) => v.port !== 0);
  let flags = 0;
  if (withPort.length > 0) flags |= LB_VIP_ADDR_F_PORTS;
  if (withPort.length < vips.length) flags |= LB_VIP_ADDR_F_WILDCARD;
  const only = withPort.length === 1 ? withPort[0] : undefined;
  if (!only) return { flags, port: 0, vip: { vipId: 0, flags: 0 } };
  return {
    flags: flags | LB_VIP_ADDR_F_INLINE,
    port: only.port,
    vip: { vipId: only.vipId, flags: only.flags },
  };
}
