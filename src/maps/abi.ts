// The TypeScript mirror of bpf/lb_abi.h: constants under their C names and every struct's
// size and field offsets. test/abi/ checks each of them against the compiled C layout.

export const LB_ABI_VERSION = 2;

export const LB_MAX_VIPS = 1024;
export const LB_MAX_BACKENDS = 65536;
export const LB_FLOW_TABLE_SIZE = 1048576;
export const LB_MAGLEV_SIZE_DEFAULT = 65537;
export const LB_MAGLEV_SIZE_MAX = 1048573;
export const LB_NO_BACKEND = 0xffffffff;
export const LB_HASH_SEED = 0x43a9f1d5;

export const LB_ENCAP_PORT_DEFAULT = 6080;
export const LB_ENCAP_TTL = 64;
export const LB_ENCAP_SPORT_BASE = 0xc000;
export const LB_ENCAP_SPORT_MASK = 0x3fff;
export const LB_FLOW_LABEL_MASK = 0xfffff;
export const LB_ENCAP_V4_OVERHEAD = 28;
export const LB_ENCAP_V6_OVERHEAD = 48;

export const LB_AF_INET = 2;
export const LB_AF_INET6 = 10;

export const LB_MAP_SETTINGS = "lb_settings";
export const LB_MAP_VIP_ADDRS = "lb_vip_addrs";
export const LB_MAP_VIPS = "lb_vips";
export const LB_MAP_TABLES = "lb_tables";
export const LB_MAP_BACKENDS = "lb_backends";
export const LB_MAP_FLOWS = "lb_flows";
export const LB_MAP_VIP_STATS = "lb_vip_stats";
export const LB_MAP_BACKEND_STATS = "lb_backend_stats";
export const LB_MAP_COUNTERS = "lb_counters";
export const LB_MAP_DECAP_ADDRS = "lb_decap_addrs";
export const LB_MAP_DECAP_SETTINGS = "lb_decap_settings";
export const LB_MAP_DECAP_COUNTERS = "lb_decap_counters";

export const LB_SETTINGS_F_HAVE_V4 = 1 << 0;
export const LB_SETTINGS_F_HAVE_V6 = 1 << 1;
export const LB_VIP_ADDR_F_PORTS = 1 << 0;
export const LB_VIP_ADDR_F_WILDCARD = 1 << 1;
export const LB_VIP_ADDR_F_INLINE = 1 << 2;
export const LB_VIP_F_HASH_SRC_IP = 1 << 0;
export const LB_VIP_F_HASH_SRC_IP_PORT = 1 << 1;
export const LB_BACKEND_F_IN_USE = 1 << 0;
export const LB_BACKEND_F_NEIGH = 1 << 1;

/** enum lb_counter: indices into lb_counters. Stable, never renumbered. */
export const LbCounter = {
  LB_C_RX: 0,
  LB_C_PASS: 1,
  LB_C_TX: 2,
  LB_C_REDIRECT: 3,
  LB_C_DROP: 4,
  LB_C_FLOW_HIT: 5,
  LB_C_FLOW_MISS: 6,
  LB_C_FLOW_SYN: 7,
  LB_C_FLOW_STALE: 8,
  LB_C_NO_NEIGH: 9,
  LB_C_PASS_NOT_VIP: 10,
  LB_C_PASS_MALFORMED: 11,
  LB_C_COUNTERS_USED: 12,
} as const;
export const LB_C_DROP_BASE = 32;

/** enum lb_drop_reason: lb_counters[LB_C_DROP_BASE + reason]. Stable, never renumbered. */
export const LbDropReason = {
  LB_DROP_IP_OPTIONS: 1,
  LB_DROP_FRAGMENT: 2,
  LB_DROP_IPV6_EXT: 3,
  LB_DROP_TRUNCATED: 4,
  LB_DROP_NO_BACKEND: 5,
  LB_DROP_TOO_BIG: 6,
  LB_DROP_ENCAP: 7,
  LB_DROP_NO_SOURCE: 8,
  LB_DROP_NOT_CONFIGURED: 9,
  LB_DROP_REASONS_USED: 10,
} as const;
export const LB_COUNTERS_SIZE = 64;

/** Short names of drop reasons as printed by `lbctl stats` (index = reason code). */
export const DROP_REASON_NAMES: Readonly<Record<number, string>> = {
  1: "ip_options",
  2: "fragment",
  3: "ipv6_ext",
  4: "truncated",
  5: "no_backend",
  6: "too_big",
  7: "encap",
  8: "no_source",
  9: "not_configured",
};

export const LbDecapCounter = {
  LB_DC_RX: 0,
  LB_DC_DECAP: 1,
  LB_DC_PASS: 2,
  LB_DC_MALFORMED: 3,
  LB_DC_COUNTERS_USED: 4,
} as const;
export const LB_DECAP_COUNTERS_SIZE = 8;

/** A struct's size and its fields' offsets, as the C compiler lays them out. */
export interface StructLayout {
  readonly name: string;
  readonly size: number;
  readonly fields: Readonly<Record<string, number>>;
}

export const SettingsLayout = {
  name: "lb_settings",
  size: 28,
  fields: { src_v4: 0, src_v6: 4, maglev_size: 20, flags: 24 },
} as const satisfies StructLayout;

export const VipAddrKeyLayout = {
  name: "lb_vip_addr_key",
  size: 20,
  fields: { addr: 0, family: 16, proto: 17 },
} as const satisfies StructLayout;

export const VipAddrLayout = {
  name: "lb_vip_addr",
  size: 16,
  fields: { flags: 0, port_be: 4, vip: 8 },
} as const satisfies StructLayout;

export const VipKeyLayout = {
  name: "lb_vip_key",
  size: 20,
  fields: { addr: 0, port_be: 16, family: 18, proto: 19 },
} as const satisfies StructLayout;

export const VipLayout = {
  name: "lb_vip",
  size: 8,
  fields: { vip_id: 0, flags: 4 },
} as const satisfies StructLayout;

export const BackendLayout = {
  name: "lb_backend",
  size: 44,
  fields: {
    addr: 0,
    family: 16,
    flags: 17,
    encap_port_be: 18,
    vip_id: 20,
    ifindex: 24,
    mtu: 28,
    dmac: 30,
    smac: 36,
  },
} as const satisfies StructLayout;

export const FlowKeyLayout = {
  name: "lb_flow_key",
  size: 40,
  fields: { src: 0, dst: 16, sport_be: 32, dport_be: 34, family: 36, proto: 37 },
} as const satisfies StructLayout;

export const FlowLayout = {
  name: "lb_flow",
  size: 8,
  fields: { backend: 0, hash: 4 },
} as const satisfies StructLayout;

export const TrafficLayout = {
  name: "lb_traffic",
  size: 16,
  fields: { packets: 0, bytes: 8 },
} as const satisfies StructLayout;

export const DecapSettingsLayout = {
  name: "lb_decap_settings",
  size: 8,
  fields: { encap_port_be: 0, flags: 4 },
} as const satisfies StructLayout;

export const DecapAddrKeyLayout = {
  name: "lb_decap_addr_key",
  size: 20,
  fields: { addr: 0, family: 16 },
} as const satisfies StructLayout;

export const ALL_LAYOUTS: readonly StructLayout[] = [
  SettingsLayout,
  VipAddrKeyLayout,
  VipAddrLayout,
  VipKeyLayout,
  VipLayout,
  BackendLayout,
  FlowKeyLayout,
  FlowLayout,
  TrafficLayout,
  DecapSettingsLayout,
  DecapAddrKeyLayout,
];
