// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * tun_blast: the load of the TUN decap benchmark (bench/tun-bench.ts). Sends one datagram
 * payload, given in hex (an encapsulated inner IP packet), to ADDR:PORT over a connected UDP
 * socket with sendmmsg bursts, as fast as it can, for --seconds (at most 60). Prints one JSON
 * line: {"sent":N,"errors":N,"seconds":S,"pps":P}.
 *
 * Usage: tun_blast --dst ADDR --port N --payload HEX [--seconds S] [--burst B] [--cpu C]
 * Exit 0 when something was sent, 1 on failure, 2 on usage.
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

#define MAX_BURST 256
#define MAX_PAYLOAD 1472
#define MAX_SECONDS 60.0

static void usage(const char *why)
{
	fprintf(stderr, "tun_blast: %s\nusage: tun_blast --dst ADDR --port N --payload HEX [--seconds S<=60]"
			" [--burst B<=256] [--cpu C]\n", why);
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int main(int argc, char **argv)
{
	const char *dst = NULL, *hex = NULL;
	unsigned long port = 0, burst = 64;
	double seconds = 2.0;
	int cpu = -1;
	unsigned char payload[MAX_PAYLOAD];
	size_t len = 0;

	for (int i = 1; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage("every option takes a value");
		if (!strcmp(k, "--dst"))
			dst = v;
		else if (!strcmp(k, "--port"))
			port = strtoul(v, NULL, 10);
		else if (!strcmp(k, "--payload"))
			hex = v;
		else if (!strcmp(k, "--seconds"))
			seconds = atof(v);
		else if (!strcmp(k, "--burst"))
			burst = strtoul(v, NULL, 10);
		else if (!strcmp(k, "--cpu"))
			cpu = atoi(v);
		else
			usage("unknown option");
	}
	if (!dst || !hex || port < 1 || port > 65535 || burst < 1 || burst > MAX_BURST ||
	    !(seconds > 0 && seconds <= MAX_SECONDS))
		usage("--dst, --port 1..65535 and --payload are required; --seconds 0..60, --burst 1..256");
	if (strlen(hex) % 2 || strlen(hex) / 2 > MAX_PAYLOAD)
		usage("--payload: an even number of hex digits, at most 1472 bytes");
	for (; hex[2 * len]; len++) {
		int hi = hex_nibble(hex[2 * len]), lo = hex_nibble(hex[2 * len + 1]);

		if (hi < 0 || lo < 0)
			usage("--payload: not hex");
		payload[len] = (unsigned char)(hi << 4 | lo);
	}
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			perror("tun_blast: sched_setaffinity");
	}

	struct sockaddr_storage to = { 0 };
	socklen_t tolen;
	struct sockaddr_in *to4 = (struct sockaddr_in *)&to;
	struct sockaddr_in6 *to6 = (struct sockaddr_in6 *)&to;

	if (inet_pton(AF_INET, dst, &to4->sin_addr) == 1) {
		to4->sin_family = AF_INET;
		to4->sin_port = htons((unsigned short)port);
		tolen = sizeof(*to4);
	} else if (inet_pton(AF_INET6, dst, &to6->sin6_addr) == 1) {
		to6->sin6_family = AF_INET6;
		to6->sin6_port = htons((unsigned short)port);
		tolen = sizeof(*to6);
	} else {
		usage("--dst: not an IPv4 or IPv6 address");
	}
	int fd = socket(to.ss_family, SOCK_DGRAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&to, tolen)) {
		perror("tun_blast: socket");
		return 1;
	}

	struct iovec iov = { .iov_base = payload, .iov_len = len };
	struct mmsghdr msgs[MAX_BURST];

	memset(msgs, 0, sizeof(msgs));
	for (unsigned i = 0; i < burst; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	unsigned long long sent = 0, errors = 0;
	double start = now_s(), end = start + seconds, t = start;

	while (t < end) {
		for (int k = 0; k < 16; k++) {
			int n = sendmmsg(fd, msgs, (unsigned)burst, 0);

			if (n > 0)
				sent += (unsigned)n;
			else if (errno != EINTR)
				errors++; /* ENOBUFS and friends: the load is what it is, keep going */
		}
		t = now_s();
	}
	printf("{\"sent\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"pps\":%.0f}\n", sent, errors, t - start,
	       (double)sent / (t - start));
	return sent > 0 ? 0 : 1;
}
