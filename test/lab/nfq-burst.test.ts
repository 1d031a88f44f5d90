// The NFQUEUE worker under a backlog: a burst of datagrams queued while the worker is stopped
// (SIGSTOP), many times its batch of 64, must come out whole once it runs again: every one
// balanced, counted and received by the backend, nothing left in the queue. (The worker once
// received a 65th message per batch and left it unhandled: the next batch's verdict dropped it
// unseen, 1 datagram in 65 under load.)
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { Lab, uniquePrefix } from "../../src/lab/lab.js";
import { lbctlOk } from "../support/lab-assert.js";

const lab = new Lab(uniquePrefix(), 1);
const VIP = "198.18.1.2";
const PORT = 9;
const BURST = 1000;

/** Packets waiting for a verdict in the NFQUEUE queues of pid's network namespace. */
function waiting(pid: number): number {
  return readFileSync(`/proc/${pid}/net/netfilter/nfnetlink_queue`, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[2] ?? 0), 0);
}

async function until(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(fn(), `${what} within ${timeoutMs} ms`);
}

/** Packets the backend's raw PREROUTING rule for PORT has counted (and dropped). */
async function backendCount(): Promise<number> {
  const r = await lab.inNs("b1", "iptables-save", ["-c", "-t", "raw"]);
  const line = r.stdout.split("\n").find((l) => l.includes(`--dport ${PORT}`) && l.includes("-j DROP"));
  const m = line ? /^\[(\d+):\d+\]/.exec(line) : null;
  assert.ok(m?.[1] !== undefined, `the backend's counting rule:\n${r.stdout}`);
  return Number(m[1]);
}

before(async () => {
  await lab.up();
  const config = `/run/caplance-lab/${lab.prefix}/burst.yaml`;
  writeFileSync(config, `vips:\n  - vip: udp/${VIP}:${PORT}\n    backends: [{ address: 198.18.0.11 }]\n`);
  // Counted, then dropped: nothing listens on the port, and no ICMP error goes back.
  const drop = ["-A", "PREROUTING", "-p", "udp", "--dport", String(PORT), "-j", "DROP"];
  const r = await lab.inNs("b1", "iptables", ["-w", "5", "-t", "raw", ...drop]);
  assert.equal(r.code, 0, r.stderr);
  await lab.startDaemon({ mode: "nfqueue", config });
});

after(async () => {
  await lab.down();
});

test(`a burst of ${BURST} datagrams queued behind a stopped worker is balanced whole`, async () => {
  const status = JSON.parse(await lbctlOk(lab, ["status", "--json"])) as { pid: number };
  const ps = await lab.inNs("lb", "ps", ["-o", "pid=,comm=", "--ppid", String(status.pid)]);
  const worker = ps.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find(([, comm]) => comm === "caplance-nfq");
  const pid = Number(worker?.[0]);
  assert.ok(pid > 0, `the worker among the daemon's children:\n${ps.stdout}`);
  const before = await backendCount();

  process.kill(pid, "SIGSTOP");
  try {
    const send = `
const s = require("node:dgram").createSocket("udp4");
let left = ${BURST};
const next = () => (left-- > 0 ? s.send(Buffer.alloc(22), ${PORT}, "${VIP}", next) : s.close());
next();`;
    const r = await lab.inNs("cl", process.execPath, ["-e", send]);
    assert.equal(r.code, 0, r.stderr);
    await until(`${BURST} datagrams queued`, () => waiting(pid) === BURST, 5000);
  } finally {
    process.kill(pid, "SIGCONT");
  }
  await until("the queue drained", () => waiting(pid) === 0, 5000);

  const stats = JSON.parse(await lbctlOk(lab, ["stats", "--json"])) as {
    vips: Record<string, { packets: number }>;
    counters: Record<string, number>;
  };
  assert.equal(stats.vips[`udp/${VIP}:${PORT}`]?.packets, BURST, "every datagram seen by the engine");
  assert.equal(stats.counters.tx, BURST, "every datagram encapsulated and sent");
  assert.equal((await backendCount()) - before, BURST, "every datagram received by the backend");
});
