// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Caplance balancer: XDP ingress program on the load balancer's interface. A short pipeline:
 * parse -> VIP lookup -> flow table / Maglev pick -> next hop check -> encapsulate -> send.
 * Everything not addressed to a VIP leaves with XDP_PASS, untouched. Every exit is counted.
 */
#include "encap.h"
#include "select.h"
#include "stats.h"

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
