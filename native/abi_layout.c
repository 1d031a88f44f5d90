/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The compiled layout of bpf/lb_abi.h, by hand from the same header: every struct's size,
 * every field's offset and size, every constant. test/abi/ compares src/maps/abi.ts with it;
 * lb_abi_selfcheck() catches a header field this table forgets.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "lb_abi.h"
#include "shim.h"

struct abi_struct {
	const char *name;
	size_t size;
};

struct abi_field {
	const char *st;
	const char *name;
	size_t offset;
	size_t size;
};

struct abi_const {
	const char *name;
	__s64 value;
};

struct abi_string {
	const char *name;
	const char *value;
};

#define S(s) { #s, sizeof(struct s) }
#define F(s, f) { #s, #f, offsetof(struct s, f), sizeof(((struct s *)0)->f) }
#define C(n) { #n, (__s64)(n) }
#define STR(n) { #n, n }

static const struct abi_struct structs[] = {
	S(lb_settings),    S(lb_vip_addr_key),   S(lb_vip_addr),      S(lb_vip_key),
	S(lb_vip),         S(lb_backend),        S(lb_flow_key),      S(lb_flow),
	S(lb_traffic),     S(lb_decap_settings), S(lb_decap_addr_key),
};

/* In declaration order: lb_abi_selfcheck() relies on it. */
static const struct abi_field fields[] = {
	F(lb_settings, src_v4),
	F(lb_settings, src_v6),
	F(lb_settings, maglev_size),
	F(lb_settings, flags),

	F(lb_vip_addr_key, addr),
	F(lb_vip_addr_key, family),
	F(lb_vip_addr_key, proto),
	F(lb_vip_addr_key, pad),

	F(lb_vip_addr, flags),
	F(lb_vip_addr, port_be),
	F(lb_vip_addr, pad),
	F(lb_vip_addr, vip),

	F(lb_vip_key, addr),
	F(lb_vip_key, port_be),
	F(lb_vip_key, family),
	F(lb_vip_key, proto),

	F(lb_vip, vip_id),
	F(lb_vip, flags),

	F(lb_backend, addr),
	F(lb_backend, family),
	F(lb_backend, flags),
	F(lb_backend, encap_port_be),
	F(lb_backend, vip_id),
	F(lb_backend, ifindex),
	F(lb_backend, mtu),
	F(lb_backend, dmac),
	F(lb_backend, smac),
	F(lb_backend, pad),

	F(lb_flow_key, src),
	F(lb_flow_key, dst),
	F(lb_flow_key, sport_be),
	F(lb_flow_key, dport_be),
	F(lb_flow_key, family),
	F(lb_flow_key, proto),
	F(lb_flow_key, pad),

	F(lb_flow, backend),
	F(lb_flow, hash),

	F(lb_traffic, packets),
	F(lb_traffic, bytes),

	F(lb_decap_settings, encap_port_be),
	F(lb_decap_settings, pad),
	F(lb_decap_settings, flags),

	F(lb_decap_addr_key, addr),
	F(lb_decap_addr_key, family),
	F(lb_decap_addr_key, pad),
};

static const struct abi_const consts[] = {
	C(LB_ABI_VERSION),
	C(LB_MAX_VIPS),
	C(LB_MAX_BACKENDS),
	C(LB_FLOW_TABLE_SIZE),
	C(LB_MAGLEV_SIZE_DEFAULT),
	C(LB_MAGLEV_SIZE_MAX),
	C(LB_NO_BACKEND),
	C(LB_HASH_SEED),
	C(LB_ENCAP_PORT_DEFAULT),
	C(LB_ENCAP_TTL),
	C(LB_ENCAP_SPORT_BASE),
	C(LB_ENCAP_SPORT_MASK),
	C(LB_FLOW_LABEL_MASK),
	C(LB_ENCAP_V4_OVERHEAD),
	C(LB_ENCAP_V6_OVERHEAD),
	C(LB_AF_INET),
	C(LB_AF_INET6),
	C(LB_SETTINGS_F_HAVE_V4),
	C(LB_SETTINGS_F_HAVE_V6),
	C(LB_VIP_ADDR_F_PORTS),
	C(LB_VIP_ADDR_F_WILDCARD),
	C(LB_VIP_ADDR_F_INLINE),
	C(LB_VIP_F_HASH_SRC_IP),
	C(LB_VIP_F_HASH_SRC_IP_PORT),
	C(LB_BACKEND_F_IN_USE),
	C(LB_BACKEND_F_NEIGH),
	/* enum lb_counter */
	C(LB_C_RX),
	C(LB_C_PASS),
	C(LB_C_TX),
	C(LB_C_REDIRECT),
	C(LB_C_DROP),
	C(LB_C_FLOW_HIT),
	C(LB_C_FLOW_MISS),
	C(LB_C_FLOW_SYN),
	C(LB_C_FLOW_STALE),
	C(LB_C_NO_NEIGH),
	C(LB_C_PASS_NOT_VIP),
	C(LB_C_PASS_MALFORMED),
	C(LB_C_COUNTERS_USED),
	C(LB_C_DROP_BASE),
	/* enum lb_drop_reason */
	C(LB_DROP_IP_OPTIONS),
	C(LB_DROP_FRAGMENT),
	C(LB_DROP_IPV6_EXT),
	C(LB_DROP_TRUNCATED),
	C(LB_DROP_NO_BACKEND),
	C(LB_DROP_TOO_BIG),
	C(LB_DROP_ENCAP),
	C(LB_DROP_NO_SOURCE),
	C(LB_DROP_NOT_CONFIGURED),
	C(LB_DROP_REASONS_USED),
	C(LB_COUNTERS_SIZE),
	/* enum lb_decap_counter */
	C(LB_DC_RX),
	C(LB_DC_DECAP),
	C(LB_DC_PASS),
	C(LB_DC_MALFORMED),
	C(LB_DC_COUNTERS_USED),
	C(LB_DECAP_COUNTERS_SIZE),
};

