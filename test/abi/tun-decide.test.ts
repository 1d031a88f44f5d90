// caplance-tun's decision (native/tun_decide.c, through libcaplance) against the decap reference
// model (src/model/decap.ts): the decap fixtures as the kernel's UDP socket would hand them
// over, and randomized inner packets. Where the semantics coincide the outcome and the inner
// bytes are the same; where they differ (the TUN path writes only whole IP packets; the kernel,
// not caplance-tun, handles outer options and fragments) the difference is asserted.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { TUN_REASONS, type TunReason } from "../../src/dataplane/tun-decap.js";
import { tunDecide, tunVipKeys } from "../../src/dataplane/tun-decide.js";
import { Native } from "../../src/dataplane/native.js";
import { hexDiff } from "../../src/lib/hexdiff.js";
import { parseAddress } from "../../src/lib/addr.js";
import { decapAddrKeyHex, decapDecide, type DecapState } from "../../src/model/decap.js";
import { buildIpPacket, ipBytes, type L4Spec } from "../../src/model/packet-builder.js";
import {
  DECAP_FIXTURES,
  ENCAP_PORT,
  encapFrame,
  INNER,
  LOCAL_V4,
  LOCAL_V6,
} from "../fixtures/decap-fixtures.js";
import { Prng } from "../support/prng.js";
import { udpSocketView, type SocketView } from "../support/udp-socket-view.js";

const state: DecapState = {
  encapPort: ENCAP_PORT,
  localAddrs: new Set([decapAddrKeyHex(ipBytes(LOCAL_V4)), decapAddrKeyHex(ipBytes(LOCAL_V6))]),
};
const VIPS = ["198.18.1.1", "198.18.1.2", "2001:db8:1::1", "2001:db8:1::53"];
const VIP_KEYS = tunVipKeys(VIPS.map(parseAddress));
const NOWHERE = new Uint8Array(0);

/** The caplance-tun sockets of the lab: one per local address, on the encap port. */
function socketView(frame: Uint8Array): SocketView {
  const v4 = udpSocketView(frame, ipBytes(LOCAL_V4), ENCAP_PORT);
  return v4.delivered || v4.why !== "not ours" ? v4 : udpSocketView(frame, ipBytes(LOCAL_V6), ENCAP_PORT);
}

function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const diff = hexDiff(expected, actual);
  assert.equal(diff, "", `${what}:\n${diff}`);
}

/** The model's malformed reasons that reach a socket, as caplance-tun names them. */
function modelReasonAsTun(reason: string): TunReason | undefined {
  if (reason === "malformed: empty payload") return "empty";
  if (/^malformed: inner IP version/.test(reason)) return "version";
  if (/^malformed: inner IPv[46] too short/.test(reason)) return "short";
  return undefined;
}

/** Decapsulated by caplance-tun, not by lb_decap: the kernel parses these outer headers. */
const OUTER_HEADERS_THE_KERNEL_TAKES = new Set([
  "v4 outer with IP options",
  "v6 outer with a destination-options header before UDP",
]);

void describe("TUN decision: the C reasons", () => {
  void it("names match the TypeScript mirror, in order", () => {
    const native = Native.get();
    TUN_REASONS.forEach((name, i) => {
      assert.equal(native.tunReasonName(i), name, `reason ${i}`);
    });
    assert.equal(native.tunReasonName(TUN_REASONS.length), undefined);
  });
});

