// The NFQUEUE fallback end to end in a namespace lab: `lbctl load --mode nfqueue` (iptables
// NFQUEUE rules + the caplance-nfq worker) in the balancer's namespace, the same clients,
// backends and expectations as the XDP lab test; a killed worker is restarted; and a mixed
// run: the same fixed-source-port flows through an XDP balancer and an NFQUEUE balancer reach
// the same backend.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import type { NfqueueStats } from "../../src/api/protocol.js";
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
const CONFIG = join(packageRoot(), "confs", "simple_1.yaml");

const lbctlOk = (args: string[]): Promise<string> => lbctlOkIn(lab, args);

async function status(): Promise<{ mode: string; modeReason: string; pid: number }> {
  return JSON.parse(await lbctlOk(["status", "--json"])) as { mode: string; modeReason: string; pid: number };
}

/** One UDP query per fixed source port from the client: port -> answering backend. */
async function udpBySourcePort(
  address: string,
  port: number,
  sports: number[],
): Promise<Record<number, string>> {
  const script = `
const dgram = require("node:dgram");
const [addr, port, ...sports] = process.argv.slice(1);
(async () => {
  const out = {};
  for (const sp of sports) {
    out[sp] = await new Promise((resolve) => {
      const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
      const t = setTimeout(() => { s.close(); resolve("timeout"); }, 2000);
      s.on("message", (m) => { clearTimeout(t); s.close(); resolve(m.toString().trim()); });
      s.bind(Number(sp), () => s.send("who?\\n", Number(port), addr));
    });
  }
  console.log(JSON.stringify(out));
})();`;
  const r = await lab.inNs("cl", process.execPath, [
    "-e",
    script,
    address,
    String(port),
    ...sports.map(String),
  ]);
  assert.equal(r.code, 0, `client exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<number, string>;
}

before(async () => {
  await lab.up();
  await lab.startDaemon({ mode: "nfqueue", config: CONFIG });
});

after(async () => {
  const code = await lab.stopDaemon();
  const rules = await lab.inNs("lb", "iptables-save", ["-t", "raw"]);
  await lab.down();
  assert.equal(code, 0, `daemon exit code on SIGTERM\n${lab.daemonLog}`);
  assert.ok(!rules.stdout.includes("CAPLANCE"), `rules removed on stop:\n${rules.stdout}`);
});

test("status: nfqueue mode, requested; rules match only the VIP", async () => {
  const s = await status();
  assert.equal(s.mode, "nfqueue");
  assert.equal(s.modeReason, "requested");
  const rules = await lab.inNs("lb", "iptables-save", ["-t", "raw"]);
  const queued = rules.stdout.split("\n").filter((l) => l.includes("NFQUEUE"));
  assert.deepEqual(
    queued.map((l) => l.replace(/ --queue-(balance|num) \S+/, "")),
    ["-A CAPLANCE -d 198.18.1.1/32 -p tcp -j NFQUEUE --queue-bypass"],
  );
  // unload through another socket must not remove a live daemon's rules.
  const lbctl = join(packageRoot(), "bin", "lbctl");
  const other = `/run/caplance-lab/${lab.prefix}/other.sock`;
  const unload = await lab.inNs("lb", process.execPath, [
    lbctl,
    "unload",
    "--iface",
    "eth0",
    "--socket",
    other,
  ]);
  assert.equal(unload.code, 1, `unload refused: ${unload.stderr}`);
  assert.match(unload.stderr, /a daemon serves eth0 \(lbctl load, pid \d+\)/);
  const still = await lab.inNs("lb", "iptables-save", ["-t", "raw"]);
  assert.match(still.stdout, /-A CAPLANCE -d 198\.18\.1\.1\/32/, "rules still there");
});

test("1000 HTTP requests over 3 backends: all succeed, 1/3 ± 15% each, counters as in XDP", async () => {
  const r = await lab.http("http://198.18.1.1/", 1000);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assertSpread(r.byBackend, { b1: 1, b2: 1, b3: 1 }, "spread");
  const stats = JSON.parse(await lbctlOk(["stats", "--json"])) as {
    counters: Record<string, number>;
    vips: Record<string, { packets: number }>;
  };
  const vipPackets = stats.vips["tcp/198.18.1.1:80"]?.packets ?? 0;
  assert.ok(vipPackets >= 4000, `VIP packets ${vipPackets}`);
  assert.equal(stats.counters.tx ?? 0, vipPackets, "every VIP packet encapsulated and sent");
});

test("IPv6 VIP over IPv6 backends", () => ipv6Spread(lab));

test("UDP VIP: answers from the VIP, spread over backends", () => udpSpread(lab));

test("drain keeps a long-lived connection; new connections avoid the drained backend", () =>
  drainKeepsConnection(lab));

test("remove moves only the removed backend's flows", () => removeMovesOnlyItsFlows(lab));

async function workerPid(): Promise<number> {
  const daemonPid = (await status()).pid;
  const ps = await lab.inNs("lb", "ps", ["-o", "pid=,comm=", "--ppid", String(daemonPid)]);
  const worker = ps.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find(([, comm]) => comm === "caplance-nfq");
  assert.ok(worker?.[0], `worker among the daemon's children:\n${ps.stdout}`);
  return Number(worker[0]);
}

async function nfqueueStats(): Promise<NfqueueStats> {
  const stats = JSON.parse(await lbctlOk(["stats", "--json"])) as { nfqueue?: NfqueueStats };
  assert.ok(stats.nfqueue, "stats --json has an nfqueue section in nfqueue mode");
  return stats.nfqueue;
}

/** count datagrams from one source port (one flow, so one queue) as fast as the client can. */
async function udpFlood(address: string, port: number, count: number): Promise<void> {
  const script = `
const dgram = require("node:dgram");
const [addr, port, count] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const s = dgram.createSocket("udp4");
const payload = Buffer.alloc(18, 120);
let sent = 0;
s.bind(40999, () => {
  const burst = () => {
    for (let i = 0; i < 500 && sent < count; i++, sent++) s.send(payload, port, addr);
    if (sent < count) setImmediate(burst);
    else setTimeout(() => s.close(), 300);
  };
  burst();
});`;
  const r = await lab.inNs(
    "cl",
    process.execPath,
    ["-e", script, address, String(port), String(count)],
    60_000,
  );
  assert.equal(r.code, 0, `flood exited ${r.code}: ${r.stderr}`);
}

test("stats: queues bound, worker counters; a stalled worker's queue overflow is counted, then it recovers", async (t) => {
  const before = await nfqueueStats();
  assert.equal(before.bound, before.queues, `a worker thread on every queue: ${JSON.stringify(before)}`);
  assert.ok(before.packets > 0, "the worker counted the earlier tests' packets");
  assert.equal(before.queue_dropped + before.user_dropped, 0, `no overflow yet: ${JSON.stringify(before)}`);
  const vip = "udp/198.18.1.2:53";
  await lbctlOk(["vip", "add", vip]);
  await lbctlOk(["backend", "add", vip, "198.18.0.11"]);
  const pid = await workerPid();
  process.kill(pid, "SIGSTOP");
  try {
    // More than the queue's maximum length (65536) of one flow while nothing reads it.
    await udpFlood("198.18.1.2", 53, 100_000);
    const stalled = await nfqueueStats();
    t.diagnostic(`stalled worker: ${JSON.stringify(stalled)}`);
    assert.ok(stalled.waiting > 0, `packets wait for a verdict: ${JSON.stringify(stalled)}`);
    assert.ok(
      stalled.queue_dropped + stalled.user_dropped > 0,
      `overflow counted by the kernel: ${JSON.stringify(stalled)}`,
    );
  } finally {
    process.kill(pid, "SIGCONT");
  }
  const deadline = Date.now() + 15_000;
  let after = await nfqueueStats();
  while (after.waiting > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    after = await nfqueueStats();
  }
  assert.equal(after.waiting, 0, `the queue drains after the worker resumes: ${JSON.stringify(after)}`);
  const human = await lbctlOk(["stats"]);
  assert.match(human, /NFQUEUE[\s\S]*queue_dropped/);
  await lbctlOk(["vip", "remove", vip]);
  const r = await lab.http("http://198.18.1.1/", 100);
  assert.equal(r.failed, 0, `balances after the overflow: ${r.errors.join("; ")}`);
});

test("a killed worker is restarted and logged; the daemon stays up and balances again", async () => {
  const daemonPid = (await status()).pid;
  process.kill(await workerPid(), "SIGKILL");
  // Bypass while it is down: non-VIP traffic is never queued; VIP traffic resumes after restart.
  const deadline = Date.now() + 10_000;
  while (!lab.daemonLog.includes("NFQUEUE worker restarted") && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 200));
  assert.ok(lab.daemonLog.includes("NFQUEUE worker died"), "death logged");
  assert.ok(lab.daemonLog.includes("NFQUEUE worker restarted"), "restart logged");
  assert.equal((await status()).pid, daemonPid, "daemon still up");
  const r = await lab.http("http://198.18.1.1/", 300);
  assert.equal(r.failed, 0, `failures after restart: ${r.errors.join("; ")}`);
  for (const name of ["b1", "b2", "b3"])
    assert.ok(
      (r.byBackend[name] ?? 0) > 50,
      `${name} in rotation after restart: ${JSON.stringify(r.byBackend)}`,
    );
});

