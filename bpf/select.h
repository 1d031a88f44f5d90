/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The balancer's selection stages: VIP lookup, flow hash, flow table / Maglev pick. Shared by
 * the XDP program and the userspace engine (native/lb_engine.c), so both make the same
 * decision: lookups go through LB_LOOKUP (see balancer_parse.h) and counting through
 * lb_count(), which stats.h defines for BPF and the engine for userspace.
 */
#ifndef LB_SELECT_H
#define LB_SELECT_H

#include "balancer_parse.h"
#include "hash.h"
#ifndef LB_USERSPACE
#include "stats.h"
#endif

/* The VIP of (address, port, protocol): the address entry's inline VIP when it is the one port
 * VIP there (the common case: one hash lookup saved), else lb_vips by port, then port 0. */
static __always_inline struct lb_vip *lb_lookup_vip(struct lb_pkt *pkt)
{
	struct lb_vip_key key = {};
	struct lb_vip *vip = NULL;
	__u32 flags = pkt->addr.flags;

	if (flags & LB_VIP_ADDR_F_INLINE) {
		if (pkt->addr.port_be == pkt->key.dport_be)
			return &pkt->addr.vip;
	}
	__builtin_memcpy(key.addr, pkt->key.dst, 16);
	key.family = pkt->key.family;
	key.proto = pkt->key.proto;
	if ((flags & LB_VIP_ADDR_F_PORTS) && !(flags & LB_VIP_ADDR_F_INLINE)) {
		key.port_be = pkt->key.dport_be;
		vip = LB_LOOKUP(lb_vips, &key);
	}
	if (!vip && (flags & LB_VIP_ADDR_F_WILDCARD)) {
		key.port_be = 0;
		vip = LB_LOOKUP(lb_vips, &key);
	}
	return vip;
}

static __always_inline __u32 lb_flow_hash(const struct lb_pkt *pkt, __u32 vip_flags)
{
	if (pkt->key.family == LB_AF_INET)
		return lb_flow_hash_v4(pkt->words[0], pkt->words[4], pkt->words[8], pkt->key.proto,
				       vip_flags);
	return lb_flow_hash_v6(&pkt->words[0], &pkt->words[4], pkt->words[8], pkt->key.proto,
			       vip_flags);
}

/* A backend a flow may still use: present, serving this VIP. */
static __always_inline struct lb_backend *lb_usable_backend(__u32 index, __u32 vip_id)
{
	struct lb_backend *backend = LB_LOOKUP(lb_backends, &index);

	if (!backend || !(backend->flags & LB_BACKEND_F_IN_USE) || backend->vip_id != vip_id)
		return NULL;
	return backend;
}

/* Maglev: slot = hash % M of the VIP's table. */
static __always_inline __u32 lb_maglev_pick(__u32 vip_id, __u32 hash, __u32 table_size)
{
	__u32 slot = hash % table_size;
	__u32 *index;
	void *table;

	table = LB_LOOKUP(lb_tables, &vip_id);
	if (!table)
		return LB_NO_BACKEND;
	index = LB_LOOKUP_INNER(table, &slot);
	return index ? *index : LB_NO_BACKEND;
}

/* Flow table first (unless a TCP SYN starts a new connection), Maglev on a miss. Fills
 * *flow with the backend index and the hash; returns the backend or NULL (no backend). */
static __always_inline struct lb_backend *lb_select(const struct lb_pkt *pkt, const struct lb_vip *vip,
						    const struct lb_settings *settings,
						    struct lb_flow *flow, int *is_new)
{
	struct lb_backend *backend;
	struct lb_flow *cached;
	int syn = pkt->key.proto == IPPROTO_TCP &&
		  (pkt->tcp_flags & (LB_TCP_FLAG_SYN | LB_TCP_FLAG_ACK)) == LB_TCP_FLAG_SYN;

	if (syn) {
		lb_count(LB_C_FLOW_SYN);
	} else {
		cached = LB_LOOKUP(lb_flows, &pkt->key);
		if (cached) {
			backend = lb_usable_backend(cached->backend, vip->vip_id);
			if (backend) {
				lb_count(LB_C_FLOW_HIT);
				*flow = *cached;
				*is_new = 0;
				return backend;
			}
			lb_count(LB_C_FLOW_STALE);
		}
	}
	lb_count(LB_C_FLOW_MISS);
	*is_new = 1;
	flow->hash = lb_flow_hash(pkt, vip->flags);
	flow->backend = lb_maglev_pick(vip->vip_id, flow->hash, settings->maglev_size);
	if (flow->backend == LB_NO_BACKEND)
		return NULL;
	return lb_usable_backend(flow->backend, vip->vip_id);
}

#endif /* LB_SELECT_H */
