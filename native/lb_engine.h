/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The userspace balancer engine: the XDP program's decision (bpf/balancer_parse.h, select.h,
 * hash.h, encap.h compiled with LB_USERSPACE) over userspace tables. Used in-process through
 * the FFI shim (native/engine_shim.c, for the equivalence tests) and by the NFQUEUE worker.
 *
 * Concurrency: one writer (the control side) and any number of runners (packet threads). The
 * shared state (settings, VIP maps, backends, Maglev tables) is a set of immutable objects
 * reached through atomic pointers: a write builds a new object and swaps the pointer
 * (RCU-like); the old one is freed once every runner has passed a quiescent point (QSBR). The
 * packet path takes no lock. Flow tables and counters belong to one runner each.
 */
#ifndef LB_ENGINE_H
#define LB_ENGINE_H

#include <linux/types.h>
#include "lb_abi.h"

/* Map ids of the engine's tables (the MapBackend names of src/maps/engine-maps.ts). */
enum lb_engine_map {
	LB_EM_SETTINGS = 0,      /* key __u32 0, value struct lb_settings */
	LB_EM_VIP_ADDRS = 1,     /* struct lb_vip_addr_key -> struct lb_vip_addr */
	LB_EM_VIPS = 2,          /* struct lb_vip_key -> struct lb_vip */
	LB_EM_BACKENDS = 3,      /* __u32 index -> struct lb_backend */
	LB_EM_FLOWS = 4,         /* struct lb_flow_key -> struct lb_flow (runner 0's table) */
	LB_EM_VIP_STATS = 5,     /* __u32 vip_id -> struct lb_traffic per runner (read only) */
	LB_EM_BACKEND_STATS = 6, /* __u32 index -> struct lb_traffic per runner (read only) */
	LB_EM_COUNTERS = 7,      /* __u32 counter -> __u64 per runner (read only) */
	LB_EM_MAPS = 8,
};

/* One runner's counters, laid out like the per-CPU maps' values for one CPU. Lives in plain
 * memory (FFI engine) or in the worker's shared stats file, one after the other per runner. */
struct lb_engine_stats {
	__u64 counters[LB_COUNTERS_SIZE];
	struct lb_traffic vips[LB_MAX_VIPS];
	struct lb_traffic backends[LB_MAX_BACKENDS];
};

/* Actions: the XDP_* values, so results compare with the XDP program's directly. */
#define LB_ENGINE_ABORTED 0
#define LB_ENGINE_DROP 1
#define LB_ENGINE_PASS 2
#define LB_ENGINE_TX 3
#define LB_ENGINE_REDIRECT 4

#define LB_ENGINE_MAX_COUNTED 8

/* What one decision did, beside the output frame. 64 bytes, all __u32 (the FFI reads it). */
struct lb_engine_result {
	__u32 action;    /* LB_ENGINE_* (= XDP action) */
	__u32 out_len;   /* output frame length (the input's when not encapsulated) */
	__u32 l2_len;    /* L2 header length of the output: the outer IP starts there */
	__u32 ifindex;   /* egress interface of TX/REDIRECT */
	__u32 vip_id;    /* VIP counted, or LB_NO_BACKEND */
	__u32 backend;   /* backend counted, or LB_NO_BACKEND */
	__u32 ncounted;  /* entries of counted[] used */
	__u32 frame_len; /* bytes counted under the VIP / backend */
	__u32 counted[LB_ENGINE_MAX_COUNTED]; /* lb_counters indices incremented, in order */
};

struct lb_engine_state;
struct lb_engine_runner;

struct lb_engine_state *lb_engine_state_new(void);
void lb_engine_state_free(struct lb_engine_state *st);
/* Writer side (one thread). 0 or -errno. Maps: SETTINGS, VIP_ADDRS, VIPS, BACKENDS. */
int lb_engine_state_update(struct lb_engine_state *st, int map, const void *key, const void *value);
int lb_engine_state_delete(struct lb_engine_state *st, int map, const void *key);
/* Lookup of a writer-side map into value_out (what an update wrote; zeroes for array slots). */
int lb_engine_state_lookup(struct lb_engine_state *st, int map, const void *key, void *value_out);
/* Swaps in vip_id's Maglev table (n host-order __u32 backend indices); n 0 removes it. */
int lb_engine_state_table(struct lb_engine_state *st, __u32 vip_id, const __u32 *slots, __u32 n);
/* Copy of vip_id's table into out (cap entries); returns its length, -ENOENT without one. */
int lb_engine_state_read_table(struct lb_engine_state *st, __u32 vip_id, __u32 *out, __u32 cap);
/* Frees what no runner can still see. Called by the writer after updates and periodically. */
void lb_engine_state_reclaim(struct lb_engine_state *st);
/* Key and value sizes of a map id (for the wire protocol), or -EINVAL. */
int lb_engine_map_sizes(int map, __u32 *key_size, __u32 *value_size);

/* One runner's value of a stats map (VIP_STATS, BACKEND_STATS, COUNTERS) by __u32 key: read
 * into value_out, or overwritten (resetting a reused index). 0, -ENOENT past the end. */
int lb_engine_stats_read(const struct lb_engine_stats *stats, int map, const void *key, void *value_out);
int lb_engine_stats_write(struct lb_engine_stats *stats, int map, const void *key, const void *value);

/* A runner: registers with the state for QSBR. stats: where its counters go (zeroed by the
 * caller). flow_table_size: LRU capacity. */
struct lb_engine_runner *lb_engine_runner_new(struct lb_engine_state *st, __u32 flow_table_size,
					      struct lb_engine_stats *stats);
void lb_engine_runner_free(struct lb_engine_runner *r);
/* Quiescent point: the runner holds no pointer into the state (between batches). */
void lb_engine_runner_quiescent(struct lb_engine_runner *r);
/* Offline: about to block; the writer need not wait for it. quiescent() brings it back. */
void lb_engine_runner_offline(struct lb_engine_runner *r);

/* The balancer decision on an Ethernet frame: the XDP program's, byte for byte. out must hold
 * len + LB_ENCAP_V6_OVERHEAD bytes; it receives the output frame (a copy of the input when
 * passed or dropped). ingress_ifindex decides TX (same interface) vs REDIRECT. */
int lb_engine_decide(struct lb_engine_runner *r, const __u8 *frame, __u32 len, __u32 ingress_ifindex,
		     __u8 *out, __u32 out_cap, struct lb_engine_result *res);

/* The runner's flow table (LB_EM_FLOWS), for tests and the in-process engine only: not
 * thread-safe against the runner's own packet path. */
int lb_engine_flow_lookup(struct lb_engine_runner *r, const void *key, void *value_out);
int lb_engine_flow_update(struct lb_engine_runner *r, const void *key, const void *value);
int lb_engine_flow_delete(struct lb_engine_runner *r, const void *key);
__u32 lb_engine_flow_count(struct lb_engine_runner *r);

#endif /* LB_ENGINE_H */