void describe("TUN decision: decap fixtures through the kernel's socket view", () => {
  const differencesSeen = new Set<string>();
  for (const f of DECAP_FIXTURES) {
    void it(f.name, () => {
      const view = socketView(f.frame);
      const model = decapDecide(f.frame, state);
      if (f.expect === "decap") {
        assert.ok(view.delivered, `the socket receives it (${view.delivered ? "" : view.why})`);
        assert.equal(tunDecide(view.payload, VIP_KEYS), "decap");
        const l2 = model.output.length - view.payload.length;
        assert.ok(l2 === 14 || l2 === 18, `model output is L2 (${l2}) + the same inner packet`);
        assertBytes(view.payload, model.output.subarray(l2), "inner packet written to the TUN");
      } else if (f.expect === "drop") {
        if (!view.delivered) {
          assert.equal(view.why, "kernel drop", "the kernel drops what lb_decap calls malformed");
          return;
        }
        const expected = modelReasonAsTun(model.reason);
        assert.ok(expected, `model reason ${model.reason} has a TUN counterpart`);
        assert.equal(tunDecide(view.payload, VIP_KEYS), expected);
      } else if (view.delivered) {
        assert.ok(OUTER_HEADERS_THE_KERNEL_TAKES.has(f.name), `${f.name}: not ours, yet delivered`);
        assert.equal(tunDecide(view.payload, VIP_KEYS), "decap");
        differencesSeen.add(f.name);
      } else {
        assert.ok(!view.delivered, "lb_decap passes it to the kernel, which does not deliver it");
      }
    });
  }
  void it("every listed difference occurs in the fixtures", () => {
    assert.deepEqual([...differencesSeen].sort(), [...OUTER_HEADERS_THE_KERNEL_TAKES].sort());
  });
});

void describe("TUN decision: whole packets only, VIPs only", () => {
  const tcp4 = INNER.tcp4;
  const udp6 = INNER.udp6;
  const patched = (b: Uint8Array, at: number, value: number): Uint8Array => {
    const c = Uint8Array.from(b);
    c[at] = value;
    return c;
  };

  void it("a whole IPv4 / IPv6 packet to a VIP is written unchanged", () => {
    assert.equal(tunDecide(tcp4, VIP_KEYS), "decap");
    assert.equal(tunDecide(udp6, VIP_KEYS), "decap");
    assert.equal(tunDecide(INNER.udp4Options, VIP_KEYS), "decap");
  });

  void it("trailing bytes or a cut packet: length; shorter than the header: short", () => {
    assert.equal(tunDecide(Uint8Array.of(...tcp4, 0), VIP_KEYS), "length");
    assert.equal(tunDecide(tcp4.subarray(0, tcp4.length - 1), VIP_KEYS), "length");
    assert.equal(tunDecide(Uint8Array.of(...udp6, 0, 0), VIP_KEYS), "length");
    assert.equal(tunDecide(udp6.subarray(0, 41), VIP_KEYS), "length");
    assert.equal(tunDecide(udp6.subarray(0, 39), VIP_KEYS), "short");
    assert.equal(tunDecide(tcp4.subarray(0, 19), VIP_KEYS), "short");
    assert.equal(tunDecide(patched(tcp4, 0, 0x4f), VIP_KEYS), "short", "IHL 15 on a 40-byte packet");
    assert.equal(tunDecide(patched(tcp4, 0, 0x44), VIP_KEYS), "short", "IHL 4");
    assert.equal(tunDecide(patched(tcp4, 0, 0x55), VIP_KEYS), "version");
    assert.equal(tunDecide(NOWHERE, VIP_KEYS), "empty");
  });

  void it("only configured VIPs, IPv4 and IPv6 alike; no VIP set accepts any destination", () => {
    const l4: L4Spec = { kind: "udp", sport: 1, dport: 53, payload: Uint8Array.of(1) };
    const to = (dst: string): Uint8Array =>
      buildIpPacket(
        dst.includes(":") ? { family: 6, src: "2001:db8::2", dst } : { family: 4, src: "198.18.0.2", dst },
        l4,
      );
    assert.equal(tunDecide(to("198.18.1.2"), VIP_KEYS), "decap");
    assert.equal(tunDecide(to("2001:db8:1::53"), VIP_KEYS), "decap");
    assert.equal(tunDecide(to("198.18.1.3"), VIP_KEYS), "not_vip");
    assert.equal(tunDecide(to("2001:db8:1::54"), VIP_KEYS), "not_vip");
    // The IPv4-mapped form of a VIP is not the IPv4 VIP.
    assert.equal(tunDecide(to("::ffff:198.18.1.2"), VIP_KEYS), "not_vip");
    assert.equal(tunDecide(to("198.18.1.3")), "decap");
  });
});

