// Active health checks end to end (root, namespace lab): a VIP with HTTP checks over three
// backends; the HTTP server of one is stopped while a client sends requests at a steady rate →
// it goes `down` within interval × fall + 1 s, the client's failures all fall inside that window,
// and `backend list` shows why; started again → `active` after rise checks and serving.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import type { BackendInfo } from "../../src/api/protocol.js";
import { Lab, uniquePrefix } from "../../src/lab/lab.js";
import { packageRoot } from "../../src/lib/paths.js";

const lab = new Lab(uniquePrefix(), 3);
const VIP = "tcp/198.18.1.1:80";
const VICTIM = "198.18.0.12"; // b2
const INTERVAL_MS = 200;
const TIMEOUT_MS = 150;
const FALL = 3;
const RISE = 2;
/** Scheduler tick, the reconciler's write and the 100 ms polling of `backend list`. */
const MARGIN_MS = 1000;
/** The bound: a dead backend leaves rotation within interval × fall + 1 s. */
const DETECT_BOUND_MS = INTERVAL_MS * FALL + 1000;
const PACE_RATE = 20;
const tmp = mkdtempSync(join(tmpdir(), "caplance-health-lab-"));
const config = join(tmp, "health.yaml");
const state = `/run/caplance-lab/${lab.prefix}`;
const pidfile = `${state}/${lab.prefix}-b2.http.pid`;
const logfile = `${state}/${lab.prefix}-b2.http.log`;
/** b2's HTTP helper command line, as scripts/lab.sh started it (read before it is stopped). */
let helperArgs: string[] = [];

before(async () => {
  writeFileSync(
    config,
    [
      "vips:",
      `  - vip: ${VIP}`,
      "    health:",
      "      type: http",
      "      path: /",
      `      interval_ms: ${INTERVAL_MS}`,
      `      timeout_ms: ${TIMEOUT_MS}`,
      `      rise: ${RISE}`,
      `      fall: ${FALL}`,
      "    backends:",
      "      - { address: 198.18.0.11, name: b1 }",
      "      - { address: 198.18.0.12, name: b2 }",
      "      - { address: 198.18.0.13, name: b3 }",
      "",
    ].join("\n"),
  );
  await lab.up();
  await lab.startDaemon({ mode: "native", config });
});

after(async () => {
  const code = await lab.stopDaemon();
  await lab.down(); // stops the relaunched helper too: its pid is in the pidfile
  rmSync(tmp, { recursive: true, force: true });
  assert.equal(code, 0, `daemon exit code on SIGTERM\n${lab.daemonLog}`);
});

async function states(): Promise<Record<string, string>> {
  const r = await lab.lbctl(["backend", "list", VIP, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as { address: string; state: string }[];
  return Object.fromEntries(list.map((b) => [b.address, b.state]));
}

/** Polls until the victim shows `want`; the elapsed ms, or a failure naming the last state. */
async function waitState(want: string, boundMs: number): Promise<number> {
  const started = Date.now();
  let last: Record<string, string> = {};
  while (Date.now() - started < boundMs + 5000) {
    last = await states();
    if (last[VICTIM] === want) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 100));
  }
  return assert.fail(
    `${VICTIM} not ${want} within ${boundMs + 5000} ms: ${JSON.stringify(last)}\n${lab.daemonLog}`,
  );
}

const alive = (pid: number): boolean =>
  existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");

