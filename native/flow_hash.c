// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/* The flow hash of bpf/hash.h compiled for userspace, exported so TypeScript can check its
 * mirror against the one C implementation (and, later, for the NFQUEUE worker). */
#include <string.h>
#include "hash.h"

#define LB_EXPORT __attribute__((visibility("default")))

/* key: a struct lb_flow_key (40 bytes, lb_abi.h); the hash goes to *out (host order). Returns 0,
 * like every shim call (ints and buffers only, for FFI). */
LB_EXPORT int lb_flow_hash(const __u8 *key, __u32 vip_flags, __u32 *out)
{
	struct lb_flow_key flow;
	__u32 src[4], dst[4], ports;

	memcpy(&flow, key, sizeof(flow));
	memcpy(src, flow.src, sizeof(src));
	memcpy(dst, flow.dst, sizeof(dst));
	ports = (__u32)flow.sport_be | ((__u32)flow.dport_be << 16);
	if (flow.family == LB_AF_INET)
		*out = lb_flow_hash_v4(src[0], dst[0], ports, flow.proto, vip_flags);
	else
		*out = lb_flow_hash_v6(src, dst, ports, flow.proto, vip_flags);
	return 0;
}
