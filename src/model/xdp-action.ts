// XDP program return codes (enum xdp_action of linux/bpf.h), shared by the reference models
// and the packet tests that compare them with BPF_PROG_TEST_RUN's retval.

export const XdpAction = {
  XDP_ABORTED: 0,
  XDP_DROP: 1,
  XDP_PASS: 2,
  XDP_TX: 3,
  XDP_REDIRECT: 4,
} as const;

export type XdpAction = (typeof XdpAction)[keyof typeof XdpAction];

const NAMES: Readonly<Record<number, string>> = {
  0: "XDP_ABORTED",
  1: "XDP_DROP",
  2: "XDP_PASS",
  3: "XDP_TX",
  4: "XDP_REDIRECT",
};

/** "XDP_PASS" for 2; "XDP_UNKNOWN(7)" for a number outside the enum (for test messages). */
export function xdpActionName(action: number): string {
  return NAMES[action] ?? `XDP_UNKNOWN(${action})`;
}
