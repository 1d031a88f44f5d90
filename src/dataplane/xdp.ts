// XDP attach, detach and query on an interface, with errors that say what to try next. Mode
// "native" is the driver hook (XDP_FLAGS_DRV_MODE), "generic" the skb hook (XDP_FLAGS_SKB_MODE).
import { LbError, errnoName } from "../lib/errors.js";
import {
  Errno,
  Native,
  XDP_FLAGS_DRV_MODE,
  XDP_FLAGS_SKB_MODE,
  XDP_FLAGS_UPDATE_IF_NOEXIST,
  nativeError,
} from "./native.js";

export type XdpMode = "native" | "generic";
export type XdpAttachedMode = "none" | "native" | "generic" | "offload" | "multi";

export interface XdpTarget {
  readonly ifindex: number;
  /** For messages; defaults to "#<ifindex>". */
  readonly ifname?: string;
}

export interface XdpAttachOptions {
  /** Replace a program already attached in this mode (default: fail with EBUSY). */
  readonly replace?: boolean;
}

export interface XdpState {
  /** The attached program's id (any mode); 0 = none. With "multi", the native one. */
  readonly progId: number;
  readonly mode: XdpAttachedMode;
  readonly nativeProgId: number;
  readonly genericProgId: number;
}

const ATTACHED_MODES: readonly XdpAttachedMode[] = ["none", "native", "generic", "offload", "multi"];

/** The attach flags of a mode. */
export function xdpFlags(mode: XdpMode, opts: XdpAttachOptions = {}): number {
  const modeFlag = mode === "native" ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  return modeFlag | (opts.replace === true ? 0 : XDP_FLAGS_UPDATE_IF_NOEXIST);
}

function label(target: XdpTarget): string {
  return `interface ${target.ifname ?? `#${target.ifindex}`}`;
}

/** libbpf logs the kernel's extack as "Kernel error message: ..."; the most useful line. */
function kernelMessage(): string | undefined {
  const m = /Kernel error message: (.*)/.exec(Native.get().lastError());
  return m?.[1]?.trim();
}

function attachHint(
  ret: number,
  mode: XdpMode,
  target: XdpTarget,
  kernel: string | undefined,
): string | undefined {
  const name = target.ifname ?? `#${target.ifindex}`;
  const mtu = kernel !== undefined && /mtu/i.test(kernel);
  switch (-ret) {
    case Errno.EPERM:
      return "attaching XDP needs root (CAP_NET_ADMIN, CAP_BPF)";
    case Errno.ENODEV:
      return `no interface ${name} in this network namespace`;
    case Errno.EBUSY:
    case Errno.EEXIST:
      return `another XDP program is attached to ${name}: run lbctl unload --iface ${name} (or ip link set dev ${name} xdp off)`;
    case Errno.EOPNOTSUPP:
    case Errno.ENOTSUPP:
      return mode === "native" ? "driver has no native XDP: try --mode generic" : undefined;
    case Errno.ERANGE:
    case Errno.E2BIG:
      return mode === "native"
        ? "MTU too big for native XDP: lower the MTU or try --mode generic"
        : undefined;
    case Errno.EINVAL:
      if (mode !== "native") return undefined;
      return mtu
        ? "MTU too big for native XDP: lower the MTU or try --mode generic"
        : "the driver refused native XDP (MTU too big, or an unsupported configuration): try --mode generic";
    default:
      return mode === "native" ? "try --mode generic" : undefined;
  }
}

/** Attaches progFd to the interface in the given mode. Throws LB_ERR_ATTACH with a hint. */
export function attachXdp(
  target: XdpTarget,
  progFd: number,
  mode: XdpMode,
  opts: XdpAttachOptions = {},
): void {
  const ret = Native.get().xdpAttach(target.ifindex, progFd, xdpFlags(mode, opts));
  if (ret >= 0) return;
  const kernel = kernelMessage();
  const errno = -ret;
  const log = Native.get().lastError();
  throw new LbError(
    "LB_ERR_ATTACH",
    `${label(target)}: cannot attach XDP in ${mode} mode: ${errnoName(errno)}${kernel === undefined ? "" : ` (${kernel})`}`,
    { errno, hint: attachHint(ret, mode, target, kernel), detail: log === "" ? undefined : log },
  );
}

/** Detaches the program of that mode; succeeds when none is attached. */
export function detachXdp(target: XdpTarget, mode: XdpMode): void {
  const flags = mode === "native" ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  const ret = Native.get().xdpDetach(target.ifindex, flags);
  if (ret >= 0) return;
  const hint = ret === -Errno.EPERM ? "detaching XDP needs root (CAP_NET_ADMIN)" : undefined;
  throw nativeError("LB_ERR_ATTACH", `${label(target)}: cannot detach XDP (${mode})`, ret, {
    withLog: true,
    hint,
  });
}

/** What is attached to the interface. */
export function queryXdp(target: XdpTarget): XdpState {
  const q = Native.get().xdpQuery(target.ifindex, 0, label(target));
  return {
    progId: q.progId !== 0 ? q.progId : q.drvProgId || q.skbProgId,
    mode: ATTACHED_MODES[q.attachMode] ?? "multi",
    nativeProgId: q.drvProgId,
    genericProgId: q.skbProgId,
  };
}
