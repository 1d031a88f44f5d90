// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Benchmark floors, defined exactly so they cannot drift (issue: data plane, section 6):
 *   floor_pass    returns XDP_PASS.
 *   floor_lookup  parses Ethernet/IPv4/TCP, one hash-map lookup keyed by (daddr, dport, proto),
 *                 returns XDP_PASS.
 *   floor_encap   floor_lookup, then bpf_xdp_adjust_head(-28), a written outer Ethernet header
 *                 (MACs swapped), IPv4 header (checksum over its 10 words) and UDP header
 *                 (checksum 0), returning XDP_TX.
 * Do not optimise these: they are the yardstick the balancer's figures are divided by.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "csum.h"

struct floor_key {
	__u32 daddr;
	__u16 dport;
	__u8 proto;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct floor_key);
	__type(value, __u32);
} floor_services SEC(".maps");

static __always_inline int floor_parse(void *data, void *data_end, struct floor_key *key)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp = (void *)(ip + 1);

	if ((void *)(tcp + 1) > data_end)
		return -1;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_TCP)
		return -1;
	key->daddr = ip->daddr;
	key->dport = tcp->dest;
	key->proto = ip->protocol;
	return 0;
}

SEC("xdp")
int floor_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int floor_lookup(struct xdp_md *ctx)
{
	struct floor_key key = {};

	if (floor_parse((void *)(long)ctx->data, (void *)(long)ctx->data_end, &key))
		return XDP_PASS;
	bpf_map_lookup_elem(&floor_services, &key);
	return XDP_PASS;
}

SEC("xdp")
int floor_encap(struct xdp_md *ctx)
{
	struct floor_key key = {};
	__u32 *backend;

	if (floor_parse((void *)(long)ctx->data, (void *)(long)ctx->data_end, &key))
		return XDP_PASS;
	backend = bpf_map_lookup_elem(&floor_services, &key);
	if (!backend)
		return XDP_PASS;
	__u32 daddr = *backend;

	if (bpf_xdp_adjust_head(ctx, -28))
		return XDP_DROP;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr *old_eth = data + 28;
	struct iphdr *outer = (void *)(eth + 1);
	struct udphdr *udp = (void *)(outer + 1);
	struct iphdr *inner = (void *)(old_eth + 1);

	if ((void *)(inner + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, old_eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, old_eth->h_dest, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0;
	outer->tot_len = bpf_htons(bpf_ntohs(inner->tot_len) + 28);
	outer->id = 0;
	outer->frag_off = bpf_htons(0x4000);
	outer->ttl = 64;
	outer->protocol = IPPROTO_UDP;
	outer->saddr = inner->daddr;
	outer->daddr = daddr;
	outer->check = lb_ipv4_csum(outer);
	udp->source = bpf_htons(0xc000);
	udp->dest = bpf_htons(6080);
	udp->len = bpf_htons(bpf_ntohs(inner->tot_len) + 8);
	udp->check = 0;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
