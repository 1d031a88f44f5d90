// TUN decapsulation on the backends, end to end in namespace labs. First: `lab.sh up --decap tun`
// backends (caplance-tun writing into a TUN device, no XDP on them) behind a native-XDP daemon:
// the same spread, IPv6, UDP, drain and remove expectations as the XDP lab. Then `lbctl agent`
// on bare backends: --decap tun registers (the tunnel probe passes through the TUN path) and
// serves, --decap auto falls back to TUN where XDP cannot attach, a malformed encapsulated
// datagram is counted and not delivered, a killed decapsulator is restarted, and SIGTERM
// restores the host (device gone, sysctls back).
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";

import { Lab, run, uniquePrefix } from "../../src/lab/lab.js";
import { packageRoot } from "../../src/lib/paths.js";
import { spawnAgent, type AgentProcess } from "../support/agent-process.js";
import { assertSpread, lbctlOk } from "../support/lab-assert.js";
import {
  drainKeepsConnection,
  ipv6Spread,
  removeMovesOnlyItsFlows,
  udpSpread,
} from "../support/lab-scenarios.js";

const ROOT = packageRoot();
const LBCTL = join(ROOT, "bin", "lbctl");
const TUN = "cpltun6080";

/** Pids of caplance-tun processes in a lab host's namespace. */
async function tunPids(lab: Lab, host: `b${number}`): Promise<number[]> {
  const r = await run("ip", ["netns", "pids", `${lab.prefix}-${host}`]);
  return r.stdout
    .split("\n")
    .map(Number)
    .filter((pid) => {
      try {
        return pid > 0 && readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "caplance-tun";
      } catch {
        return false;
      }
    });
}

void describe("lab.sh --decap tun: the balancer's lab tests over TUN-decap backends", () => {
  const lab = new Lab(uniquePrefix(), 3, "tun");

  before(async () => {
    await lab.up(["--owner", String(process.pid)]);
    await lab.startDaemon({ mode: "native", config: join(ROOT, "confs", "simple_1.yaml") });
  });

  after(async () => {
    const code = await lab.stopDaemon();
    await lab.down();
    assert.equal(code, 0, `daemon exit code on SIGTERM\n${lab.daemonLog}`);
  });

  test("backends decapsulate with caplance-tun on a TUN device, no XDP", async () => {
    for (const host of ["b1", "b2", "b3"] as const) {
      const links = await lab.inNs(host, "ip", ["-d", "link", "show"]);
      assert.doesNotMatch(links.stdout, /prog\/xdp/, `${host}: no XDP program`);
      assert.match(links.stdout, new RegExp(`${TUN}: .*UP`), `${host}: ${TUN} up`);
      assert.equal((await tunPids(lab, host)).length, 1, `${host}: one caplance-tun`);
    }
  });

  test("1000 HTTP requests over 3 backends: all succeed, each 1/3 ± 15%", async () => {
    const r = await lab.http("http://198.18.1.1/", 1000);
    assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
    assertSpread(r.byBackend, { b1: 1, b2: 1, b3: 1 }, "spread");
  });

  test("IPv6 VIP over IPv6 backends (outer UDP checksum 0 accepted)", () => ipv6Spread(lab));
  test("UDP VIP: answers from the VIP, spread over backends", () => udpSpread(lab));
  test("drain keeps a long-lived connection; new connections avoid the drained backend", () =>
    drainKeepsConnection(lab));
  test("remove moves only the removed backend's flows", () => removeMovesOnlyItsFlows(lab));
});

type Agent = AgentProcess;

