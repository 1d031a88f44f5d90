// The tunnel prober's native UDP socket (native/probe_socket.c) over loopback: a full-size probe
// leaves as one datagram whose payload (the inner packet) makes the outer packet exactly the
// size asked for, for both outer families; bad arguments come back as -errno, never a crash.
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { test } from "node:test";

import { Native } from "../../src/dataplane/native.js";
import { parseAddress } from "../../src/lib/addr.js";
import { UdpTunnelProber } from "../../src/registry/tunnel-probe.js";
import { encapOverhead, probeNonce } from "../../src/registry/wire.js";

const NONCE = "00112233445566778899aabbccddeeff";

async function receiver(type: "udp4" | "udp6"): Promise<{ socket: Socket; port: number }> {
  const socket = createSocket(type);
  socket.bind(0, type === "udp4" ? "127.0.0.1" : "::1");
  await once(socket, "listening");
  return { socket, port: socket.address().port };
}

for (const [type, backend, vip, src] of [
  ["udp4", "127.0.0.1", "198.18.1.1", "198.18.0.1"],
  ["udp6", "::1", "2001:db8:1::1", "2001:db8::1"],
] as const) {
  void test(`${type}: a 1500-byte probe arrives whole, padded, nonce first`, async () => {
    const { socket, port } = await receiver(type);
    const prober = new UdpTunnelProber({ v4: parseAddress("198.18.0.1"), v6: parseAddress(src) });
    try {
      const got = once(socket, "message") as Promise<[Buffer]>;
      await prober.send({
        backend: parseAddress(backend),
        encapPort: port,
        vip: parseAddress(vip),
        probePort: 40000,
        nonce: NONCE,
        outerBytes: 1500,
      });
      const [msg] = await got;
      assert.equal(msg.length + encapOverhead(parseAddress(backend).family), 1500);
      const innerHeaders = vip.includes(":") ? 48 : 28;
      assert.equal(probeNonce(msg.subarray(innerHeaders).toString("latin1")), NONCE);
    } finally {
      prober.close();
      socket.close();
    }
  });
}

void test("probe socket: bad family arguments and ports are -errno", () => {
  const native = Native.get();
  const fd = native.probeSocket(4);
  assert.ok(fd >= 0, `probe socket: ${fd}`);
  try {
    assert.equal(native.probeSend(fd, new Uint8Array(5), 6080, new Uint8Array(8)), -22, "address of 5 bytes");
    assert.equal(native.probeSend(fd, new Uint8Array(4), 0, new Uint8Array(8)), -22, "port 0");
  } finally {
    native.close(fd);
  }
});
