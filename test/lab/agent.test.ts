// Self-registering backends end to end: a daemon with a registration secret in the balancer's
// namespace, `lbctl agent` on three bare lab backends (no VIPs, sysctls or decap until the agent
// sets them up). Spread, pause keeps a long-lived connection, SIGTERM drains with zero failed
// requests and restores the host, SIGKILL is removed after the read timeout, wrong secrets and
// a broken tunnel are refused.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import type { BackendInfo } from "../../src/api/protocol.js";
import { Lab, run, uniquePrefix, type Exec } from "../../src/lab/lab.js";
import { packageRoot } from "../../src/lib/paths.js";
import { spawnAgent, type AgentProcess } from "../support/agent-process.js";

const lab = new Lab(uniquePrefix(), 3);
const dir = `/run/caplance-lab/${lab.prefix}-agent`;
const secret = join(dir, "secret");
const LBCTL = join(packageRoot(), "bin", "lbctl");
const WEB = "tcp/198.18.1.1:80";
const NAMES = "tcp/198.18.1.1:8080"; // the backends' line-based name service (long-lived connections)
const READ_TIMEOUT_S = 3;

type Agent = AgentProcess;
const agents = new Map<string, Agent>();

function startAgent(i: number, extra: string[] = [], secretFile = secret): Agent {
  const socket = join(dir, `agent-b${i}-${agents.size}.sock`);
  const agent = spawnAgent(lab, `b${i}`, socket, [
    ...["--lb", "198.18.0.1", "--vip", WEB, "--vip", NAMES, "--iface", "eth0", "--name", `b${i}`],
    ...["--secret-file", secretFile, "--health-interval", "1", "--drain-timeout", "10"],
    ...extra,
  ]);
  agents.set(`b${i}-${agents.size}`, agent);
  return agent;
}

/** The first agent started on backend i. */
function agentOf(i: number): Agent {
  const found = [...agents.entries()].find(([k]) => k.startsWith(`b${i}-`));
  if (!found) throw new Error(`no agent on b${i}`);
  return found[1];
}

