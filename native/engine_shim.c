// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The userspace engine (lb_engine.h) in-process, for TypeScript through ffi-rs: engines are
 * small integer handles, each one state plus one runner (flow table, counters). Every call but
 * create/destroy takes a buffer (ffi-rs leaks on buffer-less calls). Returns >= 0 or -errno.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb_engine.h"
#include "shim.h"

#define LB_MAX_ENGINES 16

struct lb_ffi_engine {
	struct lb_engine_state *st;
	struct lb_engine_runner *runner;
	struct lb_engine_stats *stats;
};

static struct lb_ffi_engine engines[LB_MAX_ENGINES + 1]; /* handle 0 unused */

static struct lb_ffi_engine *get(int h)
{
	if (h <= 0 || h > LB_MAX_ENGINES || !engines[h].st)
		return NULL;
	return &engines[h];
}

LB_API int lb_eng_create(__u32 flow_table_size)
{
	for (int h = 1; h <= LB_MAX_ENGINES; h++) {
		struct lb_ffi_engine *e = &engines[h];

		if (e->st)
			continue;
		e->stats = calloc(1, sizeof(*e->stats));
		e->st = lb_engine_state_new();
		if (e->st && e->stats)
			e->runner = lb_engine_runner_new(e->st, flow_table_size, e->stats);
		if (!e->runner) {
			lb_engine_state_free(e->st);
			free(e->stats);
			memset(e, 0, sizeof(*e));
			return -ENOMEM;
		}
		/* One thread plays writer and runner: offline between decisions, so writes free
		 * what they replace at once. */
		lb_engine_runner_offline(e->runner);
		return h;
	}
	return -EMFILE;
}

LB_API int lb_eng_destroy(int h)
{
	struct lb_ffi_engine *e = get(h);

	if (!e)
		return -EBADF;
	lb_engine_runner_free(e->runner);
	lb_engine_state_free(e->st);
	free(e->stats);
	memset(e, 0, sizeof(*e));
	return 0;
}

/* count keys and values back to back. */
LB_API int lb_eng_update(int h, int map, const void *keys, const void *values, __u32 count)
{
	struct lb_ffi_engine *e = get(h);
	__u32 ks, vs;
	int ret = 0;

	if (!e)
		return -EBADF;
	if (lb_engine_map_sizes(map, &ks, &vs))
		return -EINVAL;
	for (__u32 i = 0; i < count && !ret; i++) {
		const void *k = (const __u8 *)keys + (size_t)i * ks;
		const void *v = (const __u8 *)values + (size_t)i * vs;

		if (map == LB_EM_FLOWS)
			ret = lb_engine_flow_update(e->runner, k, v);
		else if (map >= LB_EM_VIP_STATS)
			ret = lb_engine_stats_write(e->stats, map, k, v);
		else
			ret = lb_engine_state_update(e->st, map, k, v);
	}
	return ret;
}

LB_API int lb_eng_delete(int h, int map, const void *key)
{
	struct lb_ffi_engine *e = get(h);

	if (!e)
		return -EBADF;
	if (map == LB_EM_FLOWS)
		return lb_engine_flow_delete(e->runner, key);
	return lb_engine_state_delete(e->st, map, key);
}

LB_API int lb_eng_lookup(int h, int map, const void *key, void *value_out)
{
	struct lb_ffi_engine *e = get(h);

	if (!e)
		return -EBADF;
	if (map == LB_EM_FLOWS)
		return lb_engine_flow_lookup(e->runner, key, value_out);
	if (map >= LB_EM_VIP_STATS)
		return lb_engine_stats_read(e->stats, map, key, value_out);
	return lb_engine_state_lookup(e->st, map, key, value_out);
}

/* n host-order __u32 slots; n 0 removes the VIP's table. */
LB_API int lb_eng_table(int h, __u32 vip_id, const void *slots, __u32 n)
{
	struct lb_ffi_engine *e = get(h);

	if (!e)
		return -EBADF;
	return lb_engine_state_table(e->st, vip_id, slots, n);
}

LB_API int lb_eng_read_table(int h, __u32 vip_id, void *out, __u32 cap)
{
	struct lb_ffi_engine *e = get(h);

	if (!e)
		return -EBADF;
	return lb_engine_state_read_table(e->st, vip_id, out, cap);
}

/* res: struct lb_engine_result (64 bytes). Returns the action. */
LB_API int lb_eng_decide(int h, const void *frame, __u32 len, __u32 ingress_ifindex, void *out,
			 __u32 out_cap, void *res)
{
	struct lb_ffi_engine *e = get(h);
	int ret;

	if (!e)
		return -EBADF;
	lb_engine_runner_quiescent(e->runner);
	ret = lb_engine_decide(e->runner, frame, len, ingress_ifindex, out, out_cap, res);
	lb_engine_runner_offline(e->runner);
	return ret;
}
