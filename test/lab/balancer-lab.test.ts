// The balancer end to end in a namespace lab: the daemon (`lbctl load`, native XDP) in the
// balancer's namespace, real HTTP/UDP/TCP clients in the client's, real servers on three or
// four backends with XDP decap. Spread, weights, IPv6, UDP, drain, remove, add.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import { packageRoot } from "../../src/lib/paths.js";
import { Lab, uniquePrefix } from "../../src/lab/lab.js";
import { assertSpread, lbctlOk as lbctlOkIn } from "../support/lab-assert.js";

const lab = new Lab(uniquePrefix(), 4);
const WEB = "tcp/198.18.1.1:80";
const NAME_PORT = 8080; // the backends' line-based name service (long-lived connections)

const lbctlOk = (args: string[]): Promise<string> => lbctlOkIn(lab, args);

before(async () => {
  await lab.up();
  await lab.startDaemon({ mode: "native", config: join(packageRoot(), "confs", "simple_1.yaml") });
});

after(async () => {
  const code = await lab.stopDaemon();
  await lab.down();
  assert.equal(code, 0, `daemon exit code on SIGTERM\n${lab.daemonLog}`);
});

test("status: native XDP on eth0, config applied", async () => {
  const status = JSON.parse(await lbctlOk(["status", "--json"])) as {
    iface: string;
    mode: string;
    vips: number;
  };
  assert.equal(status.iface, "eth0");
  assert.equal(status.mode, "native");
  assert.equal(status.vips, 1);
});

test("1000 HTTP requests over 3 backends: all succeed, each 1/3 ± 15%, replies bypass the balancer", async () => {
  const before = JSON.parse(await lbctlOk(["stats", "--json"])) as {
    counters: Record<string, number>;
    vips: Record<string, { packets: number }>;
  };
  const r = await lab.http("http://198.18.1.1/", 1000);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assertSpread(r.byBackend, { b1: 1, b2: 1, b3: 1 }, "spread");
  const after = JSON.parse(await lbctlOk(["stats", "--json"])) as {
    counters: Record<string, number>;
    vips: Record<string, { packets: number }>;
  };
  const vipPackets = (after.vips[WEB]?.packets ?? 0) - (before.vips[WEB]?.packets ?? 0);
  const forwarded =
    (after.counters.tx ?? 0) +
    (after.counters.redirect ?? 0) -
    (before.counters.tx ?? 0) -
    (before.counters.redirect ?? 0);
  // Each request is ≥ 4 client packets (SYN, ACK, request, FIN); replies never reach the balancer,
  // so what it passes up besides VIP traffic stays small (ARP, ND).
  assert.ok(vipPackets >= 4000, `VIP packets ${vipPackets}`);
  assert.equal(forwarded, vipPackets, "every VIP packet was encapsulated and sent");
  const passed = (after.counters.pass_not_vip ?? 0) - (before.counters.pass_not_vip ?? 0);
  assert.ok(
    passed < vipPackets / 20,
    `balancer saw ${passed} non-VIP packets: replies must go straight to the client`,
  );
});

test("IPv6 VIP over IPv6 backends", async () => {
  await lbctlOk(["vip", "add", "tcp/[2001:db8:1::1]:80"]);
  for (const i of [1, 2, 3])
    await lbctlOk(["backend", "add", "tcp/[2001:db8:1::1]:80", `2001:db8::1${i}`, "--name", `b${i}`]);
  const r = await lab.http("http://[2001:db8:1::1]/", 1000);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assertSpread(r.byBackend, { b1: 1, b2: 1, b3: 1 }, "IPv6 spread");
  await lbctlOk(["vip", "remove", "tcp/[2001:db8:1::1]:80"]);
});

test("UDP VIP: answers from the VIP, spread over backends", async () => {
  await lbctlOk(["vip", "add", "udp/198.18.1.2:53"]);
  for (const i of [1, 2, 3]) await lbctlOk(["backend", "add", "udp/198.18.1.2:53", `198.18.0.1${i}`]);
  const r = await lab.udp("198.18.1.2", 53, 1500);
  assert.equal(r.failed, 0);
  assertSpread(r.byBackend, { b1: 1, b2: 1, b3: 1 }, "UDP spread");
  await lbctlOk(["vip", "remove", "udp/198.18.1.2:53"]);
});

