// `--mode auto|native|generic`: attach the balancer and say why that mode. auto tries native
// XDP, except on a veth whose peer cannot be seen to run XDP (native XDP_TX/redirect frames
// are then silently lost: DESIGN.md), and falls back to generic when native is refused.
import type { Logger } from "pino";
import { LbError } from "../lib/errors.js";
import { execIp } from "../net/ip-json.js";
import { attachXdp, type XdpMode } from "./xdp.js";

export type RequestedMode = "auto" | "native" | "generic";

interface IpDetail {
  ifindex: number;
  link_index?: number;
  link_netnsid?: number;
  xdp?: unknown;
  linkinfo?: { info_kind?: string };
}

async function linkDetail(selector: string[]): Promise<IpDetail | undefined> {
  const out = await execIp(["-d", "link", "show", ...selector]);
  if (!out.ok) return undefined;
  const parsed = JSON.parse(out.stdout) as IpDetail[];
  return parsed[0];
}

/** Why native XDP on this interface would lose frames, or undefined when it looks fine. */
export async function nativeRisk(ifname: string): Promise<string | undefined> {
  const link = await linkDetail(["dev", ifname]);
  if (link?.linkinfo?.info_kind !== "veth") return undefined;
  if (link.link_netnsid !== undefined || link.link_index === undefined) {
    return "veth peer is in another namespace, so whether it runs XDP (needed for native XDP_TX) cannot be checked";
  }
  const peer = await linkDetail(["dev", `#${link.link_index}`]).catch(() => undefined);
  return peer?.xdp ? undefined : "veth peer has no XDP program (native XDP_TX frames would be lost)";
}

export async function attachWithMode(
  target: { ifindex: number; ifname: string },
  progFd: number,
  requested: RequestedMode,
  log: Logger,
  /** How to attach (default: the netlink attach; pinned-xdp.ts passes a BPF link's). */
  attach: (target: { ifindex: number; ifname: string }, progFd: number, mode: XdpMode) => void = attachXdp,
): Promise<{ mode: XdpMode; reason: string }> {
  if (requested !== "auto") {
    attach(target, progFd, requested);
    return { mode: requested, reason: "requested" };
  }
  const risk = await nativeRisk(target.ifname);
  const skipped: string[] = [];
  if (risk) skipped.push(`native skipped: ${risk}`);
  else {
    try {
      attach(target, progFd, "native");
      log.info({ iface: target.ifname, mode: "native" }, "XDP mode chosen");
      return { mode: "native", reason: "auto: native XDP attached" };
    } catch (err) {
      skipped.push(`native refused: ${describe(err)}`);
    }
  }
  try {
    attach(target, progFd, "generic");
  } catch (err) {
    skipped.push(`generic refused: ${describe(err)}`);
    // Every step, so the NFQUEUE fallback (or the error) says why XDP was not used.
    throw new LbError("LB_ERR_ATTACH", `no XDP mode attached on ${target.ifname}: ${skipped.join("; ")}`, {
      cause: err,
    });
  }
  const reason = `auto: generic because ${skipped.join("; ")}${risk ? "; use --mode native when the peer runs XDP" : ""}`;
  log.info({ iface: target.ifname, mode: "generic", reason }, "XDP mode chosen");
  return { mode: "generic", reason };
}

/** An attach error with its hint, in one line. */
function describe(err: unknown): string {
  if (!(err instanceof LbError)) return String(err);
  return err.hint ? `${err.message} (${err.hint})` : err.message;
}
