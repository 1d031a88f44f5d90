/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * libcaplance: the flat libbpf shim behind src/dataplane/native.ts (see shim.h for the
 * contract). Single-threaded by design: the control plane calls it from Node's main thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <linux/bpf.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "shim.h"

/* The kernel's internal "not supported" errno, which leaks out of BPF_MAP_UPDATE_BATCH for
 * map types without a batch op. */
#ifndef ENOTSUPP
#define ENOTSUPP 524
#endif

#define LB_MAX_OBJECTS 64
#define LB_ERRBUF_SIZE 65536

/* ---- diagnostics ---------------------------------------------------------------------- */

/* Messages since the last clear. On overflow the oldest bytes go: the end of a verifier log
 * is the part that says why. */
static char errbuf[LB_ERRBUF_SIZE];
static size_t errlen;
static int log_level; /* 0 warn, 1 info, 2 debug */

static void err_append(const char *s, size_t n)
{
	const size_t cap = sizeof(errbuf) - 1;

	if (n >= cap) {
		s += n - cap;
		n = cap;
	}
	if (errlen + n > cap) {
		size_t drop = errlen + n - cap;

		memmove(errbuf, errbuf + drop, errlen - drop);
		errlen -= drop;
	}
	memcpy(errbuf + errlen, s, n);
	errlen += n;
	errbuf[errlen] = '\0';
}

static void err_vappend(const char *fmt, va_list args)
{
	char small[512];
	va_list copy;
	int n;

	va_copy(copy, args);
	n = vsnprintf(small, sizeof(small), fmt, copy);
	va_end(copy);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		err_append(small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);

	if (!big)
		return;
	vsnprintf(big, (size_t)n + 1, fmt, args);
	err_append(big, (size_t)n);
	free(big);
}

void lb_set_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	err_vappend(fmt, args);
	va_end(args);
	err_append("\n", 1);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if ((int)level > log_level)
		return 0;
	err_vappend(fmt, args);
	return 0;
}

__attribute__((constructor)) static void lb_shim_init(void)
{
	libbpf_set_print(libbpf_print);
}

int lb_last_error(char *buf, __u32 len)
{
	if (buf && len > 0) {
		size_t n = errlen < len - 1 ? errlen : len - 1;

		memcpy(buf, errbuf, n);
		buf[n] = '\0';
	}
	return (int)errlen;
}

int lb_clear_error(void)
{
	errlen = 0;
	errbuf[0] = '\0';
	return 0;
}

int lb_set_log_level(int level)
{
	if (level < 0 || level > 2)
		return -EINVAL;
	log_level = level;
	return 0;
}

/* ---- objects -------------------------------------------------------------------------- */

static struct bpf_object *objects[LB_MAX_OBJECTS + 1];

static struct bpf_object *obj_get(int h)
{
	if (h < 1 || h > LB_MAX_OBJECTS)
		return NULL;
	return objects[h];
}

int lb_obj_open(const char *path)
{
	struct bpf_object *obj;
	int h, err;

	lb_clear_error();
	for (h = 1; h <= LB_MAX_OBJECTS && objects[h]; h++)
		;
	if (h > LB_MAX_OBJECTS) {
		lb_set_error("%s: all %d object handles in use", path, LB_MAX_OBJECTS);
		return -EMFILE;
	}
	obj = bpf_object__open_file(path, NULL);
	if (!obj) {
		err = -errno;
		lb_set_error("%s: cannot open BPF object: %s", path, strerror(-err));
		return err;
	}
	objects[h] = obj;
	return h;
}

int lb_obj_set_max_entries(int h, const char *map, __u32 n)
{
	struct bpf_object *obj = obj_get(h);
	struct bpf_map *m;
	int err;

	lb_clear_error();
	if (!obj)
		return -EBADF;
	m = bpf_object__find_map_by_name(obj, map);
	if (!m) {
		lb_set_error("no map %s in %s", map, bpf_object__name(obj));
		return -ENOENT;
	}
	err = bpf_map__set_max_entries(m, n);
	if (err)
		lb_set_error("map %s: cannot set max_entries %u: %s", map, n, strerror(-err));
	return err;
}

