// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * caplance-tun: the backend's userspace decapsulator, where lb_decap (XDP) cannot attach. The
 * kernel receives the encapsulated UDP (DESIGN.md wire format) on the encap port and strips the
 * outer IP/UDP headers; this process checks each payload (native/tun_decide.h) and writes the
 * inner IP packet into a TUN device, whose receive path delivers it to the VIP on lo. Anything
 * else is dropped and counted by reason, never written. Supervised by src/dataplane/tun-decap.ts.
 *
 * Usage: caplance-tun --tun NAME --listen ADDR [--listen ADDR …] [--port P] [--vip ADDR …]
 *                     [--batch N] [--stats-interval MS] [--rcvbuf BYTES]
 *   --tun       an existing TUN device (IFF_TUN | IFF_NO_PI; `ip tuntap add dev NAME mode tun`)
 *   --listen    a local address to receive on (0.0.0.0 / :: for every address of the family)
 *   --vip       write only inner packets to these destinations (default: any destination)
 * Output (stdout, one line each): "ready …" once the sockets and the device are open, then the
 * counters as one JSON object every --stats-interval ms (default 1000, 0: never), on SIGUSR1, and
 * on exit. SIGTERM/SIGINT end it (exit 0); so does the death of its parent (PR_SET_PDEATHSIG).
 * Exit 1: a socket or the device could not be opened (the reason on stderr); 2: usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tun_decide.h"

#ifndef UDP_NO_CHECK6_RX
#define UDP_NO_CHECK6_RX 102
#endif

#define LB_TUN_MAX_LISTEN 8
#define LB_TUN_MAX_VIPS 4096
#define LB_TUN_MAX_BATCH 1024
#define LB_TUN_BUF 65536        /* a datagram's largest payload, rounded up */
#define LB_TUN_ROUNDS 16        /* batches per socket per wake-up: the others get their turn */
#define LB_TUN_RCVBUF (8u << 20) /* absorbs bursts while the process is off the CPU */

struct listener {
	int fd;
	__u32 drops; /* SO_RXQ_OVFL: the kernel's count of datagrams it dropped on this socket */
};

struct counters {
	__u64 rx;
	__u64 reasons[LB_TUN_REASONS]; /* [LB_TUN_DECAP] = written */
	__u64 batches;
};

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t report_requested;

static struct counters cnt;
static struct listener listeners[LB_TUN_MAX_LISTEN];
static int nlisteners;
static int tun_fd = -1;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		report_requested = 1;
	else
		stop_signal = sig;
}

static void usage(const char *why)
{
	fprintf(stderr,
		"caplance-tun: %s\n"
		"usage: caplance-tun --tun NAME --listen ADDR [--listen ADDR ...] [--port P] [--vip ADDR ...]\n"
		"                    [--batch N] [--stats-interval MS] [--rcvbuf BYTES]\n",
		why);
	exit(2);
}

static void fail(const char *what, const char *hint)
{
	if (hint)
		fprintf(stderr, "caplance-tun: %s: %s (%s)\n", what, strerror(errno), hint);
	else
		fprintf(stderr, "caplance-tun: %s: %s\n", what, strerror(errno));
	exit(1);
}

static unsigned long number(const char *flag, const char *text, unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || end == text || v < min || v > max) {
		char why[128];

		snprintf(why, sizeof(why), "%s %s: expected %lu..%lu", flag, text, min, max);
		usage(why);
	}
	return v;
}

/* The address as a tun_decide.h key (version, then 16 bytes); 4 or 6, 0 if not an address. */
static int parse_addr(const char *text, __u8 key[LB_TUN_KEY_SIZE])
{
	memset(key, 0, LB_TUN_KEY_SIZE);
	if (inet_pton(AF_INET, text, key + 1) == 1)
		key[0] = 4;
	else if (inet_pton(AF_INET6, text, key + 1) == 1)
		key[0] = 6;
	return key[0];
}

static void open_listener(const char *text, __u16 port, int rcvbuf)
{
	__u8 key[LB_TUN_KEY_SIZE];
	int family = parse_addr(text, key);
	int one = 1, fd;
	char what[96];

	if (!family) {
		snprintf(what, sizeof(what), "--listen %s: not an IPv4 or IPv6 address", text);
		usage(what);
	}
	fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	snprintf(what, sizeof(what), "UDP socket on %s port %u", text, port);
	if (fd < 0)
		fail(what, NULL);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
	if (family == 4) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };

		memcpy(&sa.sin_addr, key + 1, 4);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
			fail(what, errno == EADDRINUSE ? "another decapsulator on this port?" : NULL);
	} else {
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

		memcpy(&sa.sin6_addr, key + 1, 16);
		/* The outer UDP checksum is 0 (RFC 6935/6936): without this the kernel drops it. */
		if (setsockopt(fd, IPPROTO_UDP, UDP_NO_CHECK6_RX, &one, sizeof(one)))
			fail("UDP_NO_CHECK6_RX", NULL);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
			fail(what, errno == EADDRINUSE ? "another decapsulator on this port?" : NULL);
	}
	listeners[nlisteners++].fd = fd;
}

