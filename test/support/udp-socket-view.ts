// What a UDP socket bound to LOCAL:PORT receives when the kernel gets this Ethernet frame: the
// UDP payload, or why nothing arrives. Only the rules that matter for encapsulated traffic
// (Linux ip_rcv / ipv6_rcv / udp_rcv): lengths, protocol, address and port; a fragment is
// reported as such (the kernel would hold it for reassembly). Used to feed the TUN
// decapsulator's decision the bytes its socket would see for a decap fixture.

export type SocketView =
  | { delivered: true; payload: Uint8Array }
  | { delivered: false; why: "not IP" | "not UDP" | "not ours" | "fragment" | "kernel drop" };

const IPV6_EXTENSIONS = new Set([0, 43, 60]); // hop-by-hop, routing, destination options

function be16(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** local: the socket's address (4 or 16 bytes); port: host order. */
export function udpSocketView(frame: Uint8Array, local: Uint8Array, port: number): SocketView {
  if (frame.length < 14) return { delivered: false, why: "not IP" };
  let l3 = 14;
  let type = be16(frame, 12);
  if (type === 0x8100) {
    if (frame.length < 18) return { delivered: false, why: "not IP" };
    l3 = 18;
    type = be16(frame, 16);
  }
  let udp: number;
  let ipEnd: number; // end of the IP packet by its length field
  if (type === 0x0800) {
    if (frame.length < l3 + 20 || (frame[l3] ?? 0) >> 4 !== 4) return { delivered: false, why: "not IP" };
    const ihl = ((frame[l3] ?? 0) & 0xf) * 4;
    const total = be16(frame, l3 + 2);
    if (ihl < 20 || total < ihl || l3 + total > frame.length) return { delivered: false, why: "kernel drop" };
    if ((be16(frame, l3 + 6) & 0x3fff) !== 0) return { delivered: false, why: "fragment" };
    if (frame[l3 + 9] !== 17) return { delivered: false, why: "not UDP" };
    if (!sameBytes(frame.subarray(l3 + 16, l3 + 20), local)) return { delivered: false, why: "not ours" };
    udp = l3 + ihl;
    ipEnd = l3 + total;
  } else if (type === 0x86dd) {
    if (frame.length < l3 + 40 || (frame[l3] ?? 0) >> 4 !== 6) return { delivered: false, why: "not IP" };
    ipEnd = l3 + 40 + be16(frame, l3 + 4);
    if (ipEnd > frame.length) return { delivered: false, why: "kernel drop" };
    if (!sameBytes(frame.subarray(l3 + 24, l3 + 40), local)) return { delivered: false, why: "not ours" };
    let next = frame[l3 + 6] ?? 0;
    udp = l3 + 40;
    while (IPV6_EXTENSIONS.has(next)) {
      if (udp + 8 > ipEnd) return { delivered: false, why: "kernel drop" };
      next = frame[udp] ?? 0;
      udp += ((frame[udp + 1] ?? 0) + 1) * 8;
    }
    if (next === 44) return { delivered: false, why: "fragment" };
    if (next !== 17) return { delivered: false, why: "not UDP" };
  } else return { delivered: false, why: "not IP" };
  if (udp + 8 > ipEnd) return { delivered: false, why: "kernel drop" };
  const udpLen = be16(frame, udp + 4);
  if (udpLen < 8 || udp + udpLen > ipEnd) return { delivered: false, why: "kernel drop" };
  if (be16(frame, udp + 2) !== port) return { delivered: false, why: "not ours" };
  return { delivered: true, payload: frame.slice(udp + 8, udp + udpLen) };
}
