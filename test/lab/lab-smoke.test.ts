// The namespace lab itself (scripts/lab.sh), as root: up, reachability from the client, each
// backend's services, lb_decap turning hand-made encapsulated packets into VIP traffic answered
// straight to the client (DSR), then down leaving nothing behind. Every wait is bounded.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { packageRoot } from "../../src/lib/paths.js";
import { buildIpPacket } from "../../src/model/packet-builder.js";
import type { L3Spec } from "../../src/model/packet-builder.js";

const LAB = join(packageRoot(), "scripts", "lab.sh");
const PREFIX = `cpls${process.pid.toString(36)}`; // unique per run, <= 12 characters
const STATE = `/run/caplance-lab/${PREFIX}`;
const BACKENDS = 3;
const ENCAP_PORT = 6080;
const CLIENT_NS = `${PREFIX}-cl`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: readonly string[], timeoutMs = 20_000): Run {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr + (r.error ? `\n${r.error.message}` : "") };
}

function lab(...args: string[]): Run {
  return run("bash", [LAB, ...args], 60_000);
}

function inClient(cmd: string, args: readonly string[], timeoutMs?: number): Run {
  return run("nsenter", [`--net=/run/netns/${CLIENT_NS}`, "--", cmd, ...args], timeoutMs);
}

function ok(r: Run, what: string): string {
  assert.equal(r.status, 0, `${what}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function labNamespaces(): string[] {
  const out = ok(run("ip", ["netns", "list"]), "ip netns list");
  return out
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.startsWith(`${PREFIX}-`));
}

function hasCommand(name: string): boolean {
  return run("sh", ["-c", `command -v ${name}`]).status === 0;
}

const backendV4 = (i: number): string => `198.18.0.${10 + i}`;
const backendV6 = (i: number): string => `2001:db8::${(10 + i).toString()}`;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

// Sends one encapsulated packet per 300 ms (at most 10) from the client's UDP port SPORT to
// TARGET:ENCAP_PORT and prints the first datagram that comes back, with its source, as JSON.
const PROBE = `
import { createSocket } from "node:dgram";
const [family, target, encapPort, sport, hex] = process.argv.slice(1);
const s = createSocket(family);
let tries = 0;
const send = () => {
  if (tries++ >= 10) { console.error("no reply"); process.exit(1); }
  s.send(Buffer.from(hex, "hex"), Number(encapPort), target);
};
s.on("message", (m, r) => {
  console.log(JSON.stringify({ address: r.address, port: r.port, text: m.toString() }));
  process.exit(0);
});
s.bind(Number(sport), () => { send(); setInterval(send, 300); });
`;

interface Reply {
  address: string;
  port: number;
  text: string;
}

/** An inner UDP datagram from the client to VIP:53, encapsulated by hand towards a backend. */
function encapProbe(outer: 4 | 6, target: string, inner: L3Spec, sport: number): Reply {
  const packet = buildIpPacket(inner, { kind: "udp", sport, dport: 53, payload: Buffer.from("who?") });
  const r = inClient(
    "node",
    [
      "--input-type=module",
      "-e",
      PROBE,
      outer === 4 ? "udp4" : "udp6",
      target,
      String(ENCAP_PORT),
      String(sport),
      Buffer.from(packet).toString("hex"),
    ],
    15_000,
  );
  const reply = JSON.parse(ok(r, `encap probe to ${target}`)) as Reply;
  // A udp6 socket is dual-stack: an IPv4 reply arrives from a v4-mapped address.
  return { ...reply, address: reply.address.replace(/^::ffff:/, "") };
}

const skip = process.getuid?.() !== 0 ? "the namespace lab needs root" : false;

void describe("namespace lab (scripts/lab.sh)", { skip }, () => {
  let upAttempted = false;

  before(() => {
    ok(lab("cleanup-stale"), "lab.sh cleanup-stale");
    upAttempted = true;
    ok(lab("up", PREFIX, "--backends", String(BACKENDS), "--owner", String(process.pid)), "lab.sh up");
  });

  after(() => {
    if (!upAttempted) return;
    const r = lab("down", PREFIX);
    assert.equal(r.status, 0, `lab.sh down in after(): ${r.stdout}${r.stderr}`);
  });

  void it("is up: every namespace, status exit 0", () => {
    const expected = ["cl", "lb", "sw", ...range(BACKENDS).map((i) => `b${i}`)].map((s) => `${PREFIX}-${s}`);
    assert.deepEqual(labNamespaces().sort(), expected.sort());
    ok(lab("status", PREFIX), "lab.sh status");
  });

  void it("up again is a no-op that succeeds", () => {
    const out = ok(lab("up", PREFIX, "--backends", String(BACKENDS)), "second lab.sh up");
    assert.match(out, /already running/);
  });

  void it(
    "client pings the balancer and every backend (IPv4, IPv6)",
    { skip: hasCommand("ping") ? false : "ping not installed (apt-get install iputils-ping)" },
    () => {
      const targets = ["198.18.0.1", "2001:db8::1"];
      for (const i of range(BACKENDS)) targets.push(backendV4(i), backendV6(i));
      for (const t of targets) ok(inClient("ping", ["-c", "1", "-W", "2", t], 10_000), `ping ${t}`);
    },
  );

  void it("each backend's HTTP server answers with its name on its own addresses", () => {
    for (const i of range(BACKENDS)) {
      for (const url of [`http://${backendV4(i)}/`, `http://[${backendV6(i)}]/`]) {
        const body = ok(inClient("curl", ["-sS", "-m", "5", url], 10_000), `curl ${url}`);
        assert.equal(body, `b${i}\n`, url);
      }
    }
  });

  void it("lb_decap delivers hand-encapsulated packets to the VIP, answered from the VIP", () => {
    const client4 = "198.18.0.2";
    const client6 = "2001:db8::2";
    let sport = 40000 + (process.pid % 10000);
    for (const i of range(BACKENDS)) {
      const cases: { outer: 4 | 6; target: string; inner: L3Spec; vip: string }[] = [
        {
          outer: 4,
          target: backendV4(i),
          inner: { family: 4, src: client4, dst: "198.18.1.1" },
          vip: "198.18.1.1",
        },
        {
          outer: 6,
          target: backendV6(i),
          inner: { family: 6, src: client6, dst: "2001:db8:1::1" },
          vip: "2001:db8:1::1",
        },
        {
          outer: 6,
          target: backendV6(i),
          inner: { family: 4, src: client4, dst: "198.18.1.2" },
          vip: "198.18.1.2",
        },
      ];
      for (const c of cases) {
        const reply = encapProbe(c.outer, c.target, c.inner, sport++);
        const what = `IPv${c.inner.family} in IPv${c.outer} to b${i}`;
        assert.deepEqual(reply, { address: c.vip, port: 53, text: `b${i}\n` }, what);
      }
    }
  });

  void it("down stops the helpers and removes every namespace; a second down is fine", () => {
    const pids = readdirSync(STATE)
      .filter((f) => f.endsWith(".pid"))
      .map((f) => Number(readFileSync(join(STATE, f), "utf8").trim()));
    assert.equal(pids.length, 2 * BACKENDS, "a decap and an HTTP helper per backend");
    ok(lab("down", PREFIX), "lab.sh down");
    assert.deepEqual(labNamespaces(), []);
    assert.equal(existsSync(STATE), false, `${STATE} removed`);
    for (const pid of pids) {
      const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8") : "";
      assert.ok(stat === "" || / Z /.test(stat), `helper pid ${pid} still running`);
    }
    const again = ok(lab("down", PREFIX), "second lab.sh down");
    assert.match(again, /nothing to remove/);
  });
});