/** The TUN path's extra rule: the payload is exactly one IP packet by its own length field. */
function whole(p: Uint8Array): boolean {
  const v = (p[0] ?? 0) >> 4;
  const be16 = (at: number): number => ((p[at] ?? 0) << 8) | (p[at + 1] ?? 0);
  if (v === 4) return ((p[0] ?? 0) & 0xf) * 4 <= p.length && be16(2) === p.length;
  return 40 + be16(4) === p.length;
}

void describe("TUN decision: randomized against the model", () => {
  const PACKETS = Number(process.env.CAPLANCE_TUN_DIFF_PACKETS ?? 20_000);
  const SEED = Number(process.env.CAPLANCE_TUN_DIFF_SEED ?? 0x7d0cab1e);

  function innerPacket(rng: Prng): Uint8Array {
    const family = rng.pick([4, 6] as const);
    const dst =
      family === 4
        ? rng.pick(["198.18.1.1", "198.18.1.2", "198.18.1.9"])
        : rng.pick(["2001:db8:1::1", "2001:db8:1::9"]);
    const payload = rng.bytes(rng.int(rng.chance(0.1) ? 1400 : 120));
    const l4: L4Spec = rng.chance(0.5)
      ? { kind: "udp", sport: rng.int(65536), dport: 53, payload }
      : { kind: "tcp", sport: rng.int(65536), dport: 80, payload, flags: 0x10 };
    const packet =
      family === 4
        ? buildIpPacket(
            {
              family: 4,
              src: "198.18.0.2",
              dst,
              ...(rng.chance(0.2) ? { options: rng.bytes(4 * (1 + rng.int(10))) } : {}),
            },
            l4,
          )
        : buildIpPacket({ family: 6, src: "2001:db8::2", dst }, l4);
    const p = Uint8Array.from(packet);
    switch (rng.int(8)) {
      case 0:
        return p.subarray(0, rng.int(p.length));
      case 1:
        return Uint8Array.of(...p, ...rng.bytes(1 + rng.int(8)));
      case 2:
        p[0] = rng.int(256);
        return p;
      case 3:
        p[family === 4 ? 2 : 4] = rng.int(256);
        p[family === 4 ? 3 : 5] = rng.int(256);
        return p;
      default:
        return p;
    }
  }

  void it(`${PACKETS} packets (seed ${SEED}): same verdict where the semantics coincide, same bytes`, () => {
    const rng = new Prng(SEED);
    const seen = new Map<TunReason, number>();
    for (let i = 0; i < PACKETS; i++) {
      const inner = innerPacket(rng);
      const frame = encapFrame({ outer: rng.pick([4, 6] as const), inner });
      const what = `packet #${i} (CAPLANCE_TUN_DIFF_SEED=${SEED})`;
      const view = socketView(frame);
      assert.ok(view.delivered, `${what}: well-formed outer headers reach the socket`);
      const model = decapDecide(frame, state);
      const tun = tunDecide(view.payload, VIP_KEYS);
      seen.set(tun, (seen.get(tun) ?? 0) + 1);
      if (model.reason !== "decap") {
        assert.equal(tun, modelReasonAsTun(model.reason), `${what}: model ${model.reason}`);
        continue;
      }
      assertBytes(view.payload, model.output.subarray(14), `${what}: inner bytes`);
      if (!whole(view.payload)) {
        assert.ok(tun === "length" || tun === "short", `${what}: not one whole packet, got ${tun}`);
        continue;
      }
      const v4 = (view.payload[0] ?? 0) >> 4 === 4;
      const dst = v4 ? view.payload.subarray(16, 20) : view.payload.subarray(24, 40);
      const isVip = VIPS.some((v) => Buffer.from(ipBytes(v)).equals(dst));
      assert.equal(tun, isVip ? "decap" : "not_vip", what);
    }
    for (const r of ["decap", "length", "short", "version", "empty", "not_vip"] as const)
      assert.ok((seen.get(r) ?? 0) > 0, `outcome ${r} covered: ${JSON.stringify(Object.fromEntries(seen))}`);
  });
});
