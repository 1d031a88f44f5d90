// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * udp_ping: request/response round-trip times over UDP for the namespace-lab benchmarks.
 *   udp_ping echo --bind ADDR --port N [--seconds S]
 *       answers every datagram to its sender from ADDR (a VIP on the backend's lo: DSR);
 *       prints "ready" once bound, exits after S seconds (default 120) or on SIGTERM.
 *   udp_ping ping --dst ADDR [--dst ADDR ...] --port N [--count N] [--warmup N] [--timeout-ms T]
 *                 [--frame BYTES]
 *       sends N requests to each ADDR one at a time (each waits for its answer or T ms), the
 *       destinations taking turns so that whatever else runs on the machine hits them alike,
 *       after N warm-up rounds; prints per ADDR, in order, one line {"dst":ADDR,"sent":N,
 *       "received":N,"lost":N,"min_us":..,"p50_us":..,"p90_us":..,"p99_us":..,"max_us":..}.
 *       Each request carries a sequence number; stale answers of timed-out requests are skipped.
 * Exit 0 on success (ping: every destination answered at least once), 1 on failure, 2 on usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT 100000
#define MAX_DSTS 4
#define MAX_SECONDS 3600
#define HDRS_V4 (14 + 20 + 8)
#define HDRS_V6 (14 + 40 + 8)

static void usage(void)
{
	fprintf(stderr, "usage: udp_ping echo --bind ADDR --port N [--seconds S<=%d]\n"
			"       udp_ping ping --dst ADDR [--dst ADDR (<=%d)] --port N [--count N<=%d] [--warmup N]"
			" [--timeout-ms T] [--frame BYTES]\n",
		MAX_SECONDS, MAX_DSTS, MAX_COUNT);
	exit(2);
}

static unsigned long num(const char *s, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		usage();
	return v;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static socklen_t to_sockaddr(const char *addr, unsigned port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((unsigned short)port);
		return sizeof(struct sockaddr_in);
	}
	if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((unsigned short)port);
		return sizeof(struct sockaddr_in6);
	}
	fprintf(stderr, "udp_ping: %s is not an IP address\n", addr);
	exit(2);
}

static int echo(const char *bind_addr, unsigned port, unsigned seconds)
{
	struct sockaddr_storage self;
	socklen_t len = to_sockaddr(bind_addr, port, &self);
	int fd = socket(self.ss_family, SOCK_DGRAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&self, len)) {
		fprintf(stderr, "udp_ping: bind %s:%u: %s\n", bind_addr, port, strerror(errno));
		return 1;
	}
	signal(SIGTERM, SIG_DFL);
	alarm(seconds); /* bounded even if nobody stops it */
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		char buf[2048];
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &plen);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "udp_ping: recv: %s\n", strerror(errno));
			return 1;
		}
		sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* One request: 1 answered (rtt set), 0 timed out, -1 on a socket error. */
static int one(int fd, uint32_t seq, size_t plen, int timeout_ms, int64_t *rtt)
{
	char req[1514] = { 0 }, ans[2048];
	int64_t t0 = now_ns(), deadline = t0 + (int64_t)timeout_ms * 1000000;

	memcpy(req, &seq, sizeof(seq));
	if (send(fd, req, plen, 0) < 0)
		return errno == ECONNREFUSED ? 0 : -1;
	for (;;) {
		int64_t left = deadline - now_ns();
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (left <= 0)
			return 0;
		int r = poll(&p, 1, (int)((left + 999999) / 1000000));

		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, ans, sizeof(ans), 0);

		if (n < 0)
			return errno == ECONNREFUSED ? 0 : -1;
		uint32_t got;

		memcpy(&got, ans, sizeof(got));
		if ((size_t)n >= sizeof(got) && got == seq) {
			*rtt = now_ns() - t0;
			return 1;
		}
	}
}

