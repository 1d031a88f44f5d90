// The test-frame builder against hand-written bytes and checksum identities, and the hex diff
// used in failure messages.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { hexDiff, hexDump } from "../../src/lib/hexdiff.js";
import {
  buildArpFrame,
  buildFrame,
  buildIpPacket,
  internetChecksum,
  IpProto,
  Ipv4Flag,
  ipv4Checksum,
  ipv6Bytes,
  pseudoHeader,
  TcpFlag,
} from "../../src/model/packet-builder.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

void describe("packet-builder: addresses", () => {
  void it("parses IPv6 text forms", () => {
    assert.equal(hex(ipv6Bytes("2001:db8::11")), "20010db8000000000000000000000011");
    assert.equal(hex(ipv6Bytes("::")), "0".repeat(32));
    assert.equal(hex(ipv6Bytes("::1")), "0".repeat(31) + "1");
    assert.equal(hex(ipv6Bytes("fe80::")), "fe80" + "0".repeat(28));
    assert.equal(hex(ipv6Bytes("::ffff:198.18.0.1")), "00000000000000000000ffffc6120001");
    assert.equal(hex(ipv6Bytes("1:2:3:4:5:6:7:8")), "00010002000300040005000600070008");
    for (const bad of ["1::2::3", "1:2:3", "12345::", "1:2:3:4:5:6:7:8:9", "::g"]) {
      assert.throws(() => ipv6Bytes(bad), /bad IPv6/, bad);
    }
  });
});

void describe("packet-builder: IPv4", () => {
  void it("matches a hand-built header (RFC 1071 example-style check)", () => {
    // 45 00 00 1c | 00 00 40 00 | 40 11 cs cs | c6 12 00 01 | c6 12 00 0b, then UDP 8 bytes.
    const p = buildIpPacket(
      { family: 4, src: "198.18.0.1", dst: "198.18.0.11", flags: Ipv4Flag.DF },
      { kind: "udp", sport: 0xc123, dport: 6080, checksum: 0 },
    );
    assert.equal(hex(p.subarray(0, 10)), "4500001c000040004011");
    assert.equal(hex(p.subarray(12, 20)), "c6120001c612000b");
    assert.equal(internetChecksum(p.subarray(0, 20)), 0, "header sums to 0xffff");
    assert.equal(hex(p.subarray(20)), "c12317c000080000");
  });

  void it("puts options in the header, IHL follows, checksum covers them", () => {
    const p = buildIpPacket(
      { family: 4, src: "10.0.0.1", dst: "10.0.0.2", options: Uint8Array.of(1, 1, 1) },
      { kind: "raw", payload: Uint8Array.of(9) },
    );
    assert.equal(p[0], 0x46);
    assert.equal(hex(p.subarray(20, 24)), "01010100");
    assert.equal(p[9], IpProto.EXPERIMENT);
    assert.equal(internetChecksum(p.subarray(0, 24)), 0);
    assert.equal(ipv4Checksum(p.subarray(0, 24)), (p[10] ?? 0) * 256 + (p[11] ?? 0));
  });

  void it("encodes fragment flags and offset", () => {
    const p = buildIpPacket(
      { family: 4, src: "10.0.0.1", dst: "10.0.0.2", flags: Ipv4Flag.MF, fragOffset: 0x123, id: 0xbeef },
      { kind: "raw", payload: new Uint8Array(8) },
    );
    assert.equal(hex(p.subarray(4, 8)), "beef2123");
  });
});

