/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * THE kernel <-> userspace contract of Caplance: map names, key/value layouts, constants,
 * counter indices and drop reasons. No maps, no helpers. Mirrored by src/maps/abi.ts and
 * checked mechanically against the compiled layout (test/abi/). Numbers here are never
 * renumbered: add at the end and bump LB_ABI_VERSION when a layout changes.
 *
 * Byte order: fields named *_be hold network byte order (as on the wire); everything else is
 * host order. Addresses are 16 bytes; IPv4 uses the first 4 and zeroes the rest.
 */
#ifndef LB_ABI_H
#define LB_ABI_H

#include <linux/types.h>

#define LB_ABI_VERSION 2

/* Sizes. The flow table size is a default the loader may override before load. */
#ifndef LB_MAX_VIPS
#define LB_MAX_VIPS 1024
#endif
#ifndef LB_MAX_BACKENDS
#define LB_MAX_BACKENDS 65536
#endif
#ifndef LB_FLOW_TABLE_SIZE
#define LB_FLOW_TABLE_SIZE 1048576
#endif
/* Default Maglev table size M (prime). The control plane may pick another prime at load. */
#define LB_MAGLEV_SIZE_DEFAULT 65537
/* Largest M an inner table may have (the template's max_entries; BPF_F_INNER_MAP lets
 * smaller inner tables in). */
#define LB_MAGLEV_SIZE_MAX 1048573

/* Maglev slot value meaning "no backend" (empty VIP, all drained). */
#define LB_NO_BACKEND 0xffffffffu

/* Fixed seed of the flow hash: the same on every node so every node picks alike. */
#define LB_HASH_SEED 0x43a9f1d5u

/* Encapsulation. */
#define LB_ENCAP_PORT_DEFAULT 6080
#define LB_ENCAP_TTL 64
/* Outer UDP source port = LB_ENCAP_SPORT_BASE | (hash & LB_ENCAP_SPORT_MASK): 49152..65535. */
#define LB_ENCAP_SPORT_BASE 0xc000u
#define LB_ENCAP_SPORT_MASK 0x3fffu
/* IPv6 flow label = hash & LB_FLOW_LABEL_MASK. */
#define LB_FLOW_LABEL_MASK 0xfffffu
#define LB_ENCAP_V4_OVERHEAD 28 /* outer IPv4 (20) + UDP (8) */
#define LB_ENCAP_V6_OVERHEAD 48 /* outer IPv6 (40) + UDP (8) */

/* Address families as stored in keys (the AF_* values of Linux). */
#define LB_AF_INET 2
#define LB_AF_INET6 10

/* Map names (the C identifiers in balancer.bpf.c / decap.bpf.c). */
#define LB_MAP_SETTINGS "lb_settings"
#define LB_MAP_VIP_ADDRS "lb_vip_addrs"
#define LB_MAP_VIPS "lb_vips"
#define LB_MAP_TABLES "lb_tables"
#define LB_MAP_BACKENDS "lb_backends"
#define LB_MAP_FLOWS "lb_flows"
#define LB_MAP_VIP_STATS "lb_vip_stats"
#define LB_MAP_BACKEND_STATS "lb_backend_stats"
#define LB_MAP_COUNTERS "lb_counters"
#define LB_MAP_DECAP_ADDRS "lb_decap_addrs"
#define LB_MAP_DECAP_SETTINGS "lb_decap_settings"
#define LB_MAP_DECAP_COUNTERS "lb_decap_counters"

/* lb_settings[0]: balancer-wide settings written by the control plane. */
struct lb_settings {
	__u8 src_v4[4];   /* outer IPv4 source (network order bytes) */
	__u8 src_v6[16];  /* outer IPv6 source */
	__u32 maglev_size; /* M of every table; 0 = not configured, VIP traffic dropped */
	__u32 flags;      /* LB_SETTINGS_F_* */
};
#define LB_SETTINGS_F_HAVE_V4 (1u << 0) /* src_v4 is set: IPv4 backends usable */
#define LB_SETTINGS_F_HAVE_V6 (1u << 1) /* src_v6 is set: IPv6 backends usable */

/* lb_vip_addrs: every address that carries at least one VIP, per protocol. Lets non-VIP
 * traffic leave after one lookup and lets fragments/options "to a VIP" be recognised before
 * any port is known. */
struct lb_vip_addr_key {
	__u8 addr[16];
	__u8 family; /* LB_AF_* */
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad[2];
};
struct lb_vip {
	__u32 vip_id; /* index into lb_tables and lb_vip_stats, < LB_MAX_VIPS */
	__u32 flags;  /* LB_VIP_F_* */
};
struct lb_vip_addr {
	__u32 flags;     /* LB_VIP_ADDR_F_* */
	__u16 port_be;   /* with LB_VIP_ADDR_F_INLINE: the port of the address's one port VIP */
	__u16 pad;
	struct lb_vip vip; /* with LB_VIP_ADDR_F_INLINE: that VIP, so no lb_vips lookup is needed */
};
#define LB_VIP_ADDR_F_PORTS (1u << 0)    /* some VIP on this address has a specific port */
#define LB_VIP_ADDR_F_WILDCARD (1u << 1) /* a port-0 (all ports) VIP exists on this address */
#define LB_VIP_ADDR_F_INLINE (1u << 2)   /* exactly one port VIP: it is in port_be/vip */

