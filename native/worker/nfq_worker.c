// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * caplance-nfq: the NFQUEUE data path, a process of its own supervised by the daemon
 * (src/dataplane/nfq-worker.ts). One packet thread per queue (iptables --queue-balance spreads
 * flows over them by address hash, so a flow stays on one thread and its flow table), each
 * running the userspace engine (native/lb_engine.h) with its own flow table and counters.
 *
 * Per packet: the engine's decision on the L3 packet behind a synthetic Ethernet header (so
 * counters and bytes match XDP's); TX/REDIRECT -> the outer IP packet goes out through a raw
 * socket (IP_HDRINCL / IPV6_HDRINCL: DF and ID 0 as written, routing and neighbours left to
 * the kernel) and the original gets DROP; PASS -> ACCEPT; DROP -> DROP. Verdicts are given in
 * batches (nfq_set_verdict_batch over runs of equal verdicts).
 *
 * Control: the daemon writes state messages on stdin (struct lb_wmsg); EOF ends the worker.
 * Counters: the stats file (--stats), mmapped, one struct lb_engine_stats per packet thread
 * after a header, read by the daemon like a per-CPU map.
 *
 * Usage: caplance-nfq --queues FIRST:COUNT --stats FILE [--flow-table N] [--floor]
 *
 * --floor (bench/nfq-bench.ts): the same queues, batches and raw sockets, but every packet is
 * sent out unchanged and dropped, with no parsing and no engine: the baseline of nfq_pps.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libnetfilter_queue/libnetfilter_queue.h>

#include "lb_engine.h"

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36
#endif

#define LB_NFQ_BATCH 64
#define LB_NFQ_RCVBUF (32u << 20)
#define LB_NFQ_SNDBUF (8u << 20)
#define LB_NFQ_MAXLEN 65536
#define LB_NFQ_BUF 70000

/* Control messages (stdin), host order. Payload follows the header. */
struct lb_wmsg {
	__u32 len;   /* payload bytes */
	__u16 op;    /* LB_WOP_* */
	__u16 map;   /* enum lb_engine_map */
	__u32 count; /* entries (UPDATE) or slots (TABLE) */
	__u32 arg;   /* TABLE: vip_id */
};
#define LB_WOP_UPDATE 1 /* count keys, then count values */
#define LB_WOP_DELETE 2 /* one key */
#define LB_WOP_TABLE 3  /* count __u32 slots (0: remove) for vip_id arg */
#define LB_WOP_SYNC 4   /* reply "sync <arg>\n" on stdout once everything before it is applied */

/* Stats file: header, then one struct lb_engine_stats per thread (page aligned). */
#define LB_STATS_MAGIC 0x31514e46504c4143ull /* "CAPLNFQ1" */
struct lb_stats_header {
	__u64 magic;
	__u32 runners;
	__u32 header_size; /* offset of the first runner's stats */
	__u64 stats_size;  /* sizeof(struct lb_engine_stats) */
	/* Worker counters per runner (index = thread), beside the engine's. */
	struct {
		__u64 packets;   /* packets received from the queue */
		__u64 batches;   /* verdict batches sent */
		__u64 enobufs;   /* recv ENOBUFS: the kernel dropped queued packets */
		__u64 send_err;  /* raw socket send failures */
		__u64 verdict_err;
		__u64 pad[3];
	} worker[64];
};
#define LB_STATS_HEADER_SIZE 8192

struct runner_ctx {
	int index;
	__u16 queue;
	struct lb_engine_runner *runner;
	struct nfq_handle *h;
	struct nfq_q_handle *qh;
	int raw4, raw6;
	/* pending verdict run */
	__u32 pend_id;
	int pend_verdict;
	int have_pend;
	__u8 frame[LB_NFQ_BUF + 64];
	__u8 out[LB_NFQ_BUF + 128];
};

static struct lb_engine_state *state;
static struct lb_stats_header *hdr;
static int floor_mode;

