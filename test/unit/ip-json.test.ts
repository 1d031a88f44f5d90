// Parsing of iproute2's JSON output (canned, captured from iproute2 6.1 on Linux 6.x) and the
// link/address readers on top of it, with a fake `ip` runner: no root, no child processes.
import assert from "node:assert/strict";
import { test } from "node:test";

import { addressToString } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";
import {
  ipAddrListSchema,
  ipJson,
  ipLinkListSchema,
  ipNeighListSchema,
  ipRouteListSchema,
  parseIpJson,
} from "../../src/net/ip-json.js";
import type { IpResult, IpRunner } from "../../src/net/ip-json.js";
import { formatMac, getLink, getLinkByIndex, parseMac, primaryAddresses } from "../../src/net/links.js";

const LINK_LO = `{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue",
"operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"loopback",
"address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00"}`;
const LINK_A = `{"ifindex":2,"link_index":2,"ifname":"cpl1a","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
"mtu":1480,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether",
"address":"b6:ea:48:d3:fd:66","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0}`;
const LINK_WG = `{"ifindex":5,"ifname":"wg0","flags":["POINTOPOINT","NOARP","UP","LOWER_UP"],"mtu":1420,
"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"none"}`;
const LINK_DOWN = `{"ifindex":6,"ifname":"cpl1b","flags":["BROADCAST","MULTICAST"],"mtu":1500,"qdisc":"noop",
"operstate":"DOWN","group":"default","txqlen":1000,"link_type":"ether","address":"76:fd:8d:b4:bf:d3",
"broadcast":"ff:ff:ff:ff:ff:ff"}`;
const LINKS = `[${[LINK_LO, LINK_A, LINK_WG, LINK_DOWN].join(",")}]`;

// `ip -j addr show dev cpl1a scope global`: filtered-out addresses print as {}.
const ADDRS = `[{"ifindex":2,"link_index":2,"ifname":"cpl1a","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],
"mtu":1480,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether",
"address":"b6:ea:48:d3:fd:66","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":[
{"family":"inet","local":"198.18.0.1","prefixlen":24,"scope":"global","label":"cpl1a",
"valid_life_time":4294967295,"preferred_life_time":4294967295},
{"family":"inet","local":"198.18.0.5","prefixlen":24,"scope":"global","secondary":true,"label":"cpl1a",
"valid_life_time":4294967295,"preferred_life_time":4294967295},
{"family":"inet6","local":"2001:db8::7","prefixlen":64,"scope":"global","tentative":true,
"valid_life_time":4294967295,"preferred_life_time":4294967295},
{"family":"inet6","local":"2001:db8::1","prefixlen":64,"scope":"global","nodad":true,
"valid_life_time":4294967295,"preferred_life_time":4294967295},{}]}]`;

const ROUTE_GATEWAY = `[{"dst":"198.18.2.11","gateway":"198.18.0.11","dev":"cpl1a","prefsrc":"198.18.0.1",
"flags":[],"uid":0,"cache":[],"metrics":[{"mtu":1400}]}]`;

const NEIGHS = `[{"dst":"198.18.0.99","dev":"cpl1a","state":["INCOMPLETE"]},
{"dst":"198.18.0.11","dev":"cpl1a","lladdr":"76:fd:8d:b4:bf:d3","state":["REACHABLE"]},
{"dst":"fe80::74fd:8dff:feb4:bfd3","dev":"cpl1a","lladdr":"76:fd:8d:b4:bf:d3","router":null,"state":["STALE"]},
{"dst":"198.18.0.98","dev":"cpl1a","state":["FAILED"]}]`;

/** Fake runner: canned stdout or failure per command line (without "ip -j"); records calls. */
function fakeIp(table: Record<string, string | IpResult>): IpRunner & { calls: string[] } {
  const calls: string[] = [];
  const run = (args: readonly string[]): Promise<IpResult> => {
    const key = args.join(" ");
    calls.push(key);
    const entry = table[key];
    if (entry === undefined) throw new Error(`unexpected ip ${key}`);
    return Promise.resolve(typeof entry === "string" ? { ok: true, stdout: entry } : entry);
  };
  return Object.assign(run, { calls });
}

const lbError = (code: string, message: RegExp, hint?: RegExp) => (err: unknown) =>
  err instanceof LbError &&
  err.code === code &&
  message.test(err.message) &&
  (hint?.test(err.hint ?? "") ?? true);

test("link entries parse, keeping only the fields read", () => {
  const links = parseIpJson(["link", "show"], LINKS, ipLinkListSchema);
  assert.equal(links.length, 4);
  assert.deepEqual(links[1], {
    ifindex: 2,
    ifname: "cpl1a",
    flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
    mtu: 1480,
    operstate: "UP",
    link_type: "ether",
    address: "b6:ea:48:d3:fd:66",
  });
  assert.equal(links[2]?.address, undefined);
});

