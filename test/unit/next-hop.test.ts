// NextHopResolver's decisions against a fake `ip` (canned route, link and neighbour tables that
// change between polls) and a fake prober: no root. The lab test runs it against a real kernel.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { addressToString, parseAddress } from "../../src/lib/addr.js";
import type { IpAddress } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";
import type { IpResult, IpRunner } from "../../src/net/ip-json.js";
import { formatMac, parseMac } from "../../src/net/links.js";
import { NextHopResolver, isStale, sameForwarding, usableLladdr } from "../../src/net/next-hop.js";
import type { NextHop } from "../../src/net/next-hop.js";

const MAC_A = "b6:ea:48:d3:fd:66";
const MAC_B = "76:fd:8d:b4:bf:d3";
const MAC_C = "02:00:00:00:00:0c";

const link = (ifindex: number, name: string, type: string, mac: string | undefined, mtu = 1480): string =>
  JSON.stringify([
    {
      ifindex,
      ifname: name,
      flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
      mtu,
      link_type: type,
      ...(mac === undefined ? {} : { address: mac }),
    },
  ]);
const neigh = (dst: string, state: string, lladdr?: string): string =>
  JSON.stringify([{ dst, ...(lladdr === undefined ? {} : { lladdr }), state: [state] }]);
const unreachable: IpResult = {
  ok: false,
  stderr: "RTNETLINK answers: Network is unreachable\n",
  exitCode: 2,
};

type Canned = string | IpResult | (() => string | IpResult);

/** Fake `ip`: command line (without "ip -j") → canned answer; a function answers per call. */
function fakeIp(table: Record<string, Canned>): IpRunner {
  return (args) => {
    const key = args.join(" ");
    const entry = table[key];
    if (entry === undefined) return Promise.reject(new Error(`unexpected ip ${key}`));
    const answer = typeof entry === "function" ? entry() : entry;
    return Promise.resolve(typeof answer === "string" ? { ok: true, stdout: answer } : answer);
  };
}

/** A neighbour table entry that follows the probes: answers `after` once probed. */
function kernelNeighbour(
  before: string,
  after: string,
): { answer: () => string; probe: (a: IpAddress) => Promise<void>; probes: string[] } {
  const probes: string[] = [];
  return {
    probes,
    answer: () => (probes.length === 0 ? before : after),
    probe: (address) => {
      probes.push(addressToString(address));
      return Promise.resolve();
    },
  };
}

const base = {
  "route get 198.18.0.11": `[{"dst":"198.18.0.11","dev":"cpl1a","prefsrc":"198.18.0.1","flags":[],"cache":[]}]`,
  "link show dev cpl1a": link(2, "cpl1a", "ether", MAC_A),
};

const lbError = (code: string, message: RegExp, hint?: RegExp) => (err: unknown) =>
  err instanceof LbError &&
  err.code === code &&
  message.test(err.message) &&
  (hint?.test(err.hint ?? "") ?? true);

const noProbe = (): Promise<void> => Promise.reject(new Error("unexpected probe"));

function show(nh: NextHop | undefined): unknown {
  if (nh === undefined) return undefined;
  return {
    ...nh,
    smac: formatMac(nh.smac),
    dmac: formatMac(nh.dmac),
    gateway: nh.gateway && addressToString(nh.gateway),
  };
}

test("a usable entry is used as is, without a probe", async () => {
  const run = fakeIp({
    ...base,
    "neigh show to 198.18.0.11 dev cpl1a": neigh("198.18.0.11", "STALE", MAC_B),
  });
  const nh = await new NextHopResolver({ run, probe: noProbe }).resolve(parseAddress("198.18.0.11"));
  assert.deepEqual(show(nh), {
    ifindex: 2,
    ifname: "cpl1a",
    smac: MAC_A,
    dmac: MAC_B,
    mtu: 1480,
    gateway: undefined,
    state: "STALE",
  });
});

