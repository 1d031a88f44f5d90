// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The TUN decapsulator's decision (tun_decide.h) for TypeScript through ffi-rs, so tests run
 * the very code caplance-tun runs. Buffers only (ffi-rs leaks on buffer-less calls).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"
#include "tun_decide.h"

#define LB_TUN_FFI_MAX_VIPS 4096

/* vip_keys: count keys of LB_TUN_KEY_SIZE bytes (tun_decide.h), in any order. Returns the
 * enum lb_tun_reason, or -errno. */
LB_API int lb_tun_decide_ffi(const __u8 *pkt, __u32 len, const __u8 *vip_keys, __u32 count)
{
	__u8 (*keys)[LB_TUN_KEY_SIZE] = NULL;
	struct lb_tun_vipset set = { 0 };
	int ret;

	if (count > LB_TUN_FFI_MAX_VIPS)
		return -E2BIG;
	if (count > 0) {
		keys = malloc((size_t)count * LB_TUN_KEY_SIZE);
		if (!keys)
			return -ENOMEM;
		memcpy(keys, vip_keys, (size_t)count * LB_TUN_KEY_SIZE);
		lb_tun_vipset_sort(keys, count);
		set.count = count;
		set.keys = (const __u8(*)[LB_TUN_KEY_SIZE])keys;
	}
	ret = lb_tun_decide(pkt, len, &set);
	free(keys);
	return ret;
}

/* The reason's name into out (NUL-terminated); its length, or -ENOENT past the last reason. */
LB_API int lb_tun_reason_name_ffi(int reason, char *out, __u32 len)
{
	const char *name = lb_tun_reason_name(reason);

	if (!name)
		return -ENOENT;
	if (len > 0) {
		strncpy(out, name, len - 1);
		out[len - 1] = 0;
	}
	return (int)strlen(name);
}
