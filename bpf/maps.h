/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* The balancer's maps. Layouts and names come from lb_abi.h; sizes are its defaults, which the
 * loader may override before load (bpf_map__set_max_entries). */
#ifndef LB_MAPS_H
#define LB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_settings);
} lb_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, struct lb_vip_addr_key);
	__type(value, struct lb_vip_addr);
} lb_vip_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, struct lb_vip_key);
	__type(value, struct lb_vip);
} lb_vips SEC(".maps");

/* Inner Maglev table template. BPF_F_INNER_MAP lets the control plane swap in tables of any
 * prime size M up to this template's, so M is a load-time setting and not a recompile.
 * BPF_F_MMAPABLE lets it fill a new table with one memcpy instead of a batch update of M
 * elements (~20 ms for M = 65537 here). Inner tables must carry exactly these flags. */
struct lb_table_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__uint(max_entries, LB_MAGLEV_SIZE_DEFAULT);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, __u32);
	__array(values, struct lb_table_inner);
} lb_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_backend);
} lb_backends SEC(".maps");

/* Shared LRU (not per-CPU): veth and generic XDP run a flow's packets on the sender's CPU, so
 * only a table every CPU sees keeps a flow on its backend. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
#ifdef LB_FLOWS_MAP_FLAGS
	__uint(map_flags, LB_FLOWS_MAP_FLAGS);
#endif
	__uint(max_entries, LB_FLOW_TABLE_SIZE);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_flow);
} lb_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct lb_traffic);
} lb_vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_traffic);
} lb_backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_COUNTERS_SIZE);
	__type(key, __u32);
	__type(value, __u64);
} lb_counters SEC(".maps");

#endif /* LB_MAPS_H */
