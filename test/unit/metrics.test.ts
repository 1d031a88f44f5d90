// Prometheus metrics (src/api/metrics.ts) over in-memory maps and a real Reconciler: every family
// of docs/metrics.md with the values the counters hold, a valid text exposition, series that
// follow backends coming and going, the reconcile histogram fed by the reconciler. No root.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { CaplanceMetrics, RegistrationMetrics } from "../../src/api/metrics.js";
import { parseVip } from "../../src/core/vip-syntax.js";
import { parseAddress } from "../../src/lib/addr.js";
import { packageRoot, packageVersion } from "../../src/lib/paths.js";
import { LB_ABI_VERSION, LB_C_DROP_BASE, LbCounter, LbDropReason } from "../../src/maps/abi.js";
import { setCounter, setTraffic, testContext, type TestContext } from "../support/api-context.js";

const WEB = "tcp/198.18.1.1:80";
const DNS = "udp/[2001:db8:1::1]:53";

/** Series name{label="v",…} (labels sorted) → value; throws on any line that is not valid text format. */
function parseExposition(text: string): {
  samples: Map<string, number>;
  types: Map<string, string>;
  helps: Map<string, string>;
} {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  const name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  const label = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
  const sample = new RegExp(`^(${name})(?:\\{((?:${label})(?:,${label})*)?\\})? (\\S+)$`);
  assert.ok(text.endsWith("\n"), "exposition ends with a newline");
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") continue;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${name}) (.*)$`).exec(line))) {
      assert.ok(!helps.has(m[1] ?? ""), `one HELP per family: ${line}`);
      helps.set(m[1] ?? "", m[2] ?? "");
    } else if ((m = new RegExp(`^# TYPE (${name}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
      types.set(m[1] ?? "", m[2] ?? "");
    } else if ((m = sample.exec(line))) {
      const family = (m[1] ?? "").replace(/_(bucket|sum|count)$/, "");
      assert.ok(types.has(m[1] ?? "") || types.has(family), `TYPE before sample: ${line}`);
      const labels = [...(m[2] ?? "").matchAll(new RegExp(label, "g"))].map((l) => l[0]).sort();
      // Prometheus parses values with Go's ParseFloat: NaN and ±Inf in any case (prom-client
      // writes "Nan" for an event-loop lag not measured yet).
      const value = /^nan$/i.test(m[3] ?? "") ? NaN : Number(m[3]?.replace(/^([+-]?)inf$/i, "$1Infinity"));
      assert.ok(!Number.isNaN(value) || /^nan$/i.test(m[3] ?? ""), `numeric value: ${line}`);
      const key = labels.length ? `${m[1] ?? ""}{${labels.join(",")}}` : (m[1] ?? "");
      assert.ok(!samples.has(key), `duplicate series ${key}`);
      samples.set(key, value);
    } else {
      assert.fail(`not a valid exposition line: ${JSON.stringify(line)}`);
    }
  }
  return { samples, types, helps };
}

function value(samples: Map<string, number>, series: string): number | undefined {
  const m = /^([^{]+)(?:\{(.*)\})?$/.exec(series);
  const labels = (m?.[2] ?? "")
    .split(/,(?=[a-z_]+=")/)
    .filter(Boolean)
    .sort();
  return samples.get(labels.length ? `${m?.[1] ?? ""}{${labels.join(",")}}` : (m?.[1] ?? ""));
}

async function populated(): Promise<TestContext & { ids: Record<string, number> }> {
  const t = testContext("native");
  const web = parseVip(WEB);
  const dns = parseVip(DNS);
  const v1 = await t.reconciler.addVip(web, "5tuple");
  const v2 = await t.reconciler.addVip(dns, "src-ip");
  const ids: Record<string, number> = {};
  for (const [addr, weight, name] of [
    ["198.18.0.11", 1, "b1"],
    ["198.18.0.12", 2, undefined],
    ["198.18.0.13", 1, "b3"],
  ] as const) {
    const added = await t.reconciler.addBackend(web, {
      address: parseAddress(addr),
      encapPort: 6080,
      weight,
      ...(name ? { name } : {}),
    });
    ids[addr] = added.backend.index;
  }
  await t.reconciler.setDrained(web, parseAddress("198.18.0.13"), true);
  t.hops.unreachable.add("2001:db8::99");
  const pending = await t.reconciler.addBackend(dns, {
    address: parseAddress("2001:db8::99"),
    encapPort: 7000,
    weight: 5,
  });
  ids["2001:db8::99"] = pending.backend.index;
  ids[WEB] = v1.id;
  ids[DNS] = v2.id;

  setTraffic(t.maps, "vipStats", v1.id, 400, 26_000);
  setTraffic(t.maps, "backendStats", ids["198.18.0.11"] ?? -1, 150, 9_000);
  setTraffic(t.maps, "backendStats", ids["198.18.0.12"] ?? -1, 250, 17_000);
  setCounter(t.maps, LbCounter.LB_C_RX, 1000);
  setCounter(t.maps, LbCounter.LB_C_PASS, 30);
  setCounter(t.maps, LbCounter.LB_C_TX, 390);
  setCounter(t.maps, LbCounter.LB_C_REDIRECT, 10);
  setCounter(t.maps, LbCounter.LB_C_DROP, 7);
  setCounter(t.maps, LbCounter.LB_C_FLOW_HIT, 300);
  setCounter(t.maps, LbCounter.LB_C_FLOW_MISS, 100);
  setCounter(t.maps, LbCounter.LB_C_FLOW_SYN, 90);
  setCounter(t.maps, LbCounter.LB_C_FLOW_STALE, 3);
  setCounter(t.maps, LbCounter.LB_C_NO_NEIGH, 4);
  setCounter(t.maps, LbCounter.LB_C_PASS_NOT_VIP, 20);
  setCounter(t.maps, LbCounter.LB_C_PASS_MALFORMED, 6);
  setCounter(t.maps, LB_C_DROP_BASE + LbDropReason.LB_DROP_FRAGMENT, 5);
  setCounter(t.maps, LB_C_DROP_BASE + LbDropReason.LB_DROP_NO_BACKEND, 2);
  return { ...t, ids };
}

test("every documented family, with the counters' values, in valid text format", async () => {
  const t = await populated();
  const metrics = new CaplanceMetrics(t.context, { timings: t.timings, processMetrics: false });
  assert.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
  const { samples, types, helps } = parseExposition(await metrics.scrape());
  const v = (series: string): number | undefined => value(samples, series);

  const expectTypes: Record<string, string> = {
    caplance_vip_packets_total: "counter",
    caplance_vip_bytes_total: "counter",
    caplance_backend_packets_total: "counter",
    caplance_backend_bytes_total: "counter",
    caplance_drops_total: "counter",
    caplance_nfqueue_dropped_packets_total: "counter",
    caplance_dataplane_received_packets_total: "counter",
    caplance_dataplane_packets_total: "counter",
    caplance_passed_packets_total: "counter",
    caplance_flow_lookups_total: "counter",
    caplance_no_neighbour_total: "counter",
    caplance_backend_state: "gauge",
    caplance_backend_weight: "gauge",
    caplance_backend_info: "gauge",
    caplance_vips: "gauge",
    caplance_backends: "gauge",
    caplance_dataplane_mode: "gauge",
    caplance_reconcile_duration_seconds: "histogram",
    caplance_health_check_total: "counter",
    caplance_health_check_duration_seconds: "histogram",
    caplance_registration_events_total: "counter",
    caplance_registration_connections: "gauge",
    caplance_build_info: "gauge",
  };
  for (const [family, type] of Object.entries(expectTypes)) {
    assert.equal(types.get(family), type, `${family} is a ${type}`);
    assert.ok((helps.get(family) ?? "").length > 10, `${family} has a HELP text`);
  }
  assert.deepEqual(
    [...types.keys()].filter((f) => !(f in expectTypes)),
    [],
    "no family beyond the documented ones (process metrics off)",
  );

  assert.equal(v(`caplance_vip_packets_total{vip="${WEB}"}`), 400);
  assert.equal(v(`caplance_vip_bytes_total{vip="${WEB}"}`), 26_000);
  assert.equal(v(`caplance_vip_packets_total{vip="${DNS}"}`), 0);
  assert.equal(v(`caplance_backend_packets_total{vip="${WEB}",backend="198.18.0.11"}`), 150);
  assert.equal(v(`caplance_backend_bytes_total{vip="${WEB}",backend="198.18.0.12"}`), 17_000);
  assert.equal(v(`caplance_backend_packets_total{vip="${WEB}",backend="198.18.0.13"}`), 0);
  assert.equal(v(`caplance_backend_packets_total{vip="${DNS}",backend="2001:db8::99"}`), 0);

  assert.equal(v(`caplance_drops_total{reason="fragment"}`), 5);
  assert.equal(v(`caplance_drops_total{reason="no_backend"}`), 2);
  assert.equal(v(`caplance_drops_total{reason="ip_options"}`), 0, "every reason is present, zero or not");
  assert.equal(v(`caplance_dataplane_received_packets_total`), 1000);
  assert.equal(v(`caplance_dataplane_packets_total{action="pass"}`), 30);
  assert.equal(v(`caplance_dataplane_packets_total{action="tx"}`), 390);
  assert.equal(v(`caplance_dataplane_packets_total{action="redirect"}`), 10);
  assert.equal(v(`caplance_dataplane_packets_total{action="drop"}`), 7);
  assert.equal(v(`caplance_passed_packets_total{reason="not_vip"}`), 20);
  assert.equal(v(`caplance_passed_packets_total{reason="malformed"}`), 6);
  assert.equal(v(`caplance_passed_packets_total{reason="no_neighbour"}`), 4);
  assert.equal(v(`caplance_flow_lookups_total{result="hit"}`), 300);
  assert.equal(v(`caplance_flow_lookups_total{result="miss"}`), 100);
  assert.equal(v(`caplance_flow_lookups_total{result="syn"}`), 90);
  assert.equal(v(`caplance_flow_lookups_total{result="stale"}`), 3);
  assert.equal(v(`caplance_no_neighbour_total`), 4);

  const state = (vip: string, backend: string, s: string): number | undefined =>
    v(`caplance_backend_state{vip="${vip}",backend="${backend}",state="${s}"}`);
  assert.equal(state(WEB, "198.18.0.11", "active"), 1);
  assert.equal(state(WEB, "198.18.0.11", "draining"), 0);
  assert.equal(state(WEB, "198.18.0.13", "draining"), 1);
  assert.equal(state(WEB, "198.18.0.13", "active"), 0);
  assert.equal(state(DNS, "2001:db8::99", "pending"), 1);
  for (const s of ["active", "draining", "down", "pending"])
    assert.notEqual(state(WEB, "198.18.0.12", s), undefined, `state ${s} is always present`);
  assert.equal(v(`caplance_backend_weight{vip="${WEB}",backend="198.18.0.12"}`), 2);
  assert.equal(v(`caplance_backend_weight{vip="${WEB}",backend="198.18.0.13"}`), 1, "configured weight");
  assert.equal(v(`caplance_backend_weight{vip="${DNS}",backend="2001:db8::99"}`), 5);
  assert.equal(v(`caplance_backend_info{vip="${WEB}",backend="198.18.0.11",name="b1",port="6080"}`), 1);
  assert.equal(
    v(`caplance_backend_info{vip="${DNS}",backend="2001:db8::99",name="2001:db8::99",port="7000"}`),
    1,
  );
  assert.equal(v("caplance_vips"), 2);
  assert.equal(v("caplance_backends"), 4);
  assert.equal(v(`caplance_dataplane_mode{mode="native"}`), 1);
  assert.equal(v(`caplance_dataplane_mode{mode="generic"}`), 0);
  assert.equal(v(`caplance_dataplane_mode{mode="nfqueue"}`), 0);
  assert.equal(v(`caplance_build_info{version="${packageVersion()}",abi="${LB_ABI_VERSION}"}`), 1);

  // The reconciler timed each successful change: 2 VIP adds, 4 backend adds, 1 drain.
  assert.equal(v(`caplance_reconcile_duration_seconds_count{operation="vip.add"}`), 2);
  assert.equal(v(`caplance_reconcile_duration_seconds_count{operation="backend.add"}`), 4);
  assert.equal(v(`caplance_reconcile_duration_seconds_count{operation="backend.drain"}`), 1);
  assert.equal(v(`caplance_reconcile_duration_seconds_bucket{operation="vip.add",le="+Inf"}`), 2);
  assert.ok((v(`caplance_reconcile_duration_seconds_sum{operation="backend.add"}`) ?? -1) >= 0);
});

test("counters are re-read at every scrape; removed objects lose their series", async () => {
  const t = await populated();
  const metrics = new CaplanceMetrics(t.context, { timings: t.timings, processMetrics: false });
  let { samples } = parseExposition(await metrics.scrape());
  assert.equal(value(samples, `caplance_vip_packets_total{vip="${WEB}"}`), 400);

  setTraffic(t.maps, "vipStats", t.ids[WEB] ?? -1, 1000, 60_000);
  await t.reconciler.removeBackend(parseVip(WEB), parseAddress("198.18.0.11"));
  await t.reconciler.removeVip(parseVip(DNS));
  // A failed change is not timed.
  await assert.rejects(t.reconciler.addVip(parseVip(WEB), "5tuple"), /already exists/);
  ({ samples } = parseExposition(await metrics.scrape()));
  assert.equal(value(samples, `caplance_vip_packets_total{vip="${WEB}"}`), 1000, "not accumulated");
  assert.equal(value(samples, `caplance_vip_packets_total{vip="${DNS}"}`), undefined);
  assert.equal(
    value(samples, `caplance_backend_packets_total{vip="${WEB}",backend="198.18.0.11"}`),
    undefined,
  );
  assert.equal(
    value(samples, `caplance_backend_state{vip="${WEB}",backend="198.18.0.11",state="active"}`),
    undefined,
  );
  assert.equal(value(samples, `caplance_backend_packets_total{vip="${WEB}",backend="198.18.0.12"}`), 250);
  assert.equal(value(samples, "caplance_vips"), 1);
  assert.equal(value(samples, "caplance_backends"), 2);
  assert.equal(value(samples, `caplance_reconcile_duration_seconds_count{operation="vip.add"}`), 2);
  assert.equal(value(samples, `caplance_reconcile_duration_seconds_count{operation="backend.remove"}`), 1);
  assert.equal(value(samples, `caplance_reconcile_duration_seconds_count{operation="vip.remove"}`), 1);
});

test("a config file applied is timed as a whole (config.apply) and per operation", async () => {
  const t = testContext();
  const metrics = new CaplanceMetrics(t.context, { timings: t.timings, processMetrics: false });
  const backend = (a: string) => ({ address: parseAddress(a), encapPort: 6080, weight: 1 });
  await t.reconciler.applyConfig({
    vips: [
      { vip: parseVip(WEB), hash: "5tuple", backends: [backend("198.18.0.11"), backend("198.18.0.12")] },
    ],
  });
  const { samples } = parseExposition(await metrics.scrape());
  assert.equal(value(samples, `caplance_reconcile_duration_seconds_count{operation="config.apply"}`), 1);
  assert.equal(value(samples, `caplance_reconcile_duration_seconds_count{operation="vip.add"}`), 1);
  assert.equal(value(samples, `caplance_reconcile_duration_seconds_count{operation="backend.add"}`), 2);
  assert.equal(value(samples, "caplance_backends"), 2);
});

test("no VIPs yet: the families are there, the labelled ones empty", async () => {
  const t = testContext("generic");
  const metrics = new CaplanceMetrics(t.context, { processMetrics: false });
  const { samples, types } = parseExposition(await metrics.scrape());
  assert.equal(types.get("caplance_vip_packets_total"), "counter");
  assert.equal(value(samples, "caplance_vips"), 0);
  assert.equal(value(samples, "caplance_dataplane_received_packets_total"), 0);
  assert.equal(value(samples, `caplance_dataplane_mode{mode="generic"}`), 1);
  assert.equal([...samples.keys()].filter((k) => k.startsWith("caplance_vip_packets_total")).length, 0);
});

test("process metrics on by default, and each registry is its own", async () => {
  const a = new CaplanceMetrics(testContext().context);
  const b = new CaplanceMetrics(testContext().context);
  const { types } = parseExposition(await a.scrape());
  assert.equal(types.get("process_cpu_user_seconds_total"), "counter");
  assert.equal(types.get("nodejs_heap_size_total_bytes"), "gauge");
  parseExposition(await b.scrape()); // a second registry registers the same names without clashing
});

test("docs/metrics.md documents every family; the Grafana dashboard queries only real ones", async () => {
  const metrics = new CaplanceMetrics(testContext().context, { processMetrics: false });
  const families = [...parseExposition(await metrics.scrape()).types.keys()];
  const doc = readFileSync(join(packageRoot(), "docs", "metrics.md"), "utf8");
  for (const f of families) assert.ok(doc.includes(`\`${f}\``), `docs/metrics.md names ${f}`);
  const dashboard = JSON.parse(
    readFileSync(join(packageRoot(), "confs", "grafana-caplance.json"), "utf8"),
  ) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  assert.ok(dashboard.panels.length >= 4);
  const used = new Set<string>();
  for (const p of dashboard.panels) {
    for (const t of p.targets) for (const [name] of t.expr.matchAll(/caplance_[a-z_]+/g)) used.add(name);
  }
  const known = new Set(families.flatMap((f) => [f, `${f}_bucket`, `${f}_sum`, `${f}_count`]));
  assert.deepEqual(
    [...used].filter((n) => !known.has(n)),
    [],
    "dashboard names only exported series",
  );
  for (const needed of [
    "caplance_vip_packets_total",
    "caplance_backend_packets_total",
    "caplance_drops_total",
    "caplance_backend_state",
  ])
    assert.ok(used.has(needed), `dashboard has a panel on ${needed}`);
});