void describe("lbctl agent --decap tun|auto", () => {
  const lab = new Lab(uniquePrefix(), 2, "none");
  const dir = `/run/caplance-lab/${lab.prefix}-agent`;
  const secret = join(dir, "secret");
  const WEB = "tcp/198.18.1.1:80";
  const DNS = "udp/198.18.1.2:53";
  const PASS_OBJ = join(ROOT, "build", "bpf", "pass.bpf.o");
  const agents: Agent[] = [];
  let responder: ChildProcess | undefined;

  function startAgent(i: number, decap: string): Agent {
    const socket = join(dir, `agent-b${i}.sock`);
    const agent = spawnAgent(lab, `b${i}`, socket, [
      ...["--lb", "198.18.0.1", "--vip", WEB, "--vip", DNS, "--iface", "eth0", "--name", `b${i}`],
      ...["--secret-file", secret, "--health-interval", "1", "--drain-timeout", "3"],
      ...["--decap", decap],
    ]);
    agents.push(agent);
    return agent;
  }

  function agentOf(index: number): Agent {
    const a = agents[index];
    if (!a) throw new Error(`agent ${index} was not started`);
    return a;
  }

  async function status(agent: Agent): Promise<{
    state: string;
    decap: string;
    hostChanges: string[];
    decapCounters: { rx: number; decap: number; drops: Record<string, number>; restarts: number } | null;
  }> {
    const r = await run(process.execPath, [LBCTL, "agent", "status", "--json", "--socket", agent.socket]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Awaited<ReturnType<typeof status>>;
  }

  async function until(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await cond()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what}: not within ${timeoutMs} ms`);
  }

  const sysctl = async (i: number, name: string): Promise<string> =>
    (await lab.inNs(`b${i}`, "sysctl", ["-n", name])).stdout.trim();

  /** Encapsulated datagrams sent by the client straight to b1's encap port, each carrying a
   * UDP query to the DNS VIP from the client's own socket: the answer (from the VIP, DSR) or
   * "timeout" per kind. */
  async function encapQueries(kinds: string[]): Promise<Record<string, string>> {
    const script = `
import dgram from "node:dgram";
import { buildIpPacket } from ${JSON.stringify(join(ROOT, "dist/src/model/packet-builder.js"))};
const out = {};
for (const kind of process.argv.slice(1)) {
  out[kind] = await new Promise((resolve) => {
    const s = dgram.createSocket("udp4");
    const t = setTimeout(() => { s.close(); resolve("timeout"); }, 1500);
    s.on("message", (m, r) => { clearTimeout(t); s.close(); resolve(r.address + ":" + m.toString().trim()); });
    s.bind(0, "198.18.0.2", () => {
      const l4 = { kind: "udp", sport: s.address().port, dport: 53, payload: new TextEncoder().encode("who?\\n") };
      let inner = buildIpPacket({ family: 4, src: "198.18.0.2", dst: "198.18.1.2" }, l4);
      if (kind.startsWith("length")) inner = Uint8Array.of(...inner, 0);
      if (kind.startsWith("version")) inner[0] = 0x55;
      s.send(inner, 6080, "198.18.0.11");
    });
  });
}
console.log(JSON.stringify(out));`;
    const r = await lab.inNs("cl", process.execPath, ["--input-type=module", "-e", script, ...kinds]);
    assert.equal(r.code, 0, `client exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, string>;
  }

  before(async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(secret, "lab-secret-0123456789abcdef0123456789\n", { mode: 0o600 });
    const config = join(dir, "vips.yaml");
    writeFileSync(config, `vips:\n  - vip: ${WEB}\n    backends: []\n  - vip: ${DNS}\n    backends: []\n`);
    await lab.up(["--bare", "--owner", String(process.pid)]);
    // Strict reverse-path filtering everywhere on b1 (a new device inherits conf.default): the
    // agent must loosen it for the TUN device too, and put it back.
    for (const c of ["all", "default"])
      await lab.inNs("b1", "sysctl", ["-qw", `net.ipv4.conf.${c}.rp_filter=1`]);
    // b2: an XDP program of someone else's on eth0, so lb_decap can attach in neither mode.
    const xdp = await lab.inNs("b2", "ip", [
      "link",
      "set",
      "dev",
      "eth0",
      "xdpdrv",
      "obj",
      PASS_OBJ,
      "sec",
      "xdp",
    ]);
    assert.equal(xdp.code, 0, xdp.stderr);
    await lab.startDaemon({ mode: "native", config, extra: ["--secret-file", secret] });
  });

  after(async () => {
    responder?.kill("SIGTERM");
    for (const a of agents) if (a.child.exitCode === null) a.child.kill("SIGKILL");
    const code = await lab.stopDaemon();
    await lab.down();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, `daemon exit code on SIGTERM\n${lab.daemonLog}`);
  });

  test("--decap tun and auto (XDP refused): both register through the TUN path and serve", async () => {
    const b1 = startAgent(1, "tun");
    const b2 = startAgent(2, "auto");
    const registered = async (a: Agent): Promise<boolean> => {
      const r = await run(process.execPath, [LBCTL, "agent", "status", "--json", "--socket", a.socket]);
      return r.code === 0 && (JSON.parse(r.stdout) as { state: string }).state === "registered";
    };
    await until(
      "both agents registered",
      async () => (await registered(b1)) && (await registered(b2)),
      20_000,
    );
    const s1 = await status(b1);
    assert.equal(s1.decap, "tun");
    assert.ok(s1.hostChanges.includes(`TUN device ${TUN}`), JSON.stringify(s1.hostChanges));
    assert.ok(
      s1.hostChanges.includes(`net.ipv4.conf.${TUN}.rp_filter=2 (was 1)`),
      JSON.stringify(s1.hostChanges),
    );
    const s2 = await status(b2);
    assert.equal(s2.decap, "tun", "auto fell back to TUN");
    assert.match(b2.log, /decap: native XDP skipped, trying generic/);
    assert.match(b2.log, /decap: generic XDP skipped, trying tun/);
    const r = await lab.http("http://198.18.1.1/", 600);
    assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
    assertSpread(r.byBackend, { b1: 1, b2: 1 }, "agents' spread");
    const after = await status(b1);
    assert.ok((after.decapCounters?.decap ?? 0) > 1000, JSON.stringify(after.decapCounters));
    const human = await run(process.execPath, [LBCTL, "agent", "status", "--socket", b1.socket]);
    assert.match(human.stdout, /decap tun\)/);
    assert.match(human.stdout, /decap: rx \d+, decapsulated \d+/);
  });

  test("a malformed encapsulated datagram is counted by reason and not delivered", async () => {
    responder = spawn(
      "nsenter",
      [
        `--net=${lab.ns("b1")}`,
        process.execPath,
        "-e",
        `const s = require("node:dgram").createSocket("udp4");
         s.on("message", (m, r) => s.send("b1\\n", r.port, r.address));
         s.bind(53, "198.18.1.2", () => console.log("ready"));`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const lines = createInterface({ input: responder.stdout ?? process.stdin });
    const ready = await Promise.race([
      once(lines, "line").then(([l]) => l as string),
      once(responder, "exit").then(() => "exited"),
      new Promise<string>((r) =>
        setTimeout(() => {
          r("no answer within 5 s");
        }, 5000),
      ),
    ]);
    assert.equal(ready, "ready", "UDP responder on the VIP in b1");
    const b1 = agentOf(0);
    const before = (await status(b1)).decapCounters;
    assert.ok(before);
    const got = await encapQueries(["valid", "length", "version", "valid again"]);
    assert.deepEqual(got, {
      valid: "198.18.1.2:b1",
      length: "timeout",
      version: "timeout",
      "valid again": "198.18.1.2:b1",
    });
    const c = (await status(b1)).decapCounters;
    assert.ok(c);
    const delta = (reason: string): number => (c.drops[reason] ?? 0) - (before.drops[reason] ?? 0);
    assert.equal(delta("length"), 1, "one length drop");
    assert.equal(delta("version"), 1, "one version drop");
    assert.equal(delta("not_vip") + delta("short") + delta("empty"), 0, "no other drop");
  });

  test("a killed decapsulator is logged and restarted; traffic flows again", async () => {
    const b1 = agentOf(0);
    const [pid] = await tunPids(lab, "b1");
    assert.ok(pid, "caplance-tun runs in b1");
    process.kill(pid, "SIGKILL");
    await until("restart logged", () => Promise.resolve(b1.log.includes("TUN decap restarted")), 10_000);
    assert.match(b1.log, /TUN decap died/);
    assert.equal((await status(b1)).decapCounters?.restarts, 1);
    const r = await lab.http("http://198.18.1.1/", 200);
    assert.equal(r.failed, 0, `failures after restart: ${r.errors.join("; ")}`);
    assert.ok((r.byBackend["b1"] ?? 0) > 40, `b1 serves again: ${JSON.stringify(r.byBackend)}`);
  });

  test("SIGTERM: deregister, exit 0, decapsulator stopped, device gone, sysctls back", async () => {
    const b1 = agentOf(0);
    const b2 = agentOf(1);
    b1.child.kill("SIGTERM");
    b2.child.kill("SIGTERM");
    assert.equal(await b1.exit, 0, b1.log);
    assert.equal(await b2.exit, 0, b2.log);
    for (const i of [1, 2]) {
      const links = await lab.inNs(`b${i}`, "ip", ["link", "show"]);
      assert.doesNotMatch(links.stdout, new RegExp(TUN), `b${i}: ${TUN} removed`);
      assert.deepEqual(await tunPids(lab, `b${i}`), [], `b${i}: no caplance-tun left`);
      assert.doesNotMatch(
        (await lab.inNs(`b${i}`, "ip", ["addr", "show", "dev", "lo"])).stdout,
        /198\.18\.1\./,
      );
      assert.equal(await sysctl(i, "net.ipv4.conf.all.arp_ignore"), "0");
    }
    assert.equal(await sysctl(1, "net.ipv4.conf.all.rp_filter"), "1", "strict rp_filter restored");
    assert.match(
      (await lab.inNs("b2", "ip", ["link", "show", "dev", "eth0"])).stdout,
      /prog\/xdp/,
      "the other XDP program is left alone",
    );
    const list = JSON.parse((await lbctlOk(lab, ["backend", "list", "--json"])) || "[]") as unknown[];
    assert.deepEqual(list, [], "both deregistered");
  });
});
