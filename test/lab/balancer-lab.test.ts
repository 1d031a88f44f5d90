// The balancer end to end in a namespace lab: the daemon (`lbctl load`, native XDP) in the
// balancer's namespace, real HTTP/UDP/TCP clients in the client's, real servers on three or
// four backends with XDP decap. Spread, weights, IPv6, UDP, drain, remove, add.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import { packageRoot } from "../../src/lib/paths.js";
import { Lab, uniquePrefix } from "../../src/lab/lab.js";
import { assertSpread, lbctlOk as lbctlOkIn } from "../support/lab-assert.js";
import {
  drainKeepsConnection,
  ipv6Spread,
  removeMovesOnlyItsFlows,
  udpSpread,
} from "../support/lab-scenarios.js";

const lab = new Lab(uniquePrefix(), 4);
const WEB = "tcp/198.18.1.1:80";

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

test("IPv6 VIP over IPv6 backends", () => ipv6Spread(lab));

test("UDP VIP: answers from the VIP, spread over backends", () => udpSpread(lab));

test("weights 1:2 give 1:2 ± 15%", async () => {
  await lbctlOk(["vip", "add", "tcp/198.18.1.2:80"]);
  await lbctlOk(["backend", "add", "tcp/198.18.1.2:80", "198.18.0.11", "--weight", "1"]);
  await lbctlOk(["backend", "add", "tcp/198.18.1.2:80", "198.18.0.12", "--weight", "2"]);
  const r = await lab.http("http://198.18.1.2/", 900);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assertSpread(r.byBackend, { b1: 1, b2: 2 }, "weights");
  await lbctlOk(["vip", "remove", "tcp/198.18.1.2:80"]);
});

test("drain keeps a long-lived connection; new connections avoid the drained backend", () =>
  drainKeepsConnection(lab));

test("remove moves only the removed backend's flows", () => removeMovesOnlyItsFlows(lab));

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
