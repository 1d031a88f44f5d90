/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Bounds-checked header parsing in the xdp-tutorial "header cursor" style: a cursor points at
 * the next unparsed byte; each parse_* checks that its header fits before data_end, stores a
 * pointer to it, advances the cursor and returns the next protocol, or -1 when the header
 * does not fit or is invalid (the cursor is then left where it was). Shared by every program.
 */
#ifndef LB_PARSE_H
#define LB_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* The cursor: the first byte not yet parsed. A packet pointer, so every access through it
 * needs a comparison with data_end first (the verifier tracks the checked range). */
struct hdr_cursor {
	void *pos;
};

/* An 802.1Q tag as it follows the MAC addresses (the uapi has no such struct). */
struct lb_vlan_hdr {
	__be16 tci;	    /* PCP, DEI, VID */
	__be16 encap_proto; /* the ethertype of what follows the tag */
};

/* IPv4 frag_off bits (host order; include/net/ip.h is not uapi). */
#define LB_IP_MF 0x2000
#define LB_IP_OFFSET 0x1fff

/*
 * Ethernet header and at most one 802.1Q tag (TPID 0x8100). *vlan is NULL when untagged.
 * Returns the ethertype after the tag, in NETWORK order (compare with bpf_htons(ETH_P_IP)):
 * a second tag (QinQ) comes back as bpf_htons(ETH_P_8021Q), which callers treat as "not IP".
 */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end,
					struct ethhdr **ethhdr, struct lb_vlan_hdr **vlan)
{
	struct ethhdr *eth = nh->pos;
	struct lb_vlan_hdr *tag;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
	proto = eth->h_proto;
	*ethhdr = eth;
	*vlan = NULL;
	if (proto != bpf_htons(ETH_P_8021Q)) {
		nh->pos = eth + 1;
		return proto;
	}
	tag = (void *)(eth + 1);
	if ((void *)(tag + 1) > data_end)
		return -1;
	*vlan = tag;
	nh->pos = tag + 1;
	return tag->encap_proto;
}

/*
 * IPv4 header, options included: IHL must be >= 5 and the whole IHL * 4 bytes must fit.
 * Returns the protocol (IPPROTO_*). Callers that refuse options check (*iphdr)->ihl == 5;
 * fragments: lb_ipv4_is_fragment(). Neither tot_len nor the checksum is checked here.
 */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end, struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	int hdrsize;

	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4)
		return -1;
	hdrsize = iph->ihl * 4;
	if (hdrsize < (int)sizeof(*iph))
		return -1;
	/* Variable-length advance: checked against data_end again so the verifier knows the
	 * new cursor still lies inside the packet. */
	if (nh->pos + hdrsize > data_end)
		return -1;
	*iphdr = iph;
	nh->pos += hdrsize;
	return iph->protocol;
}

/* True for any fragment of a datagram: more-fragments set or a non-zero offset. */
static __always_inline int lb_ipv4_is_fragment(const struct iphdr *iph)
{
	return (iph->frag_off & bpf_htons(LB_IP_MF | LB_IP_OFFSET)) != 0;
}

/*
 * IPv6 fixed header (40 bytes). Returns its next header field: extension headers are not
 * walked, so a caller wanting UDP/TCP gets e.g. IPPROTO_FRAGMENT (44) and decides itself.
 */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end,
					struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = nh->pos;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	if (ip6h->version != 6)
		return -1;
	*ip6hdr = ip6h;
	nh->pos = ip6h + 1;
	return ip6h->nexthdr;
}

/*
 * UDP header (8 bytes). Returns its length field in HOST order, unvalidated: whether a length
 * below 8 or beyond the IP payload is "not ours" or "ours but broken" is the caller's call.
 */
static __always_inline int parse_udphdr(struct hdr_cursor *nh, void *data_end,
					struct udphdr **udphdr)
{
	struct udphdr *udph = nh->pos;

	if ((void *)(udph + 1) > data_end)
		return -1;
	*udphdr = udph;
	nh->pos = udph + 1;
	return bpf_ntohs(udph->len);
}

/*
 * TCP header, options included: doff must be >= 5 and doff * 4 bytes must fit. Returns the
 * header length in bytes (20..60).
 */
static __always_inline int parse_tcphdr(struct hdr_cursor *nh, void *data_end,
					struct tcphdr **tcphdr)
{
	struct tcphdr *tcph = nh->pos;
	int hdrsize;

	if ((void *)(tcph + 1) > data_end)
		return -1;
	hdrsize = tcph->doff * 4;
	if (hdrsize < (int)sizeof(*tcph))
		return -1;
	if (nh->pos + hdrsize > data_end)
		return -1;
	*tcphdr = tcph;
	nh->pos += hdrsize;
	return hdrsize;
}

#endif /* LB_PARSE_H */
