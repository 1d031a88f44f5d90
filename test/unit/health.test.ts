// Active health checks without a network: the checker with fake probes and a fake clock, driving
// the reconciler against the in-memory maps (fall/rise, drained + down, removal while down, the
// write order); then the real TCP/HTTP probes against local servers.
import assert from "node:assert/strict";
import { once } from "node:events";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type AddressInfo } from "node:net";
import { test } from "node:test";

import { Reconciler, type NextHop, type NextHopSource } from "../../src/core/reconciler.js";
import type { VipRef } from "../../src/core/types.js";
import { HealthChecker, type ProbeObservation } from "../../src/health/checker.js";
import { probeHttp, probeTcp, type ProbeResult } from "../../src/health/probe.js";
import { HEALTH_DEFAULTS, type HealthCheckSpec } from "../../src/health/spec.js";
import { parseAddress } from "../../src/lib/addr.js";
import { LB_BACKEND_F_IN_USE, LB_BACKEND_F_NEIGH, LB_NO_BACKEND } from "../../src/maps/abi.js";
import { BalancerMaps } from "../../src/maps/balancer-maps.js";
import type { Backend } from "../../src/maps/codec.js";

const M = 251;
const WEB = "tcp/198.18.1.1:80";
const web: VipRef = { proto: "tcp", address: parseAddress("198.18.1.1"), port: 80 };
const SPEC: HealthCheckSpec = { ...HEALTH_DEFAULTS, port: 80, rise: 2, fall: 3 };

const hops: NextHopSource = {
  resolve: (): Promise<NextHop> =>
    Promise.resolve({
      ifindex: 3,
      smac: new Uint8Array(6).fill(1),
      dmac: new Uint8Array(6).fill(2),
      mtu: 1500,
    }),
  recheck: (): Promise<NextHop | undefined> => Promise.resolve(undefined),
};

/** In-memory maps that record the order of backend and table writes. */
class RecordingMaps extends BalancerMaps {
  readonly log: string[] = [];
  override putBackend(index: number, backend: Backend): void {
    this.log.push(`put ${index}${backend.flags & LB_BACKEND_F_IN_USE ? "" : " (not in use)"}`);
    super.putBackend(index, backend);
  }
  override deleteBackend(index: number): void {
    this.log.push(`delete ${index}`);
    super.deleteBackend(index);
  }
  override replaceTable(vipId: number, table: Uint32Array): void {
    const members = [...new Set(table)].filter((i) => i !== LB_NO_BACKEND).sort((a, b) => a - b);
    this.log.push(`table ${vipId} [${members.join(",")}]`);
    super.replaceTable(vipId, table);
  }
}

function members(maps: BalancerMaps): number[] {
  return [...new Set(maps.readTable(0) ?? [])].filter((i) => i !== LB_NO_BACKEND).sort((a, b) => a - b);
}

/** A reconciler with WEB and backends .11–.13, a checker whose probe fails for `failing` addresses. */
async function setup(specs: ReadonlyMap<string, HealthCheckSpec> = new Map([[WEB, SPEC]])) {
  const maps = new RecordingMaps(BalancerMaps.inMemory().maps);
  const rec = new Reconciler(maps, hops, { maglevSize: M, resolveWaitMs: 50 });
  await rec.addVip(web, "5tuple");
  for (const a of ["198.18.0.11", "198.18.0.12", "198.18.0.13"])
    await rec.addBackend(web, { address: parseAddress(a), encapPort: 6080, weight: 1 });
  const failing = new Set<string>();
  const probed: string[] = [];
  const observed: ProbeObservation[] = [];
  const forgotten: string[] = [];
  let clock = 0;
  const checker = new HealthChecker(rec, {
    probe: (address): Promise<ProbeResult> => {
      probed.push(address);
      return Promise.resolve(
        failing.has(address)
          ? { result: "refused", detail: "connection refused" }
          : { result: "success", detail: "ok" },
      );
    },
    now: () => clock,
    onProbe: (o) => observed.push(o),
    onForget: (vip, backend) => forgotten.push(`${vip} ${backend}`),
  });
  checker.configure(specs);
  /** One interval: every backend probed once, verdicts applied. */
  const round = async (): Promise<void> => {
    checker.tick();
    await checker.idle();
    clock += SPEC.intervalMs;
  };
  const state = (address: string): string | undefined =>
    rec.listBackends().find((b) => b.address === address)?.state;
  return { maps, rec, checker, failing, probed, observed, forgotten, round, state };
}

