// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * tun_floor: the baseline of the TUN decap benchmark (bench/tun-bench.ts), the least a TUN
 * decapsulator can do: the same UDP socket as caplance-tun (bound to ADDR:PORT, 8 MiB receive
 * buffer), datagrams received with recvmmsg in batches of 64, each payload written into the TUN
 * device as it is. No validation, no VIP lookup, no counters. Defined here so it cannot drift
 * towards the code it is compared with.
 *
 * Usage: tun_floor --tun NAME --listen ADDR [--port N]   (prints "ready"; SIGTERM ends it)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define BUF 65536

static void die(const char *what)
{
	fprintf(stderr, "tun_floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

int main(int argc, char **argv)
{
	const char *tun = NULL, *listen = NULL;
	unsigned long port = 6080;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--tun"))
			tun = argv[i + 1];
		else if (!strcmp(argv[i], "--listen"))
			listen = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			port = strtoul(argv[i + 1], NULL, 10);
	}
	if (!tun || !listen || strlen(tun) >= IFNAMSIZ || port < 1 || port > 65535) {
		fprintf(stderr, "usage: tun_floor --tun NAME --listen ADDR [--port N]\n");
		return 2;
	}

	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };
	int tfd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	strncpy(ifr.ifr_name, tun, IFNAMSIZ - 1);
	if (tfd < 0 || ioctl(tfd, TUNSETIFF, &ifr))
		die(tun);

	struct sockaddr_storage sa = { 0 };
	struct sockaddr_in *a4 = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&sa;
	socklen_t salen;
	int one = 1, rcvbuf = 8 << 20;

	if (inet_pton(AF_INET, listen, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((unsigned short)port);
		salen = sizeof(*a4);
	} else if (inet_pton(AF_INET6, listen, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((unsigned short)port);
		salen = sizeof(*a6);
	} else {
		fprintf(stderr, "tun_floor: --listen %s: not an address\n", listen);
		return 2;
	}
	int fd = socket(sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_UDP, 102 /* UDP_NO_CHECK6_RX */, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, salen))
		die("bind");

	static unsigned char bufs[BATCH][BUF];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];

	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = BUF };
		msgs[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("recvmmsg");
		}
		for (int i = 0; i < n; i++)
			if (write(tfd, bufs[i], msgs[i].msg_len) < 0 && errno != EIO)
				die("write");
	}
}
