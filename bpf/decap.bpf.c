// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * lb_decap: XDP ingress on a backend. Strips Caplance's outer IP + UDP header (direct IP in
 * UDP, docs/wire-format.md) from frames sent to our encap port and one of our local addresses,
 * so the kernel receives the client's packet (addressed to a VIP on lo) as if it came direct.
 *
 * Return convention of the stages: enum decap_verdict.
 *   DECAP_NOT_OURS   frame untouched         -> XDP_PASS, LB_DC_PASS
 *   DECAP_MALFORMED  ours (port + address) but broken, or the strip failed
 *                                            -> XDP_DROP, LB_DC_MALFORMED
 *   DECAP_NEXT       nothing against it so far: go on to the next stage (internal)
 *   DECAP_DONE       outer headers stripped  -> XDP_PASS, LB_DC_DECAP
 * LB_DC_RX counts every frame. "Ours" is decided only once every outer header is known to
 * fit; anything not understood before that (ARP, IP options, fragments, IPv6 extension
 * headers, truncated headers, other ports or addresses) is passed untouched.
 * The reference model is src/model/decap.ts; test/bpf/decap.test.ts compares them bytewise.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_abi.h"
#include "parse.h"

/* Local addresses a backend decapsulates for: one per family and interface in practice. */
#ifndef LB_DECAP_MAX_ADDRS
#define LB_DECAP_MAX_ADDRS 256
#endif

enum decap_verdict {
	DECAP_NOT_OURS = 0,
	DECAP_MALFORMED = 1,
	DECAP_NEXT = 2,
	DECAP_DONE = 3,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_decap_settings);
} lb_decap_settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_DECAP_MAX_ADDRS);
	__type(key, struct lb_decap_addr_key);
	__type(value, __u32);
} lb_decap_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_DECAP_COUNTERS_SIZE);
	__type(key, __u32);
	__type(value, __u64);
} lb_decap_counters SEC(".maps");

/* What the strip needs to know, gathered while parsing. Lengths in bytes, host order. */
struct decap_meta {
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
	__be16 vlan_tci;     /* valid when l2_len == LB_L2_VLAN_LEN */
	__be16 inner_proto;  /* ETH_P_IP or ETH_P_IPV6 of the inner packet, network order */
	__u32 l2_len;        /* Ethernet header (+ tag): 14 or 18 */
	__u32 ip_len;        /* outer IP header: 20 or 40 */
	__s32 ip_payload;    /* outer IP's own idea of its payload length (may be < 0: bogus) */
	__u32 udp_len;       /* outer UDP length field */
};

#define LB_L2_LEN ((__u32)sizeof(struct ethhdr))
#define LB_L2_VLAN_LEN ((__u32)(sizeof(struct ethhdr) + sizeof(struct lb_vlan_hdr)))

static __always_inline void count(__u32 idx)
{
	__u64 *value = bpf_map_lookup_elem(&lb_decap_counters, &idx);

	if (value)
		*value += 1; /* per-CPU slot: no atomic needed */
}

/* L2: remember the MACs and the tag for the rebuilt header. Returns the ethertype
 * (network order) or -1. */
static __always_inline int decap_parse_l2(struct hdr_cursor *nh, void *data_end,
					  struct decap_meta *m)
{
	struct lb_vlan_hdr *vlan;
	struct ethhdr *eth;
	int proto;

	proto = parse_ethhdr(nh, data_end, &eth, &vlan);
	if (proto < 0)
		return -1;
	__builtin_memcpy(m->dmac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(m->smac, eth->h_source, ETH_ALEN);
	m->l2_len = LB_L2_LEN;
	m->vlan_tci = 0;
	if (vlan) {
		m->l2_len = LB_L2_VLAN_LEN;
		m->vlan_tci = vlan->tci;
	}
	return proto;
}

/* Outer IPv4: UDP, exactly 20 bytes of header (no options), not a fragment. */
static __always_inline int decap_parse_v4(struct hdr_cursor *nh, void *data_end,
					  struct decap_meta *m, struct lb_decap_addr_key *key)
{
	struct iphdr *iph;

	if (parse_iphdr(nh, data_end, &iph) != IPPROTO_UDP)
		return DECAP_NOT_OURS;
	if (iph->ihl != 5 || lb_ipv4_is_fragment(iph))
		return DECAP_NOT_OURS;
	key->family = LB_AF_INET;
	__builtin_memcpy(key->addr, &iph->daddr, sizeof(iph->daddr));
	m->ip_len = sizeof(*iph);
	m->ip_payload = (__s32)bpf_ntohs(iph->tot_len) - (__s32)sizeof(*iph);
	return DECAP_NEXT;
}

/* Outer IPv6: the next header must be UDP directly (no extension headers). */
static __always_inline int decap_parse_v6(struct hdr_cursor *nh, void *data_end,
					  struct decap_meta *m, struct lb_decap_addr_key *key)
{
	struct ipv6hdr *ip6h;

	if (parse_ip6hdr(nh, data_end, &ip6h) != IPPROTO_UDP)
		return DECAP_NOT_OURS;
	key->family = LB_AF_INET6;
	__builtin_memcpy(key->addr, &ip6h->daddr, sizeof(ip6h->daddr));
	m->ip_len = sizeof(*ip6h);
	m->ip_payload = bpf_ntohs(ip6h->payload_len);
	return DECAP_NEXT;
}

/* UDP to our encap port and a local address of ours. Port 0 in the settings means "not
 * configured": nothing is ours. */
static __always_inline int decap_match(struct hdr_cursor *nh, void *data_end,
				       struct decap_meta *m, struct lb_decap_addr_key *key)
{
	struct lb_decap_settings *settings;
	struct udphdr *udph;
	__u32 zero = 0;
	int len;

