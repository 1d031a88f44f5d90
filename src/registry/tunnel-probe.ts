// The tunnel check's probe, the way client traffic will arrive at a backend: an outer UDP
// datagram to the backend's encap port whose payload is an inner IP/UDP packet from the
// balancer's source address to VIP:probePort carrying "CAPLANCE-TUNNEL <nonce>" (DESIGN.md wire
// format: direct IP in UDP), padded with spaces when the probe must be as large as the largest
// packet the data plane sends. The kernel writes the outer IP/UDP headers (with a UDP checksum,
// which decap ignores) on a socket that sets DF and never fragments (native/probe_socket.c).
import { Native } from "../dataplane/native.js";
import { addressToString, AF_INET, type IpAddress } from "../lib/addr.js";
import { errnoName, LbError } from "../lib/errors.js";
import { buildIpPacket } from "../model/packet-builder.js";
import type { TunnelProbe, TunnelProber } from "./server.js";
import { encapOverhead, TUNNEL_PROBE_PREFIX } from "./wire.js";

/** Inner source port of every probe (any fixed port works: nothing answers it). */
export const PROBE_SOURCE_PORT = 7071;

const innerHeaders = (vip: IpAddress): number => (vip.family === AF_INET ? 20 + 8 : 40 + 8);

/** The inner packet of a probe (IPv4 with DF, or IPv6), from src to VIP:probePort; with
 * probe.outerBytes, padded (spaces after the nonce) so the outer packet has that many bytes. */
export function probePacket(src: IpAddress, probe: TunnelProbe): Uint8Array {
  const text = `${TUNNEL_PROBE_PREFIX} ${probe.nonce}`;
  const natural = innerHeaders(probe.vip) + text.length;
  const wanted = probe.outerBytes === undefined ? 0 : probe.outerBytes - encapOverhead(probe.backend.family);
  const payload = new TextEncoder().encode(text.padEnd(text.length + Math.max(0, wanted - natural), " "));
  const l4 = { kind: "udp" as const, sport: PROBE_SOURCE_PORT, dport: probe.probePort, payload };
  const s = addressToString(src);
  const d = addressToString(probe.vip);
  return probe.vip.family === AF_INET
    ? buildIpPacket({ family: 4, src: s, dst: d, flags: 0b010 }, l4)
    : buildIpPacket({ family: 6, src: s, dst: d }, l4);
}

/** Sends probes from the daemon's namespace; sources = the balancer's outer source addresses. */
export class UdpTunnelProber implements TunnelProber {
  private readonly fds = new Map<4 | 6, number>();

  constructor(private readonly sources: { v4?: IpAddress; v6?: IpAddress }) {}

  send(probe: TunnelProbe): Promise<void> {
    try {
      this.sendNow(probe);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private sendNow(probe: TunnelProbe): void {
    const src = probe.vip.family === AF_INET ? this.sources.v4 : this.sources.v6;
    if (src === undefined) {
      throw new LbError(
        "LB_ERR_CONFIG",
        `no ${probe.vip.family === AF_INET ? "IPv4" : "IPv6"} source address for the tunnel probe`,
        { hint: "give lbctl load a --source of the VIP's family" },
      );
    }
    const packet = probePacket(src, probe);
    const native = Native.get();
    const v4 = probe.backend.family === AF_INET;
    const fd = this.socket(native, v4 ? 4 : 6);
    const addr = v4 ? probe.backend.bytes.subarray(0, 4) : probe.backend.bytes;
    const ret = native.probeSend(fd, addr, probe.encapPort, packet);
    if (ret >= 0) return;
    const outer = packet.length + encapOverhead(probe.backend.family);
    const why = errnoName(ret);
    throw new Error(
      `${outer}-byte probe to ${addressToString(probe.backend)}:${probe.encapPort}: ${why}${
        why === "EMSGSIZE" ? " (larger than the MTU of the interface toward the backend)" : ""
      }`,
    );
  }

  close(): void {
    const native = this.fds.size > 0 ? Native.get() : undefined;
    for (const fd of this.fds.values()) native?.close(fd);
    this.fds.clear();
  }

  private socket(native: Native, family: 4 | 6): number {
    const existing = this.fds.get(family);
    if (existing !== undefined) return existing;
    const fd = native.probeSocket(family);
    if (fd < 0) throw new LbError("LB_ERR_NATIVE", `tunnel probe socket (IPv${family}): ${errnoName(fd)}`);
    this.fds.set(family, fd);
    return fd;
  }
}
