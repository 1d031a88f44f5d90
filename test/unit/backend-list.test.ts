// What `lbctl backend list` shows beyond the contract's fields, from the real handler over a real
// reconciler and health checker (in-memory maps, fake probes): the source, the checks' latest
// result and counts, and the last change with its reason, through add, drain, health verdicts,
// a reload's weight change, next-hop resolution and a restart (snapshot → restore).
import assert from "node:assert/strict";
import { test } from "node:test";

import type { DaemonContext } from "../../src/api/handlers.js";
import { makeHandler } from "../../src/api/handlers.js";
import type { BackendInfo, StatusResult } from "../../src/api/protocol.js";
import { Reconciler } from "../../src/core/reconciler.js";
import { readStats } from "../../src/core/stats.js";
import type { VipRef } from "../../src/core/types.js";
import { HealthChecker } from "../../src/health/checker.js";
import type { ProbeResult } from "../../src/health/probe.js";
import { HEALTH_DEFAULTS, type HealthCheckSpec } from "../../src/health/spec.js";
import { parseAddress } from "../../src/lib/addr.js";
import type { PendingRegistration } from "../../src/registry/server.js";
import { BalancerMaps } from "../../src/maps/balancer-maps.js";
import { StaticNextHops } from "../support/api-context.js";

const WEB = "tcp/198.18.1.1:80";
const web: VipRef = { proto: "tcp", address: parseAddress("198.18.1.1"), port: 80 };
const SPEC: HealthCheckSpec = { ...HEALTH_DEFAULTS, type: "http", port: 80, path: "/healthz" };
const CONTRACT = ["vip", "address", "port", "name", "weight", "state"];

function setup() {
  const maps = BalancerMaps.inMemory({ ncpus: 2, flowTableSize: 1024 });
  const hops = new StaticNextHops();
  const rec = new Reconciler(maps, hops, { maglevSize: 251, resolveWaitMs: 20 });
  const failing = new Set<string>();
  const registering: PendingRegistration[] = [];
  let clock = 0;
  const checker = new HealthChecker(rec, {
    probe: (address): Promise<ProbeResult> =>
      Promise.resolve(
        failing.has(address)
          ? { result: "refused", detail: "connection refused" }
          : { result: "success", detail: "ok" },
      ),
    now: () => clock,
  });
  const context: DaemonContext = {
    reconciler: rec,
    status: () => ({ iface: "eth0", mode: "native" }) as StatusResult,
    stats: () => readStats(maps, rec),
    reload: () => Promise.reject(new Error("no reload here")),
    health: (vip, address) => checker.detail(vip, address),
    registering: () => registering,
  };
  const handler = makeHandler(context);
  const list = async (): Promise<Map<string, BackendInfo>> => {
    const r = (await handler({ id: 1, cmd: "backend.list" })) as { result: BackendInfo[] };
    return new Map(r.result.map((b) => [b.address, b]));
  };
  /** The listed backend of that address (fails the test when absent). */
  const one = async (address: string): Promise<BackendInfo> => {
    const b = (await list()).get(address);
    assert.ok(b, `${address} listed`);
    return b;
  };
  const round = async (): Promise<void> => {
    checker.tick();
    await checker.idle();
    clock += SPEC.intervalMs;
  };
  return { maps, hops, rec, checker, failing, registering, handler, one, round };
}