test("address, route and neighbour entries parse", () => {
  const [link] = parseIpJson(["addr", "show"], ADDRS, ipAddrListSchema);
  assert.equal(link?.addr_info.length, 5);
  assert.deepEqual(link.addr_info[4], {});
  assert.equal(link.addr_info[2]?.tentative, true);

  const [route] = parseIpJson(["route", "get", "198.18.2.11"], ROUTE_GATEWAY, ipRouteListSchema);
  assert.deepEqual(route, {
    dst: "198.18.2.11",
    gateway: "198.18.0.11",
    dev: "cpl1a",
    prefsrc: "198.18.0.1",
    metrics: [{ mtu: 1400 }],
  });

  const neighs = parseIpJson(["neigh", "show"], NEIGHS, ipNeighListSchema);
  assert.deepEqual(
    neighs.map((n) => [n.dst, n.lladdr, n.state]),
    [
      ["198.18.0.99", undefined, ["INCOMPLETE"]],
      ["198.18.0.11", "76:fd:8d:b4:bf:d3", ["REACHABLE"]],
      ["fe80::74fd:8dff:feb4:bfd3", "76:fd:8d:b4:bf:d3", ["STALE"]],
      ["198.18.0.98", undefined, ["FAILED"]],
    ],
  );
});

test("empty output is an empty list", () => {
  assert.deepEqual(parseIpJson(["neigh", "show"], "", ipNeighListSchema), []);
  assert.deepEqual(parseIpJson(["neigh", "show"], "[]\n", ipNeighListSchema), []);
});

test("invalid JSON and unexpected shapes are LB_ERR_NETLINK naming the command", () => {
  assert.throws(
    () => parseIpJson(["link", "show"], "[{", ipLinkListSchema),
    lbError("LB_ERR_NETLINK", /`ip -j link show` printed invalid JSON/),
  );
  assert.throws(
    () => parseIpJson(["link", "show"], `[{"ifindex":"2","ifname":"x","mtu":1500}]`, ipLinkListSchema),
    lbError("LB_ERR_NETLINK", /unexpected output from `ip -j link show` at 0\.ifindex/),
  );
  assert.throws(
    () => parseIpJson(["link", "show"], `{"ifindex":2}`, ipLinkListSchema),
    lbError("LB_ERR_NETLINK", /at top level/),
  );
});

test("a failed command is LB_ERR_NETLINK with its stderr unless mapped", async () => {
  const run = fakeIp({ "neigh show": { ok: false, stderr: "Error: something broke.\n", exitCode: 1 } });
  await assert.rejects(
    ipJson(run, ["neigh", "show"], ipNeighListSchema),
    lbError("LB_ERR_NETLINK", /^`ip -j neigh show` failed: Error: something broke\.$/),
  );
  await assert.rejects(
    ipJson(run, ["neigh", "show"], ipNeighListSchema, () => new LbError("LB_ERR_IFACE", "mapped")),
    lbError("LB_ERR_IFACE", /^mapped$/),
  );
});

test("MAC text round-trips; malformed text is refused", () => {
  const mac = parseMac("B6:ea:48:d3:fd:06");
  assert.deepEqual(mac, Uint8Array.from([0xb6, 0xea, 0x48, 0xd3, 0xfd, 0x06]));
  assert.equal(formatMac(mac), "b6:ea:48:d3:fd:06");
  for (const bad of ["", "b6:ea:48:d3:fd", "b6:ea:48:d3:fd:6", "b6:ea:48:d3:fd:066", "g6:ea:48:d3:fd:06"]) {
    assert.equal(parseMac(bad), undefined, bad);
  }
});

test("getLink and getLinkByIndex", async () => {
  const run = fakeIp({
    "link show dev cpl1a": `[${LINK_A}]`,
    "link show": LINKS,
    "link show dev nope": { ok: false, stderr: 'Device "nope" does not exist.\n', exitCode: 1 },
  });
  const link = await getLink("cpl1a", run);
  assert.deepEqual(
    { ...link, mac: formatMac(link.mac) },
    {
      ifindex: 2,
      name: "cpl1a",
      mac: "b6:ea:48:d3:fd:66",
      mtu: 1480,
      up: true,
      carrier: true,
      linkType: "ether",
    },
  );
  const wg = await getLinkByIndex(5, run);
  assert.deepEqual([wg.name, wg.linkType, formatMac(wg.mac)], ["wg0", "none", "00:00:00:00:00:00"]);
  const down = await getLinkByIndex(6, run);
  assert.deepEqual([down.up, down.carrier], [false, false]);
  await assert.rejects(
    getLink("nope", run),
    lbError("LB_ERR_IFACE", /interface "nope" does not exist/, /ip link/),
  );
  await assert.rejects(getLinkByIndex(42, run), lbError("LB_ERR_IFACE", /no interface has ifindex 42/));
});

test("primaryAddresses: first stable global address of each family", async () => {
  const run = fakeIp({
    "addr show dev cpl1a scope global": ADDRS,
    "addr show dev lo scope global": `[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"mtu":65536,
      "link_type":"loopback","addr_info":[{},{}]}]`,
    "addr show dev nope scope global": { ok: false, stderr: 'Device "nope" does not exist.\n', exitCode: 1 },
  });
  const addrs = await primaryAddresses("cpl1a", run);
  assert.deepEqual(
    [addrs.v4 && addressToString(addrs.v4), addrs.v6 && addressToString(addrs.v6)],
    ["198.18.0.1", "2001:db8::1"],
  );
  assert.deepEqual(await primaryAddresses("lo", run), {});
  await assert.rejects(
    primaryAddresses("nope", run),
    lbError("LB_ERR_IFACE", /interface "nope" does not exist/),
  );
});
