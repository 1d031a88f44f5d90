// The XDP data plane pinned under bpffs so it can outlive the daemon (hitless restart): maps at
// <pin dir>/<map name>, the attachment as a BPF link at <pin dir>/link. A later load adopts them:
// the maps are reused (the flow table included) and the program is swapped through the link.
import { existsSync, mkdirSync, rmSync, rmdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import { LbError, errnoName } from "../lib/errors.js";
import { BalancerMaps } from "../maps/balancer-maps.js";
import type { BpfObject } from "./bpf-object.js";
import { attachWithMode, type RequestedMode } from "./attach-mode.js";
import { Errno, Native, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, nativeError } from "./native.js";
import { queryXdp, type XdpMode } from "./xdp.js";

const BPF_LINK_TYPE_XDP = 6;
export const LINK_PIN = "link";

/** Where one interface's pins live: keyed by network namespace (names and ifindexes repeat
 * across namespaces) and ifindex. $CAPLANCE_BPFFS_DIR overrides the root (tests). */
export function pinDir(ifindex: number): string {
  const root = process.env.CAPLANCE_BPFFS_DIR ?? "/sys/fs/bpf/caplance";
  return join(root, `${netnsInode()}-${ifindex}`);
}

/** The inode of this process's network namespace (what `ip netns identify` compares). */
export function netnsInode(): number {
  return statSync("/proc/self/ns/net").ino;
}

/** A pinned Caplance link for this interface exists (attached or not). */
export function hasPinnedLink(ifindex: number): boolean {
  return existsSync(join(pinDir(ifindex), LINK_PIN));
}

export interface PinnedXdp {
  readonly maps: BalancerMaps;
  readonly mode: XdpMode;
  readonly reason: string;
  /** Adopted from a previous daemon (else attached now). */
  readonly adopted: boolean;
  /** Adopted and the program differed from the running one: swapped through the link. */
  readonly upgraded: boolean;
  readonly pinDir: string;
  /** keep: leave the link and the pins (forwarding goes on); else detach and unpin. */
  stop(keep: boolean): void;
}

export interface PinnedXdpOptions {
  readonly requested: RequestedMode;
  readonly link: { ifindex: number; name: string };
  readonly obj: BpfObject;
  readonly log: Logger;
}

/** Removes an interface's pins (the link's detaches it), and the root once it is empty. */
export function unpinAll(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  try {
    rmdirSync(dirname(dir));
  } catch {
    // other interfaces' pins are still there (ENOTEMPTY), or no root (ENOENT)
  }
}

/** Loads the object with its maps pinned (reused when pinned already) and attaches or adopts. */
export async function openPinnedXdp(opts: PinnedXdpOptions): Promise<PinnedXdp> {
  const { link, obj, log } = opts;
  const native = Native.get();
  const dir = pinDir(link.ifindex);
  const linkPath = join(dir, LINK_PIN);
  const adopting = existsSync(linkPath);
  if (!adopting && existsSync(dir)) unpinAll(dir); // maps pinned by a load that died before attaching
  mkdirSync(dir, { recursive: true });
  obj.setPinDir(dir);

  if (adopting) {
    const linkFd = native.objGet(linkPath);
    if (linkFd < 0) throw nativeError("LB_ERR_ATTACH", `cannot open the pinned link ${linkPath}`, linkFd);
    try {
      const info = native.linkInfo(linkFd);
      const xdp = queryXdp({ ifindex: link.ifindex, ifname: link.name });
      const mode: XdpMode | undefined =
        xdp.nativeProgId === info.progId
          ? "native"
          : xdp.genericProgId === info.progId
            ? "generic"
            : undefined;
      if (info.type !== BPF_LINK_TYPE_XDP || info.ifindex !== link.ifindex || mode === undefined) {
        throw new LbError(
          "LB_ERR_EXISTS",
          `interface ${link.name}: the pinned Caplance link (${linkPath}) is no longer attached to it`,
          { hint: `clear the stale pins with: lbctl unload --iface ${link.name}` },
        );
      }
      try {
        obj.load(); // reuses the pinned maps; an incompatible one fails here
      } catch (err) {
        throw new LbError(
          "LB_ERR_LOAD",
          `interface ${link.name}: the pinned maps under ${dir} do not fit this build's object`,
          {
            hint: `clear them (this drops the flow table) with: lbctl unload --iface ${link.name}`,
            cause: err,
            detail: err instanceof LbError ? err.detail : undefined,
          },
        );
      }
      const progFd = obj.progFd("lb_balancer");
      const running = native.progTag(-1, info.progId);
      const upgraded = native.progTag(progFd) !== running;
      if (upgraded) {
        const r = native.linkUpdate(linkFd, progFd);
        if (r < 0) throw nativeError("LB_ERR_ATTACH", `interface ${link.name}: link update failed`, r);
        log.info({ iface: link.name, from: running }, "program upgraded through the link");
      }
      log.info({ iface: link.name, mode, pinDir: dir, upgraded }, "adopted the pinned data plane");
      return {
        maps: BalancerMaps.fromObject(obj),
        mode,
        reason: `adopted (${mode} XDP left by a previous lbctl load)`,
        adopted: true,
        upgraded,
        pinDir: dir,
        stop: (keep) => {
          release(linkFd, keep ? undefined : dir);
        },
      };
    } catch (err) {
      native.close(linkFd);
      throw err;
    }
  }

  let linkFd = -1;
  try {
    obj.load(); // creates the maps and pins them
    const { mode, reason } = await attachWithMode(
      { ifindex: link.ifindex, ifname: link.name },
      obj.progFd("lb_balancer"),
      opts.requested,
      log,
      (target, progFd, m) => {
        linkFd = attachLink(target, progFd, m);
      },
    );
    const p = native.objPin(linkFd, linkPath);
    if (p < 0) throw nativeError("LB_ERR_ATTACH", `cannot pin the XDP link at ${linkPath}`, p);
    return {
      maps: BalancerMaps.fromObject(obj),
      mode,
      reason,
      adopted: false,
      upgraded: false,
      pinDir: dir,
      stop: (keep) => {
        release(linkFd, keep ? undefined : dir);
      },
    };
  } catch (err) {
    release(linkFd, dir);
    throw err;
  }
}

/** Closes our link fd; with a dir, unpins everything first (the link then detaches). */
function release(linkFd: number, dir: string | undefined): void {
  if (dir !== undefined) unpinAll(dir);
  if (linkFd >= 0) Native.get().close(linkFd);
}

/** EEXIST/EBUSY without a program on the interface itself: the kernel refuses XDP under a stacked
 * device (bridge, bond, macvlan, VLAN) that has one ("upper device already has a program"). */
function busyHint(target: { ifindex: number; ifname: string }): string {
  const own = queryXdp(target).progId !== 0;
  return own
    ? `another XDP program is attached to ${target.ifname}: run lbctl unload --iface ${target.ifname}`
    : `a device stacked on ${target.ifname} (bridge, bond, macvlan or VLAN) has an XDP program, and the kernel refuses XDP below it`;
}

function attachLink(target: { ifindex: number; ifname: string }, progFd: number, mode: XdpMode): number {
  const native = Native.get();
  const flags = mode === "native" ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  const fd = native.xdpLinkCreate(progFd, target.ifindex, flags);
  if (fd >= 0) return fd;
  const errno = -fd;
  const hint =
    fd === -Errno.EBUSY || fd === -Errno.EEXIST
      ? busyHint(target)
      : mode === "native"
        ? "try --mode generic"
        : undefined;
  throw new LbError(
    "LB_ERR_ATTACH",
    `interface ${target.ifname}: cannot attach XDP (link) in ${mode} mode: ${errnoName(errno)}`,
    { errno, hint },
  );
}