static void report(const char *dst, int64_t *rtts, unsigned got, unsigned count)
{
	if (got == 0) {
		printf("{\"dst\":\"%s\",\"sent\":%u,\"received\":0,\"lost\":%u}\n", dst, count, count);
		return;
	}
	qsort(rtts, got, sizeof(*rtts), cmp_i64);
#define PCT(p) ((double)rtts[(size_t)((double)(got - 1) * (p))] / 1000.0)
	printf("{\"dst\":\"%s\",\"sent\":%u,\"received\":%u,\"lost\":%u,\"min_us\":%.1f,\"p50_us\":%.1f,"
	       "\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
	       dst, count, got, count - got, PCT(0.0), PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0));
#undef PCT
}

static int ping(const char **dsts, unsigned ndst, unsigned port, unsigned count, unsigned warmup,
		int timeout_ms, unsigned frame)
{
	int fds[MAX_DSTS];
	int64_t *rtts[MAX_DSTS];
	unsigned got[MAX_DSTS] = { 0 }, answered = 0;
	size_t plen[MAX_DSTS];

	for (unsigned d = 0; d < ndst; d++) {
		struct sockaddr_storage to;
		socklen_t len = to_sockaddr(dsts[d], port, &to);
		unsigned hdrs = to.ss_family == AF_INET ? HDRS_V4 : HDRS_V6;

		if (frame < hdrs + 4) {
			fprintf(stderr, "udp_ping: --frame %u leaves no room for the sequence number\n", frame);
			return 2;
		}
		plen[d] = frame - hdrs;
		fds[d] = socket(to.ss_family, SOCK_DGRAM, 0);
		if (fds[d] < 0 || connect(fds[d], (struct sockaddr *)&to, len)) {
			fprintf(stderr, "udp_ping: %s:%u: %s\n", dsts[d], port, strerror(errno));
			return 1;
		}
		rtts[d] = calloc(count, sizeof(int64_t));
		if (!rtts[d])
			return 1;
	}
	for (unsigned i = 0; i < warmup + count; i++) {
		for (unsigned d = 0; d < ndst; d++) {
			int64_t rtt;
			int r = one(fds[d], i, plen[d], timeout_ms, &rtt);

			if (r < 0) {
				fprintf(stderr, "udp_ping: %s:%u: %s\n", dsts[d], port, strerror(errno));
				return 1;
			}
			if (r == 1 && i >= warmup)
				rtts[d][got[d]++] = rtt;
		}
	}
	for (unsigned d = 0; d < ndst; d++) {
		report(dsts[d], rtts[d], got[d], count);
		answered += got[d] > 0;
		free(rtts[d]);
	}
	return answered == ndst ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *addrs[MAX_DSTS];
	unsigned naddr = 0, port = 0, count = 1000, warmup = 50, seconds = 120, frame = 64;
	int timeout_ms = 200;

	if (argc < 2)
		usage();
	int is_echo = !strcmp(argv[1], "echo");

	if (!is_echo && strcmp(argv[1], "ping"))
		usage();
	for (int i = 2; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(k, is_echo ? "--bind" : "--dst")) {
			if (naddr == (is_echo ? 1 : MAX_DSTS))
				usage();
			addrs[naddr++] = v;
		} else if (!strcmp(k, "--port"))
			port = (unsigned)num(v, 1, 65535);
		else if (is_echo && !strcmp(k, "--seconds"))
			seconds = (unsigned)num(v, 1, MAX_SECONDS);
		else if (!is_echo && !strcmp(k, "--count"))
			count = (unsigned)num(v, 1, MAX_COUNT);
		else if (!is_echo && !strcmp(k, "--warmup"))
			warmup = (unsigned)num(v, 0, MAX_COUNT);
		else if (!is_echo && !strcmp(k, "--timeout-ms"))
			timeout_ms = (int)num(v, 1, 10000);
		else if (!is_echo && !strcmp(k, "--frame"))
			frame = (unsigned)num(v, 64, 1514);
		else
			usage();
	}
	if (!naddr || !port)
		usage();
	return is_echo ? echo(addrs[0], port, seconds) : ping(addrs, naddr, port, count, warmup, timeout_ms, frame);
}