test("weights 1:2 give 1:2 ± 15%", async () => {
  await lbctlOk(["vip", "add", "tcp/198.18.1.2:80"]);
  await lbctlOk(["backend", "add", "tcp/198.18.1.2:80", "198.18.0.11", "--weight", "1"]);
  await lbctlOk(["backend", "add", "tcp/198.18.1.2:80", "198.18.0.12", "--weight", "2"]);
  const r = await lab.http("http://198.18.1.2/", 900);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assertSpread(r.byBackend, { b1: 1, b2: 2 }, "weights");
  await lbctlOk(["vip", "remove", "tcp/198.18.1.2:80"]);
});

test("drain keeps a long-lived connection; new connections avoid the drained backend", async () => {
  const vip = `tcp/198.18.1.1:${NAME_PORT}`;
  await lbctlOk(["vip", "add", vip]);
  for (const i of [1, 2, 3]) await lbctlOk(["backend", "add", vip, `198.18.0.1${i}`]);
  const session = lab.session("198.18.1.1", NAME_PORT);
  const name = await session.ask();
  assert.ok(name, "long-lived connection answered");
  const address = `198.18.0.1${name.slice(1)}`;
  await lbctlOk(["backend", "drain", vip, address]);
  const list = JSON.parse(await lbctlOk(["backend", "list", vip, "--json"])) as {
    address: string;
    state: string;
  }[];
  assert.equal(list.find((b) => b.address === address)?.state, "draining");
  const fresh = Array.from({ length: 15 }, () => lab.session("198.18.1.1", NAME_PORT));
  const names = await Promise.all(fresh.map((s) => s.ask()));
  assert.ok(
    names.every((n) => n !== undefined && n !== name),
    `new connections avoid drained ${name}: ${names.join(",")}`,
  );
  for (let i = 0; i < 5; i++)
    assert.equal(await session.ask(), name, "long-lived connection stays on its backend");
  await lbctlOk(["backend", "resume", vip, address]);
  for (const s of [session, ...fresh]) s.close();
  await lbctlOk(["vip", "remove", vip]);
});

test("remove moves only the removed backend's flows", async () => {
  const vip = `tcp/198.18.1.1:${NAME_PORT}`;
  await lbctlOk(["vip", "add", vip]);
  for (const i of [1, 2, 3]) await lbctlOk(["backend", "add", vip, `198.18.0.1${i}`]);
  const sessions = Array.from({ length: 12 }, () => lab.session("198.18.1.1", NAME_PORT));
  const first = await Promise.all(sessions.map((s) => s.ask()));
  const victim = first.find((n) => n !== undefined);
  assert.ok(victim, "sessions answered");
  await lbctlOk(["backend", "remove", vip, `198.18.0.1${victim.slice(1)}`]);
  const second = await Promise.all(sessions.map((s) => s.ask()));
  sessions.forEach((_, i) => {
    if (first[i] !== victim)
      assert.equal(second[i], first[i], `session ${i} on ${first[i] ?? "?"} is untouched`);
    else assert.notEqual(second[i], victim, `session ${i} no longer reaches removed ${victim}`);
  });
  for (const s of sessions) s.close();
  await lbctlOk(["vip", "remove", vip]);
});

test("backend add: a fourth backend takes new connections right after the command returns", async () => {
  await lbctlOk(["backend", "add", WEB, "198.18.0.14", "--name", "b4"]);
  const started = Date.now();
  const r = await lab.http("http://198.18.1.1/", 200);
  assert.ok(Date.now() - started < 30_000);
  assert.equal(r.failed, 0);
  assert.ok(
    (r.byBackend.b4 ?? 0) > 20,
    `b4 got ${r.byBackend.b4 ?? 0} of 200: ${JSON.stringify(r.byBackend)}`,
  );
  const list = JSON.parse(await lbctlOk(["backend", "list", "--json"])) as {
    address: string;
    state: string;
    name: string;
  }[];
  assert.equal(list.find((b) => b.address === "198.18.0.14")?.state, "active");
});