test("a cold table is probed once, then polled until the entry is usable", async () => {
  let polls = 0;
  const probes: string[] = [];
  const run = fakeIp({
    ...base,
    "neigh show to 198.18.0.11 dev cpl1a": () => {
      polls++;
      if (probes.length === 0) return "[]";
      return polls < 4 ? neigh("198.18.0.11", "INCOMPLETE") : neigh("198.18.0.11", "REACHABLE", MAC_B);
    },
  });
  const probe = (a: IpAddress): Promise<void> => {
    probes.push(addressToString(a));
    return Promise.resolve();
  };
  const nh = await new NextHopResolver({ run, probe, pollIntervalMs: 1 }).resolve(
    parseAddress("198.18.0.11"),
  );
  assert.equal(nh?.state, "REACHABLE");
  assert.equal(formatMac(nh.dmac), MAC_B);
  assert.deepEqual(probes, ["198.18.0.11"]);
  assert.equal(polls, 4);
});

test("a backend behind a router resolves its gateway; probes still go to the backend", async () => {
  const k = kernelNeighbour("[]", neigh("198.18.0.11", "REACHABLE", MAC_B));
  const run = fakeIp({
    "route get 198.18.2.11": `[{"dst":"198.18.2.11","gateway":"198.18.0.11","dev":"cpl1a","metrics":[{"mtu":1400}]}]`,
    "link show dev cpl1a": base["link show dev cpl1a"],
    "neigh show to 198.18.0.11 dev cpl1a": k.answer,
  });
  const nh = await new NextHopResolver({ run, probe: k.probe, pollIntervalMs: 1 }).resolve(
    parseAddress("198.18.2.11"),
  );
  assert.deepEqual(show(nh), {
    ifindex: 2,
    ifname: "cpl1a",
    smac: MAC_A,
    dmac: MAC_B,
    mtu: 1400,
    gateway: "198.18.0.11",
    state: "REACHABLE",
  });
  assert.deepEqual(k.probes, ["198.18.2.11"]);
});

test("IPv6 link-local gateways and IPv4 routes via IPv6 (RFC 5549) resolve the gateway", async () => {
  const ll = "fe80::74fd:8dff:feb4:bfd3";
  const run = fakeIp({
    "route get 2001:db8:2::11": `[{"dst":"2001:db8:2::11","from":"::","gateway":"${ll}","dev":"cpl1a","metric":1024}]`,
    "route get 198.19.4.1": `[{"dst":"198.19.4.1","via":{"family":"inet6","host":"${ll}"},"dev":"cpl1a"}]`,
    "link show dev cpl1a": base["link show dev cpl1a"],
    [`neigh show to ${ll} dev cpl1a`]: neigh(ll, "REACHABLE", MAC_B),
  });
  const resolver = new NextHopResolver({ run, probe: noProbe });
  for (const backend of ["2001:db8:2::11", "198.19.4.1"]) {
    const nh = await resolver.resolve(parseAddress(backend));
    assert.equal(nh?.gateway && addressToString(nh.gateway), ll, backend);
    assert.equal(nh && formatMac(nh.dmac), MAC_B, backend);
  }
});

test("no answer within the timeout is undefined; FAILED entries are re-probed, INCOMPLETE ones not", async () => {
  for (const [state, minProbes, maxProbes] of [
    ["INCOMPLETE", 1, 1],
    ["FAILED", 3, 6],
  ] as const) {
    const k = kernelNeighbour("[]", neigh("198.18.0.11", state));
    const run = fakeIp({ ...base, "neigh show to 198.18.0.11 dev cpl1a": k.answer });
    const resolver = new NextHopResolver({ run, probe: k.probe, pollIntervalMs: 2, reprobeIntervalMs: 25 });
    const start = performance.now();
    const nh = await resolver.resolve(parseAddress("198.18.0.11"), { timeoutMs: 100 });
    const elapsed = performance.now() - start;
    assert.equal(nh, undefined, state);
    assert.ok(elapsed >= 99 && elapsed < 300, `${state}: gave up after ${elapsed.toFixed(1)} ms`);
    assert.ok(
      k.probes.length >= minProbes && k.probes.length <= maxProbes,
      `${state}: ${k.probes.length} probes`,
    );
  }
});