int lb_obj_load(int h)
{
	struct bpf_object *obj = obj_get(h);
	int err;

	lb_clear_error();
	if (!obj)
		return -EBADF;
	err = bpf_object__load(obj);
	if (err)
		lb_set_error("%s: load failed: %s", bpf_object__name(obj), strerror(-err));
	return err;
}

int lb_obj_close(int h)
{
	struct bpf_object *obj = obj_get(h);

	if (!obj)
		return -EBADF;
	bpf_object__close(obj);
	objects[h] = NULL;
	return 0;
}

int lb_obj_map_fd(int h, const char *name)
{
	struct bpf_object *obj = obj_get(h);
	struct bpf_map *m;
	int fd;

	lb_clear_error();
	if (!obj)
		return -EBADF;
	m = bpf_object__find_map_by_name(obj, name);
	if (!m) {
		lb_set_error("no map %s in %s", name, bpf_object__name(obj));
		return -ENOENT;
	}
	fd = bpf_map__fd(m);
	if (fd < 0)
		lb_set_error("map %s has no fd (object not loaded?)", name);
	return fd;
}

int lb_obj_prog_fd(int h, const char *prog_name)
{
	struct bpf_object *obj = obj_get(h);
	struct bpf_program *p;
	int fd;

	lb_clear_error();
	if (!obj)
		return -EBADF;
	p = bpf_object__find_program_by_name(obj, prog_name);
	if (!p) {
		lb_set_error("no program %s in %s", prog_name, bpf_object__name(obj));
		return -ENOENT;
	}
	fd = bpf_program__fd(p);
	if (fd < 0)
		lb_set_error("program %s has no fd (object not loaded?)", prog_name);
	return fd;
}

/* ---- maps ----------------------------------------------------------------------------- */

int lb_map_create(__u32 type, const char *name, __u32 key_size, __u32 value_size,
		  __u32 max_entries, __u32 map_flags, int inner_map_fd)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = map_flags);
	int fd;

	lb_clear_error();
	if (inner_map_fd >= 0)
		opts.inner_map_fd = (__u32)inner_map_fd;
	fd = bpf_map_create((enum bpf_map_type)type, name, key_size, value_size, max_entries,
			    &opts);
	if (fd < 0)
		lb_set_error("map %s: create (type %u, key %u, value %u, max %u) failed: %s", name,
			     type, key_size, value_size, max_entries, strerror(-fd));
	return fd;
}

int lb_array_map_create(const char *name, __u32 value_size, __u32 max_entries)
{
	return lb_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(__u32), value_size, max_entries,
			     BPF_F_INNER_MAP | BPF_F_MMAPABLE, -1);
}

/* Copies `count` values of `value_size` bytes into (write != 0) or out of an mmapable array
 * map, from its first element: one pass over mapped memory instead of a syscall per element.
 * The kernel lays array elements out every round_up(value_size, 8) bytes. */
static int lb_array_map_copy(int fd, void *buf, __u32 value_size, __u32 count, int write)
{
	size_t stride = ((size_t)value_size + 7) & ~(size_t)7;
	long page = sysconf(_SC_PAGESIZE);
	size_t len = (stride * count + (size_t)page - 1) & ~((size_t)page - 1);
	__u8 *mem, *user = buf;

	if (value_size == 0 || count == 0)
		return -EINVAL;
	mem = mmap(NULL, len, write ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED)
		return -errno;
	for (__u32 i = 0; i < count; i++) {
		if (write)
			memcpy(mem + i * stride, user + (size_t)i * value_size, value_size);
		else
			memcpy(user + (size_t)i * value_size, mem + i * stride, value_size);
	}
	munmap(mem, len);
	return 0;
}

int lb_array_map_write(int fd, const void *values, __u32 value_size, __u32 count)
{
	return lb_array_map_copy(fd, (void *)values, value_size, count, 1);
}

int lb_array_map_read(int fd, void *values_out, __u32 value_size, __u32 count)
{
	return lb_array_map_copy(fd, values_out, value_size, count, 0);
}

int lb_map_update(int fd, const void *key, const void *value, __u32 flags)
{
	return bpf_map_update_elem(fd, key, value, flags);
}

int lb_map_lookup(int fd, const void *key, void *value_out)
{
	return bpf_map_lookup_elem(fd, key, value_out);
}

int lb_map_delete(int fd, const void *key)
{
	return bpf_map_delete_elem(fd, key);
}