static void open_tun(const char *name)
{
	struct ifreq ifr = { 0 };
	char what[64];

	snprintf(what, sizeof(what), "TUN device %s", name);
	if (if_nametoindex(name) == 0) {
		errno = ENODEV;
		fail(what, "create it first: ip tuntap add dev NAME mode tun");
	}
	tun_fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (tun_fd < 0)
		fail("/dev/net/tun", "is the tun module available? modprobe tun");
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(tun_fd, TUNSETIFF, &ifr))
		fail(what, errno == EBUSY ? "another process holds it" : "is it a TUN device?");
}

static void print_counters(void)
{
	__u64 sock_drops = 0;

	for (int i = 0; i < nlisteners; i++)
		sock_drops += listeners[i].drops;
	printf("{\"rx\":%llu,\"decap\":%llu,\"drops\":{", (unsigned long long)cnt.rx,
	       (unsigned long long)cnt.reasons[LB_TUN_DECAP]);
	for (int r = 1; r < LB_TUN_REASONS; r++)
		printf("%s\"%s\":%llu", r > 1 ? "," : "", lb_tun_reason_name(r),
		       (unsigned long long)cnt.reasons[r]);
	printf("},\"socket_drops\":%llu,\"batches\":%llu}\n", (unsigned long long)sock_drops,
	       (unsigned long long)cnt.batches);
	fflush(stdout);
}

struct batch {
	unsigned n;
	struct mmsghdr *msgs;
	struct iovec *iov;
	__u8 *bufs;
	__u8 *ctrl; /* CMSG_SPACE(sizeof(__u32)) per message: SO_RXQ_OVFL */
	size_t ctrl_len;
};

static void batch_init(struct batch *b, unsigned n)
{
	b->n = n;
	b->ctrl_len = CMSG_SPACE(sizeof(__u32));
	b->msgs = calloc(n, sizeof(*b->msgs));
	b->iov = calloc(n, sizeof(*b->iov));
	b->bufs = malloc((size_t)n * LB_TUN_BUF);
	b->ctrl = calloc(n, b->ctrl_len);
	if (!b->msgs || !b->iov || !b->bufs || !b->ctrl) {
		errno = ENOMEM;
		fail("receive buffers", NULL);
	}
	for (unsigned i = 0; i < n; i++) {
		b->iov[i].iov_base = b->bufs + (size_t)i * LB_TUN_BUF;
		b->iov[i].iov_len = LB_TUN_BUF;
	}
}

static void batch_reset(struct batch *b)
{
	for (unsigned i = 0; i < b->n; i++) {
		struct msghdr *h = &b->msgs[i].msg_hdr;

		memset(h, 0, sizeof(*h));
		h->msg_iov = &b->iov[i];
		h->msg_iovlen = 1;
		h->msg_control = b->ctrl + i * b->ctrl_len;
		h->msg_controllen = b->ctrl_len;
	}
}

static void overflow_count(struct listener *l, struct msghdr *h)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
			memcpy(&l->drops, CMSG_DATA(c), sizeof(__u32));
}