static void die(const char *what)
{
	fprintf(stderr, "caplance-nfq: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void flush_verdicts(struct runner_ctx *c)
{
	if (!c->have_pend)
		return;
	if (nfq_set_verdict_batch(c->qh, c->pend_id, c->pend_verdict) < 0)
		hdr->worker[c->index].verdict_err++;
	hdr->worker[c->index].batches++;
	c->have_pend = 0;
}

static void verdict(struct runner_ctx *c, __u32 id, int v)
{
	if (c->have_pend && c->pend_verdict != v)
		flush_verdicts(c);
	c->pend_id = id;
	c->pend_verdict = v;
	c->have_pend = 1;
}

static void send_outer(struct runner_ctx *c, const __u8 *ip, __u32 len)
{
	ssize_t n;

	if ((ip[0] >> 4) == 4) {
		struct sockaddr_in to = { .sin_family = AF_INET };

		memcpy(&to.sin_addr, ip + 16, 4);
		n = sendto(c->raw4, ip, len, 0, (struct sockaddr *)&to, sizeof(to));
	} else {
		struct sockaddr_in6 to = { .sin6_family = AF_INET6 };

		memcpy(&to.sin6_addr, ip + 24, 16);
		n = sendto(c->raw6, ip, len, 0, (struct sockaddr *)&to, sizeof(to));
	}
	if (n < 0)
		hdr->worker[c->index].send_err++;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data)
{
	struct runner_ctx *c = data;
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
	struct lb_engine_result res;
	unsigned char *payload;
	int len;
	__u32 id;

	(void)qh;
	(void)msg;
	if (!ph)
		return 0;
	id = ntohl(ph->packet_id);
	hdr->worker[c->index].packets++;
	len = nfq_get_payload(nfa, &payload);
	if (len <= 0 || len > LB_NFQ_BUF) {
		verdict(c, id, NF_ACCEPT);
		return 0;
	}
	if (floor_mode) {
		send_outer(c, payload, (__u32)len);
		verdict(c, id, NF_DROP);
		return 0;
	}
	/* Synthetic Ethernet header: the engine parses frames, and counts bytes as XDP does. */
	memset(c->frame, 0, 12);
	c->frame[12] = (payload[0] >> 4) == 6 ? 0x86 : 0x08;
	c->frame[13] = (payload[0] >> 4) == 6 ? 0xdd : 0x00;
	memcpy(c->frame + 14, payload, len);
	lb_engine_decide(c->runner, c->frame, (__u32)len + 14, nfq_get_indev(nfa), c->out,
			 sizeof(c->out), &res);
	switch (res.action) {
	case LB_ENGINE_TX:
	case LB_ENGINE_REDIRECT:
		send_outer(c, c->out + res.l2_len, res.out_len - res.l2_len);
		verdict(c, id, NF_DROP);
		break;
	case LB_ENGINE_PASS:
		verdict(c, id, NF_ACCEPT);
		break;
	default:
		verdict(c, id, NF_DROP);
	}
	return 0;
}

static int open_raw(int family)
{
	int one = 1, buf = LB_NFQ_SNDBUF;
	int fd = socket(family, SOCK_RAW, IPPROTO_RAW); /* IPPROTO_RAW implies header included */

	if (fd < 0)
		die(family == AF_INET ? "raw IPv4 socket" : "raw IPv6 socket");
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_HDRINCL, &one, sizeof(one));
	else
		setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	return fd;
}

static void *packet_thread(void *arg)
{
	struct runner_ctx *c = arg;
	static __thread char buf[LB_NFQ_BUF + 4096] __attribute__((aligned(8)));
	int fd = nfq_fd(c->h);

	for (;;) {
		lb_engine_runner_offline(c->runner);
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		lb_engine_runner_quiescent(c->runner);
		/* Up to LB_NFQ_BATCH messages per batch, every one received also handled: a message
		 * received and left unhandled would get the next batch's verdict, unseen (or none). */
		for (int i = 0;;) {
			if (n < 0) {
				if (errno == ENOBUFS)
					hdr->worker[c->index].enobufs++;
				else if (errno != EINTR && errno != EAGAIN)
					die("queue recv");
				break;
			}
			nfq_handle_packet(c->h, buf, (int)n);
			if (++i == LB_NFQ_BATCH)
				break;
			n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		}
		flush_verdicts(c);
	}
	return NULL;
}

static void setup_runner(struct runner_ctx *c, __u32 flow_table, struct lb_engine_stats *stats)
{
	c->runner = lb_engine_runner_new(state, flow_table, stats);
	if (!c->runner)
		die("engine runner");
	c->h = nfq_open();
	if (!c->h)
		die("nfq_open (is nfnetlink_queue available? modprobe nfnetlink_queue)");
	c->qh = nfq_create_queue(c->h, c->queue, on_packet, c);
	if (!c->qh) {
		fprintf(stderr, "caplance-nfq: queue %u: bind failed (another process owns it?): %s\n",
			c->queue, strerror(errno));
		exit(1);
	}
	if (nfq_set_mode(c->qh, NFQNL_COPY_PACKET, 0xffff) < 0)
		die("nfq_set_mode");
	nfq_set_queue_maxlen(c->qh, LB_NFQ_MAXLEN);
	nfnl_rcvbufsiz(nfq_nfnlh(c->h), LB_NFQ_RCVBUF);
	/* ENOBUFS is counted, not fatal: ask netlink to report it rather than stay silent. */
	setsockopt(nfq_fd(c->h), SOL_NETLINK, NETLINK_NO_ENOBUFS, &(int){ 0 }, sizeof(int));
	c->raw4 = open_raw(AF_INET);
	c->raw6 = open_raw(AF_INET6);
}

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 1;
}

