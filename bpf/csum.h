/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Internet checksum helpers (RFC 1071) usable in BPF: loop-free, no helper calls, so they
 * work on a header in the packet (after a bounds check) or on the stack alike.
 */
#ifndef LB_CSUM_H
#define LB_CSUM_H

#include <linux/types.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Folds a 32-bit one's-complement sum to 16 bits and complements it. Two folds suffice for
 * any sum of up to 65537 16-bit words. */
static __always_inline __u16 lb_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * Checksum of a 20-byte IPv4 header without options, ready to store in iph->check (the sum is
 * over words as loaded, so the result is already in the byte order of the wire). The check
 * field itself (word 5) is skipped: the caller need not zero it first. hdr must point at 20
 * readable bytes (for a packet pointer: bounds-checked against data_end), 2-byte aligned.
 */
static __always_inline __u16 lb_ipv4_csum(const void *hdr)
{
	const __u16 *w = hdr;
	__u32 sum;

	sum = (__u32)w[0] + w[1] + w[2] + w[3] + w[4] + w[6] + w[7] + w[8] + w[9];
	return lb_csum_fold(sum);
}

#endif /* LB_CSUM_H */
