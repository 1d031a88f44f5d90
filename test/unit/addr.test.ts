// Address parsing and RFC 5952 formatting into/out of the maps' 16-byte form.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AF_INET, AF_INET6, formatAddress, parseAddress, tryParseAddress } from "../../src/lib/addr.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

void test("IPv4 fills the first 4 bytes", () => {
  const a = parseAddress("198.18.1.1");
  assert.equal(a.family, AF_INET);
  assert.equal(hex(a.bytes), "c6120101" + "00".repeat(12));
  assert.equal(formatAddress(a.bytes, AF_INET), "198.18.1.1");
});

void test("IPv6 forms parse to the same bytes and format canonically", () => {
  const cases: [string, string][] = [
    ["2001:db8::11", "2001:db8::11"],
    ["2001:0DB8:0000:0000:0000:0000:0000:0011", "2001:db8::11"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:1:2:3:4:5:0", "2001:db8:1:2:3:4:5:0"],
    ["::ffff:198.18.0.1", "::ffff:c612:1"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
  ];
  for (const [text, canonical] of cases) {
    const a = parseAddress(text);
    assert.equal(a.family, AF_INET6, text);
    assert.equal(formatAddress(a.bytes, AF_INET6), canonical, text);
  }
  assert.equal(hex(parseAddress("2001:db8::11").bytes), "20010db8000000000000000000000011");
});

void test("invalid text is refused", () => {
  for (const bad of [
    "",
    "1.2.3",
    "1.2.3.256",
    "01.2.3.4",
    "1.2.3.4.5",
    ":::",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::8",
    "12345::",
    "1.2.3.4::",
    "fe80::1%eth0",
    "[::1]",
  ]) {
    assert.equal(tryParseAddress(bad), undefined, bad);
  }
  assert.throws(() => parseAddress("nope"), /invalid IP address "nope"/);
});