/* lb_vips: (address, port, protocol) -> VIP. Port 0 = all ports of that address. */
struct lb_vip_key {
	__u8 addr[16];
	__u16 port_be; /* destination port, network order; 0 = all ports */
	__u8 family;
	__u8 proto;
};
/* Hash fields. Exactly one of these (none = 5-tuple). */
#define LB_VIP_F_HASH_SRC_IP (1u << 0)      /* source address only */
#define LB_VIP_F_HASH_SRC_IP_PORT (1u << 1) /* source address and source port */

/* lb_tables: array of maps, vip_id -> inner array of maglev_size __u32 backend indices
 * (LB_NO_BACKEND for an empty slot). A table change is a new inner map swapped in with one
 * update of the outer slot, so the data plane never sees a half-written table. */

/* lb_backends: backend index -> where and how to send. Indices are stable and are not reused
 * while a flow entry may still point at them. */
struct lb_backend {
	__u8 addr[16];      /* outer destination */
	__u8 family;        /* LB_AF_*; 0 = slot unused */
	__u8 flags;         /* LB_BACKEND_F_* */
	__u16 encap_port_be; /* outer UDP destination port, network order */
	__u32 vip_id;       /* the VIP this backend serves; a flow of another VIP misses */
	__u32 ifindex;      /* egress interface */
	__u16 mtu;          /* egress MTU: an outer IP packet longer than this is dropped */
	__u8 dmac[6];       /* next hop's MAC */
	__u8 smac[6];       /* egress interface's MAC */
	__u8 pad[2];
};
#define LB_BACKEND_F_IN_USE (1u << 0) /* cleared = removed: its flows are re-picked */
#define LB_BACKEND_F_NEIGH (1u << 1)  /* dmac/smac/ifindex/mtu resolved by the control plane */

/* lb_flows (shared LRU): 5-tuple -> backend. Shared across CPUs so one flow's packets keep
 * their backend whatever CPU runs them. */
struct lb_flow_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport_be;
	__u16 dport_be;
	__u8 family;
	__u8 proto;
	__u8 pad[2];
};
struct lb_flow {
	__u32 backend; /* index into lb_backends */
	__u32 hash;    /* the selection hash, reused for the outer source port / flow label */
};

/* Per-CPU traffic counters (lb_vip_stats by vip_id, lb_backend_stats by backend index). */
struct lb_traffic {
	__u64 packets;
	__u64 bytes; /* received frame length, L2 header included */
};

/* lb_counters: per-CPU __u64 array indexed by enum lb_counter. Drop reasons live at
 * LB_C_DROP_BASE + reason. */
enum lb_counter {
	LB_C_RX = 0,          /* packets seen */
	LB_C_PASS = 1,        /* XDP_PASS for any reason */
	LB_C_TX = 2,          /* encapsulated, XDP_TX */
	LB_C_REDIRECT = 3,    /* encapsulated, bpf_redirect */
	LB_C_DROP = 4,        /* XDP_DROP for any reason (see drop reasons) */
	LB_C_FLOW_HIT = 5,    /* flow table hit, backend still valid */
	LB_C_FLOW_MISS = 6,   /* Maglev pick (no entry, stale entry, or TCP SYN) */
	LB_C_FLOW_SYN = 7,    /* of the misses: TCP SYN forcing a fresh pick */
	LB_C_FLOW_STALE = 8,  /* of the misses: entry pointed at a removed backend */
	LB_C_NO_NEIGH = 9,    /* VIP packet passed: backend next hop not resolved yet */
	LB_C_PASS_NOT_VIP = 10, /* passed: not addressed to a VIP */
	LB_C_PASS_MALFORMED = 11, /* passed: too short to tell whether it is for a VIP */
	LB_C_COUNTERS_USED = 12,
};
#define LB_C_DROP_BASE 32
enum lb_drop_reason {
	LB_DROP_IP_OPTIONS = 1,  /* IPv4 IHL != 5 to a VIP address */
	LB_DROP_FRAGMENT = 2,    /* IPv4 fragment to a VIP address */
	LB_DROP_IPV6_EXT = 3,    /* IPv6 extension header (incl. fragment) to a VIP address */
	LB_DROP_TRUNCATED = 4,   /* to a VIP address but L4 header or IP length truncated */
	LB_DROP_NO_BACKEND = 5,  /* VIP has no table or the slot is empty */
	LB_DROP_TOO_BIG = 6,     /* encapsulated packet longer than the egress MTU */
	LB_DROP_ENCAP = 7,       /* bpf_xdp_adjust_head/tail refused */
	LB_DROP_NO_SOURCE = 8,   /* no outer source address for the backend's family */
	LB_DROP_NOT_CONFIGURED = 9, /* settings missing (maglev_size 0) */
	LB_DROP_REASONS_USED = 10,
};
#define LB_COUNTERS_SIZE 64

/* Decap (backend side). lb_decap_settings[0]: */
struct lb_decap_settings {
	__u16 encap_port_be; /* outer UDP destination port to decapsulate */
	__u16 pad;
	__u32 flags;
};
/* lb_decap_addrs: local addresses whose encap traffic is decapsulated. */
struct lb_decap_addr_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};
/* lb_decap_counters: per-CPU __u64 indexed by enum lb_decap_counter. */
enum lb_decap_counter {
	LB_DC_RX = 0,
	LB_DC_DECAP = 1,      /* decapsulated and passed up */
	LB_DC_PASS = 2,       /* not ours, passed untouched */
	LB_DC_MALFORMED = 3,  /* ours (encap port, local address) but bad inner: dropped */
	LB_DC_COUNTERS_USED = 4,
};
#define LB_DECAP_COUNTERS_SIZE 8

#endif /* LB_ABI_H */
