/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * libcaplance: a flat C ABI over libbpf for the TypeScript control plane (ffi-rs). Only ints,
 * NUL-terminated strings and byte buffers cross it. Every function returns >= 0 on success or
 * -errno on failure and never prints: libbpf's messages and the shim's own explanations are
 * kept in one buffer, read with lb_last_error(). BPF objects are small integer handles.
 */
#ifndef LB_SHIM_H
#define LB_SHIM_H

#include <linux/types.h>

#define LB_API __attribute__((visibility("default")))

/* Diagnostics. lb_last_error copies the messages collected since the last call that clears
 * them into buf, NUL-terminated and truncated to len; returns the full length. Every function
 * that can explain itself (objects, map creation, XDP attach/detach, selfcheck) clears them
 * first; the map element operations leave them alone (their -errno says it all). Level: 0 =
 * warnings, 1 = + info, 2 = + debug. */
LB_API int lb_last_error(char *buf, __u32 len);
LB_API int lb_clear_error(void);
LB_API int lb_set_log_level(int level);

/* BPF objects (handles 1..LB_MAX_OBJECTS). */
LB_API int lb_obj_open(const char *path);
LB_API int lb_obj_set_max_entries(int h, const char *map, __u32 n);
LB_API int lb_obj_load(int h);
LB_API int lb_obj_close(int h);
LB_API int lb_obj_map_fd(int h, const char *name);
LB_API int lb_obj_prog_fd(int h, const char *prog_name);

/* Maps. inner_map_fd < 0: none. */
LB_API int lb_map_create(__u32 type, const char *name, __u32 key_size, __u32 value_size,
			 __u32 max_entries, __u32 map_flags, int inner_map_fd);
/* An inner table of lb_tables: BPF_MAP_TYPE_ARRAY, key 4 bytes, flags BPF_F_INNER_MAP (the
 * flags must equal the template's for the kernel to accept it into the outer map). */
LB_API int lb_array_map_create(const char *name, __u32 value_size, __u32 max_entries);
LB_API int lb_array_map_write(int fd, const void *values, __u32 value_size, __u32 count);
LB_API int lb_array_map_read(int fd, void *values_out, __u32 value_size, __u32 count);
LB_API int lb_map_update(int fd, const void *key, const void *value, __u32 flags);
LB_API int lb_map_lookup(int fd, const void *key, void *value_out);
LB_API int lb_map_delete(int fd, const void *key);
/* has_key 0: first key of the map. Returns -ENOENT after the last key. */
LB_API int lb_map_get_next_key(int fd, const void *key, int has_key, void *next_out);
/* Up to cap keys (key_size bytes each) that follow prev_key (has_prev 0: from the first key)
 * into keys_out in one call; returns how many (< cap: the walk reached the end). */
LB_API int lb_map_keys(int fd, const void *prev_key, int has_prev, void *keys_out,
		       __u32 key_size, __u32 cap);
/* count lookups in one call (values at the map's value stride); stops at the first miss
 * (-ENOENT). Meant for arrays, where every index exists. */
LB_API int lb_map_lookup_many(int fd, const void *keys, void *values_out, __u32 count);
/* count keys and values laid out back to back (per-CPU values: round_up(value_size, 8) x
 * ncpus each). Falls back to one update per element when the map type has no batch op. */
LB_API int lb_map_update_batch(int fd, const void *keys, const void *values, __u32 count,
			       __u32 flags);
/* out: 7 x __u32 {type, key_size, value_size, max_entries, map_flags, id, value_stride}
 * (value_stride = bytes one lookup writes: value_size, or round_up(value_size, 8) x ncpus). */
LB_API int lb_map_info(int fd, void *out);
LB_API int lb_map_fd_by_id(__u32 id);
LB_API int lb_num_possible_cpus(void);
LB_API int lb_close(int fd);

/* XDP. flags: XDP_FLAGS_* of linux/if_link.h. out (16 bytes): 4 x __u32 {prog_id (the one
 * the flags select, as bpf_xdp_query_id), drv_prog_id, skb_prog_id, attach_mode}. */
LB_API int lb_xdp_attach(int ifindex, int prog_fd, __u32 flags);
LB_API int lb_xdp_detach(int ifindex, __u32 flags);
LB_API int lb_xdp_query(int ifindex, __u32 flags, void *out);

/* bpffs. */
LB_API int lb_obj_pin(int fd, const char *path);
LB_API int lb_obj_get(const char *path);
LB_API int lb_unpin(const char *path);

/* Hitless restart. set_pin_dir (before load): every non-internal map is pinned at DIR/<name>,
 * and an existing compatible pin there is reused instead of creating the map. An XDP link
 * (flags: XDP_FLAGS_SKB_MODE or XDP_FLAGS_DRV_MODE) returns its fd; link_update swaps the
 * program atomically. link_info out: 4 x __u32 {link id, prog id, link type, ifindex (XDP,
 * 0 once detached)}. prog_tag out: 8 bytes, of prog_fd, or of prog_id when prog_fd < 0. */
LB_API int lb_obj_set_pin_dir(int h, const char *dir);
LB_API int lb_xdp_link_create(int prog_fd, int ifindex, __u32 flags);
LB_API int lb_link_update(int link_fd, int prog_fd);
LB_API int lb_link_info(int link_fd, void *out);
LB_API int lb_prog_tag(int prog_fd, __u32 prog_id, void *out);

/* BPF_PROG_TEST_RUN. out_meta (12 bytes): 3 x __u32 {retval, size_out, duration_ns}. The
 * kernel rejects frames shorter than 14 bytes. ingress_ifindex != 0 runs the program with a
 * struct xdp_md naming that device (needed by bpf_fib_lookup). */
LB_API int lb_prog_test_run(int prog_fd, const void *data_in, __u32 size_in, void *data_out,
			    __u32 out_cap, __u32 repeat, __u32 ingress_ifindex, void *out_meta);

/* The compiled layout of bpf/lb_abi.h (native/abi_layout.c). -ENOENT for unknown names. */
LB_API int lb_abi_sizeof(const char *struct_name);
LB_API int lb_abi_offsetof(const char *struct_name, const char *field);
LB_API int lb_abi_const(const char *name, __s64 *out);
LB_API int lb_abi_string(const char *name, char *buf, __u32 len);
/* Enumerates names: kind 0 structs, 1 fields ("struct.field"), 2 numeric constants, 3 string
 * constants. Returns the name's length, -ENOENT past the end. */
LB_API int lb_abi_name(int kind, __u32 index, char *buf, __u32 len);
/* Checks that the table covers each struct: fields contiguous from offset 0 to sizeof, so a
 * field added to the header but not to the table fails. 0 or -EPROTO (see lb_last_error). */
LB_API int lb_abi_selfcheck(void);

/* Tunnel-probe UDP sockets (native/probe_socket.c): DF set, path-MTU cache ignored, never
 * fragmented. family 4 or 6; addr 4 or 16 bytes, network order. send returns bytes sent. */
LB_API int lb_probe_socket(int family);
LB_API int lb_probe_send(int fd, const __u8 *addr, __u32 addr_len, __u32 port, const __u8 *buf,
			 __u32 len);

/* Shared with abi_layout.c. */
void lb_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* LB_SHIM_H */