/* Up to LB_TUN_ROUNDS batches from one socket; returns 1 if it may hold more. */
static int drain(struct listener *l, struct batch *b, const struct lb_tun_vipset *vips)
{
	for (int round = 0; round < LB_TUN_ROUNDS; round++) {
		batch_reset(b);
		int n = recvmmsg(l->fd, b->msgs, b->n, MSG_DONTWAIT, NULL);

		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				fprintf(stderr, "caplance-tun: recvmmsg: %s\n", strerror(errno));
			return 0;
		}
		cnt.batches++;
		for (int i = 0; i < n; i++) {
			struct msghdr *h = &b->msgs[i].msg_hdr;
			const __u8 *pkt = b->iov[i].iov_base;
			__u32 len = b->msgs[i].msg_len;
			enum lb_tun_reason r;

			cnt.rx++;
			if (h->msg_controllen)
				overflow_count(l, h);
			if (h->msg_flags & MSG_TRUNC)
				r = LB_TUN_OVERSIZE;
			else
				r = lb_tun_decide(pkt, len, vips);
			if (r == LB_TUN_DECAP && write(tun_fd, pkt, len) != (ssize_t)len)
				r = LB_TUN_WRITE;
			cnt.reasons[r]++;
		}
		if ((unsigned)n < b->n)
			return 0;
	}
	return 1;
}

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + (__u64)ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	const char *tun = NULL, *listen[LB_TUN_MAX_LISTEN];
	static __u8 vip_keys[LB_TUN_MAX_VIPS][LB_TUN_KEY_SIZE];
	struct lb_tun_vipset vips = { 0 };
	unsigned long port = 6080, batch_size = 64, interval = 1000, rcvbuf = LB_TUN_RCVBUF;
	int nlisten = 0;

	for (int i = 1; i < argc; i += 2) {
		const char *flag = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val)
			usage("every option takes a value");
		if (!strcmp(flag, "--tun")) {
			if (strlen(val) == 0 || strlen(val) >= IFNAMSIZ)
				usage("--tun: 1 to 15 characters");
			tun = val;
		} else if (!strcmp(flag, "--listen")) {
			if (nlisten == LB_TUN_MAX_LISTEN)
				usage("at most 8 --listen");
			listen[nlisten++] = val;
		} else if (!strcmp(flag, "--vip")) {
			if (vips.count == LB_TUN_MAX_VIPS)
				usage("at most 4096 --vip");
			if (!parse_addr(val, vip_keys[vips.count])) {
				char why[96];

				snprintf(why, sizeof(why), "--vip %s: not an IPv4 or IPv6 address", val);
				usage(why);
			}
			vips.count++;
		} else if (!strcmp(flag, "--port"))
			port = number(flag, val, 1, 65535);
		else if (!strcmp(flag, "--batch"))
			batch_size = number(flag, val, 1, LB_TUN_MAX_BATCH);
		else if (!strcmp(flag, "--stats-interval"))
			interval = number(flag, val, 0, 3600000);
		else if (!strcmp(flag, "--rcvbuf"))
			rcvbuf = number(flag, val, 4096, 1u << 30);
		else {
			char why[96];

			snprintf(why, sizeof(why), "unknown option %s", flag);
			usage(why);
		}
	}
	if (!tun)
		usage("--tun is required");
	if (nlisten == 0)
		usage("at least one --listen is required");
	lb_tun_vipset_sort(vip_keys, vips.count);
	vips.keys = (const __u8(*)[LB_TUN_KEY_SIZE])vip_keys;

	/* Signals are blocked except inside ppoll, so none is lost between a check and the wait. */
	sigset_t block, wait_mask;
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGINT);
	sigdelset(&wait_mask, SIGUSR1);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Never outlive the supervisor: a decapsulator nobody watches is not restarted or stopped. */
	pid_t parent = getppid();

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		return 0; /* it died before the prctl */

	open_tun(tun);
	for (int i = 0; i < nlisten; i++)
		open_listener(listen[i], (__u16)port, (int)rcvbuf);

	struct batch b;
	struct pollfd pfd[LB_TUN_MAX_LISTEN];

	batch_init(&b, (unsigned)batch_size);
	for (int i = 0; i < nlisteners; i++)
		pfd[i] = (struct pollfd){ .fd = listeners[i].fd, .events = POLLIN };
	printf("ready tun=%s port=%lu listeners=%d vips=%u batch=%lu\n", tun, port, nlisteners,
	       vips.count, batch_size);
	fflush(stdout);

	__u64 next_report = interval ? now_ms() + interval : 0;
	int busy = 0;

	while (!stop_signal) {
		struct timespec ts = { 0 }, *timeout = NULL;

		if (busy) {
			timeout = &ts; /* a socket may hold more: look again without sleeping */
		} else if (interval) {
			__u64 now = now_ms(), left = next_report > now ? next_report - now : 0;

			ts.tv_sec = (time_t)(left / 1000);
			ts.tv_nsec = (long)(left % 1000) * 1000000;
			timeout = &ts;
		}
		int n = ppoll(pfd, (nfds_t)nlisteners, timeout, &wait_mask);

		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "caplance-tun: ppoll: %s\n", strerror(errno));
			return 1;
		}
		busy = 0;
		for (int i = 0; n > 0 && i < nlisteners; i++)
			if (pfd[i].revents & POLLIN)
				busy |= drain(&listeners[i], &b, &vips);
		if (report_requested || (interval && now_ms() >= next_report)) {
			report_requested = 0;
			if (interval)
				next_report = now_ms() + interval;
			print_counters();
		}
	}
	print_counters();
	return 0;
}