static const struct abi_string strings[] = {
	STR(LB_MAP_SETTINGS),	   STR(LB_MAP_VIP_ADDRS),	STR(LB_MAP_VIPS),
	STR(LB_MAP_TABLES),	   STR(LB_MAP_BACKENDS),	STR(LB_MAP_FLOWS),
	STR(LB_MAP_VIP_STATS),	   STR(LB_MAP_BACKEND_STATS),	STR(LB_MAP_COUNTERS),
	STR(LB_MAP_DECAP_ADDRS),   STR(LB_MAP_DECAP_SETTINGS), STR(LB_MAP_DECAP_COUNTERS),
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

int lb_abi_sizeof(const char *struct_name)
{
	for (size_t i = 0; i < N(structs); i++)
		if (!strcmp(structs[i].name, struct_name))
			return (int)structs[i].size;
	return -ENOENT;
}

int lb_abi_offsetof(const char *struct_name, const char *field)
{
	for (size_t i = 0; i < N(fields); i++)
		if (!strcmp(fields[i].st, struct_name) && !strcmp(fields[i].name, field))
			return (int)fields[i].offset;
	return -ENOENT;
}

int lb_abi_const(const char *name, __s64 *out)
{
	for (size_t i = 0; i < N(consts); i++) {
		if (!strcmp(consts[i].name, name)) {
			*out = consts[i].value;
			return 0;
		}
	}
	return -ENOENT;
}

static int copy_str(char *buf, __u32 len, const char *s)
{
	if (buf && len > 0)
		snprintf(buf, len, "%s", s);
	return (int)strlen(s);
}

int lb_abi_string(const char *name, char *buf, __u32 len)
{
	for (size_t i = 0; i < N(strings); i++)
		if (!strcmp(strings[i].name, name))
			return copy_str(buf, len, strings[i].value);
	return -ENOENT;
}

int lb_abi_name(int kind, __u32 index, char *buf, __u32 len)
{
	char both[128];

	switch (kind) {
	case 0:
		return index < N(structs) ? copy_str(buf, len, structs[index].name) : -ENOENT;
	case 1:
		if (index >= N(fields))
			return -ENOENT;
		snprintf(both, sizeof(both), "%s.%s", fields[index].st, fields[index].name);
		return copy_str(buf, len, both);
	case 2:
		return index < N(consts) ? copy_str(buf, len, consts[index].name) : -ENOENT;
	case 3:
		return index < N(strings) ? copy_str(buf, len, strings[index].name) : -ENOENT;
	default:
		return -EINVAL;
	}
}

/* Every struct of lb_abi.h pads explicitly, so its listed fields must tile it exactly. */
int lb_abi_selfcheck(void)
{
	lb_clear_error();
	for (size_t s = 0; s < N(structs); s++) {
		size_t end = 0;

		for (size_t i = 0; i < N(fields); i++) {
			if (strcmp(fields[i].st, structs[s].name))
				continue;
			if (fields[i].offset != end) {
				lb_set_error("abi: struct %s: field %s at %zu, expected %zu (field "
					     "missing from native/abi_layout.c or implicit padding)",
					     structs[s].name, fields[i].name, fields[i].offset, end);
				return -EPROTO;
			}
			end += fields[i].size;
		}
		if (end != structs[s].size) {
			lb_set_error("abi: struct %s: fields cover %zu of %zu bytes", structs[s].name,
				     end, structs[s].size);
			return -EPROTO;
		}
	}
	return 0;
}
