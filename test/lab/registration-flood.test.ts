// The registration port under a flood (root, namespace lab): 1,000 hostile connections (silent
// half-open ones, garbage lines, oversized lines, wrong-secret and replayed AUTH, commands before
// AUTH) plus IPv6 ones from outside the CIDR allow-list, while a client sends HTTP through the
// VIP at a steady rate and lbctl is asked status and backend list over and over. Every hostile
// connection is refused and closed by the daemon (limits and the unauthenticated timeout
// reclaim them: counted from both ends), a good peer on another address still authenticates,
// nothing is added, no request fails, the CLI answers within a bound, and every rejection is
// logged with its peer and reason.
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Lab, uniquePrefix, type Exec } from "../../src/lab/lab.js";
import { packageRoot } from "../../src/lib/paths.js";

const lab = new Lab(uniquePrefix(), 2);
const dir = `/run/caplance-lab/${lab.prefix}-flood`;
const secret = join(dir, "secret");
const WEB = "tcp/198.18.1.1:80";
const FLOOD = 1000;
const FLOOD_V6 = 20;
/** The daemon's default: connections one address may hold before AUTH (the flood's share). */
const UNAUTHENTICATED_PER_PEER = 16;
const REGISTER_TIMEOUT_S = 2;
const HTTP_RATE = 50;
const HTTP_MS = 5000;
/** lbctl is a fresh node process per call (~0.2–0.4 s here): twice that, with room, is a stall. */
const CLI_BOUND_MS = 2500;
const dist = (path: string): string => join(packageRoot(), "dist", path);

interface FloodKind {
  n: number;
  connected: number;
  ok: number;
  closed: number;
  maxCloseMs: number;
  codes: Record<string, number>;
}
interface FloodResult {
  recorded: string;
  total: number;
  stillOpen: number;
  byKind: Record<string, FloodKind>;
  ms: number;
}
interface PaceResult {
  sent: number;
  ok: number;
  failed: number;
  failures: { at: number; error: string }[];
  maxMs: number;
}

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(secret, "flood-lab-secret-0123456789abcdef\n", { mode: 0o600 });
  const config = join(dir, "vips.yaml");
  writeFileSync(
    config,
    [
      "vips:",
      `  - vip: ${WEB}`,
      "    backends:",
      "      - { address: 198.18.0.11, name: b1 }",
      "      - { address: 198.18.0.12, name: b2 }",
      "",
    ].join("\n"),
  );
  await lab.up();
  process.env["CAPLANCE_REG_REGISTER_TIMEOUT"] = String(REGISTER_TIMEOUT_S);
  process.env["CAPLANCE_REG_ALLOW"] = "198.18.0.0/24";
  try {
    await lab.startDaemon({ mode: "native", config, extra: ["--secret-file", secret] });
  } finally {
    delete process.env["CAPLANCE_REG_REGISTER_TIMEOUT"];
    delete process.env["CAPLANCE_REG_ALLOW"];
  }
});

after(async () => {
  const code = await lab.stopDaemon();
  await lab.down();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 0, `daemon exit code on SIGTERM\n${lab.daemonLog.slice(-4000)}`);
});

