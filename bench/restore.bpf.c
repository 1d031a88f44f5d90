// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Benchmark wrapper. BPF_PROG_TEST_RUN's `repeat` re-runs a program on its own output, so a
 * program that rewrites the packet would be measured on its previous result. bench_restore
 * puts the input frame back (head position and bytes), optionally gives every iteration its
 * own flow (source address/port from an iteration counter), then tail-calls the program under
 * test. Its own cost is measured in the same run (tail call into floor_pass) and subtracted.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define BENCH_FRAME_MAX 256

struct bench_input {
	__u32 len;            /* frame length, <= BENCH_FRAME_MAX */
	__u32 flows;          /* 0: same frame every time; N: iteration i uses flow i % N */
	__u32 sport_offset;   /* where the TCP source port sits in the frame */
	__u32 saddr_offset;   /* where the IPv4 source address sits (last two bytes rewritten) */
	__u8 frame[BENCH_FRAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_input);
} bench_input SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_iteration SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_target SEC(".maps");

SEC("xdp")
int bench_restore(struct xdp_md *ctx)
{
	__u32 zero = 0, len, flow;
	struct bench_input *in = bpf_map_lookup_elem(&bench_input, &zero);
	__u32 *iteration = bpf_map_lookup_elem(&bench_iteration, &zero);
	int delta;

	if (!in || !iteration)
		return XDP_ABORTED;
	len = in->len;
	if (len < 14 || len > BENCH_FRAME_MAX)
		return XDP_ABORTED;
	delta = (int)(ctx->data_end - ctx->data) - (int)len;
	if (delta && bpf_xdp_adjust_head(ctx, delta))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, in->frame, len))
		return XDP_ABORTED;
	if (in->flows) {
		flow = *iteration % in->flows;
		*iteration += 1;
		__u16 sport = bpf_htons(flow & 0xffff);
		__u16 shigh = bpf_htons(flow >> 16);

		bpf_xdp_store_bytes(ctx, in->sport_offset & 0xff, &sport, 2);
		bpf_xdp_store_bytes(ctx, (in->saddr_offset + 2) & 0xff, &shigh, 2);
	}
	bpf_tail_call(ctx, &bench_target, 0);
	return XDP_ABORTED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