	len = parse_udphdr(nh, data_end, &udph);
	if (len < 0)
		return DECAP_NOT_OURS;
	settings = bpf_map_lookup_elem(&lb_decap_settings, &zero);
	if (!settings || !settings->encap_port_be || udph->dest != settings->encap_port_be)
		return DECAP_NOT_OURS;
	if (!bpf_map_lookup_elem(&lb_decap_addrs, key))
		return DECAP_NOT_OURS;
	m->udp_len = len;
	return DECAP_NEXT;
}

/*
 * Ours: the lengths must agree (UDP within the IP payload, IP payload within the frame; the
 * UDP length wins, as in the kernel's udp_rcv) and the payload must start an IPv4 packet of
 * at least 20 bytes with IHL >= 5, or an IPv6 packet of at least 40 bytes.
 */
static __always_inline int decap_check(struct hdr_cursor *nh, void *data_end,
				       struct decap_meta *m, __u32 frame_len)
{
	__u32 udp_off = m->l2_len + m->ip_len;
	__u8 *inner = nh->pos;
	__u32 inner_len;

	if (m->ip_payload < 0 || udp_off + m->ip_payload > frame_len)
		return DECAP_MALFORMED;
	if (m->udp_len < sizeof(struct udphdr) || m->udp_len > (__u32)m->ip_payload)
		return DECAP_MALFORMED;
	inner_len = m->udp_len - sizeof(struct udphdr);
	if (inner_len < 1 || (void *)(inner + 1) > data_end)
		return DECAP_MALFORMED;
	switch (inner[0] >> 4) {
	case 4:
		if (inner_len < sizeof(struct iphdr) || (inner[0] & 0xf) < 5)
			return DECAP_MALFORMED;
		m->inner_proto = bpf_htons(ETH_P_IP);
		return DECAP_NEXT;
	case 6:
		if (inner_len < sizeof(struct ipv6hdr))
			return DECAP_MALFORMED;
		m->inner_proto = bpf_htons(ETH_P_IPV6);
		return DECAP_NEXT;
	default:
		return DECAP_MALFORMED;
	}
}

/*
 * Trims trailing bytes beyond the UDP payload, moves the start past the outer IP + UDP header
 * and writes the L2 header (same MACs, same tag, inner ethertype) in front of the inner packet.
 * The tail goes first so a refusal there leaves the frame as it arrived.
 */
static __always_inline int decap_strip(struct xdp_md *ctx, struct decap_meta *m, __u32 frame_len)
{
	__u32 keep = m->l2_len + m->ip_len + m->udp_len;
	__u32 outer_len = m->ip_len + sizeof(struct udphdr);
	struct lb_vlan_hdr *vlan;
	struct ethhdr *eth;
	void *data_end;

	if (frame_len > keep && bpf_xdp_adjust_tail(ctx, -(int)(frame_len - keep)))
		return DECAP_MALFORMED;
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return DECAP_MALFORMED;
	/* Every packet pointer is void after the helpers: start over from ctx. */
	eth = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if ((void *)(eth + 1) > data_end)
		return DECAP_MALFORMED;
	__builtin_memcpy(eth->h_dest, m->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, m->smac, ETH_ALEN);
	if (m->l2_len == LB_L2_LEN) {
		eth->h_proto = m->inner_proto;
		return DECAP_DONE;
	}
	vlan = (void *)(eth + 1);
	if ((void *)(vlan + 1) > data_end)
		return DECAP_MALFORMED;
	eth->h_proto = bpf_htons(ETH_P_8021Q);
	vlan->tci = m->vlan_tci;
	vlan->encap_proto = m->inner_proto;
	return DECAP_DONE;
}

static __always_inline int decap(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = { .pos = data };
	struct lb_decap_addr_key key = {};
	struct decap_meta m = {};
	/* The verifier allows pkt_end - pkt only to loaders that may see pointers (CAP_PERFMON, as
	 * root): lbctl loads as root. It yields a plain scalar, so every length check after this
	 * is scalar arithmetic, not pointer comparisons the verifier must track. */
	__u32 frame_len = data_end - data;
	int verdict, proto;

	proto = decap_parse_l2(&nh, data_end, &m);
	if (proto == bpf_htons(ETH_P_IP))
		verdict = decap_parse_v4(&nh, data_end, &m, &key);
	else if (proto == bpf_htons(ETH_P_IPV6))
		verdict = decap_parse_v6(&nh, data_end, &m, &key);
	else
		return DECAP_NOT_OURS;
	if (verdict != DECAP_NEXT)
		return verdict;
	verdict = decap_match(&nh, data_end, &m, &key);
	if (verdict != DECAP_NEXT)
		return verdict;
	verdict = decap_check(&nh, data_end, &m, frame_len);
	if (verdict != DECAP_NEXT)
		return verdict;
	return decap_strip(ctx, &m, frame_len);
}

SEC("xdp")
int lb_decap(struct xdp_md *ctx)
{
	int verdict;

	count(LB_DC_RX);
	verdict = decap(ctx);
	if (verdict == DECAP_DONE) {
		count(LB_DC_DECAP);
		return XDP_PASS;
	}
	if (verdict == DECAP_MALFORMED) {
		count(LB_DC_MALFORMED);
		return XDP_DROP;
	}
	count(LB_DC_PASS);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
