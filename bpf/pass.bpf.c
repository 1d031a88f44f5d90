// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * lb_pass: an XDP program that passes every frame. The namespace lab (scripts/lab.sh) attaches
 * it to the switch-side peer of the balancer's veth: a veth delivers frames sent with native
 * XDP_TX/redirect only when its peer runs an XDP program (or has GRO on), otherwise the kernel
 * drops them silently.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int lb_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