async function metrics(): Promise<string> {
  const script =
    "fetch('http://127.0.0.1:7071/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))";
  const r = await lab.inNs("lb", process.execPath, ["-e", script]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

test("all three backends start active and serve", async () => {
  assert.deepEqual(await states(), {
    "198.18.0.11": "active",
    "198.18.0.12": "active",
    "198.18.0.13": "active",
  });
  const r = await lab.http("http://198.18.1.1/", 150);
  assert.equal(r.failed, 0, r.errors.join("; "));
  assert.deepEqual(Object.keys(r.byBackend).sort(), ["b1", "b2", "b3"]);
});

async function victim(): Promise<BackendInfo> {
  const r = await lab.lbctl(["backend", "list", VIP, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const found = (JSON.parse(r.stdout) as BackendInfo[]).find((b) => b.address === VICTIM);
  assert.ok(found, `${VICTIM} listed`);
  return found;
}

interface PaceResult {
  sent: number;
  ok: number;
  failed: number;
  failures: { at: number; error: string }[];
  byBackend: Record<string, number>;
}

test("b2's HTTP server stopped under a 20 req/s client: down within interval × fall + 1 s, failures only inside that window", async () => {
  const pid = Number(readFileSync(pidfile, "utf8").trim());
  helperArgs = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  assert.ok(
    helperArgs.some((a) => a.endsWith("http-backend.js")),
    `helper command line: ${helperArgs.join(" ")}`,
  );
  const healthy = await victim();
  assert.equal(healthy.health?.check, "http:80/");
  assert.equal(healthy.health.result, "success");
  assert.equal(healthy.source, "static");

  // New connections at a steady rate from before the stop until well after the detection.
  const pace = lab
    .inNs("cl", process.execPath, [
      join(packageRoot(), "dist/test/support/http-pace.js"),
      "http://198.18.1.1/",
      String(PACE_RATE),
      String(1000 + DETECT_BOUND_MS + 2000),
      "1000",
    ])
    .then((r) => {
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as PaceResult;
    });
  await new Promise((r) => setTimeout(r, 1000));
  const killedAt = Date.now();
  process.kill(pid, "SIGTERM");
  while (alive(pid) && Date.now() - killedAt < 5000) await new Promise((r) => setTimeout(r, 20));
  assert.ok(!alive(pid), "b2's helper exited");
  const bound = FALL * INTERVAL_MS + TIMEOUT_MS + MARGIN_MS;
  await waitState("down", bound);
  const down = await victim();
  // The reconciler's own time of the change: no polling delay in it.
  const detected = Date.parse(down.changedAt ?? "") - killedAt;
  assert.ok(
    detected > 0 && detected <= DETECT_BOUND_MS,
    `down ${detected} ms after the stop, bound ${DETECT_BOUND_MS} ms`,
  );
  assert.match(down.changeReason ?? "", new RegExp(`^down: http:80/: ${FALL} checks failed, last: `));
  assert.equal(
    down.health?.fails !== undefined && down.health.fails >= FALL,
    true,
    JSON.stringify(down.health),
  );
  assert.notEqual(down.health?.result, "success");
  const table = await lab.lbctl(["backend", "list", VIP]);
  assert.match(
    table.stdout,
    new RegExp(
      `${VICTIM.replace(/\./g, "\\.")}\\s+6080\\s+b2\\s+1\\s+down\\s+static\\s+http:80/ \\S+ \\d+x\\s+\\S+Z\\s+down: http:80/: ${FALL} checks failed`,
    ),
  );

  const paced = await pace;
  const late = paced.failures.filter((f) => f.at < killedAt - 100 || f.at > killedAt + DETECT_BOUND_MS);
  assert.deepEqual(late, [], `failures outside [stop, stop + ${DETECT_BOUND_MS} ms]`);
  assert.equal(paced.ok + paced.failed, paced.sent);
  console.log(
    `# health: interval ${INTERVAL_MS} ms, fall ${FALL}: ${VICTIM} down ${detected} ms after its HTTP server stopped ` +
      `(bound ${DETECT_BOUND_MS} ms); client at ${PACE_RATE} req/s: ${paced.failed} of ${paced.sent} failed, ` +
      `all within ${paced.failures.length ? Math.max(...paced.failures.map((f) => f.at - killedAt)) : 0} ms of the stop`,
  );
  const s = await states();
  assert.equal(s["198.18.0.11"], "active");
  assert.equal(s["198.18.0.13"], "active");

  const r = await lab.http("http://198.18.1.1/", 300);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assert.deepEqual(Object.keys(r.byBackend).sort(), ["b1", "b3"], JSON.stringify(r.byBackend));

  const text = await metrics();
  const refused = new RegExp(
    `^caplance_health_check_total\\{vip="${VIP}",backend="${VICTIM}",result="refused"\\} (\\d+)`,
    "m",
  ).exec(text);
  assert.ok(refused && Number(refused[1]) >= FALL, `refused probes counted:\n${text.slice(0, 2000)}`);
  assert.match(text, /^caplance_health_check_duration_seconds_count\{vip="tcp\/198\.18\.1\.1:80"\} \d+/m);
  assert.match(lab.daemonLog, /backend down: health checks fail/);
});

test("b2's HTTP server started again: back to active after rise checks, and it gets traffic", async () => {
  assert.ok(helperArgs.length > 1, "the previous test read the helper's command line");
  const [, ...args] = helperArgs; // "node", then the script and its flags
  const out = openSync(logfile, "w");
  // As scripts/lab.sh does: own session, network namespace only; nsenter and node exec, so the
  // pid is node's and `lab.sh down` stops it through the pidfile.
  const child = spawn("nsenter", [`--net=${lab.ns("b2")}`, "--", process.execPath, ...args], {
    detached: true,
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  child.unref();
  assert.ok(child.pid !== undefined, "helper started");
  writeFileSync(pidfile, `${child.pid}\n`);
  const started = Date.now();
  while (!/^ready$/m.test(readFileSync(logfile, "utf8")) && Date.now() - started < 15_000)
    await new Promise((r) => setTimeout(r, 50));
  assert.match(readFileSync(logfile, "utf8"), /^ready$/m, "helper ready");

  const readyAt = Date.now();
  const bound = RISE * INTERVAL_MS + TIMEOUT_MS + MARGIN_MS;
  const took = await waitState("active", bound);
  assert.ok(took <= bound, `active after ${took} ms, bound ${bound} ms`);
  const up = await victim();
  assert.match(up.changeReason ?? "", new RegExp(`^up: http:80/: ${RISE} checks passed`));
  assert.equal(up.health?.result, "success");
  const back = Date.parse(up.changedAt ?? "") - readyAt;
  console.log(
    `# health: rise ${RISE}: ${VICTIM} active ${back} ms after its HTTP server was ready (bound ${bound} ms)`,
  );
  const r = await lab.http("http://198.18.1.1/", 300);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assert.ok((r.byBackend.b2 ?? 0) > 30, `b2 is back in rotation: ${JSON.stringify(r.byBackend)}`);
  assert.match(lab.daemonLog, /backend up: health checks pass/);
});