test("contract fields first and unchanged; source, health and last change after them", async () => {
  const t = setup();
  await t.rec.addVip(web, "5tuple", "config");
  const t0 = Date.now();
  await t.rec.addBackend(
    web,
    { address: parseAddress("198.18.0.11"), encapPort: 6080, weight: 2, name: "b1" },
    "config",
  );
  await t.rec.addBackend(
    web,
    { address: parseAddress("198.18.0.12"), encapPort: 6080, weight: 1, name: "b2", source: "registered" },
    "runtime",
    "registered by its agent (198.18.0.12)",
  );
  const b1 = await t.one("198.18.0.11");
  assert.deepEqual(Object.keys(b1).slice(0, 6), CONTRACT, "the contract's fields, in order");
  assert.deepEqual(
    { vip: b1.vip, address: b1.address, port: b1.port, name: b1.name, weight: b1.weight, state: b1.state },
    { vip: WEB, address: "198.18.0.11", port: 6080, name: "b1", weight: 2, state: "active" },
  );
  assert.equal(b1.source, "static");
  assert.equal(b1.changeReason, "added from the config file");
  assert.match(b1.changedAt ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Date.parse(b1.changedAt ?? "") >= t0 - 5 && Date.parse(b1.changedAt ?? "") <= Date.now());
  // No configured checks: a TCP VIP with a port gets the default TCP connect on its port.
  assert.deepEqual(b1.health, {
    kind: "tcp",
    check: "tcp:80",
    result: null,
    detail: null,
    passes: 0,
    fails: 0,
    lastCheckAt: null,
  });
  assert.equal((await t.one("198.18.0.12")).source, "registered");
  assert.equal((await t.one("198.18.0.12")).changeReason, "registered by its agent (198.18.0.12)");
});

test("health detail and the last change follow probes, verdicts, drain and a reload", async () => {
  const t = setup();
  await t.rec.addVip(web, "5tuple");
  for (const a of ["198.18.0.11", "198.18.0.12"])
    await t.rec.addBackend(web, { address: parseAddress(a), encapPort: 6080, weight: 1 });
  t.checker.configure(new Map([[WEB, SPEC]]));
  const added = (await t.one("198.18.0.12")).changedAt;
  assert.deepEqual(
    (await t.one("198.18.0.12")).health,
    {
      kind: "http",
      check: "http:80/healthz",
      result: null,
      detail: null,
      passes: 0,
      fails: 0,
      lastCheckAt: null,
    },
    "configured, not probed yet",
  );
  await t.round();
  await t.round();
  let b2 = await t.one("198.18.0.12");
  assert.equal(b2.health?.check, "http:80/healthz");
  assert.equal(b2.health.result, "success");
  assert.equal(b2.health.passes, 2);
  assert.equal(b2.health.fails, 0);
  assert.ok(b2.health.lastCheckAt);
  assert.equal(b2.changedAt, added, "probes that change nothing are not a change");

  t.failing.add("198.18.0.12");
  for (let i = 0; i < 3; i++) await t.round();
  b2 = await t.one("198.18.0.12");
  assert.equal(b2.state, "down");
  assert.deepEqual(
    [b2.health?.result, b2.health?.detail, b2.health?.passes, b2.health?.fails],
    ["refused", "connection refused", 0, 3],
  );
  assert.equal(b2.changeReason, "down: http:80/healthz: 3 checks failed, last: connection refused");
  assert.ok(Date.parse(b2.changedAt ?? "") >= Date.parse(added ?? ""));

  t.failing.delete("198.18.0.12");
  for (let i = 0; i < 2; i++) await t.round();
  b2 = await t.one("198.18.0.12");
  assert.equal(b2.state, "active");
  assert.equal(b2.changeReason, "up: http:80/healthz: 2 checks passed");

  await t.rec.setDrained(web, parseAddress("198.18.0.11"), true);
  assert.equal((await t.one("198.18.0.11")).changeReason, "drained");
  await t.rec.setDrained(web, parseAddress("198.18.0.11"), true, "again");
  assert.equal((await t.one("198.18.0.11")).changeReason, "drained", "no change, no new reason");
  await t.rec.applyConfig({
    vips: [
      {
        vip: web,
        hash: "5tuple",
        backends: [{ address: parseAddress("198.18.0.11"), encapPort: 6080, weight: 4 }],
      },
    ],
  });
  assert.equal((await t.one("198.18.0.11")).changeReason, "config file: weight 1 → 4");
});