async function metrics(): Promise<string> {
  const script =
    "fetch('http://127.0.0.1:7071/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))";
  const r = await lab.inNs("lb", process.execPath, ["-e", script], 10_000);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** caplance_registration_connections summed over stages. */
const openConnections = (text: string): number =>
  [...text.matchAll(/^caplance_registration_connections\{stage="[a-z]+"\} (\d+)$/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );

/** Established TCP connections on the registration port, seen by the balancer's kernel. */
async function establishedOn7070(): Promise<number> {
  const r = await lab.inNs("lb", "ss", ["-Htn", "state", "established", "( sport = :7070 )"]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split("\n").filter((l) => l.trim() !== "").length;
}

/** test/support/reg-flood.js in a lab host's namespace, against the balancer's port 7070. */
function regFlood(host: "cl" | "b1", args: string[]): Promise<Exec> {
  const target = ["--host", "198.18.0.1", "--port", "7070", "--secret-file", secret];
  return lab.inNs(host, process.execPath, [dist("test/support/reg-flood.js"), ...target, ...args], 60_000);
}

async function backendList(): Promise<{ address: string; name: string; state: string }[]> {
  const r = await lab.lbctl(["backend", "list", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { address: string; name: string; state: string }[];
}

test("1,000 hostile registration connections: all refused and reclaimed; traffic and CLI unaffected", async (t) => {
  const before = await backendList();
  assert.deepEqual(
    before.map((b) => `${b.name} ${b.state}`),
    ["b1 active", "b2 active"],
  );

  const pace = lab
    .inNs(
      "cl",
      process.execPath,
      [dist("test/support/http-pace.js"), "http://198.18.1.1/", String(HTTP_RATE), String(HTTP_MS)],
      60_000,
    )
    .then((r) => {
      assert.equal(r.code, 0, `http-pace: ${r.stderr}`);
      return JSON.parse(r.stdout) as PaceResult;
    });
  await new Promise((r) => setTimeout(r, 500)); // traffic flowing before the flood starts

  const flood$ = { running: true };
  const flood = regFlood("cl", [
    "--count",
    String(FLOOD),
    "--v6-host",
    "2001:db8::1",
    "--v6-count",
    String(FLOOD_V6),
    "--wait-ms",
    String((REGISTER_TIMEOUT_S + 6) * 1000),
  ]).then((r) => {
    flood$.running = false;
    assert.equal(r.code, 0, `reg-flood: ${r.stderr}`);
    return JSON.parse(r.stdout) as FloodResult;
  });

  // The CLI, over and over while the flood lasts: every call answers, within the bound.
  const cli = (async () => {
    const times: number[] = [];
    for (let i = 0; flood$.running && i < 100; i++) {
      await Promise.all(
        [
          ["status", "--json"],
          ["backend", "list", "--json"],
        ].map(async (args) => {
          const t0 = Date.now();
          const r = await lab.lbctl(args, 10_000);
          times.push(Date.now() - t0);
          assert.equal(r.code, 0, `lbctl ${args.join(" ")} during the flood: ${r.stderr}`);
        }),
      );
    }
    return times;
  })();
  // The daemon's own count of open registration connections, sampled during the flood.
  const sampled = (async () => {
    let peak = 0;
    for (let i = 0; flood$.running && i < 200; i++) {
      peak = Math.max(peak, openConnections(await metrics()));
      await new Promise((r) => setTimeout(r, 100));
    }
    return peak;
  })();

  // A well-behaved peer on another address authenticates in the middle of it (flood --count 0:
  // only its good AUTH exchange).
  await new Promise((r) => setTimeout(r, 1000));
  const good = await regFlood("b1", ["--count", "0"]);
  assert.equal(good.code, 0, good.stderr);
  assert.ok(flood$.running, "the good peer came during the flood");
  assert.match(
    (JSON.parse(good.stdout) as FloodResult).recorded,
    /^OK auth/,
    "a good peer is served during the flood",
  );

  const f = await flood;
  const [cliTimes, peak, http] = await Promise.all([cli, sampled, pace]);

  // Every hostile connection: refused, never an OK, closed by the daemon.
  assert.match(f.recorded, /^OK auth/, "the recorded exchange (AUTH only) that the replays copy");
  assert.equal(f.total, FLOOD + FLOOD_V6);
  assert.equal(f.stillOpen, 0, `connections the daemon left open: ${JSON.stringify(f.byKind)}`);
  const allowed: Record<string, string[]> = {
    silent: ["timeout"],
    garbage: ["syntax"],
    oversized: ["too-long"],
    "wrong-secret": ["auth"],
    replay: ["auth"],
    early: ["not-authenticated", "timeout"],
    v6: ["not-allowed"],
  };
  for (const [kind, k] of Object.entries(f.byKind)) {
    assert.equal(k.ok, 0, `${kind}: an OK answer`);
    assert.equal(k.connected, k.n, `${kind}: every connection was accepted by the kernel`);
    assert.equal(k.closed, k.n, `${kind}: closed by the daemon`);
    // Past the connection limit: "ERR busy", or (past the limit's headroom) closed unanswered.
    for (const code of Object.keys(k.codes))
      assert.ok(
        [...(allowed[kind] ?? []), "busy", "(none)"].includes(code),
        `${kind}: unexpected ${code} (${JSON.stringify(k.codes)})`,
      );
    assert.ok(
      (k.codes[allowed[kind]?.[0] ?? ""] ?? 0) > 0,
      `${kind}: some got their own refusal: ${JSON.stringify(k.codes)}`,
    );
  }
  const silentBound = (REGISTER_TIMEOUT_S + 1.5) * 1000;
  for (const kind of ["silent", "early"])
    assert.ok(
      (f.byKind[kind]?.maxCloseMs ?? Infinity) <= silentBound,
      `${kind}: closed after ${f.byKind[kind]?.maxCloseMs} ms, bound ${silentBound} ms (register timeout)`,
    );
  assert.ok(f.byKind["v6"]?.codes["not-allowed"] === FLOOD_V6, "every IPv6 peer refused by the allow-list");

  // The limit held and was used; afterwards every connection is gone, from both ends.
  assert.ok(
    peak <= UNAUTHENTICATED_PER_PEER + 1,
    `peak open registration connections ${peak}: the flooding address holds at most ${UNAUTHENTICATED_PER_PEER}`,
  );
  assert.ok(peak >= UNAUTHENTICATED_PER_PEER / 2, `the flood was seen: peak ${peak}`);
  let established = await establishedOn7070();
  let open = openConnections(await metrics());
  for (let i = 0; i < 30 && (established > 0 || open > 0); i++) {
    await new Promise((r) => setTimeout(r, 100));
    established = await establishedOn7070();
    open = openConnections(await metrics());
  }
  assert.equal(established, 0, "established connections on :7070 after the flood");
  assert.equal(open, 0, "the daemon's open registration connections after the flood");

  // Traffic and CLI.
  assert.equal(
    http.failed,
    0,
    `HTTP through the VIP during the flood: ${JSON.stringify(http.failures.slice(0, 5))}`,
  );
  assert.equal(http.ok, http.sent);
  const cliMax = Math.max(...cliTimes);
  assert.ok(cliTimes.length >= 4, `lbctl asked ${cliTimes.length} times during the flood`); // ≥ 2 s of flood
  assert.ok(
    cliMax <= CLI_BOUND_MS,
    `slowest lbctl during the flood: ${cliMax} ms (bound ${CLI_BOUND_MS} ms)`,
  );

  // Nothing changed; every rejection logged with its peer and reason.
  // (The health detail moves with every probe: compare what a flood could have changed.)
  const identity = (list: { address: string; name: string; state: string }[]): string[] =>
    list.map((b) => `${b.address} ${b.name} ${b.state}`);
  assert.deepEqual(identity(await backendList()), identity(before));
  const rejections = lab.daemonLog
    .split("\n")
    .filter((l) => /"msg":"registration (request rejected|connection refused|connection dropped)"/.test(l));
  assert.ok(rejections.length >= FLOOD + FLOOD_V6, `${rejections.length} rejections logged`);
  for (const line of rejections.slice(0, 2000))
    assert.match(line, /"peer":"(198\.18\.0\.2|2001:db8::2)".*"code":"[a-z-]+","reason":"[^"]+"/, line);
  const events = /^caplance_registration_events_total\{event="rejected"\} (\d+)$/m.exec(await metrics());
  assert.ok(Number(events?.[1]) >= FLOOD + FLOOD_V6, `rejected events: ${events?.[1]}`);

  const summary = {
    floodMs: f.ms,
    peakConnections: peak,
    closeMsByKind: Object.fromEntries(Object.entries(f.byKind).map(([k, v]) => [k, v.maxCloseMs])),
    codes: Object.fromEntries(Object.entries(f.byKind).map(([k, v]) => [k, v.codes])),
    http: { sent: http.sent, failed: http.failed, maxMs: http.maxMs },
    cli: {
      calls: cliTimes.length,
      maxMs: cliMax,
      medianMs: cliTimes.sort((a, b) => a - b)[cliTimes.length >> 1],
    },
  };
  t.diagnostic(`flood: ${JSON.stringify(summary)}`);
  console.log(`# registration flood: ${JSON.stringify(summary)}`);
});
