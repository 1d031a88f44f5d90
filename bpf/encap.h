/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * IP-in-UDP encapsulation (DESIGN.md "Wire format"): grow the head by the outer IP + UDP
 * headers, rewrite the L2 header in front (next hop's MAC, VLAN tag kept), fill outer IP and
 * UDP. The inner packet is not touched. Returns 0, or LB_DROP_ENCAP when the kernel refuses
 * to move the head or the tail. lb_l2_len, lb_write_l2 and lb_outer_v4/v6 (the header bytes)
 * are shared with the userspace engine (LB_USERSPACE); the head/tail moves are XDP's own.
 */
#ifndef LB_ENCAP_H
#define LB_ENCAP_H

#include "balancer_parse.h"
#include "csum.h"

/*
 * Verifier workaround: pkt->l2_len comes back from the stack as an unbounded scalar, and a
 * packet pointer moved by an unbounded offset cannot be range-checked ("invalid access to
 * packet", clang 14 + kernel 6.18). Masking bounds it to [0, 31] (it is 14 or 18).
 */
static __always_inline __u32 lb_l2_len(const struct lb_pkt *pkt)
{
	return pkt->l2_len & 31;
}

/* Writes the L2 header at the new start; the old one begins `overhead` bytes later. */
static __always_inline int lb_write_l2(void *data, void *data_end, const struct lb_pkt *pkt,
				       const struct lb_backend *backend, __u32 overhead,
				       __u16 ethertype_be)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return LB_DROP_ENCAP;
	__builtin_memcpy(eth->h_dest, backend->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, backend->smac, ETH_ALEN);
	if (lb_l2_len(pkt) == sizeof(*eth)) {
		eth->h_proto = ethertype_be;
		return 0;
	}
	/* VLAN: keep the ingress tag (TPID + TCI, 4 bytes at offset 12 of the old header). */
	__u8 *tag = data + 12;
	__u8 *old_tag = data + overhead + 12;

	if ((void *)(old_tag + 4) > data_end || (void *)(tag + 6) > data_end)
		return LB_DROP_ENCAP;
	__builtin_memcpy(tag, old_tag, 4);
	*(__be16 *)(tag + 4) = ethertype_be;
	return 0;
}

/* The outer IPv4 and UDP headers of DESIGN.md "Wire format" (zeroed structs in, filled out). */
static __always_inline void lb_outer_v4(const struct lb_pkt *pkt, const struct lb_backend *backend,
					const struct lb_settings *settings, __u32 hash,
					struct iphdr *outer, struct udphdr *udp)
{
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = pkt->tos;
	outer->tot_len = bpf_htons(pkt->l3_len + LB_ENCAP_V4_OVERHEAD);
	outer->frag_off = bpf_htons(LB_IP_DF);
	outer->ttl = LB_ENCAP_TTL;
	outer->protocol = IPPROTO_UDP;
	__builtin_memcpy(&outer->saddr, settings->src_v4, 4);
	__builtin_memcpy(&outer->daddr, backend->addr, 4);
	outer->check = lb_ipv4_csum(outer);

	udp->source = bpf_htons(LB_ENCAP_SPORT_BASE | (hash & LB_ENCAP_SPORT_MASK));
	udp->dest = backend->encap_port_be;
	udp->len = bpf_htons(pkt->l3_len + sizeof(*udp));
}

/* The outer IPv6 and UDP headers; flow label = the low 20 bits of the flow hash. */
static __always_inline void lb_outer_v6(const struct lb_pkt *pkt, const struct lb_backend *backend,
					const struct lb_settings *settings, __u32 hash,
					struct ipv6hdr *outer, struct udphdr *udp)
{
	__u32 label = hash & LB_FLOW_LABEL_MASK;