test("unroutable, local, broadcast, multicast and non-Ethernet backends are refused", async () => {
  const run = fakeIp({
    "route get 198.19.255.1": unreachable,
    "route get 198.18.0.1": `[{"type":"local","dst":"198.18.0.1","dev":"lo","prefsrc":"198.18.0.1"}]`,
    "route get 198.18.0.255": `[{"type":"broadcast","dst":"198.18.0.255","dev":"cpl1a"}]`,
    "route get ff02::1": `[{"type":"multicast","dst":"ff02::1","dev":"cpl1a","table":"local"}]`,
    "route get 198.19.3.1": `[{"dst":"198.19.3.1","dev":"lo","prefsrc":"198.18.0.1"}]`,
    "route get 198.19.5.1": `[{"dst":"198.19.5.1","dev":"wg0"}]`,
    "route get 198.19.6.1": `[]`,
    "link show dev lo": link(1, "lo", "loopback", "00:00:00:00:00:00", 65536),
    "link show dev wg0": link(5, "wg0", "none", undefined, 1420),
    "neigh show to 198.19.3.1 dev lo": "[]",
    "neigh show to 198.19.5.1 dev wg0": "[]",
  });
  const resolver = new NextHopResolver({ run, probe: noProbe });
  const refuse = (address: string, code: string, message: RegExp, hint?: RegExp): Promise<void> =>
    assert.rejects(resolver.resolve(parseAddress(address)), lbError(code, message, hint), address);
  await refuse(
    "198.19.255.1",
    "LB_ERR_ROUTE",
    /^no route to backend 198\.19\.255\.1 \(RTNETLINK answers: Network is unreachable\)$/,
    /ip route get 198\.19\.255\.1/,
  );
  await refuse("198.18.0.1", "LB_ERR_ROUTE", /^backend address 198\.18\.0\.1 is local$/, /another host/);
  await refuse("198.18.0.255", "LB_ERR_ROUTE", /is a broadcast address/);
  await refuse("ff02::1", "LB_ERR_ROUTE", /is a multicast address/);
  await refuse("198.19.3.1", "LB_ERR_ROUTE", /^backend address 198\.19\.3\.1 is local \(routed to lo\)$/);
  await refuse(
    "198.19.5.1",
    "LB_ERR_IFACE",
    /reached through wg0, which is not Ethernet \(link type none\)/,
    /Ethernet/,
  );
  await refuse("198.19.6.1", "LB_ERR_ROUTE", /^no route to backend 198\.19\.6\.1$/);
});

test("usable neighbour states", () => {
  const entry = (state: string, lladdr?: string) => ({
    dst: "x",
    state: [state],
    ...(lladdr ? { lladdr } : {}),
  });
  for (const state of ["REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"]) {
    assert.deepEqual(usableLladdr(entry(state, MAC_B)), parseMac(MAC_B), state);
  }
  for (const state of ["INCOMPLETE", "FAILED", "NONE"])
    assert.equal(usableLladdr(entry(state, MAC_B)), undefined);
  assert.equal(usableLladdr(entry("NOARP")), undefined);
  assert.equal(usableLladdr(undefined), undefined);
});

function nextHop(state: string, dmac = MAC_B, mtu = 1480): NextHop {
  return {
    ifindex: 2,
    ifname: "cpl1a",
    smac: parseMac(MAC_A) ?? new Uint8Array(6),
    dmac: parseMac(dmac) ?? new Uint8Array(6),
    mtu,
    state,
  };
}

test("isStale and sameForwarding", () => {
  assert.equal(isStale(nextHop("REACHABLE")), false);
  assert.equal(isStale(nextHop("PERMANENT")), false);
  for (const state of ["STALE", "DELAY", "PROBE"]) assert.equal(isStale(nextHop(state)), true, state);
  assert.equal(sameForwarding(nextHop("REACHABLE"), nextHop("STALE")), true);
  assert.equal(sameForwarding(nextHop("REACHABLE"), nextHop("REACHABLE", MAC_C)), false);
  assert.equal(sameForwarding(nextHop("REACHABLE"), nextHop("REACHABLE", MAC_B, 1400)), false);
  assert.equal(sameForwarding(nextHop("REACHABLE"), { ...nextHop("REACHABLE"), ifindex: 3 }), false);
});

