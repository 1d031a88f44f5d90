// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Caplance balancer: XDP ingress program on the load balancer's interface. A short pipeline:
 * parse -> VIP lookup -> flow table / Maglev pick -> next hop check -> encapsulate -> send.
 * Everything not addressed to a VIP leaves with XDP_PASS, untouched. Every exit is counted.
 */
#include "encap.h"
#include "hash.h"
#include "stats.h"

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
		vip = bpf_map_lookup_elem(&lb_vips, &key);
	}
	if (!vip && (flags & LB_VIP_ADDR_F_WILDCARD)) {
		key.port_be = 0;
		vip = bpf_map_lookup_elem(&lb_vips, &key);
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
	struct lb_backend *backend = bpf_map_lookup_elem(&lb_backends, &index);

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

	table = bpf_map_lookup_elem(&lb_tables, &vip_id);
	if (!table)
		return LB_NO_BACKEND;
	index = bpf_map_lookup_elem(table, &slot);
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
		cached = bpf_map_lookup_elem(&lb_flows, &pkt->key);
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

SEC("xdp")
int lb_balancer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 frame_len = data_end - data;
	struct lb_settings *settings;
	struct lb_backend *backend;
	struct lb_pkt pkt = {};
	struct lb_flow flow = {};
	struct lb_vip *vip;
	__u32 key0 = 0, overhead;
	int ret, is_new;

	lb_count(LB_C_RX);
	ret = lb_parse(data, data_end, &pkt);
	if (ret < 0)
		return lb_pass(-ret);
	if (ret > 0)
		return lb_drop(ret);
	vip = lb_lookup_vip(&pkt);
	if (!vip)
		return lb_pass(LB_C_PASS_NOT_VIP);
	lb_count_traffic(&lb_vip_stats, vip->vip_id, frame_len);

	settings = bpf_map_lookup_elem(&lb_settings, &key0);
	if (!settings || !settings->maglev_size)
		return lb_drop(LB_DROP_NOT_CONFIGURED);
	backend = lb_select(&pkt, vip, settings, &flow, &is_new);
	if (!backend)
		return lb_drop(LB_DROP_NO_BACKEND);
	if (!(backend->flags & LB_BACKEND_F_NEIGH))
		return lb_pass(LB_C_NO_NEIGH);

	if (backend->family == LB_AF_INET) {
		if (!(settings->flags & LB_SETTINGS_F_HAVE_V4))
			return lb_drop(LB_DROP_NO_SOURCE);
		overhead = LB_ENCAP_V4_OVERHEAD;
	} else {
		if (!(settings->flags & LB_SETTINGS_F_HAVE_V6))
			return lb_drop(LB_DROP_NO_SOURCE);
		overhead = LB_ENCAP_V6_OVERHEAD;
	}
	if (backend->mtu && pkt.l3_len + overhead > backend->mtu)
		return lb_drop(LB_DROP_TOO_BIG);
	if (is_new)
		bpf_map_update_elem(&lb_flows, &pkt.key, &flow, BPF_ANY);

	/* Copy what is needed after the head moves: the backend entry stays valid, but keep the
	 * egress ifindex in a register for the verdict. */
	__u32 ifindex = backend->ifindex;

	ret = backend->family == LB_AF_INET ? lb_encap_v4(ctx, &pkt, backend, settings, flow.hash)
					    : lb_encap_v6(ctx, &pkt, backend, settings, flow.hash);
	if (ret)
		return lb_drop(ret);
	lb_count_traffic(&lb_backend_stats, flow.backend, frame_len);
	if (ifindex == ctx->ingress_ifindex) {
		lb_count(LB_C_TX);
		return XDP_TX;
	}
	lb_count(LB_C_REDIRECT);
	return bpf_redirect(ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