int lb_map_get_next_key(int fd, const void *key, int has_key, void *next_out)
{
	return bpf_map_get_next_key(fd, has_key ? key : NULL, next_out);
}

static int map_is_percpu(__u32 type)
{
	return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

static int map_get_info(int fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	return bpf_obj_get_info_by_fd(fd, info, &len);
}

static long map_value_stride(const struct bpf_map_info *info)
{
	int ncpus;

	if (!map_is_percpu(info->type))
		return info->value_size;
	ncpus = libbpf_num_possible_cpus();
	if (ncpus < 0)
		return ncpus;
	return (long)((info->value_size + 7) & ~7u) * ncpus;
}

/* Keys deleted while walking a hash map make the kernel restart from the first key, so a
 * walk under churn may repeat keys; callers de-duplicate if they care. */
int lb_map_keys(int fd, const void *prev_key, int has_prev, void *keys_out, __u32 key_size,
		__u32 cap)
{
	char *out = keys_out;
	__u32 n = 0;
	int err;

	while (n < cap) {
		const void *prev = n ? out + (size_t)(n - 1) * key_size : has_prev ? prev_key : NULL;

		err = bpf_map_get_next_key(fd, prev, out + (size_t)n * key_size);
		if (err == -ENOENT)
			break;
		if (err)
			return err;
		n++;
	}
	return (int)n;
}

int lb_map_lookup_many(int fd, const void *keys, void *values_out, __u32 count)
{
	struct bpf_map_info info;
	long stride;
	int err;

	err = map_get_info(fd, &info);
	if (err)
		return err;
	stride = map_value_stride(&info);
	if (stride < 0)
		return (int)stride;
	for (__u32 i = 0; i < count; i++) {
		err = bpf_map_lookup_elem(fd, (const char *)keys + (size_t)i * info.key_size,
					  (char *)values_out + (size_t)i * stride);
		if (err)
			return err;
	}
	return 0;
}

int lb_map_update_batch(int fd, const void *keys, const void *values, __u32 count, __u32 flags)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
	struct bpf_map_info info;
	__u32 n = count;
	long stride;
	int err;

	if (count == 0)
		return 0;
	err = bpf_map_update_batch(fd, keys, values, &n, &opts);
	if (err != -ENOTSUPP && err != -EOPNOTSUPP)
		return err;
	err = map_get_info(fd, &info);
	if (err)
		return err;
	stride = map_value_stride(&info);
	if (stride < 0)
		return (int)stride;
	for (__u32 i = 0; i < count; i++) {
		err = bpf_map_update_elem(fd, (const char *)keys + (size_t)i * info.key_size,
					  (const char *)values + (size_t)i * stride, flags);
		if (err)
			return err;
	}
	return 0;
}

int lb_map_info(int fd, void *out)
{
	struct bpf_map_info info;
	__u32 v[7];
	long stride;
	int err;

	err = map_get_info(fd, &info);
	if (err)
		return err;
	stride = map_value_stride(&info);
	if (stride < 0)
		return (int)stride;
	v[0] = info.type;
	v[1] = info.key_size;
	v[2] = info.value_size;
	v[3] = info.max_entries;
	v[4] = info.map_flags;
	v[5] = info.id;
	v[6] = (__u32)stride;
	memcpy(out, v, sizeof(v));
	return 0;
}

int lb_map_fd_by_id(__u32 id)
{
	return bpf_map_get_fd_by_id(id);
}

int lb_num_possible_cpus(void)
{
	return libbpf_num_possible_cpus();
}

int lb_close(int fd)
{
	return close(fd) ? -errno : 0;
}

/* ---- XDP ------------------------------------------------------------------------------ */

/* Attach and detach clear the diagnostics: libbpf adds the kernel's extack message ("Kernel
 * error message: ...") there, which says why a driver refused. */
int lb_xdp_attach(int ifindex, int prog_fd, __u32 flags)
{
	lb_clear_error();
	return bpf_xdp_attach(ifindex, prog_fd, flags, NULL);
}

int lb_xdp_detach(int ifindex, __u32 flags)
{
	lb_clear_error();
	return bpf_xdp_detach(ifindex, flags, NULL);
}

