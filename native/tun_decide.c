// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The TUN decapsulator's checks (tun_decide.h). Stricter than lb_decap on the inner packet: the
 * TUN device hands the kernel exactly the bytes written, so the payload must be one whole IP
 * packet; trailing bytes or a short packet are dropped here, never written.
 */
#include <stdlib.h>
#include <string.h>

#include "tun_decide.h"

static const char *const reason_names[LB_TUN_REASONS] = {
	[LB_TUN_DECAP] = "decap",     [LB_TUN_EMPTY] = "empty",     [LB_TUN_VERSION] = "version",
	[LB_TUN_SHORT] = "short",     [LB_TUN_LENGTH] = "length",   [LB_TUN_NOT_VIP] = "not_vip",
	[LB_TUN_OVERSIZE] = "oversize", [LB_TUN_WRITE] = "tun_write",
};

const char *lb_tun_reason_name(int reason)
{
	return reason >= 0 && reason < LB_TUN_REASONS ? reason_names[reason] : NULL;
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, LB_TUN_KEY_SIZE);
}

void lb_tun_vipset_sort(__u8 (*keys)[LB_TUN_KEY_SIZE], __u32 count)
{
	qsort(keys, count, LB_TUN_KEY_SIZE, key_cmp);
}

static int is_vip(const struct lb_tun_vipset *vips, const __u8 key[LB_TUN_KEY_SIZE])
{
	return bsearch(key, vips->keys, vips->count, LB_TUN_KEY_SIZE, key_cmp) != NULL;
}

static __u32 be16(const __u8 *p)
{
	return ((__u32)p[0] << 8) | p[1];
}

enum lb_tun_reason lb_tun_decide(const __u8 *pkt, __u32 len, const struct lb_tun_vipset *vips)
{
	__u8 key[LB_TUN_KEY_SIZE] = { 0 };

	if (len == 0)
		return LB_TUN_EMPTY;
	switch (pkt[0] >> 4) {
	case 4:
		if (len < 20 || (pkt[0] & 0xf) < 5 || (__u32)(pkt[0] & 0xf) * 4 > len)
			return LB_TUN_SHORT;
		if (be16(pkt + 2) != len)
			return LB_TUN_LENGTH;
		key[0] = 4;
		memcpy(key + 1, pkt + 16, 4);
		break;
	case 6:
		if (len < 40)
			return LB_TUN_SHORT;
		if (40 + be16(pkt + 4) != len)
			return LB_TUN_LENGTH;
		key[0] = 6;
		memcpy(key + 1, pkt + 24, 16);
		break;
	default:
		return LB_TUN_VERSION;
	}
	if (vips && vips->count > 0 && !is_vip(vips, key))
		return LB_TUN_NOT_VIP;
	return LB_TUN_DECAP;
}