void describe("packet-builder: L4 checksums", () => {
  const cases = [
    { family: 4, src: "198.18.0.2", dst: "198.18.1.1" },
    { family: 6, src: "2001:db8::2", dst: "2001:db8:1::1" },
  ] as const;
  for (const l3 of cases) {
    void it(`TCP, UDP and ICMP verify under IPv${l3.family}`, () => {
      const ipLen = l3.family === 4 ? 20 : 40;
      const tcp = buildIpPacket(l3, {
        kind: "tcp",
        sport: 1,
        dport: 2,
        seq: 0xfffffffe,
        flags: TcpFlag.SYN | TcpFlag.ECE,
        payload: Uint8Array.of(1, 2, 3),
      });
      const seg = tcp.subarray(ipLen);
      assert.equal(seg[13], 0x42);
      assert.equal(internetChecksum(pseudoHeader(l3.src, l3.dst, IpProto.TCP, seg.length), seg), 0);
      const udp = buildIpPacket(l3, { kind: "udp", sport: 1, dport: 2, payload: Uint8Array.of(7) }).subarray(
        ipLen,
      );
      assert.equal(internetChecksum(pseudoHeader(l3.src, l3.dst, IpProto.UDP, udp.length), udp), 0);
      const icmp = buildIpPacket(l3, { kind: "icmp", id: 1, seq: 2 }).subarray(ipLen);
      assert.equal(icmp[0], l3.family === 4 ? 8 : 128);
      const pseudo = l3.family === 6 ? [pseudoHeader(l3.src, l3.dst, IpProto.ICMPV6, icmp.length)] : [];
      assert.equal(internetChecksum(...pseudo, icmp), 0);
    });
  }
});

void describe("packet-builder: IPv6 and frames", () => {
  void it("chains extension headers to the L4 protocol", () => {
    const p = buildIpPacket(
      {
        family: 6,
        src: "2001:db8::1",
        dst: "2001:db8::2",
        tos: 0xb8,
        flowLabel: 0xabcde,
        extensions: [{ type: IpProto.HOPOPTS }, { type: IpProto.FRAGMENT, fragOffset: 3, mf: true, id: 7 }],
      },
      { kind: "udp", sport: 1, dport: 2 },
    );
    assert.equal(hex(p.subarray(0, 8)), "6b8abcde" + "0018" + "00" + "40");
    assert.equal(hex(p.subarray(40, 48)), "2c00000000000000");
    assert.equal(hex(p.subarray(48, 56)), "1100001900000007");
    assert.equal(p.length, 40 + 8 + 8 + 8);
  });

  void it("builds tagged frames, trailers and padding", () => {
    const f = buildFrame({
      dst: "02:00:00:00:00:0b",
      src: "02:00:00:00:00:01",
      vlan: 100,
      l3: { family: 4, src: "10.0.0.1", dst: "10.0.0.2" },
      l4: { kind: "udp", sport: 1, dport: 2 },
      trailer: Uint8Array.of(0xaa),
      padTo: 64,
    });
    assert.equal(hex(f.subarray(0, 18)), "02000000000b020000000001810000640800");
    assert.equal(f.length, 64);
    assert.equal(f[18 + 28], 0xaa);
  });

  void it("builds ARP requests", () => {
    const f = buildArpFrame({ senderIp: "198.18.0.1", targetIp: "198.18.0.11" });
    assert.equal(f.length, 42);
    assert.equal(hex(f.subarray(0, 22)), "ffffffffffff0200000000010806000108000604" + "0001");
    assert.equal(hex(f.subarray(38, 42)), "c612000b");
  });
});

void describe("hexdiff", () => {
  void it("is empty for identical bytes", () => {
    assert.equal(hexDiff(Uint8Array.of(1, 2), Uint8Array.of(1, 2)), "");
  });

  void it("marks differing bytes and length differences", () => {
    const a = new Uint8Array(40);
    const b = new Uint8Array(41);
    b[17] = 0xff;
    const d = hexDiff(a, b);
    assert.match(d, /expected 40 bytes, actual 41 bytes; first difference at offset 17 \(0x11\)/);
    assert.match(d, /^- 0010 {2}00 00 00/m);
    assert.match(d, /^\+ 0010 {2}00 ff 00/m);
    assert.match(d, /^ {8} {3}\^\^$/m);
    assert.match(d, /^\+ 0020 {2}(00 ){8}00$/m);
  });

  void it("dumps 16 bytes a row", () => {
    assert.equal(hexDump(Uint8Array.from({ length: 17 }, (_, i) => i)).split("\n")[1], "0010  10");
  });
});
