// Next-hop resolution against the real kernel (root): a throwaway balancer namespace "-a" and
// backend namespace "-b" joined by a veth pair; the resolver runs inside "-a" as a child started
// with `nsenter --net`, exactly as the daemon does, from a flushed (cold) neighbour table.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { after, before, test } from "node:test";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

const prefix = `cplnh${process.pid % 10000}`;
const nsA = `${prefix}-a`; // the balancer
const nsB = `${prefix}-b`; // a backend
const ifA = `${prefix}a`;
const ifB = `${prefix}b`;
const LINK_MTU = 1480; // not the default, so the test sees it was read
const ROUTE_MTU = 1400; // on the routed prefix: the resolver must take the lower one
const cli = fileURLToPath(new URL("../support/resolve-cli.js", import.meta.url));

const skip = process.getuid?.() === 0 ? false : "needs root (network namespaces)";

interface CliOk {
  readonly ok: true;
  readonly elapsedMs: number;
  readonly result: unknown;
}
interface CliError {
  readonly ok: false;
  readonly elapsedMs: number;
  readonly error: { readonly code: string; readonly message: string; readonly hint?: string };
}
type CliOutput = CliOk | CliError;

interface NextHopJson {
  readonly ifindex: number;
  readonly ifname: string;
  readonly smac: string;
  readonly dmac: string;
  readonly mtu: number;
  readonly gateway?: string;
  readonly state: string;
}

function run(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
}

function linkInfo(ns: string, dev: string): { ifindex: number; address: string } {
  const [link] = JSON.parse(run("ip", "-n", ns, "-j", "link", "show", "dev", dev)) as {
    ifindex: number;
    address: string;
  }[];
  assert.ok(link !== undefined, `${dev} in ${ns}`);
  return link;
}

function linkLocal(ns: string, dev: string): string {
  const [link] = JSON.parse(run("ip", "-n", ns, "-j", "addr", "show", "dev", dev, "scope", "link")) as {
    addr_info: { local?: string }[];
  }[];
  const local = link?.addr_info.find((a) => a.local !== undefined)?.local;
  assert.ok(local !== undefined, `link-local address of ${dev}`);
  return local;
}

/** Runs resolve-cli inside the balancer namespace; the child's own timeout bounds every wait. */
async function inBalancer(...args: string[]): Promise<CliOutput> {
  const { stdout } = await execFileAsync(
    "nsenter",
    [`--net=/run/netns/${nsA}`, process.execPath, cli, ...args],
    { encoding: "utf8", timeout: 15_000 },
  );
  return JSON.parse(stdout) as CliOutput;
}

function flushNeighbours(): void {
  run("ip", "-n", nsA, "neigh", "flush", "all");
  const left = JSON.parse(run("ip", "-n", nsA, "-j", "neigh", "show")) as unknown[];
  assert.deepEqual(left, [], "neighbour table of the balancer is cold");
}

async function resolveCold(t: TestContext, address: string, timeoutMs?: number): Promise<CliOk> {
  flushNeighbours();
  const out = await inBalancer("resolve", address, ...(timeoutMs === undefined ? [] : [String(timeoutMs)]));
  assert.ok(out.ok, `resolve ${address}: ${out.ok ? "" : out.error.message}`);
  t.diagnostic(`${address}: ${out.elapsedMs.toFixed(1)} ms from a cold neighbour table`);
  return out;
}

async function resolveError(address: string): Promise<CliError["error"]> {
  const out = await inBalancer("resolve", address, "1000");
  assert.ok(!out.ok, `resolve ${address} should fail, got ${JSON.stringify(out)}`);
  assert.ok(out.elapsedMs < 1000, `${address}: fails at once, not after the timeout`);
  return out.error;
}

function cleanup(): void {
  for (const ns of [nsA, nsB]) {
    try {
      run("ip", "netns", "del", ns); // deleting a namespace deletes its veth end, and so the pair
    } catch {
      // not there: nothing to clean
    }
  }
}

