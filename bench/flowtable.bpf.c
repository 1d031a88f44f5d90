// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Flow-table variants, for the numbers behind the choice of lb_flows' map type
 * (docs/benchmarks.md): the same 40-byte lb_flow_key insert into a shared LRU (lb_flows'
 * type), an LRU with per-CPU lists (BPF_F_NO_COMMON_LRU, still one shared table), a per-CPU
 * LRU (one table per CPU: loses affinity), and a plain preallocated hash.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include "lb_abi.h"

#define FT_SIZE 2097152

#define FT_MAP(name, maptype, flags)                                                               \
	struct {                                                                                   \
		__uint(type, maptype);                                                             \
		__uint(max_entries, FT_SIZE);                                                      \
		__uint(map_flags, flags);                                                          \
		__type(key, struct lb_flow_key);                                                   \
		__type(value, struct lb_flow);                                                     \
	} name SEC(".maps")

FT_MAP(ft_lru, BPF_MAP_TYPE_LRU_HASH, 0);
FT_MAP(ft_lru_nocommon, BPF_MAP_TYPE_LRU_HASH, BPF_F_NO_COMMON_LRU);
FT_MAP(ft_lru_percpu, BPF_MAP_TYPE_LRU_PERCPU_HASH, 0);
FT_MAP(ft_hash, BPF_MAP_TYPE_HASH, 0);

static __always_inline int ft_key(struct xdp_md *ctx, struct lb_flow_key *key)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct tcphdr *tcp = (void *)(ip + 1);

	if ((void *)(tcp + 1) > data_end)
		return -1;
	__builtin_memcpy(key->src, &ip->saddr, 4);
	__builtin_memcpy(key->dst, &ip->daddr, 4);
	key->sport_be = tcp->source;
	key->dport_be = tcp->dest;
	key->family = LB_AF_INET;
	key->proto = ip->protocol;
	return 0;
}

#define FT_PROG(name, map)                                                                         \
	SEC("xdp") int name(struct xdp_md *ctx)                                                    \
	{                                                                                          \
		struct lb_flow_key key = {};                                                       \
		struct lb_flow flow = { .backend = 1, .hash = 2 };                                 \
		if (ft_key(ctx, &key))                                                             \
			return XDP_ABORTED;                                                        \
		bpf_map_update_elem(&map, &key, &flow, BPF_ANY);                                   \
		return XDP_PASS;                                                                   \
	}

/* Lookup only, in the shared LRU: with 1M keys and a different one each run, this is the
 * memory-latency floor of any flow-table hit. */
SEC("xdp") int ft_lookup_lru(struct xdp_md *ctx)
{
	struct lb_flow_key key = {};

	if (ft_key(ctx, &key))
		return XDP_ABORTED;
	bpf_map_lookup_elem(&ft_lru, &key);
	return XDP_PASS;
}

FT_PROG(ft_insert_lru, ft_lru)
FT_PROG(ft_insert_lru_nocommon, ft_lru_nocommon)
FT_PROG(ft_insert_lru_percpu, ft_lru_percpu)
FT_PROG(ft_insert_hash, ft_hash)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
