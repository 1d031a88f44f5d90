/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* Counting: per-CPU counters, so plain increments (no atomics) are exact; userspace sums. */
#ifndef LB_STATS_H
#define LB_STATS_H

#include "maps.h"

static __always_inline void lb_count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&lb_counters, &counter);

	if (value)
		*value += 1;
}

static __always_inline void lb_count_traffic(void *map, __u32 index, __u32 bytes)
{
	struct lb_traffic *traffic = bpf_map_lookup_elem(map, &index);

	if (traffic) {
		traffic->packets += 1;
		traffic->bytes += bytes;
	}
}

/* The verdict helpers: every exit of the program goes through one of these, so the per-action
 * counters always add up to the packets seen. */
static __always_inline int lb_pass(__u32 reason_counter)
{
	lb_count(reason_counter);
	lb_count(LB_C_PASS);
	return XDP_PASS;
}

static __always_inline int lb_drop(__u32 reason)
{
	lb_count(LB_C_DROP_BASE + reason);
	lb_count(LB_C_DROP);
	return XDP_DROP;
}

#endif /* LB_STATS_H */