let macA = "";
let macB = "";
let ifindexA = 0;
let gatewayLinkLocal = "";

before(() => {
  if (skip !== false) return;
  cleanup(); // a crashed run with the same pid
  try {
    for (const ns of [nsA, nsB]) {
      run("ip", "netns", "add", ns);
      // Before the veth exists, so its link-local address is not tentative either.
      run("nsenter", `--net=/run/netns/${ns}`, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0");
      run("nsenter", `--net=/run/netns/${ns}`, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0");
      run("ip", "-n", ns, "link", "set", "lo", "up");
    }
    run("ip", "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB);
    run("ip", "-n", nsA, "addr", "add", "198.18.0.1/24", "dev", ifA);
    run("ip", "-n", nsA, "addr", "add", "2001:db8::1/64", "dev", ifA, "nodad");
    run("ip", "-n", nsB, "addr", "add", "198.18.0.11/24", "dev", ifB);
    run("ip", "-n", nsB, "addr", "add", "2001:db8::11/64", "dev", ifB, "nodad");
    run("ip", "-n", nsB, "addr", "add", "198.18.2.11/32", "dev", "lo");
    run("ip", "-n", nsB, "addr", "add", "2001:db8:2::11/128", "dev", "lo");
    run("ip", "-n", nsA, "link", "set", ifA, "mtu", String(LINK_MTU), "up");
    run("ip", "-n", nsB, "link", "set", ifB, "mtu", String(LINK_MTU), "up");
    // Routed backends: IPv4 through the backend's global address, IPv6 through its link-local
    // one (what a router advertisement installs).
    run("ip", "-n", nsA, "route", "add", "198.18.2.0/24", "via", "198.18.0.11", "mtu", String(ROUTE_MTU));
    gatewayLinkLocal = linkLocal(nsB, ifB);
    run("ip", "-n", nsA, "-6", "route", "add", "2001:db8:2::/64", "via", gatewayLinkLocal, "dev", ifA);
    ({ ifindex: ifindexA, address: macA } = linkInfo(nsA, ifA));
    macB = linkInfo(nsB, ifB).address;
  } catch (err) {
    cleanup();
    throw err;
  }
});

after(() => {
  if (skip === false) cleanup();
});

test("links and primary addresses are read in the daemon's namespace", { skip }, async () => {
  const link = await inBalancer("link", ifA);
  assert.ok(link.ok);
  assert.deepEqual(link.result, {
    ifindex: ifindexA,
    name: ifA,
    mac: macA,
    mtu: LINK_MTU,
    up: true,
    carrier: true,
    linkType: "ether",
  });
  const addrs = await inBalancer("addrs", ifA);
  assert.ok(addrs.ok);
  assert.deepEqual(addrs.result, { v4: "198.18.0.1", v6: "2001:db8::1" });
  // The host's interfaces are not visible there (and /sys/class/net would have shown them).
  const missing = await inBalancer("link", "eth0");
  assert.ok(!missing.ok);
  assert.equal(missing.error.code, "LB_ERR_IFACE");
  assert.match(missing.error.message, /interface "eth0" does not exist/);
  assert.match(missing.error.hint ?? "", /network namespace/);
});

test("IPv4 on-link backend resolves from a cold table by probing", { skip }, async (t) => {
  const out = await resolveCold(t, "198.18.0.11");
  const nh = out.result as NextHopJson;
  assert.deepEqual(
    {
      ifindex: nh.ifindex,
      ifname: nh.ifname,
      smac: nh.smac,
      dmac: nh.dmac,
      mtu: nh.mtu,
      gateway: nh.gateway,
    },
    { ifindex: ifindexA, ifname: ifA, smac: macA, dmac: macB, mtu: LINK_MTU, gateway: undefined },
  );
  assert.equal(nh.state, "REACHABLE");
  assert.ok(out.elapsedMs < 500, `resolved in ${out.elapsedMs.toFixed(1)} ms`);
  // Warm: the entry is there now, no probe or wait needed.
  const warm = await inBalancer("resolve", "198.18.0.11");
  assert.ok(warm.ok);
  assert.equal((warm.result as NextHopJson).dmac, macB);
  t.diagnostic(`198.18.0.11 warm: ${warm.elapsedMs.toFixed(1)} ms`);
});

test("IPv6 on-link backend resolves from a cold table by probing", { skip }, async (t) => {
  const out = await resolveCold(t, "2001:db8::11");
  const nh = out.result as NextHopJson;
  assert.deepEqual(
    { ifindex: nh.ifindex, smac: nh.smac, dmac: nh.dmac, mtu: nh.mtu, gateway: nh.gateway },
    { ifindex: ifindexA, smac: macA, dmac: macB, mtu: LINK_MTU, gateway: undefined },
  );
  assert.ok(out.elapsedMs < 500, `resolved in ${out.elapsedMs.toFixed(1)} ms`);
});

test("IPv4 backend behind a router resolves to the gateway's MAC and the route MTU", { skip }, async (t) => {
  const out = await resolveCold(t, "198.18.2.11");
  const nh = out.result as NextHopJson;
  assert.deepEqual(
    { ifindex: nh.ifindex, smac: nh.smac, dmac: nh.dmac, mtu: nh.mtu, gateway: nh.gateway },
    { ifindex: ifindexA, smac: macA, dmac: macB, mtu: ROUTE_MTU, gateway: "198.18.0.11" },
  );
  assert.ok(out.elapsedMs < 500, `resolved in ${out.elapsedMs.toFixed(1)} ms`);
});

test("IPv6 backend behind a link-local gateway resolves to the gateway's MAC", { skip }, async (t) => {
  const out = await resolveCold(t, "2001:db8:2::11");
  const nh = out.result as NextHopJson;
  assert.deepEqual(
    { ifindex: nh.ifindex, dmac: nh.dmac, mtu: nh.mtu, gateway: nh.gateway },
    { ifindex: ifindexA, dmac: macB, mtu: LINK_MTU, gateway: gatewayLinkLocal },
  );
  assert.ok(out.elapsedMs < 500, `resolved in ${out.elapsedMs.toFixed(1)} ms`);
});

test("an on-link address with no host stays unresolved until the timeout", { skip }, async (t) => {
  const v4 = await resolveCold(t, "198.18.0.99"); // default timeout, 2000 ms
  assert.equal(v4.result, null);
  assert.ok(v4.elapsedMs >= 1990 && v4.elapsedMs < 2300, `gave up after ${v4.elapsedMs.toFixed(1)} ms`);
  const v6 = await resolveCold(t, "2001:db8::99", 600);
  assert.equal(v6.result, null);
  assert.ok(v6.elapsedMs >= 590 && v6.elapsedMs < 900, `gave up after ${v6.elapsedMs.toFixed(1)} ms`);
});

test("an address without a route is an LB_ERR_ROUTE with a hint", { skip }, async () => {
  for (const address of ["198.19.255.1", "2001:db8:ffff::1"]) {
    const error = await resolveError(address);
    assert.equal(error.code, "LB_ERR_ROUTE", address);
    assert.match(error.message, new RegExp(`no route to backend ${address}.*unreachable`));
    assert.match(error.hint ?? "", new RegExp(`ip route get ${address}`));
  }
});

test("local, loopback and broadcast addresses are refused", { skip }, async () => {
  for (const address of ["198.18.0.1", "127.0.0.1", "2001:db8::1", "::1"]) {
    const error = await resolveError(address);
    assert.equal(error.code, "LB_ERR_ROUTE", address);
    assert.match(error.message, new RegExp(`backend address ${address} is local`));
  }
  const error = await resolveError("198.18.0.255");
  assert.equal(error.code, "LB_ERR_ROUTE");
  assert.match(error.message, /is a broadcast address/);
});
