/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The balancer's parse stage: frame -> struct lb_pkt (5-tuple, lengths, TCP flags) plus the
 * decision for packets that cannot be balanced. Return convention of lb_parse():
 *   0            parsed, addressed to a VIP address (port not yet matched)
 *   -LB_C_*      pass untouched, counted under that counter (not for a VIP / too short to tell)
 *   LB_DROP_*    to a VIP address but unusable (options, fragment, extension, truncated): drop
 *
 * Shared with userspace (native/lb_engine.c, the NFQUEUE data path): map lookups go through
 * LB_LOOKUP(map, key) / LB_LOOKUP_INNER(inner, key), which are bpf_map_lookup_elem() here and
 * the engine's table lookups when LB_USERSPACE is defined (the includer defines them then).
 */
#ifndef LB_BALANCER_PARSE_H
#define LB_BALANCER_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#ifndef LB_USERSPACE
#include "maps.h"
#define LB_LOOKUP(map, key) bpf_map_lookup_elem(&(map), (key))
#define LB_LOOKUP_INNER(inner, key) bpf_map_lookup_elem((inner), (key))
#endif

#define LB_ETH_P_8021Q 0x8100
#define LB_IP_DF 0x4000
#define LB_IP_MF_OFFSET 0x3fff
#define LB_TCP_FLAG_SYN 0x02
#define LB_TCP_FLAG_ACK 0x10

struct lb_pkt {
	/* The flow key doubles as the hash input: words 0-3 source, 4-7 destination, 8 ports
	 * (wire bytes loaded little-endian, see hash.h). The union keeps it 4-byte aligned. */
	union {
		struct lb_flow_key key;
		__u32 words[10];
	};
	__u32 l2_len;    /* Ethernet header, with the VLAN tag if any: 14 or 18 */
	__u32 l3_len;    /* IP packet length from its header */
	struct lb_vip_addr addr; /* the destination address's entry in lb_vip_addrs */
	__u8 tos;        /* IPv4 TOS / IPv6 traffic class */
	__u8 tcp_flags;  /* TCP flags byte, 0 for UDP */
	__u8 pad[2];
};

/* IPv6 next-header values that are extension headers (RFC 8200 and the IANA list). */
static __always_inline int lb_ipv6_is_ext(__u8 nexthdr)
{
	switch (nexthdr) {
	case 0: case 43: case 44: case 50: case 51: case 60: case 135: case 139: case 140:
	case 253: case 254:
		return 1;
	}
	return 0;
}

static __always_inline struct lb_vip_addr *lb_lookup_vip_addr(const struct lb_pkt *pkt, __u8 proto)
{
	struct lb_vip_addr_key key = {};

	__builtin_memcpy(key.addr, pkt->key.dst, 16);
	key.family = pkt->key.family;
	key.proto = proto;
	return LB_LOOKUP(lb_vip_addrs, &key);
}

/* Ports and flags of the L4 header at l4, which must lie within the IP packet's l3_len. */
static __always_inline int lb_parse_l4(void *l4, void *l3_end, void *data_end, struct lb_pkt *pkt)
{
	if (pkt->key.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || (void *)(tcp + 1) > l3_end)
			return LB_DROP_TRUNCATED;
		pkt->key.sport_be = tcp->source;
		pkt->key.dport_be = tcp->dest;
		pkt->tcp_flags = ((__u8 *)tcp)[13];
		return 0;
	}
	struct udphdr *udp = l4;

	if ((void *)(udp + 1) > data_end || (void *)(udp + 1) > l3_end)
		return LB_DROP_TRUNCATED;
	pkt->key.sport_be = udp->source;
	pkt->key.dport_be = udp->dest;
	return 0;
}

static __always_inline int lb_parse_ipv4(void *l3, void *data_end, struct lb_pkt *pkt)
{
	struct iphdr *ip = l3;
	struct lb_vip_addr *vip_addr;

	if ((void *)(ip + 1) > data_end)
		return -LB_C_PASS_MALFORMED;
	if (ip->version != 4)
		return -LB_C_PASS_MALFORMED;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return -LB_C_PASS_NOT_VIP;
	pkt->key.family = LB_AF_INET;
	pkt->key.proto = ip->protocol;
	pkt->words[0] = ip->saddr;
	pkt->words[4] = ip->daddr;
	vip_addr = lb_lookup_vip_addr(pkt, ip->protocol);
	if (!vip_addr)
		return -LB_C_PASS_NOT_VIP;
	pkt->addr = *vip_addr;
	if (ip->ihl < 5)
		return LB_DROP_TRUNCATED;
	if (ip->ihl != 5)
		return LB_DROP_IP_OPTIONS;
	if (ip->frag_off & bpf_htons(LB_IP_MF_OFFSET))
		return LB_DROP_FRAGMENT;
	pkt->tos = ip->tos;
	pkt->l3_len = bpf_ntohs(ip->tot_len);
	if (pkt->l3_len < sizeof(*ip) || l3 + pkt->l3_len > data_end)
		return LB_DROP_TRUNCATED;
	return lb_parse_l4(ip + 1, l3 + pkt->l3_len, data_end, pkt);
}

static __always_inline int lb_parse_ipv6(void *l3, void *data_end, struct lb_pkt *pkt)
{
	struct ipv6hdr *ip6 = l3;
	struct lb_vip_addr *vip_addr;

	if ((void *)(ip6 + 1) > data_end)
		return -LB_C_PASS_MALFORMED;
	if (ip6->version != 6)
		return -LB_C_PASS_MALFORMED;
	pkt->key.family = LB_AF_INET6;
	__builtin_memcpy(pkt->key.src, &ip6->saddr, 16);
	__builtin_memcpy(pkt->key.dst, &ip6->daddr, 16);
	if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP) {
		/* Behind an extension header the protocol is unknown: any VIP on the address counts. */
		if (lb_ipv6_is_ext(ip6->nexthdr) && (lb_lookup_vip_addr(pkt, IPPROTO_TCP) ||
						     lb_lookup_vip_addr(pkt, IPPROTO_UDP)))
			return LB_DROP_IPV6_EXT;
		return -LB_C_PASS_NOT_VIP;
	}
	pkt->key.proto = ip6->nexthdr;
	vip_addr = lb_lookup_vip_addr(pkt, ip6->nexthdr);
	if (!vip_addr)
		return -LB_C_PASS_NOT_VIP;
	pkt->addr = *vip_addr;
	pkt->tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	pkt->l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	if (l3 + pkt->l3_len > data_end)
		return LB_DROP_TRUNCATED;
	return lb_parse_l4(ip6 + 1, l3 + pkt->l3_len, data_end, pkt);
}

static __always_inline int lb_parse(void *data, void *data_end, struct lb_pkt *pkt)
{
	struct ethhdr *eth = data;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return -LB_C_PASS_MALFORMED;
	proto = eth->h_proto;
	pkt->l2_len = sizeof(*eth);
	if (proto == bpf_htons(LB_ETH_P_8021Q)) {
		/* One 802.1Q tag: TCI, then the real ethertype. */
		__be16 *inner_proto = data + sizeof(*eth) + 2;

		if ((void *)(inner_proto + 1) > data_end)
			return -LB_C_PASS_MALFORMED;
		proto = *inner_proto;
		pkt->l2_len = sizeof(*eth) + 4;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return lb_parse_ipv4(data + pkt->l2_len, data_end, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return lb_parse_ipv6(data + pkt->l2_len, data_end, pkt);
	return -LB_C_PASS_NOT_VIP;
}

#endif /* LB_BALANCER_PARSE_H */
