// The tunnel check's probe, the way client traffic will arrive at a backend: an outer UDP
// datagram to the backend's encap port whose payload is an inner IP/UDP packet from the
// balancer's source address to VIP:probePort carrying "CAPLANCE-TUNNEL <nonce>" (DESIGN.md wire
// format: direct IP in UDP). Sent through an ordinary UDP socket: the kernel writes the outer
// IP/UDP headers (with a UDP checksum, which decap ignores), so no raw socket is needed.
import { createSocket, type Socket } from "node:dgram";

import { addressToString, AF_INET, type IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { buildIpPacket } from "../model/packet-builder.js";
import type { TunnelProbe, TunnelProber } from "./server.js";
import { TUNNEL_PROBE_PREFIX } from "./wire.js";

/** Inner source port of every probe (any fixed port works: nothing answers it). */
export const PROBE_SOURCE_PORT = 7071;

/** The inner packet of a probe (IPv4 with DF, or IPv6), from src to VIP:probePort. */
export function probePacket(src: IpAddress, probe: TunnelProbe): Uint8Array {
  const payload = new TextEncoder().encode(`${TUNNEL_PROBE_PREFIX} ${probe.nonce}`);
  const l4 = { kind: "udp" as const, sport: PROBE_SOURCE_PORT, dport: probe.probePort, payload };
  const s = addressToString(src);
  const d = addressToString(probe.vip);
  return probe.vip.family === AF_INET
    ? buildIpPacket({ family: 4, src: s, dst: d, flags: 0b010 }, l4)
    : buildIpPacket({ family: 6, src: s, dst: d }, l4);
}

/** Sends probes from the daemon's namespace; sources = the balancer's outer source addresses. */
export class UdpTunnelProber implements TunnelProber {
  private v4: Socket | undefined;
  private v6: Socket | undefined;

  constructor(private readonly sources: { v4?: IpAddress; v6?: IpAddress }) {}

  async send(probe: TunnelProbe): Promise<void> {
    const src = probe.vip.family === AF_INET ? this.sources.v4 : this.sources.v6;
    if (src === undefined) {
      throw new LbError(
        "LB_ERR_CONFIG",
        `no ${probe.vip.family === AF_INET ? "IPv4" : "IPv6"} source address for the tunnel probe`,
        { hint: "give lbctl load a --source of the VIP's family" },
      );
    }
    const packet = probePacket(src, probe);
    const socket = this.socket(probe.backend.family === AF_INET ? "udp4" : "udp6");
    await new Promise<void>((resolve, reject) => {
      socket.send(packet, probe.encapPort, addressToString(probe.backend), (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
  }

  close(): void {
    this.v4?.close();
    this.v6?.close();
    this.v4 = this.v6 = undefined;
  }

  private socket(type: "udp4" | "udp6"): Socket {
    const existing = type === "udp4" ? this.v4 : this.v6;
    if (existing) return existing;
    const s = createSocket(type);
    s.on("error", () => undefined); // send errors reach the send callback
    s.unref();
    if (type === "udp4") this.v4 = s;
    else this.v6 = s;
    return s;
  }
}
