// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The userspace balancer engine (lb_engine.h): the XDP program's parse, VIP lookup, flow hash,
 * flow table / Maglev pick and outer headers, compiled from the same bpf/ headers with
 * LB_USERSPACE, over RCU-like userspace tables. The pipeline of lb_engine_decide() mirrors
 * lb_balancer() in bpf/balancer.bpf.c step for step; only the head/tail moves of XDP become a
 * copy into the output buffer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LB_USERSPACE 1
#include "hash.h"
#include "lb_engine.h"

/* ---- what the shared headers look up, userspace side -------------------------------------- */

struct lb_us_table {
	__u32 size;
	__u32 slots[];
};

struct lb_us_hash;
static __thread struct lb_engine_runner *lb_cur;

static struct lb_vip_addr *lb_us_lookup_lb_vip_addrs(const struct lb_vip_addr_key *key);
static struct lb_vip *lb_us_lookup_lb_vips(const struct lb_vip_key *key);
static struct lb_backend *lb_us_lookup_lb_backends(const __u32 *index);
static struct lb_flow *lb_us_lookup_lb_flows(const struct lb_flow_key *key);
static struct lb_us_table *lb_us_lookup_lb_tables(const __u32 *vip_id);
static __u32 *lb_us_table_slot(const struct lb_us_table *table, const __u32 *slot);
static void lb_count(__u32 counter);

#define LB_LOOKUP(map, key) lb_us_lookup_##map(key)
#define LB_LOOKUP_INNER(inner, key) lb_us_table_slot((inner), (key))

#include "select.h"
#include "encap.h"

/* ---- immutable hash tables (lb_vip_addrs, lb_vips): copied on write ------------------------ */

/* Open addressing, linear probing. Entry: __u32 used, key, value (each rounded up to 4 bytes,
 * so values are 4-byte aligned like the structs returned to the shared code). */
struct lb_us_hash {
	__u32 mask;
	__u32 count;
	__u32 key_size;
	__u32 value_size;
	__u32 stride;
	__u8 slots[];
};

static __u32 round4(__u32 n)
{
	return (n + 3) & ~3u;
}