test("mixed: the same fixed-source-port flows pick the same backend through XDP and NFQUEUE", async () => {
  const vip = "udp/198.18.1.2:53"; // a VIP the lab backends hold on lo
  const sports = Array.from({ length: 40 }, (_, i) => 41000 + i * 7);
  const configure = async (): Promise<void> => {
    await lbctlOk(["vip", "add", vip]);
    for (const i of [1, 2, 3, 4]) await lbctlOk(["backend", "add", vip, `198.18.0.1${i}`]);
  };
  await configure();
  const viaNfq = await udpBySourcePort("198.18.1.2", 53, sports);
  await lab.stopDaemon();
  await lab.startDaemon({ mode: "generic", config: CONFIG });
  assert.equal((await status()).mode, "generic");
  await configure();
  const viaXdp = await udpBySourcePort("198.18.1.2", 53, sports);
  await lab.stopDaemon();
  await lab.startDaemon({ mode: "nfqueue", config: CONFIG }); // for after()
  assert.ok(
    Object.values(viaNfq).every((n) => n !== "timeout"),
    JSON.stringify(viaNfq),
  );
  assert.ok(new Set(Object.values(viaNfq)).size >= 3, `flows spread: ${JSON.stringify(viaNfq)}`);
  assert.deepEqual(viaXdp, viaNfq, "same backend per flow in both modes");
});
