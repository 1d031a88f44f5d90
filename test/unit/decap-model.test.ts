// The decap reference model (src/model/decap.ts) on the shared fixtures and on hand-checked
// byte layouts: what is ours is decapsulated to exactly the inner packet, the rest is passed
// untouched or dropped, and the counters say which.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { hexDiff } from "../../src/lib/hexdiff.js";
import { decapAddrKeyBytes, decapAddrKeyHex, decapDecide, type DecapState } from "../../src/model/decap.js";
import { ipBytes } from "../../src/model/packet-builder.js";
import { XdpAction } from "../../src/model/xdp-action.js";
import {
  DECAP_FIXTURES,
  ENCAP_PORT,
  encapFrame,
  INNER,
  LOCAL_V4,
  LOCAL_V6,
} from "../fixtures/decap-fixtures.js";

const state: DecapState = {
  encapPort: ENCAP_PORT,
  localAddrs: new Set([decapAddrKeyHex(ipBytes(LOCAL_V4)), decapAddrKeyHex(ipBytes(LOCAL_V6))]),
};

function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const diff = hexDiff(expected, actual);
  assert.equal(diff, "", `${what}:\n${diff}`);
}

void describe("decap model: fixtures", () => {
  for (const f of DECAP_FIXTURES) {
    void it(f.name, () => {
      const r = decapDecide(f.frame, state);
      assert.equal(r.counters.rx, 1);
      if (f.expect === "decap") {
        assert.equal(r.reason, "decap");
        assert.equal(r.xdpAction, XdpAction.XDP_PASS);
        assert.deepEqual(r.counters, { rx: 1, decap: 1, pass: 0, malformed: 0 });
        assert.ok(f.output);
        assertBytes(r.output, f.output, "decapsulated frame");
      } else if (f.expect === "pass") {
        assert.match(r.reason, /^not-ours: /);
        assert.equal(r.action, "pass");
        assert.equal(r.xdpAction, XdpAction.XDP_PASS);
        assert.deepEqual(r.counters, { rx: 1, decap: 0, pass: 1, malformed: 0 });
        assertBytes(r.output, f.frame, "passed frame");
      } else {
        assert.match(r.reason, /^malformed: /);
        assert.equal(r.action, "drop");
        assert.equal(r.xdpAction, XdpAction.XDP_DROP);
        assert.deepEqual(r.counters, { rx: 1, decap: 0, pass: 0, malformed: 1 });
        assertBytes(r.output, f.frame, "dropped frame");
      }
    });
  }

  void it("covers every outcome at least three times", () => {
    for (const outcome of ["decap", "pass", "drop"] as const) {
      assert.ok(DECAP_FIXTURES.filter((f) => f.expect === outcome).length >= 3, outcome);
    }
  });
});

void describe("decap model: bytes", () => {
  void it("output is the L2 header with the inner ethertype, then the UDP payload verbatim", () => {
    const frame = encapFrame({ outer: 4, inner: INNER.tcp6 });
    const r = decapDecide(frame, state);
    assert.equal(r.output.length, 14 + INNER.tcp6.length);
    assertBytes(r.output.subarray(0, 12), frame.subarray(0, 12), "MACs");
    assert.deepEqual([...r.output.subarray(12, 14)], [0x86, 0xdd]);
    assertBytes(r.output.subarray(14), INNER.tcp6, "inner packet");
    assert.equal(frame.length - r.output.length, 28, "IPv4 outer overhead");
  });

  void it("keeps the 802.1Q tag and rewrites only the ethertype after it", () => {
    const frame = encapFrame({ outer: 6, inner: INNER.tcp4, vlan: 0xe064 });
    const r = decapDecide(frame, state);
    assertBytes(r.output.subarray(0, 16), frame.subarray(0, 16), "MACs and tag");
    assert.deepEqual([...r.output.subarray(16, 18)], [0x08, 0x00]);
    assertBytes(r.output.subarray(18), INNER.tcp4, "inner packet");
    assert.equal(frame.length - r.output.length, 48, "IPv6 outer overhead");
  });

  void it("drops trailing bytes beyond the UDP payload", () => {
    const trailer = new Uint8Array(17).fill(0xee);
    const r = decapDecide(encapFrame({ outer: 6, inner: INNER.udp6, trailer }), state);
    assert.equal(r.reason, "decap");
    assertBytes(r.output.subarray(14), INNER.udp6, "inner packet");
  });

  void it("passed and dropped frames are returned as the very input", () => {
    const frame = encapFrame({ outer: 4, inner: INNER.tcp4, dport: 1 });
    assert.equal(decapDecide(frame, state).output, frame);
  });
});

void describe("decap model: state", () => {
  const frame = encapFrame({ outer: 4, inner: INNER.tcp4 });

  void it("encap port 0 means not configured: nothing is ours", () => {
    const r = decapDecide(frame, { ...state, encapPort: 0 });
    assert.equal(r.reason, "not-ours: no encap port configured");
  });

  void it("honours a non-default encap port", () => {
    const other = encapFrame({ outer: 4, inner: INNER.tcp4, dport: 7000 });
    assert.equal(decapDecide(other, { ...state, encapPort: 7000 }).reason, "decap");
    assert.equal(decapDecide(other, state).reason, "not-ours: other UDP port");
  });

  void it("an address is ours only under its own family", () => {
    const v6only: DecapState = { ...state, localAddrs: new Set([decapAddrKeyHex(ipBytes(LOCAL_V6))]) };
    assert.equal(decapDecide(frame, v6only).reason, "not-ours: other destination address");
  });

  void it("decapAddrKeyBytes lays out struct lb_decap_addr_key", () => {
    const key = decapAddrKeyBytes(ipBytes(LOCAL_V4));
    assert.equal(key.length, 20);
    assert.deepEqual([...key.subarray(0, 4)], [198, 18, 0, 11]);
    assert.deepEqual([...key.subarray(4, 20)], [...new Array<number>(12).fill(0), 2, 0, 0, 0]);
    assert.equal(decapAddrKeyHex(ipBytes(LOCAL_V6)), "20010db8000000000000000000000011" + "0a");
    assert.throws(() => decapAddrKeyBytes(new Uint8Array(5)), /4 or 16 bytes/);
  });
});