test("fall failures in a row take a backend down (out of the table, entry not in use); rise bring it back", async () => {
  const t = await setup();
  t.failing.add("198.18.0.12");
  await t.round();
  await t.round();
  assert.equal(t.state("198.18.0.12"), "active", "two failures of fall = 3: still active");
  assert.deepEqual(members(t.maps), [0, 1, 2]);
  t.maps.log.length = 0;
  await t.round();
  assert.equal(t.state("198.18.0.12"), "down");
  assert.deepEqual(members(t.maps), [0, 2]);
  assert.equal(
    t.maps.getBackend(1)?.flags,
    LB_BACKEND_F_NEIGH,
    "entry kept, IN_USE cleared: flows re-picked",
  );
  assert.deepEqual(t.maps.log, ["table 0 [0,2]", "put 1 (not in use)"], "table stops naming it first");
  assert.deepEqual(
    t.rec.listBackends().map((b) => b.state),
    ["active", "down", "active"],
  );

  t.failing.delete("198.18.0.12");
  await t.round();
  assert.equal(t.state("198.18.0.12"), "down", "one success of rise = 2: still down");
  t.maps.log.length = 0;
  await t.round();
  assert.equal(t.state("198.18.0.12"), "active");
  assert.deepEqual(members(t.maps), [0, 1, 2]);
  assert.equal(t.maps.getBackend(1)?.flags, LB_BACKEND_F_IN_USE | LB_BACKEND_F_NEIGH);
  assert.deepEqual(t.maps.log, ["put 1", "table 0 [0,1,2]"], "entry before the table names it");
  assert.equal(t.observed.filter((o) => o.result === "refused").length, 3);
  assert.ok(t.observed.every((o) => o.vip === WEB && o.seconds >= 0));
});

test("a failure between successes resets the count (hysteresis)", async () => {
  const t = await setup();
  for (let i = 0; i < 4; i++) {
    if (i % 2 === 0) t.failing.add("198.18.0.11");
    else t.failing.delete("198.18.0.11");
    await t.round();
    await t.round();
  }
  assert.equal(t.state("198.18.0.11"), "active", "never 3 failures in a row");
});

test("drained and down: shows down, flows re-picked; when it rises it is still drained", async () => {
  const t = await setup();
  await t.rec.setDrained(web, parseAddress("198.18.0.11"), true);
  assert.equal(
    t.maps.getBackend(0)?.flags,
    LB_BACKEND_F_IN_USE | LB_BACKEND_F_NEIGH,
    "drained keeps its flows",
  );
  t.failing.add("198.18.0.11");
  for (let i = 0; i < 3; i++) await t.round();
  assert.equal(t.state("198.18.0.11"), "down");
  assert.equal(t.maps.getBackend(0)?.flags, LB_BACKEND_F_NEIGH, "down: its flows are re-picked");
  assert.deepEqual(members(t.maps), [1, 2]);
  t.failing.delete("198.18.0.11");
  for (let i = 0; i < 2; i++) await t.round();
  assert.equal(t.state("198.18.0.11"), "draining");
  assert.deepEqual(members(t.maps), [1, 2], "drained: still no new flows");
  assert.equal(t.maps.getBackend(0)?.flags, LB_BACKEND_F_IN_USE | LB_BACKEND_F_NEIGH);
  await t.rec.setDrained(web, parseAddress("198.18.0.11"), false);
  assert.deepEqual(members(t.maps), [0, 1, 2]);
});

test("resume of a down backend keeps it out of the table", async () => {
  const t = await setup();
  t.failing.add("198.18.0.13");
  for (let i = 0; i < 3; i++) await t.round();
  await t.rec.setDrained(web, parseAddress("198.18.0.13"), true);
  await t.rec.setDrained(web, parseAddress("198.18.0.13"), false);
  assert.equal(t.state("198.18.0.13"), "down");
  assert.deepEqual(members(t.maps), [0, 1]);
});

