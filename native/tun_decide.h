/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The TUN decapsulator's decision on one encapsulated datagram's payload (the outer IP and UDP
 * headers are already gone: the kernel's UDP socket removed them). Pure: no I/O, no state but
 * the VIP set, so the caplance-tun process and the FFI tests run the same code.
 */
#ifndef LB_TUN_DECIDE_H
#define LB_TUN_DECIDE_H

#include <linux/types.h>

/* Verdicts; the drop reasons are also counter indices. Never renumbered: the names
 * (lb_tun_reason_name) are what caplance-tun prints and the TypeScript mirror checks. */
enum lb_tun_reason {
	LB_TUN_DECAP = 0,    /* a whole IPv4/IPv6 packet: written to the TUN device */
	LB_TUN_EMPTY = 1,    /* no payload */
	LB_TUN_VERSION = 2,  /* first nibble neither 4 nor 6 */
	LB_TUN_SHORT = 3,    /* shorter than its IP header (IPv4: 20 bytes and IHL x 4; IPv6: 40) */
	LB_TUN_LENGTH = 4,   /* IP total length (IPv6: 40 + payload length) != payload size */
	LB_TUN_NOT_VIP = 5,  /* inner destination is not a configured VIP (only with a VIP set) */
	LB_TUN_OVERSIZE = 6, /* datagram larger than the receive buffer (MSG_TRUNC): process only */
	LB_TUN_WRITE = 7,    /* the TUN write failed: process only */
	LB_TUN_REASONS = 8,
};

/* A VIP key: the IP version (4 or 6), then 16 address bytes (IPv4 in the first 4, the rest
 * zero), so no IPv6 address can stand for an IPv4 VIP. Sorted for bsearch. */
#define LB_TUN_KEY_SIZE 17
struct lb_tun_vipset {
	__u32 count; /* 0: every destination is accepted */
	const __u8 (*keys)[LB_TUN_KEY_SIZE];
};

/* Sorts keys in place (count keys) so a vipset can point at them. */
void lb_tun_vipset_sort(__u8 (*keys)[LB_TUN_KEY_SIZE], __u32 count);

/* The verdict for a payload of len bytes. LB_TUN_DECAP means: write pkt[0..len) unchanged. */
enum lb_tun_reason lb_tun_decide(const __u8 *pkt, __u32 len, const struct lb_tun_vipset *vips);

/* "decap", "empty", …: stable names of the reasons; NULL past the last. */
const char *lb_tun_reason_name(int reason);

#endif
