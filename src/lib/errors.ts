// The one error class of Caplance: a stable LB_ERR_* code the CLI maps to an exit status, a
// message naming the object (map, interface, file:line), an optional hint and errno.
import { constants } from "node:os";

/** Stable codes: matched by callers and documented; never renamed. */
export const LB_ERROR_CODES = [
  "LB_ERR_NATIVE", // libcaplance missing or a native call failed without a better domain
  "LB_ERR_LOAD", // a BPF object could not be opened or loaded (verifier, permissions)
  "LB_ERR_MAP", // a map operation failed or was given a key/value of the wrong size
  "LB_ERR_ATTACH", // XDP attach/detach/query failed
  "LB_ERR_CONFIG", // invalid configuration or value
  "LB_ERR_USAGE", // invalid command-line usage (exit 2)
  "LB_ERR_IFACE", // a network interface is missing or unsuitable (not Ethernet, unknown ifindex)
  "LB_ERR_ROUTE", // a backend address has no usable route (unreachable, local, broadcast, multicast)
  "LB_ERR_NETLINK", // reading the kernel's link, route or neighbour tables (`ip -j`) failed
  "LB_ERR_DAEMON", // the daemon could not be reached over its control socket, or answered nonsense
  "LB_ERR_EXISTS", // adding a VIP or backend that exists
  "LB_ERR_NOT_FOUND", // naming a VIP or backend that does not exist
  "LB_ERR_REQUEST", // a malformed control-socket request
  "LB_ERR_UNSUPPORTED", // a capability that this build does not have yet
  "LB_ERR_INTERNAL", // a bug: an unexpected exception behind the control socket
  "LB_ERR_AUTH", // REST API: a change without the right bearer token (HTTP 401)
  "LB_ERR_FORBIDDEN", // REST API: a change while changes are off, no --api-token-file (HTTP 403)
] as const;
export type LbErrorCode = (typeof LB_ERROR_CODES)[number];

export interface LbErrorOptions {
  /** What to try next, e.g. "try --mode generic". */
  readonly hint?: string | undefined;
  /** Positive errno of the failed system call. */
  readonly errno?: number | undefined;
  /** Longer diagnostics (libbpf messages, verifier log); not part of the one-line message. */
  readonly detail?: string | undefined;
  readonly cause?: unknown;
}

export class LbError extends Error {
  readonly code: LbErrorCode;
  readonly hint?: string;
  readonly errno?: number;
  readonly detail?: string;

  constructor(code: LbErrorCode, message: string, options: LbErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "LbError";
    this.code = code;
    if (options.hint !== undefined) this.hint = options.hint;
    if (options.errno !== undefined) this.errno = options.errno;
    if (options.detail !== undefined) this.detail = options.detail;
  }
}

/** Positive errno values callers branch on (Linux numbering). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  E2BIG: 7,
  EBADF: 9,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  EOPNOTSUPP: 95,
  ENOTSUPP: 524,
} as const;

// The kernel's name where node lists an alias first (ENOTSUP), and kernel-internal errnos that
// leak to userspace but are missing from node's table.
const KERNEL_ERRNO_NAMES: Readonly<Record<number, string>> = { 95: "EOPNOTSUPP", 524: "ENOTSUPP" };

let errnoNames: Map<number, string> | undefined;

/** "ENOENT" for 2 (sign ignored), "errno 4242" when unknown. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  if (errnoNames === undefined) {
    errnoNames = new Map();
    for (const [name, value] of Object.entries(constants.errno)) {
      // Aliases (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK, ENOTSUP = EOPNOTSUPP): first wins.
      if (!errnoNames.has(value)) errnoNames.set(value, name);
    }
  }
  return KERNEL_ERRNO_NAMES[n] ?? errnoNames.get(n) ?? `errno ${n}`;
}
