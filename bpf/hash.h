/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The flow hash: Bob Jenkins' lookup3 (as in the kernel's jhash.h) over the flow's words.
 * Shared by the XDP program and the userspace NFQUEUE worker, mirrored by src/lib/jhash.ts
 * and src/model/flow-hash.ts; equality is tested. Address and port words are the wire bytes
 * loaded as little-endian __u32 (what a load does on x86 and on BPF there), so the value
 * depends on byte order of the host: every node of one fleet must share it.
 */
#ifndef LB_HASH_H
#define LB_HASH_H

#include <linux/types.h>
#include "lb_abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define LB_JHASH_INITVAL 0xdeadbeefu

static __always_inline __u32 lb_rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

#define LB_JHASH_MIX(a, b, c)                                                                      \
	{                                                                                          \
		a -= c; a ^= lb_rol32(c, 4); c += b;                                               \
		b -= a; b ^= lb_rol32(a, 6); a += c;                                               \
		c -= b; c ^= lb_rol32(b, 8); b += a;                                               \
		a -= c; a ^= lb_rol32(c, 16); c += b;                                              \
		b -= a; b ^= lb_rol32(a, 19); a += c;                                              \
		c -= b; c ^= lb_rol32(b, 4); b += a;                                               \
	}

#define LB_JHASH_FINAL(a, b, c)                                                                    \
	{                                                                                          \
		c ^= b; c -= lb_rol32(b, 14);                                                      \
		a ^= c; a -= lb_rol32(c, 11);                                                      \
		b ^= a; b -= lb_rol32(a, 25);                                                      \
		c ^= b; c -= lb_rol32(b, 16);                                                      \
		a ^= c; a -= lb_rol32(c, 4);                                                       \
		b ^= a; b -= lb_rol32(a, 14);                                                      \
		c ^= b; c -= lb_rol32(b, 24);                                                      \
	}

static __always_inline __u32 lb_jhash_3words(__u32 a, __u32 b, __u32 c, __u32 initval)
{
	initval += LB_JHASH_INITVAL + (3 << 2);
	a += initval;
	b += initval;
	c += initval;
	LB_JHASH_FINAL(a, b, c);
	return c;
}

/* lookup3 over exactly 9 words (IPv6 flow: 4 source, 4 destination, ports). Unrolled so the
 * verifier sees straight-line code. */
static __always_inline __u32 lb_jhash_9words(const __u32 *k, __u32 initval)
{
	__u32 a, b, c;

	a = b = c = LB_JHASH_INITVAL + (9 << 2) + initval;
	a += k[0]; b += k[1]; c += k[2];
	LB_JHASH_MIX(a, b, c);
	a += k[3]; b += k[4]; c += k[5];
	LB_JHASH_MIX(a, b, c);
	a += k[6]; b += k[7]; c += k[8];
	LB_JHASH_FINAL(a, b, c);
	return c;
}

/* Which words take part, per VIP hash mode: zero what the mode leaves out. */
static __always_inline __u32 lb_hash_ports_for_mode(__u32 ports, __u32 vip_flags)
{
	if (vip_flags & LB_VIP_F_HASH_SRC_IP)
		return 0;
	if (vip_flags & LB_VIP_F_HASH_SRC_IP_PORT)
		return ports & 0xffffu; /* source port: the low half of the little-endian load */
	return ports;
}

static __always_inline int lb_hash_uses_dst(__u32 vip_flags)
{
	return !(vip_flags & (LB_VIP_F_HASH_SRC_IP | LB_VIP_F_HASH_SRC_IP_PORT));
}

/* IPv4 flow hash. saddr/daddr: wire bytes loaded as __u32; ports: sport | dport << 16 in
 * wire byte order (the little-endian load of the four port bytes). */
static __always_inline __u32 lb_flow_hash_v4(__u32 saddr, __u32 daddr, __u32 ports, __u8 proto,
					     __u32 vip_flags)
{
	int all = lb_hash_uses_dst(vip_flags);

	return lb_jhash_3words(saddr, all ? daddr : 0, lb_hash_ports_for_mode(ports, vip_flags),
			       LB_HASH_SEED + (all ? proto : 0));
}

/* IPv6 flow hash over source[4], destination[4], ports. */
static __always_inline __u32 lb_flow_hash_v6(const __u32 *saddr, const __u32 *daddr, __u32 ports,
					     __u8 proto, __u32 vip_flags)
{
	int all = lb_hash_uses_dst(vip_flags);
	__u32 k[9];

	k[0] = saddr[0]; k[1] = saddr[1]; k[2] = saddr[2]; k[3] = saddr[3];
	k[4] = all ? daddr[0] : 0; k[5] = all ? daddr[1] : 0;
	k[6] = all ? daddr[2] : 0; k[7] = all ? daddr[3] : 0;
	k[8] = lb_hash_ports_for_mode(ports, vip_flags);
	return lb_jhash_9words(k, LB_HASH_SEED + (all ? proto : 0));
}

#endif /* LB_HASH_H */