static __u32 fnv1a(const void *data, __u32 len)
{
	const __u8 *p = data;
	__u32 h = 2166136261u;

	for (__u32 i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static __u8 *hash_entry(const struct lb_us_hash *h, __u32 i)
{
	return (__u8 *)h->slots + (size_t)i * h->stride;
}

static void *hash_find(const struct lb_us_hash *h, const void *key)
{
	if (!h)
		return NULL;
	for (__u32 i = fnv1a(key, h->key_size) & h->mask;; i = (i + 1) & h->mask) {
		__u8 *e = hash_entry(h, i);

		if (!*(__u32 *)e)
			return NULL;
		if (!memcmp(e + 4, key, h->key_size))
			return e + 4 + round4(h->key_size);
	}
}

static struct lb_us_hash *hash_alloc(__u32 key_size, __u32 value_size, __u32 count)
{
	__u32 cap = 16;
	struct lb_us_hash *h;

	while (cap < count * 2)
		cap <<= 1;
	__u32 stride = 4 + round4(key_size) + round4(value_size);

	h = calloc(1, sizeof(*h) + (size_t)cap * stride);
	if (!h)
		return NULL;
	h->mask = cap - 1;
	h->key_size = key_size;
	h->value_size = value_size;
	h->stride = stride;
	return h;
}

static void hash_put(struct lb_us_hash *h, const void *key, const void *value)
{
	for (__u32 i = fnv1a(key, h->key_size) & h->mask;; i = (i + 1) & h->mask) {
		__u8 *e = hash_entry(h, i);

		if (*(__u32 *)e && memcmp(e + 4, key, h->key_size))
			continue;
		if (!*(__u32 *)e)
			h->count++;
		*(__u32 *)e = 1;
		memcpy(e + 4, key, h->key_size);
		memcpy(e + 4 + round4(h->key_size), value, h->value_size);
		return;
	}
}

/* A copy of old with key set to value (value NULL: key removed). */
static struct lb_us_hash *hash_with(const struct lb_us_hash *old, __u32 key_size, __u32 value_size,
				    const void *key, const void *value)
{
	struct lb_us_hash *h = hash_alloc(key_size, value_size, (old ? old->count : 0) + 1);

	if (!h)
		return NULL;
	for (__u32 i = 0; old && i <= old->mask; i++) {
		__u8 *e = hash_entry(old, i);

		if (*(__u32 *)e && memcmp(e + 4, key, key_size))
			hash_put(h, e + 4, e + 4 + round4(key_size));
	}
	if (value)
		hash_put(h, key, value);
	return h;
}

/* ---- state and QSBR ---------------------------------------------------------------------- */

#define LB_ENGINE_MAX_RUNNERS 256

struct lb_retired {
	void *ptr;
	__u64 gp;
};

struct lb_engine_state {
	_Atomic(struct lb_settings *) settings;
	_Atomic(struct lb_us_hash *) vip_addrs;
	_Atomic(struct lb_us_hash *) vips;
	_Atomic(struct lb_backend *) *backends; /* LB_MAX_BACKENDS; NULL reads as zeroes */
	_Atomic(struct lb_us_table *) *tables;  /* LB_MAX_VIPS */
	/* QSBR: seen[i] = the grace-period counter runner i last observed at a quiescent point,
	 * 0 when offline or unused. Something retired at gp g is freed once every runner is
	 * offline or has seen >= g. */
	_Atomic __u64 gp;
	_Atomic __u64 seen[LB_ENGINE_MAX_RUNNERS];
	_Atomic int used[LB_ENGINE_MAX_RUNNERS];
	pthread_mutex_t lock; /* writer side only: retired list, runner slots */
	struct lb_retired *retired;
	__u32 nretired, capretired;
};

static const struct lb_backend lb_zero_backend;

struct lb_engine_state *lb_engine_state_new(void)
{
	struct lb_engine_state *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->backends = calloc(LB_MAX_BACKENDS, sizeof(*st->backends));
	st->tables = calloc(LB_MAX_VIPS, sizeof(*st->tables));
	struct lb_settings *s = calloc(1, sizeof(*s));

	if (!st->backends || !st->tables || !s) {
		free(st->backends);
		free(st->tables);
		free(s);
		free(st);
		return NULL;
	}
	atomic_store(&st->settings, s);
	atomic_store(&st->gp, 1);
	pthread_mutex_init(&st->lock, NULL);
	return st;
}

void lb_engine_state_free(struct lb_engine_state *st)
{
	if (!st)
		return;
	for (__u32 i = 0; i < st->nretired; i++)
		free(st->retired[i].ptr);
	free(st->retired);
	for (__u32 i = 0; i < LB_MAX_BACKENDS; i++)
		free(atomic_load(&st->backends[i]));
	for (__u32 i = 0; i < LB_MAX_VIPS; i++)
		free(atomic_load(&st->tables[i]));
	free(atomic_load(&st->settings));
	free(atomic_load(&st->vip_addrs));
	free(atomic_load(&st->vips));
	free(st->backends);
	free(st->tables);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* Hands old (already unreachable for new readers) to QSBR. */
static void retire(struct lb_engine_state *st, void *old)
{
	if (!old)
		return;
	__u64 g = atomic_fetch_add(&st->gp, 1) + 1;

	pthread_mutex_lock(&st->lock);
	if (st->nretired == st->capretired) {
		__u32 cap = st->capretired ? st->capretired * 2 : 64;
		struct lb_retired *grown = realloc(st->retired, cap * sizeof(*grown));

		if (!grown) {
			/* Out of memory: leaking beats freeing under a reader. */
			pthread_mutex_unlock(&st->lock);
			return;
		}
		st->retired = grown;
		st->capretired = cap;
	}
	st->retired[st->nretired++] = (struct lb_retired){ old, g };
	pthread_mutex_unlock(&st->lock);
	lb_engine_state_reclaim(st);
}

void lb_engine_state_reclaim(struct lb_engine_state *st)
{
	__u64 min = UINT64_MAX;

	pthread_mutex_lock(&st->lock);
	for (int i = 0; i < LB_ENGINE_MAX_RUNNERS; i++) {
		__u64 s = atomic_load(&st->seen[i]);

		if (s && s < min)
			min = s;
	}
	__u32 kept = 0;

	for (__u32 i = 0; i < st->nretired; i++) {
		if (st->retired[i].gp <= min)
			free(st->retired[i].ptr);
		else
			st->retired[kept++] = st->retired[i];
	}
	st->nretired = kept;
	pthread_mutex_unlock(&st->lock);
}

int lb_engine_map_sizes(int map, __u32 *key_size, __u32 *value_size)
{
	static const __u32 sizes[LB_EM_MAPS][2] = {
		[LB_EM_SETTINGS] = { 4, sizeof(struct lb_settings) },
		[LB_EM_VIP_ADDRS] = { sizeof(struct lb_vip_addr_key), sizeof(struct lb_vip_addr) },
		[LB_EM_VIPS] = { sizeof(struct lb_vip_key), sizeof(struct lb_vip) },
		[LB_EM_BACKENDS] = { 4, sizeof(struct lb_backend) },
		[LB_EM_FLOWS] = { sizeof(struct lb_flow_key), sizeof(struct lb_flow) },
		[LB_EM_VIP_STATS] = { 4, sizeof(struct lb_traffic) },
		[LB_EM_BACKEND_STATS] = { 4, sizeof(struct lb_traffic) },
		[LB_EM_COUNTERS] = { 4, 8 },
	};

	if (map < 0 || map >= LB_EM_MAPS)
		return -EINVAL;
	*key_size = sizes[map][0];
	*value_size = sizes[map][1];
	return 0;
}

static void *dup_bytes(const void *src, size_t n)
{
	void *p = malloc(n);

	if (p)
		memcpy(p, src, n);
	return p;
}

static int update_hash(struct lb_engine_state *st, _Atomic(struct lb_us_hash *) *slot, int map,
		       const void *key, const void *value)
{
	__u32 ks, vs;

	lb_engine_map_sizes(map, &ks, &vs);
	struct lb_us_hash *old = atomic_load(slot);

	if (value && (old ? old->count : 0) >= LB_MAX_VIPS && !hash_find(old, key))
		return -E2BIG;
	struct lb_us_hash *h = hash_with(old, ks, vs, key, value);

	if (!h)
		return -ENOMEM;
	atomic_store(slot, h);
	retire(st, old);
	return 0;
}

static __u32 key_u32(const void *key)
{
	__u32 k;

	memcpy(&k, key, 4);
	return k;
}

int lb_engine_state_update(struct lb_engine_state *st, int map, const void *key, const void *value)
{
	__u32 k;
	void *copy, *old;

	switch (map) {
	case LB_EM_SETTINGS:
		if (key_u32(key) != 0)
			return -E2BIG;
		copy = dup_bytes(value, sizeof(struct lb_settings));
		if (!copy)
			return -ENOMEM;
		old = atomic_exchange(&st->settings, copy);
		retire(st, old);
		return 0;
	case LB_EM_VIP_ADDRS:
		return update_hash(st, &st->vip_addrs, map, key, value);
	case LB_EM_VIPS:
		return update_hash(st, &st->vips, map, key, value);
	case LB_EM_BACKENDS:
		k = key_u32(key);
		if (k >= LB_MAX_BACKENDS)
			return -E2BIG;
		copy = dup_bytes(value, sizeof(struct lb_backend));
		if (!copy)
			return -ENOMEM;
		old = atomic_exchange(&st->backends[k], copy);
		retire(st, old);
		return 0;
	}
	return -EINVAL;
}

int lb_engine_state_delete(struct lb_engine_state *st, int map, const void *key)
{
	switch (map) {
	case LB_EM_VIP_ADDRS:
		if (!hash_find(atomic_load(&st->vip_addrs), key))
			return -ENOENT;
		return update_hash(st, &st->vip_addrs, map, key, NULL);
	case LB_EM_VIPS:
		if (!hash_find(atomic_load(&st->vips), key))
			return -ENOENT;
		return update_hash(st, &st->vips, map, key, NULL);
	}
	return -EINVAL; /* arrays: entries cannot be deleted, as in the kernel */
}

int lb_engine_state_lookup(struct lb_engine_state *st, int map, const void *key, void *value_out)
{
	const void *v = NULL;
	__u32 ks, vs, k;

	if (lb_engine_map_sizes(map, &ks, &vs))
		return -EINVAL;
	switch (map) {
	case LB_EM_SETTINGS:
		if (key_u32(key) != 0)
			return -ENOENT;
		v = atomic_load(&st->settings);
		break;
	case LB_EM_VIP_ADDRS:
		v = hash_find(atomic_load(&st->vip_addrs), key);
		break;
	case LB_EM_VIPS:
		v = hash_find(atomic_load(&st->vips), key);
		break;
	case LB_EM_BACKENDS:
		k = key_u32(key);
		if (k >= LB_MAX_BACKENDS)
			return -ENOENT;
		v = atomic_load(&st->backends[k]);
		if (!v)
			v = &lb_zero_backend;
		break;
	default:
		return -EINVAL;
	}
	if (!v)
		return -ENOENT;
	memcpy(value_out, v, vs);
	return 0;
}

int lb_engine_state_table(struct lb_engine_state *st, __u32 vip_id, const __u32 *slots, __u32 n)
{
	struct lb_us_table *t = NULL, *old;

	if (vip_id >= LB_MAX_VIPS || n > LB_MAGLEV_SIZE_MAX)
		return -E2BIG;
	if (n) {
		t = malloc(sizeof(*t) + (size_t)n * 4);
		if (!t)
			return -ENOMEM;
		t->size = n;
		memcpy(t->slots, slots, (size_t)n * 4);
	}
	old = atomic_exchange(&st->tables[vip_id], t);
	retire(st, old);
	return 0;
}

int lb_engine_state_read_table(struct lb_engine_state *st, __u32 vip_id, __u32 *out, __u32 cap)
{
	struct lb_us_table *t;

	if (vip_id >= LB_MAX_VIPS)
		return -E2BIG;
	t = atomic_load(&st->tables[vip_id]);
	if (!t)
		return -ENOENT;
	memcpy(out, t->slots, (size_t)(t->size < cap ? t->size : cap) * 4);
	return (int)t->size;
}

/* The slot of a stats map's key in one runner's stats, NULL past the end. */
static void *stats_slot(const struct lb_engine_stats *stats, int map, const void *key, __u32 *size)
{
	__u32 k = key_u32(key);

	switch (map) {
	case LB_EM_VIP_STATS:
		*size = sizeof(struct lb_traffic);
		return k < LB_MAX_VIPS ? (void *)&stats->vips[k] : NULL;
	case LB_EM_BACKEND_STATS:
		*size = sizeof(struct lb_traffic);
		return k < LB_MAX_BACKENDS ? (void *)&stats->backends[k] : NULL;
	case LB_EM_COUNTERS:
		*size = 8;
		return k < LB_COUNTERS_SIZE ? (void *)&stats->counters[k] : NULL;
	}
	return NULL;
}

int lb_engine_stats_read(const struct lb_engine_stats *stats, int map, const void *key, void *value_out)
{
	__u32 size;
	void *slot = stats_slot(stats, map, key, &size);

	if (!slot)
		return map >= LB_EM_VIP_STATS && map < LB_EM_MAPS ? -ENOENT : -EINVAL;
	memcpy(value_out, slot, size);
	return 0;
}

int lb_engine_stats_write(struct lb_engine_stats *stats, int map, const void *key, const void *value)
{
	__u32 size;
	void *slot = stats_slot(stats, map, key, &size);

	if (!slot)
		return map >= LB_EM_VIP_STATS && map < LB_EM_MAPS ? -E2BIG : -EINVAL;
	memcpy(slot, value, size);
	return 0;
}

/* ---- the runner's flow table: LRU hash over a node pool ----------------------------------- */

#define LB_NIL 0xffffffffu

struct lb_flow_node {
	struct lb_flow_key key;
	struct lb_flow value;
	__u32 hnext; /* bucket chain */
	__u32 prev;  /* LRU list: head = most recent */
	__u32 next;
};

struct lb_flows {
	__u32 cap;
	__u32 mask;
	__u32 count;
	__u32 used;      /* nodes handed out so far (bump allocation keeps RSS to what is used) */
	__u32 free_head; /* chain (through hnext) of deleted nodes */
	__u32 head, tail;
	__u32 *buckets;
	struct lb_flow_node *nodes;
};

struct lb_engine_runner {
	struct lb_engine_state *st;
	int slot;
	struct lb_engine_stats *stats;
	struct lb_engine_result *res; /* the decision being made */
	struct lb_flows flows;
};

static __u32 flow_bucket(const struct lb_flows *f, const struct lb_flow_key *key)
{
	const __u32 *w = (const __u32 *)key;

	return lb_jhash_9words(w, w[9]) & f->mask;
}

static void lru_unlink(struct lb_flows *f, __u32 i)
{
	struct lb_flow_node *n = &f->nodes[i];

	if (n->prev != LB_NIL)
		f->nodes[n->prev].next = n->next;
	else
		f->head = n->next;
	if (n->next != LB_NIL)
		f->nodes[n->next].prev = n->prev;
	else
		f->tail = n->prev;
}

static void lru_push_head(struct lb_flows *f, __u32 i)
{
	struct lb_flow_node *n = &f->nodes[i];

	n->prev = LB_NIL;
	n->next = f->head;
	if (f->head != LB_NIL)
		f->nodes[f->head].prev = i;
	f->head = i;
	if (f->tail == LB_NIL)
		f->tail = i;
}

/* Node index of key, LB_NIL if absent; *link: the pointer that names it in its chain. */
static __u32 flow_find(struct lb_flows *f, const struct lb_flow_key *key, __u32 **link)
{
	__u32 *l = &f->buckets[flow_bucket(f, key)];

	while (*l != LB_NIL) {
		if (!memcmp(&f->nodes[*l].key, key, sizeof(*key))) {
			if (link)
				*link = l;
			return *l;
		}
		l = &f->nodes[*l].hnext;
	}
	return LB_NIL;
}

static void flow_remove(struct lb_flows *f, __u32 i, __u32 *link)
{
	*link = f->nodes[i].hnext;
	lru_unlink(f, i);
	f->nodes[i].hnext = f->free_head;
	f->free_head = i;
	f->count--;
}

static int flows_init(struct lb_flows *f, __u32 cap)
{
	__u32 nb = 16;

	if (!cap)
		return -EINVAL;
	while (nb < cap)
		nb <<= 1;
	f->cap = cap;
	f->mask = nb - 1;
	f->head = f->tail = f->free_head = LB_NIL;
	f->buckets = malloc((size_t)nb * 4);
	/* calloc of a large block maps fresh pages: untouched nodes cost no memory. */
	f->nodes = calloc(cap, sizeof(*f->nodes));
	if (!f->buckets || !f->nodes)
		return -ENOMEM;
	memset(f->buckets, 0xff, (size_t)nb * 4);
	return 0;
}

static struct lb_flow *flows_lookup(struct lb_flows *f, const struct lb_flow_key *key)
{
	__u32 i = flow_find(f, key, NULL);

	if (i == LB_NIL)
		return NULL;
	lru_unlink(f, i);
	lru_push_head(f, i);
	return &f->nodes[i].value;
}

static void flows_update(struct lb_flows *f, const struct lb_flow_key *key, const struct lb_flow *value)
{
	__u32 *link = NULL, i = flow_find(f, key, &link);

	if (i != LB_NIL) {
		f->nodes[i].value = *value;
		lru_unlink(f, i);
		lru_push_head(f, i);
		return;
	}
	if (f->count >= f->cap) {
		/* Full: the least recently used entry goes (what an LRU map does). */
		__u32 old = f->tail;

		flow_find(f, &f->nodes[old].key, &link);
		flow_remove(f, old, link);
	}
	if (f->free_head != LB_NIL) {
		i = f->free_head;
		f->free_head = f->nodes[i].hnext;
	} else {
		i = f->used++;
	}
	struct lb_flow_node *n = &f->nodes[i];
	__u32 b = flow_bucket(f, key);

	n->key = *key;
	n->value = *value;
	n->hnext = f->buckets[b];
	f->buckets[b] = i;
	lru_push_head(f, i);
	f->count++;
}

/* ---- runners -------------------------------------------------------------------------------- */

struct lb_engine_runner *lb_engine_runner_new(struct lb_engine_state *st, __u32 flow_table_size,
					      struct lb_engine_stats *stats)
{
	struct lb_engine_runner *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->st = st;
	r->stats = stats;
	r->slot = -1;
	if (flows_init(&r->flows, flow_table_size)) {
		lb_engine_runner_free(r);
		return NULL;
	}
	pthread_mutex_lock(&st->lock);
	for (int i = 0; i < LB_ENGINE_MAX_RUNNERS; i++) {
		if (!atomic_load(&st->used[i])) {
			atomic_store(&st->used[i], 1);
			r->slot = i;
			break;
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (r->slot < 0) {
		lb_engine_runner_free(r);
		return NULL;
	}
	return r;
}

void lb_engine_runner_free(struct lb_engine_runner *r)
{
	if (!r)
		return;
	if (r->slot >= 0) {
		atomic_store(&r->st->seen[r->slot], 0);
		atomic_store(&r->st->used[r->slot], 0);
	}
	free(r->flows.buckets);
	free(r->flows.nodes);
	free(r);
}

void lb_engine_runner_quiescent(struct lb_engine_runner *r)
{
	atomic_store(&r->st->seen[r->slot], atomic_load(&r->st->gp));
}

void lb_engine_runner_offline(struct lb_engine_runner *r)
{
	atomic_store(&r->st->seen[r->slot], 0);
}

/* ---- lookups and counting for the shared headers --------------------------------------------- */

static struct lb_vip_addr *lb_us_lookup_lb_vip_addrs(const struct lb_vip_addr_key *key)
{
	return hash_find(atomic_load_explicit(&lb_cur->st->vip_addrs, memory_order_acquire), key);
}

static struct lb_vip *lb_us_lookup_lb_vips(const struct lb_vip_key *key)
{
	return hash_find(atomic_load_explicit(&lb_cur->st->vips, memory_order_acquire), key);
}

static struct lb_backend *lb_us_lookup_lb_backends(const __u32 *index)
{
	struct lb_backend *b;

	if (*index >= LB_MAX_BACKENDS)
		return NULL;
	b = atomic_load_explicit(&lb_cur->st->backends[*index], memory_order_acquire);
	return b ? b : (struct lb_backend *)&lb_zero_backend;
}

static struct lb_flow *lb_us_lookup_lb_flows(const struct lb_flow_key *key)
{
	return flows_lookup(&lb_cur->flows, key);
}

static struct lb_us_table *lb_us_lookup_lb_tables(const __u32 *vip_id)
{
	if (*vip_id >= LB_MAX_VIPS)
		return NULL;
	return atomic_load_explicit(&lb_cur->st->tables[*vip_id], memory_order_acquire);
}

static __u32 *lb_us_table_slot(const struct lb_us_table *table, const __u32 *slot)
{
	if (*slot >= table->size)
		return NULL;
	return (__u32 *)&table->slots[*slot];
}

static void lb_count(__u32 counter)
{
	struct lb_engine_result *res = lb_cur->res;

	if (counter < LB_COUNTERS_SIZE)
		lb_cur->stats->counters[counter]++;
	if (res->ncounted < LB_ENGINE_MAX_COUNTED)
		res->counted[res->ncounted++] = counter;
}

/* ---- the decision ------------------------------------------------------------------------------ */

static int us_pass(struct lb_engine_result *res, __u32 reason_counter)
{
	lb_count(reason_counter);
	lb_count(LB_C_PASS);
	res->action = LB_ENGINE_PASS;
	return 0;
}

static int us_drop(struct lb_engine_result *res, __u32 reason)
{
	lb_count(LB_C_DROP_BASE + reason);
	lb_count(LB_C_DROP);
	res->action = LB_ENGINE_DROP;
	return 0;
}

static void count_traffic(struct lb_traffic *t, __u32 bytes)
{
	t->packets++;
	t->bytes += bytes;
}

/* The encapsulated frame in out: [new L2][outer IP + UDP][client IP packet]. The XDP program
 * gets the same by trimming the tail to the IP packet and growing the head by `overhead`. */
static int us_encap(const __u8 *frame, const struct lb_pkt *pkt, const struct lb_backend *backend,
		    const struct lb_settings *settings, __u32 hash, __u8 *out, __u32 *out_len)
{
	__u32 l2 = lb_l2_len(pkt);
	__u32 overhead = backend->family == LB_AF_INET ? LB_ENCAP_V4_OVERHEAD : LB_ENCAP_V6_OVERHEAD;
	__u32 total = overhead + l2 + pkt->l3_len;
	struct udphdr udp = {};

	memcpy(out + overhead, frame, l2 + pkt->l3_len);
	if (lb_write_l2(out, out + total, pkt, backend, overhead,
			bpf_htons(backend->family == LB_AF_INET ? ETH_P_IP : ETH_P_IPV6)))
		return LB_DROP_ENCAP;
	if (backend->family == LB_AF_INET) {
		struct iphdr outer = {};

		lb_outer_v4(pkt, backend, settings, hash, &outer, &udp);
		memcpy(out + l2, &outer, sizeof(outer));
		memcpy(out + l2 + sizeof(outer), &udp, sizeof(udp));
	} else {
		struct ipv6hdr outer = {};

		lb_outer_v6(pkt, backend, settings, hash, &outer, &udp);
		memcpy(out + l2, &outer, sizeof(outer));
		memcpy(out + l2 + sizeof(outer), &udp, sizeof(udp));
	}
	*out_len = total;
	return 0;
}

static int decide(struct lb_engine_runner *r, const __u8 *frame, __u32 len, __u32 ingress_ifindex,
		  __u8 *out, struct lb_engine_result *res)
{
	struct lb_engine_state *st = r->st;
	struct lb_settings *settings;
	struct lb_backend *backend;
	struct lb_pkt pkt = {};
	struct lb_flow flow = {};
	struct lb_vip *vip;
	__u32 overhead;
	int ret, is_new;

	lb_count(LB_C_RX);
	ret = lb_parse((void *)frame, (void *)(frame + len), &pkt);
	if (ret < 0)
		return us_pass(res, -ret);
	if (ret > 0)
		return us_drop(res, ret);
	vip = lb_lookup_vip(&pkt);
	if (!vip)
		return us_pass(res, LB_C_PASS_NOT_VIP);
	if (vip->vip_id < LB_MAX_VIPS) {
		count_traffic(&r->stats->vips[vip->vip_id], len);
		res->vip_id = vip->vip_id;
	}

	settings = atomic_load_explicit(&st->settings, memory_order_acquire);
	if (!settings->maglev_size)
		return us_drop(res, LB_DROP_NOT_CONFIGURED);
	backend = lb_select(&pkt, vip, settings, &flow, &is_new);
	if (!backend)
		return us_drop(res, LB_DROP_NO_BACKEND);
	if (!(backend->flags & LB_BACKEND_F_NEIGH))
		return us_pass(res, LB_C_NO_NEIGH);

	if (backend->family == LB_AF_INET) {
		if (!(settings->flags & LB_SETTINGS_F_HAVE_V4))
			return us_drop(res, LB_DROP_NO_SOURCE);
		overhead = LB_ENCAP_V4_OVERHEAD;
	} else {
		if (!(settings->flags & LB_SETTINGS_F_HAVE_V6))
			return us_drop(res, LB_DROP_NO_SOURCE);
		overhead = LB_ENCAP_V6_OVERHEAD;
	}
	if (backend->mtu && pkt.l3_len + overhead > backend->mtu)
		return us_drop(res, LB_DROP_TOO_BIG);
	if (is_new)
		flows_update(&r->flows, &pkt.key, &flow);

	ret = us_encap(frame, &pkt, backend, settings, flow.hash, out, &res->out_len);
	if (ret)
		return us_drop(res, ret);
	res->l2_len = lb_l2_len(&pkt);
	res->ifindex = backend->ifindex;
	if (flow.backend < LB_MAX_BACKENDS) {
		count_traffic(&r->stats->backends[flow.backend], len);
		res->backend = flow.backend;
	}
	if (backend->ifindex == ingress_ifindex) {
		lb_count(LB_C_TX);
		res->action = LB_ENGINE_TX;
	} else {
		lb_count(LB_C_REDIRECT);
		res->action = LB_ENGINE_REDIRECT;
	}
	return 0;
}

int lb_engine_decide(struct lb_engine_runner *r, const __u8 *frame, __u32 len, __u32 ingress_ifindex,
		     __u8 *out, __u32 out_cap, struct lb_engine_result *res)
{
	if (out_cap < len + LB_ENCAP_V6_OVERHEAD)
		return -ENOSPC;
	memset(res, 0, sizeof(*res));
	res->vip_id = LB_NO_BACKEND;
	res->backend = LB_NO_BACKEND;
	res->frame_len = len;
	r->res = res;
	lb_cur = r;
	decide(r, frame, len, ingress_ifindex, out, res);
	lb_cur = NULL;
	if (res->action != LB_ENGINE_TX && res->action != LB_ENGINE_REDIRECT) {
		memcpy(out, frame, len);
		res->out_len = len;
	}
	return (int)res->action;
}

int lb_engine_flow_lookup(struct lb_engine_runner *r, const void *key, void *value_out)
{
	struct lb_flow_key k;
	__u32 i;

	memcpy(&k, key, sizeof(k));
	i = flow_find(&r->flows, &k, NULL);
	if (i == LB_NIL)
		return -ENOENT;
	memcpy(value_out, &r->flows.nodes[i].value, sizeof(struct lb_flow));
	return 0;
}

int lb_engine_flow_update(struct lb_engine_runner *r, const void *key, const void *value)
{
	struct lb_flow_key k;
	struct lb_flow v;

	memcpy(&k, key, sizeof(k));
	memcpy(&v, value, sizeof(v));
	flows_update(&r->flows, &k, &v);
	return 0;
}

int lb_engine_flow_delete(struct lb_engine_runner *r, const void *key)
{
	struct lb_flow_key k;
	__u32 *link, i;

	memcpy(&k, key, sizeof(k));
	i = flow_find(&r->flows, &k, &link);
	if (i == LB_NIL)
		return -ENOENT;
	flow_remove(&r->flows, i, link);
	return 0;
}

__u32 lb_engine_flow_count(struct lb_engine_runner *r)
{
	return r->flows.count;
}