test("registration events are counted by kind", async () => {
  const t = await populated();
  const registration = new RegistrationMetrics();
  const metrics = new CaplanceMetrics(t.context, { timings: t.timings, registration, processMetrics: false });
  registration.observe("registered");
  registration.observe("registered");
  registration.observe("rejected");
  const { samples } = parseExposition(await metrics.scrape());
  assert.equal(value(samples, 'caplance_registration_events_total{event="registered"}'), 2);
  assert.equal(value(samples, 'caplance_registration_events_total{event="rejected"}'), 1);
});

test("registration connections by stage, read from the server at scrape time", async () => {
  const t = await populated();
  const registration = new RegistrationMetrics();
  const metrics = new CaplanceMetrics(t.context, { timings: t.timings, registration, processMetrics: false });
  const before = parseExposition(await metrics.scrape()).samples;
  assert.equal(value(before, 'caplance_registration_connections{stage="unauthenticated"}'), undefined);
  let states = { unauthenticated: 7, authenticated: 1, registered: 3 };
  registration.countConnections(() => states);
  let { samples } = parseExposition(await metrics.scrape());
  assert.equal(value(samples, 'caplance_registration_connections{stage="unauthenticated"}'), 7);
  assert.equal(value(samples, 'caplance_registration_connections{stage="registered"}'), 3);
  states = { unauthenticated: 0, authenticated: 0, registered: 2 };
  ({ samples } = parseExposition(await metrics.scrape()));
  assert.equal(value(samples, 'caplance_registration_connections{stage="unauthenticated"}'), 0);
  assert.equal(value(samples, 'caplance_registration_connections{stage="registered"}'), 2);
});
