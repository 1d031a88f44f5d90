// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * UDP sockets for the registration tunnel probe (src/registry/tunnel-probe.ts). The data plane's
 * encapsulated packets leave with DF set and are never fragmented, whatever the kernel's path-MTU
 * cache says; a probe must travel the same way, or a too-small path MTU would let it through in
 * fragments while real traffic dies. IP_PMTUDISC_PROBE / IPV6_PMTUDISC_PROBE: DF set, the cached
 * path MTU ignored (a datagram larger than the interface MTU fails with -EMSGSIZE), no local
 * fragmentation. Node's dgram module cannot set these options.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim.h"

int lb_probe_socket(int family)
{
	int af = family == 6 ? AF_INET6 : AF_INET;
	int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return -errno;
	int ret = af == AF_INET6 ?
			  setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &(int){ IPV6_PMTUDISC_PROBE },
				     sizeof(int)) :
			  setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &(int){ IP_PMTUDISC_PROBE },
				     sizeof(int));
	if (ret) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int lb_probe_send(int fd, const __u8 *addr, __u32 addr_len, __u32 port, const __u8 *buf, __u32 len)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	if (port == 0 || port > 65535)
		return -EINVAL;
	memset(&ss, 0, sizeof(ss));
	if (addr_len == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((__u16)port);
		memcpy(&sin->sin_addr, addr, 4);
		sl = sizeof(*sin);
	} else if (addr_len == 16) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((__u16)port);
		memcpy(&sin6->sin6_addr, addr, 16);
		sl = sizeof(*sin6);
	} else {
		return -EINVAL;
	}
	ssize_t n = sendto(fd, buf, len, 0, (struct sockaddr *)&ss, sl);
	return n < 0 ? -errno : (int)n;
}