test("recheck: unchanged, changed, stale (probed in the background) and lost", async () => {
  const address = parseAddress("198.18.0.11");
  const previous = nextHop("REACHABLE");
  let table = neigh("198.18.0.11", "REACHABLE", MAC_B);
  const probes: string[] = [];
  const run = fakeIp({ ...base, "neigh show to 198.18.0.11 dev cpl1a": () => table });
  const probe = (a: IpAddress): Promise<void> => {
    probes.push(addressToString(a));
    return Promise.resolve();
  };
  const resolver = new NextHopResolver({ run, probe, pollIntervalMs: 2, reprobeIntervalMs: 10 });

  const same = await resolver.recheck(address, previous);
  assert.equal(same.status, "unchanged");
  assert.deepEqual(probes, []);

  table = neigh("198.18.0.11", "STALE", MAC_B);
  const stale = await resolver.recheck(address, previous);
  assert.equal(stale.status, "unchanged");
  assert.equal(stale.nextHop.state, "STALE");
  assert.deepEqual(probes, ["198.18.0.11"], "a stale entry is probed so the kernel re-confirms it");

  table = neigh("198.18.0.11", "REACHABLE", MAC_C);
  const changed = await resolver.recheck(address, previous);
  assert.equal(changed.status, "changed");
  assert.equal(formatMac(changed.nextHop.dmac), MAC_C);

  table = neigh("198.18.0.11", "FAILED");
  const lost = await resolver.recheck(address, previous, { timeoutMs: 40 });
  assert.deepEqual(lost, { status: "unresolved" });
});

test("readMany: one route batch and two dumps for all backends; what it cannot settle is left out", async () => {
  const calls: string[] = [];
  const batches: string[] = [];
  const route = (dst: string, extra = ""): string =>
    `[{"dst":"${dst}",${extra}"dev":"cpl1a","prefsrc":"198.18.0.1","flags":[],"cache":[]}]`;
  const run: IpRunner = (args) => {
    calls.push(args[0] === "-batch" ? "-batch FILE" : args.join(" "));
    if (args[0] === "-batch") {
      batches.push(readFileSync(args[1] ?? "", "utf8"));
      const out = [
        route("198.18.0.11"),
        route("198.18.2.5", `"gateway":"198.18.0.254",`),
        route("198.18.0.12"),
        route("198.18.0.13"),
      ];
      return Promise.resolve({ ok: true, stdout: `${out.join("\n")}\n` });
    }
    if (args.join(" ") === "link show")
      return Promise.resolve({ ok: true, stdout: link(2, "cpl1a", "ether", MAC_A) });
    if (args.join(" ") === "neigh show") {
      return Promise.resolve({
        ok: true,
        stdout: JSON.stringify([
          { dst: "198.18.0.11", dev: "cpl1a", lladdr: MAC_B, state: ["REACHABLE"] },
          { dst: "198.18.0.254", dev: "cpl1a", lladdr: MAC_C, state: ["STALE"] },
          { dst: "198.18.0.12", dev: "cpl1a", state: ["FAILED"] },
        ]),
      });
    }
    return Promise.reject(new Error(`unexpected ip ${args.join(" ")}`));
  };
  const probes: string[] = [];
  const resolver = new NextHopResolver({
    run,
    probe: (a) => {
      probes.push(addressToString(a));
      return Promise.resolve();
    },
  });
  const addresses = ["198.18.0.11", "198.18.2.5", "198.18.0.12", "198.18.0.13"].map((a) => parseAddress(a));
  const got = await resolver.readMany(addresses);
  assert.deepEqual(calls.sort(), ["-batch FILE", "link show", "neigh show"], "three ip processes in all");
  assert.equal(
    batches[0],
    "route get 198.18.0.11\nroute get 198.18.2.5\nroute get 198.18.0.12\nroute get 198.18.0.13\n",
  );
  assert.deepEqual(
    [...got.keys()].sort(),
    ["198.18.0.11", "198.18.2.5"],
    "FAILED and missing entries left out",
  );
  assert.equal(formatMac(got.get("198.18.0.11")?.dmac ?? new Uint8Array(6)), MAC_B);
  assert.equal(formatMac(got.get("198.18.2.5")?.dmac ?? new Uint8Array(6)), MAC_C, "through the gateway");
  assert.deepEqual(probes, ["198.18.2.5"], "a stale entry is used and probed, as recheck does");

  const failing = new NextHopResolver({
    run: (args) =>
      args[0] === "-batch"
        ? Promise.resolve(unreachable)
        : Promise.reject(new Error("no dumps after a failed batch")),
    probe: noProbe,
  });
  assert.equal((await failing.readMany(addresses)).size, 0, "a failed batch leaves all to recheck()");
});