int lb_xdp_query(int ifindex, __u32 flags, void *out)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, opts);
	__u32 v[4], modes = flags & XDP_FLAGS_MODES;
	int err;

	err = bpf_xdp_query(ifindex, (int)flags, &opts);
	if (err)
		return err;
	/* The selection rule of bpf_xdp_query_id(). */
	if (opts.attach_mode != XDP_ATTACHED_MULTI && !modes)
		v[0] = opts.prog_id;
	else if (modes & XDP_FLAGS_DRV_MODE)
		v[0] = opts.drv_prog_id;
	else if (modes & XDP_FLAGS_HW_MODE)
		v[0] = opts.hw_prog_id;
	else if (modes & XDP_FLAGS_SKB_MODE)
		v[0] = opts.skb_prog_id;
	else
		v[0] = 0;
	v[1] = opts.drv_prog_id;
	v[2] = opts.skb_prog_id;
	v[3] = opts.attach_mode;
	memcpy(out, v, sizeof(v));
	return 0;
}

/* ---- bpffs ---------------------------------------------------------------------------- */

int lb_obj_pin(int fd, const char *path)
{
	return bpf_obj_pin(fd, path);
}

int lb_obj_get(const char *path)
{
	return bpf_obj_get(path);
}

int lb_unpin(const char *path)
{
	return unlink(path) ? -errno : 0;
}

/* ---- pinned maps and XDP links (hitless restart) --------------------------------------- */

int lb_obj_set_pin_dir(int h, const char *dir)
{
	struct bpf_object *obj = obj_get(h);
	struct bpf_map *m;
	char path[512];
	int err;

	lb_clear_error();
	if (!obj)
		return -EBADF;
	bpf_object__for_each_map(m, obj) {
		if (bpf_map__is_internal(m))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(m)) >= (int)sizeof(path))
			return -ENAMETOOLONG;
		err = bpf_map__set_pin_path(m, path);
		if (err) {
			lb_set_error("map %s: cannot set pin path %s: %s", bpf_map__name(m), path,
				     strerror(-err));
			return err;
		}
	}
	return 0;
}

int lb_xdp_link_create(int prog_fd, int ifindex, __u32 flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
	int fd;

	lb_clear_error();
	fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
	if (fd < 0)
		lb_set_error("XDP link on ifindex %d: %s", ifindex, strerror(-fd));
	return fd;
}

int lb_link_update(int link_fd, int prog_fd)
{
	lb_clear_error();
	return bpf_link_update(link_fd, prog_fd, NULL);
}

int lb_link_info(int link_fd, void *out)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info), v[4];
	int err;

	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(link_fd, &info, &len);
	if (err)
		return err;
	v[0] = info.id;
	v[1] = info.prog_id;
	v[2] = info.type;
	v[3] = info.type == BPF_LINK_TYPE_XDP ? info.xdp.ifindex : 0;
	memcpy(out, v, sizeof(v));
	return 0;
}

int lb_prog_tag(int prog_fd, __u32 prog_id, void *out)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd = prog_fd, err;

	if (fd < 0) {
		fd = bpf_prog_get_fd_by_id(prog_id);
		if (fd < 0)
			return fd;
	}
	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (prog_fd < 0)
		close(fd);
	if (err)
		return err;
	memcpy(out, info.tag, BPF_TAG_SIZE);
	return 0;
}

/* ---- BPF_PROG_TEST_RUN ---------------------------------------------------------------- */

int lb_prog_test_run(int prog_fd, const void *data_in, __u32 size_in, void *data_out,
		     __u32 out_cap, __u32 repeat, __u32 ingress_ifindex, void *out_meta)
{
	/* The kernel wants data_end == the frame size and no metadata when a context is given. */
	struct xdp_md ctx = { .data = 0, .data_end = size_in, .ingress_ifindex = ingress_ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data_in, .data_size_in = size_in,
		    .data_out = data_out, .data_size_out = out_cap, .repeat = (int)repeat);
	__u32 meta[3];
	int err;

	if (ingress_ifindex) {
		opts.ctx_in = &ctx;
		opts.ctx_size_in = sizeof(ctx);
	}
	err = bpf_prog_test_run_opts(prog_fd, &opts);
	meta[0] = opts.retval;
	meta[1] = opts.data_size_out;
	meta[2] = opts.duration;
	memcpy(out_meta, meta, sizeof(meta));
	return err;
}