async function backends(): Promise<BackendInfo[]> {
  const r = await lab.lbctl(["backend", "list", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BackendInfo[];
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (await cond()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

const inNs = (i: number, cmd: string, args: string[]): Promise<string> =>
  lab.inNs(`b${i}`, cmd, args).then((r) => r.stdout);

before(async () => {
  mkdirSync(dir, { recursive: true });
  writeFileSync(secret, "lab-secret-0123456789abcdef0123456789\n", { mode: 0o600 });
  const config = join(dir, "vips.yaml");
  writeFileSync(config, `vips:\n  - vip: ${WEB}\n    backends: []\n  - vip: ${NAMES}\n    backends: []\n`);
  await lab.up(["--bare"]);
  process.env["CAPLANCE_REG_READ_TIMEOUT"] = String(READ_TIMEOUT_S);
  process.env["CAPLANCE_REG_TUNNEL_TIMEOUT"] = "1";
  await lab.startDaemon({ mode: "native", config, extra: ["--secret-file", secret] });
});

after(async () => {
  for (const a of agents.values()) if (a.child.exitCode === null) a.child.kill("SIGKILL");
  const code = await lab.stopDaemon();
  await lab.down();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 0, `daemon exit code on SIGTERM\n${lab.daemonLog}`);
});

test("three agents register (tunnel check passed); 1000 requests spread 1/3 ± 15%", async () => {
  for (const i of [1, 2, 3]) startAgent(i);
  await until(
    "six active registered backends",
    async () => (await backends()).filter((b) => b.state === "active").length === 6,
    20_000,
  );
  const listed = await backends();
  for (const b of listed) {
    assert.equal(b.source, "registered", `${b.vip} ${b.address}`);
    assert.match(b.changeReason ?? "", /^registered by its agent \(198\.18\.0\.1[123]\)$/);
  }
  const r = await lab.http("http://198.18.1.1/", 1000);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  for (const name of ["b1", "b2", "b3"]) {
    const share = (r.byBackend[name] ?? 0) / 1000;
    assert.ok(Math.abs(share - 1 / 3) <= 0.15 / 3, `${name}: ${share} (${JSON.stringify(r.byBackend)})`);
  }
  const direct = await run(process.execPath, [
    LBCTL,
    "agent",
    "status",
    "--json",
    "--socket",
    agentOf(1).socket,
  ]);
  assert.equal(direct.code, 0, direct.stderr);
  const status = JSON.parse(direct.stdout) as { state: string; decap: string; hostChanges: string[] };
  assert.equal(status.state, "registered");
  assert.ok(["native", "generic"].includes(status.decap));
  assert.ok(status.hostChanges.some((c) => c.startsWith("VIP 198.18.1.1")));
});

test("lbctl agent pause: no new connections, an open connection continues; resume", async () => {
  const session = lab.session("198.18.1.1", 8080);
  const name = await session.ask();
  assert.ok(name, "long-lived connection answered");
  const sock = agentOf(Number(name.slice(1))).socket;
  const paused = await run(process.execPath, [LBCTL, "agent", "pause", "--socket", sock]);
  assert.equal(paused.code, 0, paused.stderr);
  const list = await backends();
  assert.ok(
    list
      .filter((b) => b.name === name)
      .every((b) => b.state === "draining" && b.changeReason === "paused by its agent"),
    JSON.stringify(list),
  );
  const r = await lab.http("http://198.18.1.1/", 150);
  assert.equal(r.failed, 0);
  assert.equal(
    r.byBackend[name] ?? 0,
    0,
    `paused ${name} got new connections: ${JSON.stringify(r.byBackend)}`,
  );
  for (let i = 0; i < 3; i++) assert.equal(await session.ask(), name, "open connection stays on its backend");
  const resumed = await run(process.execPath, [LBCTL, "agent", "resume", "--socket", sock]);
  assert.equal(resumed.code, 0, resumed.stderr);
  session.close();
  await until(
    "resumed",
    async () => (await backends()).filter((b) => b.state === "active").length === 6,
    5000,
  );
});

test("SIGTERM under a 10 req/s client: zero failed requests, deregister, exit 0, host settings restored", async () => {
  const b2 = agentOf(2);
  // New connections at 10/s from 1 s before the signal until well after the agent exits.
  const load = lab
    .inNs("cl", process.execPath, [
      join(packageRoot(), "dist/test/support/http-pace.js"),
      "http://198.18.1.1/",
      "10",
      "6000",
    ])
    .then((r) => {
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as {
        sent: number;
        failed: number;
        failures: unknown[];
        ended: number;
        byBackend: Record<string, number>;
      };
    });
  await new Promise((r) => setTimeout(r, 1000));
  const signalled = Date.now();
  b2.child.kill("SIGTERM");
  const code = await b2.exit;
  const exited = Date.now();
  const r = await load;
  assert.equal(code, 0, b2.log);
  assert.ok(r.ended - exited >= 1000, "the client ran on for a second after the agent exited");
  assert.ok((r.byBackend["b2"] ?? 0) > 0, `b2 served before its stop: ${JSON.stringify(r.byBackend)}`);
  assert.equal(r.failed, 0, `failed during graceful stop: ${JSON.stringify(r.failures)}`);
  console.log(
    `# agent: SIGTERM to exit ${exited - signalled} ms (drain, DEREGISTER, host restored); ` +
      `client at 10 req/s: ${r.failed} of ${r.sent} requests failed`,
  );
  assert.ok(
    (await backends()).every((b) => b.name !== "b2"),
    "b2 deregistered",
  );
  assert.doesNotMatch(await inNs(2, "ip", ["addr", "show", "dev", "lo"]), /198\.18\.1\.1/, "VIP removed");
  assert.doesNotMatch(await inNs(2, "ip", ["link", "show", "dev", "eth0"]), /prog\/xdp/, "decap detached");
  assert.doesNotMatch(await inNs(2, "ip", ["route"]), /advmss/, "advmss removed");
  assert.equal((await inNs(2, "sysctl", ["-n", "net.ipv4.conf.all.arp_ignore"])).trim(), "0");
  const again = await lab.http("http://198.18.1.1/", 200);
  assert.equal(again.failed, 0);
  assert.equal(again.byBackend["b2"] ?? 0, 0);
});

test("SIGKILL: the silent backend is removed after the read timeout", async () => {
  const b3 = agentOf(3);
  b3.child.kill("SIGKILL");
  await b3.exit;
  const waited = await until(
    "b3 removed",
    async () => (await backends()).every((b) => b.name !== "b3"),
    (READ_TIMEOUT_S + 3) * 1000,
  );
  assert.ok(waited <= (READ_TIMEOUT_S + 1.5) * 1000, `removed after ${waited} ms`);
  assert.match(lab.daemonLog, /silent past the read timeout/);
});

test("wrong secret, open secret file, no secret: refused; nothing added", async () => {
  const wrong = join(dir, "wrong");
  writeFileSync(wrong, "not-the-lab-secret-0123456789abcdef\n", { mode: 0o600 });
  const a = startAgent(3, ["--decap", "none"], wrong);
  await until("auth refused", () => Promise.resolve(a.log.includes("ERR auth")), 10_000);
  a.child.kill("SIGTERM");
  assert.equal(await a.exit, 0);
  assert.ok((await backends()).every((b) => b.name !== "b3"));
  assert.match(lab.daemonLog, /"peer":"198\.18\.0\.13","code":"auth"/);

  chmodSync(wrong, 0o644);
  const open = await run(process.execPath, [
    LBCTL,
    "agent",
    "--lb",
    "198.18.0.1",
    "--vip",
    WEB,
    "--iface",
    "eth0",
    "--secret-file",
    wrong,
  ]);
  assert.equal(open.code, 1);
  assert.match(open.stderr, /mode 0644: group and others must have no access/);
  const none = await run(process.execPath, [
    LBCTL,
    "agent",
    "--lb",
    "198.18.0.1",
    "--vip",
    WEB,
    "--iface",
    "eth0",
  ]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /needs --secret-file/);
});

test("broken tunnel (no decap on the backend): REGISTER fails with ERR tunnel and a hint", async () => {
  const a = startAgent(2, ["--decap", "none"]);
  await until("tunnel refused", () => Promise.resolve(a.log.includes("ERR tunnel")), 15_000);
  assert.match(a.log, /decap not attached/);
  a.child.kill("SIGTERM");
  assert.equal(await a.exit, 0);
  assert.ok((await backends()).every((b) => b.name !== "b2"));
});

test("path MTU below the balancer's: the full-size probe is lost, REGISTER fails with the MTU hint; fixed, it registers", async () => {
  // b2's port on the lab switch gets a smaller MTU: the bridge drops larger frames on the way
  // to b2, silently, as a link with a smaller MTU would; small packets still pass. The nft
  // counters on the bridge see the probes pass by: full-size ones with DF, no fragments.
  const sw = `${lab.prefix}-sw`;
  const port = `${lab.prefix}xb2`;
  const table = `${lab.prefix}_probe`;
  const setMtu = (mtu: number): Promise<Exec> =>
    run("ip", ["-n", sw, "link", "set", "dev", port, "mtu", String(mtu)]);
  const rules = [
    `add table bridge ${table}`,
    `add chain bridge ${table} probes { type filter hook forward priority 0; policy accept; }`,
    `add rule bridge ${table} probes ip daddr 198.18.0.12 udp dport 6080 ip length 1500 ip frag-off & 0x4000 != 0 counter comment "full_df"`,
    `add rule bridge ${table} probes ip daddr 198.18.0.12 ip frag-off & 0x3fff != 0 counter comment "fragments"`,
  ];
  for (const rule of rules) {
    const r = await run("ip", ["netns", "exec", sw, "nft", ...rule.split(" ")]);
    assert.equal(r.code, 0, `nft ${rule}: ${r.stderr}`);
  }
  try {
    assert.equal((await setMtu(1400)).code, 0);
    const a = startAgent(2);
    await until("MTU refusal", () => Promise.resolve(a.log.includes("ERR tunnel")), 15_000);
    assert.match(a.log, /full-size one \(a 1500-byte outer packet with DF set/);
    assert.match(a.log, /path MTU to the backend is below 1500/);
    assert.doesNotMatch(a.log, /decap not attached/, "the small probe passed: not the generic hint");
    assert.ok(
      (await backends()).every((b) => b.name !== "b2"),
      "nothing added while the path is too small",
    );
    assert.equal((await setMtu(1500)).code, 0);
    await until(
      "b2 registered once the path carries full-size packets",
      async () => (await backends()).filter((b) => b.name === "b2" && b.state === "active").length === 2,
      15_000,
    );
    const counters = (await run("ip", ["netns", "exec", sw, "nft", "list", "table", "bridge", table])).stdout;
    const count = (comment: string): number =>
      Number(new RegExp(`counter packets (\\d+) bytes \\d+ comment "${comment}"`).exec(counters)?.[1] ?? -1);
    assert.ok(count("full_df") > 0, `full-size probes with DF crossed the switch:\n${counters}`);
    assert.equal(count("fragments"), 0, `no fragments:\n${counters}`);
    a.child.kill("SIGTERM");
    assert.equal(await a.exit, 0, a.log);
  } finally {
    await setMtu(1500);
    await run("ip", ["netns", "exec", sw, "nft", "delete", "table", "bridge", table]);
  }
});

test("lbctl agent deregister: the backend leaves at once, the agent undoes the host and exits 0", async () => {
  const b1 = agentOf(1);
  assert.ok(
    (await backends()).some((b) => b.name === "b1"),
    "b1 registered",
  );
  const r = await run(process.execPath, [LBCTL, "agent", "deregister", "--socket", b1.socket]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await b1.exit, 0, b1.log);
  assert.ok(
    (await backends()).every((b) => b.name !== "b1"),
    "b1 removed",
  );
  assert.doesNotMatch(await inNs(1, "ip", ["addr", "show", "dev", "lo"]), /198\.18\.1\.1/, "VIP removed");
  assert.match(b1.log, /deregistered/);
});
