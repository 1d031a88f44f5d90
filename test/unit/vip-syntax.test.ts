// VIP (PROTO/ADDR:PORT) and backend address (ADDR[:ENCAP_PORT]) text: parsing, canonical
// formatting, round trips, and the messages for bad input.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  formatBackend,
  formatVip,
  parseBackendAddress,
  parseVip,
  parseVipResult,
  vipKey,
} from "../../src/core/vip-syntax.js";
import { AF_INET, AF_INET6, addressToString, parseAddress } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";

function assertUsageError(fn: () => unknown, fragment: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LbError);
    assert.equal(err.code, "LB_ERR_USAGE");
    assert.ok(err.message.includes(fragment), `"${err.message}" lacks "${fragment}"`);
    return true;
  });
}

void test("VIPs parse into protocol, address and port", () => {
  const cases: [string, string, number, string, number][] = [
    ["tcp/198.18.1.1:80", "tcp", AF_INET, "198.18.1.1", 80],
    ["udp/[2001:db8:1::1]:53", "udp", AF_INET6, "2001:db8:1::1", 53],
    ["tcp/198.18.1.3:0", "tcp", AF_INET, "198.18.1.3", 0],
    ["udp/198.18.1.2:65535", "udp", AF_INET, "198.18.1.2", 65535],
    ["TCP/[2001:DB8:1:0:0:0:0:1]:443", "tcp", AF_INET6, "2001:db8:1::1", 443],
    ["tcp/[::]:1", "tcp", AF_INET6, "::", 1],
  ];
  for (const [text, proto, family, address, port] of cases) {
    const vip = parseVip(text);
    assert.equal(vip.proto, proto, text);
    assert.equal(vip.address.family, family, text);
    assert.equal(addressToString(vip.address), address, text);
    assert.equal(vip.port, port, text);
  }
});

void test("formatVip is canonical and parseVip round-trips it", () => {
  const cases: [string, string][] = [
    ["tcp/198.18.1.1:80", "tcp/198.18.1.1:80"],
    ["UDP/[2001:0DB8:0001:0000:0000:0000:0000:0001]:53", "udp/[2001:db8:1::1]:53"],
    ["Tcp/[2001:db8:1::1]:0", "tcp/[2001:db8:1::1]:0"],
  ];
  for (const [text, canonical] of cases) {
    const vip = parseVip(text);
    assert.equal(formatVip(vip), canonical, text);
    assert.equal(vipKey(vip), canonical, text);
    assert.deepEqual(parseVip(formatVip(vip)), vip, text);
  }
  assert.equal(vipKey(parseVip("TCP/[2001:db8:1:0::1]:80")), vipKey(parseVip("tcp/[2001:db8:1::1]:80")));
});

void test("bad VIPs are usage errors naming the text and what was expected", () => {
  const cases: [string, string][] = [
    ["tcp/1.2.3.4", 'bad VIP "tcp/1.2.3.4": expected PROTO/ADDR:PORT, e.g. tcp/198.18.1.1:80'],
    ["198.18.1.1:80", "expected PROTO/ADDR:PORT"],
    ["", 'bad VIP "": expected PROTO/ADDR:PORT'],
    ["sctp/198.18.1.1:80", 'protocol "sctp" is not tcp or udp'],
    ["/198.18.1.1:80", 'protocol "" is not tcp or udp'],
    ["tcp/2001:db8:1::1:80", "an IPv6 address must be in brackets"],
    ["tcp/[2001:db8:1::1]", "expected PROTO/ADDR:PORT"],
    ["tcp/[2001:db8:1::1]80", "expected PROTO/ADDR:PORT"],
    ["tcp/[2001:db8:1::1:80", "expected PROTO/ADDR:PORT"],
    ["tcp/[198.18.1.1]:80", "brackets are for IPv6 addresses only"],
    ["tcp/198.18.1:80", '"198.18.1" is not an IPv4 or IPv6 address'],
    ["tcp/:80", '"" is not an IPv4 or IPv6 address'],
    ["tcp/198.18.1.1:65536", 'port "65536" is not an integer 0..65535'],
    ["tcp/198.18.1.1:", 'port "" is not an integer'],
    ["tcp/198.18.1.1:-1", 'port "-1"'],
    ["tcp/198.18.1.1:080", 'port "080"'],
    ["tcp/198.18.1.1:8 0", 'port "8 0"'],
    [" tcp/198.18.1.1:80", 'protocol " tcp"'],
  ];
  for (const [text, fragment] of cases) {
    assertUsageError(() => parseVip(text), fragment);
    assert.equal(parseVipResult(text).ok, false, text);
  }
});

void test("backend addresses: bare or with an encap port, IPv6 bracketed when it has one", () => {
  const cases: [string, string, number | undefined][] = [
    ["198.18.0.11", "198.18.0.11", undefined],
    ["198.18.0.11:6080", "198.18.0.11", 6080],
    ["2001:db8::11", "2001:db8::11", undefined],
    ["[2001:db8::11]:6080", "2001:db8::11", 6080],
    ["[2001:db8::11]", "2001:db8::11", undefined],
    ["198.18.2.11:65535", "198.18.2.11", 65535],
    // Without brackets the last group is part of the address, not a port.
    ["2001:db8::11:6080", "2001:db8::11:6080", undefined],
  ];
  for (const [text, address, port] of cases) {
    const b = parseBackendAddress(text);
    assert.equal(addressToString(b.address), address, text);
    assert.equal(b.encapPort, port, text);
    assert.equal("encapPort" in b, port !== undefined, `${text}: encapPort present only when given`);
  }
});

void test("bad backend addresses are usage errors naming the text", () => {
  const cases: [string, string][] = [
    ["", 'bad backend address "": expected ADDR or ADDR:ENCAP_PORT'],
    ["198.18.0", '"198.18.0" is not an IPv4 or IPv6 address'],
    ["backend1", '"backend1" is not an IPv4 or IPv6 address'],
    ["198.18.0.11:0", 'encap port "0" is not an integer 1..65535'],
    ["198.18.0.11:65536", 'encap port "65536"'],
    ["198.18.0.11:", 'encap port ""'],
    ["[2001:db8::11]:", 'encap port ""'],
    ["[2001:db8::11]6080", "expected ADDR or ADDR:ENCAP_PORT"],
    ["[198.18.0.11]:6080", "brackets are for IPv6 addresses only"],
    ["[2001:db8::11", "expected ADDR or ADDR:ENCAP_PORT"],
    ["2001:db8::g", '"2001:db8::g" is not an IPv4 or IPv6 address'],
  ];
  for (const [text, fragment] of cases) assertUsageError(() => parseBackendAddress(text), fragment);
});

void test("formatBackend brackets IPv6 with a port and round-trips", () => {
  assert.equal(formatBackend(parseAddress("198.18.0.11"), 6080), "198.18.0.11:6080");
  assert.equal(formatBackend(parseAddress("2001:0db8::0011"), 6080), "[2001:db8::11]:6080");
  assert.equal(formatBackend(parseAddress("2001:db8::11")), "2001:db8::11");
  assert.equal(formatBackend(parseAddress("198.18.0.11")), "198.18.0.11");
  for (const text of ["198.18.0.11:6080", "[2001:db8::11]:7000"]) {
    const b = parseBackendAddress(text);
    assert.equal(formatBackend(b.address, b.encapPort), text);
  }
});