test("removal while down: entry cleared, checker forgets it; re-added, it starts active and fresh", async () => {
  const t = await setup();
  t.failing.add("198.18.0.12");
  for (let i = 0; i < 3; i++) await t.round();
  assert.equal(t.state("198.18.0.12"), "down");
  t.maps.log.length = 0;
  await t.rec.removeBackend(web, parseAddress("198.18.0.12"));
  assert.deepEqual(t.maps.log, ["table 0 [0,2]", "delete 1"]);
  assert.equal(t.maps.getBackend(1)?.flags ?? 0, 0);
  await t.round();
  assert.deepEqual(t.forgotten, [`${WEB} 198.18.0.12`]);
  const again = await t.rec.addBackend(web, {
    address: parseAddress("198.18.0.12"),
    encapPort: 6080,
    weight: 1,
  });
  assert.equal(again.backend.state, "active");
  assert.notEqual(again.backend.index, 1, "a new index");
  await t.round();
  await t.round();
  assert.equal(t.state("198.18.0.12"), "active", "two failures of the new one: not down yet");
  await t.round();
  assert.equal(t.state("198.18.0.12"), "down");
});

test("a verdict about a removed backend is dropped without error", async () => {
  const t = await setup();
  await t.rec.removeBackend(web, parseAddress("198.18.0.13"));
  await assert.rejects(t.rec.setHealth(web, parseAddress("198.18.0.13"), false, "x"), /no backend/);
  // Index mismatch (the backend was replaced): ignored.
  const view = await t.rec.setHealth(web, parseAddress("198.18.0.11"), false, "stale", 999);
  assert.equal(view.state, "active");
});

test("type none: not probed, and turning checks off brings a VIP's down backends back", async () => {
  const t = await setup();
  t.failing.add("198.18.0.11");
  for (let i = 0; i < 3; i++) await t.round();
  assert.equal(t.state("198.18.0.11"), "down");
  t.checker.configure(new Map([[WEB, { ...SPEC, type: "none" }]]));
  const before = t.probed.length;
  await t.round();
  assert.equal(t.probed.length, before, "no probes with type none");
  assert.equal(t.state("198.18.0.11"), "active");
  assert.deepEqual(members(t.maps), [0, 1, 2]);
});

test("without configured checks: a TCP VIP with a port gets a TCP connect on it; UDP and port 0 none", async () => {
  const t = await setup(new Map());
  const specs: HealthCheckSpec[] = [];
  const checker = new HealthChecker(t.rec, {
    probe: (_address, spec): Promise<ProbeResult> => {
      specs.push(spec);
      return Promise.resolve({ result: "success", detail: "ok" });
    },
  });
  const dns: VipRef = { proto: "udp", address: parseAddress("198.18.1.2"), port: 53 };
  const any: VipRef = { proto: "tcp", address: parseAddress("198.18.1.3"), port: 0 };
  for (const v of [dns, any]) {
    await t.rec.addVip(v, "5tuple");
    await t.rec.addBackend(v, { address: parseAddress("198.18.0.14"), encapPort: 6080, weight: 1 });
  }
  checker.tick();
  await checker.idle();
  assert.equal(specs.length, 3, "the three backends of the TCP VIP with a port, nothing else");
  for (const s of specs) assert.deepEqual(s, { ...HEALTH_DEFAULTS, port: 80 });
  assert.equal(checker.detail("udp/198.18.1.2:53", "198.18.0.14").kind, "none");
  assert.equal(checker.detail("tcp/198.18.1.3:0", "198.18.0.14").kind, "none");
});

test("probes run on the interval, at most `concurrency` at once", async () => {
  const maps = BalancerMaps.inMemory();
  const rec = new Reconciler(maps, hops, { maglevSize: M });
  await rec.addVip(web, "5tuple");
  for (let i = 1; i <= 6; i++)
    await rec.addBackend(web, { address: parseAddress(`198.18.0.${10 + i}`), encapPort: 6080, weight: 1 });
  const release: (() => void)[] = [];
  let clock = 0;
  let started = 0;
  const checker = new HealthChecker(rec, {
    concurrency: 2,
    now: () => clock,
    probe: () => {
      started++;
      return new Promise<ProbeResult>((r) => {
        release.push(() => {
          r({ result: "success", detail: "ok" });
        });
      });
    },
  });
  checker.configure(new Map([[WEB, SPEC]]));
  checker.tick();
  assert.equal(started, 2);
  checker.tick();
  assert.equal(started, 2, "slots full");
  for (const r of release.splice(0)) r();
  await new Promise((r) => setImmediate(r));
  checker.tick();
  assert.equal(started, 4);
  for (const r of release.splice(0)) r();
  await new Promise((r) => setImmediate(r));
  checker.tick();
  assert.equal(started, 6);
  for (const r of release.splice(0)) r();
  await checker.idle();
  checker.tick();
  assert.equal(started, 6, "not due again before the interval");
  clock += SPEC.intervalMs;
  checker.tick();
  assert.equal(started, 8);
  for (const r of release.splice(0)) r();
  await checker.stop();
});