test("per-backend checks replace the VIP's; type none exempts a backend (and brings it back up)", async () => {
  const t = setup();
  await t.rec.addVip(web, "5tuple");
  for (const a of ["198.18.0.11", "198.18.0.12", "198.18.0.13"])
    await t.rec.addBackend(web, { address: parseAddress(a), encapPort: 6080, weight: 1 });
  t.failing.add("198.18.0.13");
  t.checker.configure(
    new Map([[WEB, SPEC]]),
    new Map<string, HealthCheckSpec>([
      [`${WEB} 198.18.0.12`, { ...SPEC, type: "tcp", port: 8080, fall: 1 }],
      [`${WEB} 198.18.0.13`, { ...SPEC, fall: 1 }],
    ]),
  );
  await t.round();
  assert.equal((await t.one("198.18.0.11")).health?.check, "http:80/healthz");
  assert.equal((await t.one("198.18.0.12")).health?.check, "tcp:8080");
  assert.equal((await t.one("198.18.0.13")).state, "down", "its own fall: 1");
  t.checker.configure(
    new Map([[WEB, SPEC]]),
    new Map<string, HealthCheckSpec>([[`${WEB} 198.18.0.13`, { ...SPEC, type: "none" }]]),
  );
  await t.round();
  assert.equal(
    (await t.one("198.18.0.13")).state,
    "active",
    "exempted: a verdict of the checks no longer applies",
  );
  assert.equal((await t.one("198.18.0.13")).health?.kind, "none");
  assert.equal((await t.one("198.18.0.13")).changeReason, "up: health checks no longer configured");
  assert.equal((await t.one("198.18.0.12")).health?.check, "http:80/healthz", "back to the VIP's checks");
});

test("pending until the next hop resolves; a restart keeps source and last change", async () => {
  const t = setup();
  await t.rec.addVip(web, "5tuple");
  t.hops.unreachable.add("198.18.0.14");
  await t.rec.addBackend(web, {
    address: parseAddress("198.18.0.14"),
    encapPort: 6080,
    weight: 1,
    source: "registered",
  });
  assert.equal((await t.one("198.18.0.14")).state, "pending");
  t.hops.unreachable.delete("198.18.0.14");
  await t.rec.maintain(false);
  const resolved = await t.one("198.18.0.14");
  assert.equal(resolved.state, "active");
  assert.equal(resolved.changeReason, "next hop resolved");

  const next = new Reconciler(t.maps, t.hops, { maglevSize: 251 });
  next.restore(t.rec.snapshot());
  const [after] = next.listBackends();
  assert.ok(after);
  assert.equal(after.source, "registered");
  assert.equal(after.changeReason, "next hop resolved");
  assert.equal(new Date(after.changedAt).toISOString(), resolved.changedAt);
});

test("an agent's REGISTER in its tunnel check is listed as pending, source registered, by VIP", async () => {
  const t = setup();
  await t.rec.addVip(web, "5tuple");
  await t.rec.addVip({ ...web, port: 8080 }, "5tuple");
  t.registering.push({
    vip: "tcp/198.18.1.1:8080",
    address: "198.18.0.15",
    port: 6080,
    name: "b5",
    weight: 2,
    since: Date.parse("2026-01-02T03:04:05.000Z"),
    reason: "registering: tunnel check in progress (198.18.0.15)",
  });
  const all = await t.one("198.18.0.15");
  assert.deepEqual(
    { ...all, health: undefined },
    {
      vip: "tcp/198.18.1.1:8080",
      address: "198.18.0.15",
      port: 6080,
      name: "b5",
      weight: 2,
      state: "pending",
      source: "registered",
      health: undefined,
      changedAt: "2026-01-02T03:04:05.000Z",
      changeReason: "registering: tunnel check in progress (198.18.0.15)",
    },
  );
  const other = (await t.handler({ id: 2, cmd: "backend.list", vip: WEB })) as { result: BackendInfo[] };
  assert.deepEqual(other.result, [], "listed under its own VIP only");
});
