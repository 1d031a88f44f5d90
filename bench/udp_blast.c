// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * udp_blast: a bounded UDP load generator for the namespace-lab benchmarks. Fixed-size frames
 * from many source ports (one connected socket per port, so flows spread over backends), sent
 * with sendmmsg in bursts, round robin over the sockets, until --seconds or --max is reached.
 * Prints one JSON line: {"sent":N,"errors":N,"seconds":S,"pps":P}.
 *
 * Usage: udp_blast --dst ADDR --port N [--sport FIRST] [--flows K] [--seconds S] [--max N]
 *                  [--frame BYTES] [--burst B] [--cpu C]
 * --frame is the Ethernet frame length without FCS (default 64: 22 bytes of UDP payload over
 * IPv4, 2 over IPv6). Exit 0 when at least one datagram was sent, 1 on failure, 2 on usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FLOWS 4096
#define MAX_BURST 256
#define MAX_SECONDS 60.0 /* every run is bounded, whatever it is asked */
#define ETH_HLEN 14
#define UDP_HLEN 8

struct opts {
	const char *dst;
	unsigned port, sport, flows, frame, burst;
	int cpu;
	double seconds;
	unsigned long long max;
};

static void usage(void)
{
	fprintf(stderr, "usage: udp_blast --dst ADDR --port N [--sport FIRST] [--flows K<=%u] [--seconds S<=%g]\n"
			"                 [--max N] [--frame BYTES] [--burst B<=%u] [--cpu C]\n",
		MAX_FLOWS, MAX_SECONDS, MAX_BURST);
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long num(const char *s, unsigned long lo, unsigned long hi)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		usage();
	return v;
}

static struct opts parse(int argc, char **argv)
{
	struct opts o = { .port = 0, .sport = 20000, .flows = 256, .frame = 64, .burst = 64, .cpu = -1,
			  .seconds = 2.0, .max = ~0ull };

	for (int i = 1; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(k, "--dst"))
			o.dst = v;
		else if (!strcmp(k, "--port"))
			o.port = (unsigned)num(v, 1, 65535);
		else if (!strcmp(k, "--sport"))
			o.sport = (unsigned)num(v, 1024, 65535);
		else if (!strcmp(k, "--flows"))
			o.flows = (unsigned)num(v, 1, MAX_FLOWS);
		else if (!strcmp(k, "--frame"))
			o.frame = (unsigned)num(v, 64, 1514);
		else if (!strcmp(k, "--burst"))
			o.burst = (unsigned)num(v, 1, MAX_BURST);
		else if (!strcmp(k, "--cpu"))
			o.cpu = (int)num(v, 0, CPU_SETSIZE - 1);
		else if (!strcmp(k, "--max"))
			o.max = num(v, 1, ~0ul);
		else if (!strcmp(k, "--seconds")) {
			char *end;

			o.seconds = strtod(v, &end);
			if (*end != '\0' || !(o.seconds > 0 && o.seconds <= MAX_SECONDS))
				usage();
		} else
			usage();
	}
	if (!o.dst || !o.port || o.sport + o.flows - 1 > 65535)
		usage();
	return o;
}

/* One socket per source port, connected: the kernel keeps the route and the 5-tuple fixed. */
static int open_flow(const struct sockaddr_storage *to, socklen_t tolen, unsigned sport)
{
	int fd = socket(to->ss_family, SOCK_DGRAM, 0), one = 1;
	struct sockaddr_storage from = { .ss_family = to->ss_family };

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (to->ss_family == AF_INET)
		((struct sockaddr_in *)&from)->sin_port = htons((unsigned short)sport);
	else
		((struct sockaddr_in6 *)&from)->sin6_port = htons((unsigned short)sport);
	if (bind(fd, (struct sockaddr *)&from, tolen) || connect(fd, (const struct sockaddr *)to, tolen)) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct opts o = parse(argc, argv);
	struct sockaddr_storage to = { 0 };
	socklen_t tolen;

	if (inet_pton(AF_INET, o.dst, &((struct sockaddr_in *)&to)->sin_addr) == 1) {
		to.ss_family = AF_INET;
		((struct sockaddr_in *)&to)->sin_port = htons((unsigned short)o.port);
		tolen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, o.dst, &((struct sockaddr_in6 *)&to)->sin6_addr) == 1) {
		to.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&to)->sin6_port = htons((unsigned short)o.port);
		tolen = sizeof(struct sockaddr_in6);
	} else {
		fprintf(stderr, "udp_blast: --dst %s is not an IP address\n", o.dst);
		return 2;
	}
	unsigned l3 = to.ss_family == AF_INET ? 20 : 40;

	if (o.frame < ETH_HLEN + l3 + UDP_HLEN) {
		fprintf(stderr, "udp_blast: --frame %u is shorter than the headers\n", o.frame);
		return 2;
	}
	if (o.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(o.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			fprintf(stderr, "udp_blast: --cpu %d: %s (not pinned)\n", o.cpu, strerror(errno));
	}

	static int fds[MAX_FLOWS];

	for (unsigned i = 0; i < o.flows; i++) {
		fds[i] = open_flow(&to, tolen, o.sport + i);
		if (fds[i] < 0) {
			fprintf(stderr, "udp_blast: source port %u to %s:%u: %s\n", o.sport + i, o.dst, o.port,
				strerror(errno));
			return 1;
		}
	}

	/* Every datagram of a burst shares one payload: the generator's cost stays in the kernel. */
	static char payload[1514];
	static struct iovec iov[MAX_BURST];
	static struct mmsghdr msgs[MAX_BURST];
	size_t plen = o.frame - ETH_HLEN - l3 - UDP_HLEN;

	memset(payload, 0xa5, sizeof(payload));
	for (unsigned i = 0; i < o.burst; i++) {
		iov[i] = (struct iovec){ .iov_base = payload, .iov_len = plen };
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
	}

	unsigned long long sent = 0, errors = 0;
	double t0 = now_s(), end = t0 + o.seconds, t = t0;

	for (unsigned f = 0; t < end && sent < o.max; f = (f + 1) % o.flows) {
		unsigned n = o.burst;

		if (o.max - sent < n)
			n = (unsigned)(o.max - sent);
		int r = sendmmsg(fds[f], msgs, n, 0);

		if (r > 0)
			sent += (unsigned)r;
		else if (r < 0 && errno != EINTR)
			errors++; /* ECONNREFUSED from an ICMP error, ENOBUFS: counted, the run goes on */
		t = now_s();
	}
	double secs = t - t0;

	printf("{\"sent\":%llu,\"errors\":%llu,\"seconds\":%.6f,\"pps\":%.0f}\n", sent, errors, secs,
	       secs > 0 ? (double)sent / secs : 0.0);
	return sent > 0 ? 0 : 1;
}