// ---- the real probes, on localhost

const spec = (over: Partial<HealthCheckSpec>): HealthCheckSpec => ({ ...HEALTH_DEFAULTS, port: 1, ...over });

test("TCP probe: success on a listener, refused on a closed port", async () => {
  const server = createServer((s) => s.destroy()).listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  assert.equal((await probeTcp("127.0.0.1", spec({ port }))).result, "success");
  server.close();
  await once(server, "close");
  const r = await probeTcp("127.0.0.1", spec({ port }));
  assert.equal(r.result, "refused", r.detail);
});

test("HTTP probe: expected status, another status, and a server that never answers", async () => {
  const server = createHttpServer((req, res) => {
    if (req.url === "/hang") return; // never answers
    res.statusCode = req.url === "/healthz" ? 200 : 503;
    res.end("x");
  }).listen(0, "::1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  try {
    assert.equal((await probeHttp("::1", spec({ type: "http", port, path: "/healthz" }))).result, "success");
    const bad = await probeHttp("::1", spec({ type: "http", port, path: "/other" }));
    assert.deepEqual(bad, { result: "bad_status", detail: "status 503" });
    const started = performance.now();
    const hang = await probeHttp("::1", spec({ type: "http", port, path: "/hang", timeoutMs: 100 }));
    assert.equal(hang.result, "timeout");
    assert.ok(performance.now() - started < 1000, "bounded by timeout_ms");
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("HTTPS probe: a self-signed certificate is accepted (not verified); status checked; plain HTTP fails", async () => {
  const dir = mkdtempSync(join(tmpdir(), "caplance-https-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=backend",
      ],
      { stdio: "ignore" },
    );
    const server = createHttpsServer(
      { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) },
      (req, res) => {
        res.statusCode = req.url === "/healthz" ? 200 : 500;
        res.end("x");
      },
    ).listen(0, "127.0.0.1");
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    try {
      assert.deepEqual(await probeHttp("127.0.0.1", spec({ type: "https", port, path: "/healthz" })), {
        result: "success",
        detail: "ok",
      });
      assert.deepEqual(await probeHttp("127.0.0.1", spec({ type: "https", port, path: "/x" })), {
        result: "bad_status",
        detail: "status 500",
      });
      const plain = await probeHttp(
        "127.0.0.1",
        spec({ type: "http", port, path: "/healthz", timeoutMs: 500 }),
      );
      assert.notEqual(plain.result, "success", "an HTTP check against a TLS port fails");
    } finally {
      server.closeAllConnections();
      server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("restart (snapshot → restore over the same maps): a down backend stays down until its checks pass", async () => {
  const t = await setup();
  t.failing.add("198.18.0.12");
  for (let i = 0; i < 3; i++) await t.round();
  assert.equal(t.state("198.18.0.12"), "down");
  const next = new Reconciler(t.maps, hops, { maglevSize: M });
  next.restore(t.rec.snapshot());
  const state = (): string | undefined => next.listBackends().find((b) => b.address === "198.18.0.12")?.state;
  assert.equal(state(), "down", "its entry is not in use: restored as down, not named by a table");
  let clock = 0;
  const checker = new HealthChecker(next, {
    probe: () => Promise.resolve({ result: "success", detail: "ok" }),
    now: () => clock,
  });
  checker.configure(new Map([[WEB, SPEC]]));
  for (let i = 0; i < 2; i++) {
    checker.tick();
    await checker.idle();
    clock += SPEC.intervalMs;
  }
  assert.equal(state(), "active");
  assert.deepEqual(members(t.maps), [0, 1, 2]);
  assert.equal(t.maps.getBackend(1)?.flags, LB_BACKEND_F_IN_USE | LB_BACKEND_F_NEIGH);
});