	outer->version = 6;
	outer->priority = pkt->tos >> 4;
	outer->flow_lbl[0] = ((pkt->tos & 0x0f) << 4) | (label >> 16);
	outer->flow_lbl[1] = (label >> 8) & 0xff;
	outer->flow_lbl[2] = label & 0xff;
	outer->payload_len = bpf_htons(pkt->l3_len + sizeof(*udp));
	outer->nexthdr = IPPROTO_UDP;
	outer->hop_limit = LB_ENCAP_TTL;
	__builtin_memcpy(&outer->saddr, settings->src_v6, 16);
	__builtin_memcpy(&outer->daddr, backend->addr, 16);

	udp->source = bpf_htons(LB_ENCAP_SPORT_BASE | (hash & LB_ENCAP_SPORT_MASK));
	udp->dest = backend->encap_port_be;
	udp->len = outer->payload_len;
}

#ifndef LB_USERSPACE
/* Drop what follows the IP packet (Ethernet padding), so the payload is exactly the client's
 * IP packet. */
static __always_inline int lb_trim_to_ip(struct xdp_md *ctx, const struct lb_pkt *pkt)
{
	int extra = (int)(ctx->data_end - ctx->data) - (int)(pkt->l2_len + pkt->l3_len);

	if (extra > 0 && bpf_xdp_adjust_tail(ctx, -extra))
		return LB_DROP_ENCAP;
	return 0;
}

/* Makes room for the outer headers and writes the new L2 header; *l3 is where the outer IP
 * header goes. Shared by both outer families. */
static __always_inline int lb_encap_push(struct xdp_md *ctx, const struct lb_pkt *pkt,
					 const struct lb_backend *backend, __u32 overhead,
					 __u16 ethertype_be, void **l3, void **data_end)
{
	void *data;

	if (lb_trim_to_ip(ctx, pkt) || bpf_xdp_adjust_head(ctx, -(int)overhead))
		return LB_DROP_ENCAP;
	data = (void *)(long)ctx->data;
	*data_end = (void *)(long)ctx->data_end;
	if (lb_write_l2(data, *data_end, pkt, backend, overhead, ethertype_be))
		return LB_DROP_ENCAP;
	*l3 = data + lb_l2_len(pkt);
	return 0;
}

static __always_inline int lb_encap_v4(struct xdp_md *ctx, const struct lb_pkt *pkt,
				       const struct lb_backend *backend,
				       const struct lb_settings *settings, __u32 hash)
{
	struct iphdr outer = {};
	struct udphdr udp = {};
	void *l3, *data_end;

	lb_outer_v4(pkt, backend, settings, hash, &outer, &udp);

	if (lb_encap_push(ctx, pkt, backend, LB_ENCAP_V4_OVERHEAD, bpf_htons(ETH_P_IP), &l3, &data_end))
		return LB_DROP_ENCAP;
	if (l3 + sizeof(outer) + sizeof(udp) > data_end)
		return LB_DROP_ENCAP;
	__builtin_memcpy(l3, &outer, sizeof(outer));
	__builtin_memcpy(l3 + sizeof(outer), &udp, sizeof(udp));
	return 0;
}

static __always_inline int lb_encap_v6(struct xdp_md *ctx, const struct lb_pkt *pkt,
				       const struct lb_backend *backend,
				       const struct lb_settings *settings, __u32 hash)
{
	struct ipv6hdr outer = {};
	struct udphdr udp = {};
	void *l3, *data_end;

	lb_outer_v6(pkt, backend, settings, hash, &outer, &udp);

	if (lb_encap_push(ctx, pkt, backend, LB_ENCAP_V6_OVERHEAD, bpf_htons(ETH_P_IPV6), &l3, &data_end))
		return LB_DROP_ENCAP;
	if (l3 + sizeof(outer) + sizeof(udp) > data_end)
		return LB_DROP_ENCAP;
	__builtin_memcpy(l3, &outer, sizeof(outer));
	__builtin_memcpy(l3 + sizeof(outer), &udp, sizeof(udp));
	return 0;
}

#endif /* !LB_USERSPACE */

#endif /* LB_ENCAP_H */
