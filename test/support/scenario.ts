// A declarative balancer state for packet tests: VIPs with backends, written into any
// BalancerMaps (the kernel's and the in-memory ones alike) the way the control plane lays it out.
import { parseAddress } from "../../src/lib/addr.js";
import { vipAddrEntry, type VipOnAddress } from "../../src/core/vip-addr.js";
import { buildMaglevTable } from "../../src/maglev/maglev.js";
import {
  LB_BACKEND_F_IN_USE,
  LB_BACKEND_F_NEIGH,
  LB_SETTINGS_F_HAVE_V4,
  LB_SETTINGS_F_HAVE_V6,
  LB_VIP_F_HASH_SRC_IP,
  LB_VIP_F_HASH_SRC_IP_PORT,
} from "../../src/maps/abi.js";
import type { BalancerMaps } from "../../src/maps/balancer-maps.js";
import { macBytes } from "../../src/model/packet-builder.js";

export const MAGLEV_SIZE = 65537;
export const LB_SRC_V4 = "198.18.0.1";
export const LB_SRC_V6 = "2001:db8::1";
export const LB_MAC = "02:00:00:00:00:01";
/** ctx->ingress_ifindex under BPF_PROG_TEST_RUN without ctx_in: the loopback device. */
export const TEST_RUN_IFINDEX = 1;

export interface BackendSpec {
  index: number;
  address: string;
  port?: number;
  weight?: number;
  /** Next hop resolved (default true). */
  neigh?: boolean;
  inUse?: boolean;
  ifindex?: number;
  mtu?: number;
  mac?: string;
}

export interface VipSpec {
  vipId: number;
  proto: "tcp" | "udp";
  address: string;
  port: number;
  hash?: "5tuple" | "src-ip" | "src-ip-port";
  backends: BackendSpec[];
  /** false: the VIP has no Maglev table at all. */
  table?: boolean;
}

const PROTO = { tcp: 6, udp: 17 } as const;
const HASH_FLAGS = { "5tuple": 0, "src-ip": LB_VIP_F_HASH_SRC_IP, "src-ip-port": LB_VIP_F_HASH_SRC_IP_PORT };

function backendMac(index: number): string {
  return `02:00:00:00:01:${(index & 0xff).toString(16).padStart(2, "0")}`;
}

export function writeBackend(maps: BalancerMaps, vipId: number, b: BackendSpec): void {
  const addr = parseAddress(b.address);
  const flags = (b.inUse === false ? 0 : LB_BACKEND_F_IN_USE) | (b.neigh === false ? 0 : LB_BACKEND_F_NEIGH);
  maps.putBackend(b.index, {
    address: addr.bytes,
    family: addr.family,
    flags,
    encapPort: b.port ?? 6080,
    vipId,
    ifindex: b.ifindex ?? TEST_RUN_IFINDEX,
    mtu: b.mtu ?? 1500,
    dmac: macBytes(b.mac ?? backendMac(b.index)),
    smac: macBytes(LB_MAC),
  });
}

export function writeTable(maps: BalancerMaps, vip: VipSpec, maglevSize = MAGLEV_SIZE): void {
  const table = buildMaglevTable(
    vip.backends.map((b) => ({
      address: parseAddress(b.address).bytes,
      encapPort: b.port ?? 6080,
      weight: b.weight ?? 1,
      index: b.index,
    })),
    maglevSize,
  );
  maps.replaceTable(vip.vipId, table);
}

export function installScenario(
  maps: BalancerMaps,
  vips: readonly VipSpec[],
  maglevSize = MAGLEV_SIZE,
): void {
  maps.setSettings({
    srcV4: parseAddress(LB_SRC_V4).bytes.slice(0, 4),
    srcV6: parseAddress(LB_SRC_V6).bytes,
    maglevSize,
    flags: LB_SETTINGS_F_HAVE_V4 | LB_SETTINGS_F_HAVE_V6,
  });
  const onAddress = new Map<
    string,
    { address: Uint8Array; family: 2 | 10; proto: number; vips: VipOnAddress[] }
  >();
  for (const vip of vips) {
    const addr = parseAddress(vip.address);
    const proto = PROTO[vip.proto];
    const id = `${vip.address}/${proto}`;
    const entry = onAddress.get(id) ?? { address: addr.bytes, family: addr.family, proto, vips: [] };
    entry.vips.push({ port: vip.port, vipId: vip.vipId, flags: HASH_FLAGS[vip.hash ?? "5tuple"] });
    onAddress.set(id, entry);
    maps.putVip(
      { address: addr.bytes, port: vip.port, family: addr.family, proto },
      { vipId: vip.vipId, flags: HASH_FLAGS[vip.hash ?? "5tuple"] },
    );
    for (const b of vip.backends) writeBackend(maps, vip.vipId, b);
    if (vip.table !== false) writeTable(maps, vip, maglevSize);
  }
  for (const e of onAddress.values()) {
    const value = vipAddrEntry(e.vips);
    if (value) maps.putVipAddr({ address: e.address, family: e.family, proto: e.proto }, value);
  }
}