/* Applies control messages from stdin until EOF. */
static void control_loop(void)
{
	struct lb_wmsg m;
	__u8 *payload = NULL;
	size_t cap = 0;

	for (;;) {
		if (read_full(0, &m, sizeof(m)) <= 0)
			return;
		if (m.len > (64u << 20)) {
			fprintf(stderr, "caplance-nfq: control message of %u bytes refused\n", m.len);
			exit(1);
		}
		if (m.len > cap) {
			cap = m.len;
			payload = realloc(payload, cap);
			if (!payload)
				die("control buffer");
		}
		if (m.len && read_full(0, payload, m.len) <= 0)
			return;
		__u32 ks = 0, vs = 0;
		int ret = 0;

		switch (m.op) {
		case LB_WOP_UPDATE:
			if (lb_engine_map_sizes(m.map, &ks, &vs) || (size_t)m.count * (ks + vs) != m.len) {
				ret = -EINVAL;
				break;
			}
			for (__u32 i = 0; i < m.count && !ret; i++)
				ret = lb_engine_state_update(state, m.map, payload + (size_t)i * ks,
							     payload + (size_t)m.count * ks + (size_t)i * vs);
			break;
		case LB_WOP_DELETE:
			ret = lb_engine_state_delete(state, m.map, payload);
			if (ret == -ENOENT)
				ret = 0;
			break;
		case LB_WOP_TABLE:
			if ((size_t)m.count * 4 != m.len) {
				ret = -EINVAL;
				break;
			}
			ret = lb_engine_state_table(state, m.arg, (const __u32 *)payload, m.count);
			break;
		case LB_WOP_SYNC:
			printf("sync %u\n", m.arg);
			fflush(stdout);
			break;
		default:
			ret = -EINVAL;
		}
		if (ret)
			fprintf(stderr, "caplance-nfq: control op %u map %u: %s\n", m.op, m.map, strerror(-ret));
		lb_engine_state_reclaim(state);
	}
}

int main(int argc, char **argv)
{
	unsigned first = 0, count = 1, flow_table = LB_FLOW_TABLE_SIZE;
	const char *stats_path = NULL;

	for (int i = 1; i < argc; i += 2) {
		if (!strcmp(argv[i], "--floor")) {
			floor_mode = 1;
			i--; /* a flag: no value */
		} else if (i + 1 >= argc)
			break;
		else if (!strcmp(argv[i], "--queues"))
			sscanf(argv[i + 1], "%u:%u", &first, &count);
		else if (!strcmp(argv[i], "--stats"))
			stats_path = argv[i + 1];
		else if (!strcmp(argv[i], "--flow-table"))
			flow_table = (unsigned)strtoul(argv[i + 1], NULL, 10);
	}
	if (!stats_path || count == 0 || count > 64 || first + count > 65536) {
		fprintf(stderr,
			"usage: caplance-nfq --queues FIRST:COUNT(<=64) --stats FILE [--flow-table N] [--floor]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	/* Stats file: kept across restarts when the layout matches, so counters survive. */
	size_t size = LB_STATS_HEADER_SIZE + (size_t)count * sizeof(struct lb_engine_stats);
	int sfd = open(stats_path, O_RDWR | O_CREAT, 0644);
	struct stat sb;

	if (sfd < 0 || fstat(sfd, &sb))
		die(stats_path);
	if ((size_t)sb.st_size != size && ftruncate(sfd, 0))
		die("stats file truncate");
	if (ftruncate(sfd, (off_t)size))
		die("stats file size");
	hdr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	if (hdr == MAP_FAILED)
		die("stats file mmap");
	hdr->magic = LB_STATS_MAGIC;
	hdr->runners = count;
	hdr->header_size = LB_STATS_HEADER_SIZE;
	hdr->stats_size = sizeof(struct lb_engine_stats);

	state = lb_engine_state_new();
	if (!state)
		die("engine state");
	struct runner_ctx *ctx = calloc(count, sizeof(*ctx));

	if (!ctx)
		die("runners");
	for (unsigned i = 0; i < count; i++) {
		ctx[i].index = (int)i;
		ctx[i].queue = (__u16)(first + i);
		setup_runner(&ctx[i], flow_table,
			     (struct lb_engine_stats *)((__u8 *)hdr + LB_STATS_HEADER_SIZE +
							 i * sizeof(struct lb_engine_stats)));
	}
	for (unsigned i = 0; i < count; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, packet_thread, &ctx[i]))
			die("packet thread");
		pthread_detach(t);
	}
	printf("ready %u:%u\n", first, count);
	fflush(stdout);
	control_loop();
	/* stdin closed: the daemon is gone or stopping us. Queue bypass takes over (fail open). */
	return 0;
}
