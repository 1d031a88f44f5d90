// lbctl as a user runs it: bin/lbctl spawned with node, exit statuses and messages checked;
// daemon commands talk to a fake control socket served from this process (no daemon, no root).
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import type { BackendInfo, StatsResult, VipInfo } from "../../src/api/protocol.js";
import { packageRoot } from "../../src/lib/paths.js";

const LBCTL = join(packageRoot(), "bin", "lbctl");
const tmp = mkdtempSync(join(tmpdir(), "lbctl-test-"));
const NO_SOCKET = join(tmp, "nobody-listens.sock");

after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of a run: the test's, without the variables lbctl reads unless given. */
function envWith(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const own = new Set(["LBCTL_SOCKET", "LBCTL_WATCH_COUNT", "LBCTL_DEBUG"]);
  const inherited = Object.entries(process.env).filter(([k]) => !own.has(k));
  return { ...Object.fromEntries(inherited), ...extra };
}

function start(
  args: readonly string[],
  extraEnv: Record<string, string> = {},
): {
  child: ChildProcess;
  done: Promise<RunResult>;
  stdout: () => string;
} {
  const child = spawn(process.execPath, [LBCTL, ...args], { env: envWith(extraEnv), stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done, stdout: () => stdout };
}

/** Asynchronous on purpose: the fake daemon answers from this process's event loop. */
function lbctl(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<RunResult> {
  return start(args, extraEnv).done;
}

function assertExit(r: RunResult, code: number, what: string): void {
  assert.equal(r.code, code, `${what}: exit ${String(r.code)}, stdout=${r.stdout} stderr=${r.stderr}`);
}

describe("usage and local failures", () => {
  test("--help exits 0 and lists the commands", async () => {
    const r = await lbctl(["--help"]);
    assertExit(r, 0, "--help");
    for (const cmd of ["load", "unload", "vip", "backend", "stats", "status", "config"]) {
      assert.match(r.stdout, new RegExp(`^  ${cmd}\\b`, "m"));
    }
  });

  test("--version and help CMD exit 0", async () => {
    assertExit(await lbctl(["--version"]), 0, "--version");
    assertExit(await lbctl(["help", "vip"]), 0, "help vip");
    assertExit(await lbctl(["backend", "add", "--help"]), 0, "backend add --help");
  });

  const usage: [string, string[], RegExp][] = [
    ["missing argument", ["vip", "add"], /^lbctl: missing required argument 'VIP'$/m],
    ["bad VIP", ["vip", "add", "nonsense"], /^lbctl: bad VIP "nonsense": expected PROTO\/ADDR:PORT/m],
    [
      "bad backend address",
      ["backend", "add", "tcp/198.18.1.1:80", "not-an-ip"],
      /bad backend address "not-an-ip"/,
    ],
    [
      "bad weight",
      ["backend", "add", "tcp/198.18.1.1:80", "198.18.0.11", "--weight", "x"],
      /option '--weight <n>' argument 'x' is invalid/,
    ],
    ["negative weight", ["backend", "add", "tcp/198.18.1.1:80", "198.18.0.11", "--weight", "-1"], /weight/],
    [
      "weight too big",
      ["backend", "add", "tcp/198.18.1.1:80", "198.18.0.11", "--weight", "65536"],
      /0\.\.65535/,
    ],
    ["name with a space", ["backend", "add", "tcp/198.18.1.1:80", "198.18.0.11", "--name", "a b"], /--name/],
    ["bad hash", ["vip", "add", "tcp/198.18.1.1:80", "--hash", "foo"], /Allowed choices are 5tuple, src-ip/],
    [
      "bad mode",
      ["load", "--iface", "lo", "--mode", "foo"],
      /Allowed choices are auto, native, generic, nfqueue/,
    ],
    ["load without --iface", ["load"], /required option '--iface <if>'/],
    [
      "two IPv4 sources",
      ["load", "--iface", "lo", "--source", "198.18.0.1", "--source", "10.0.0.1"],
      /one per family/,
    ],
    ["bad --api", ["load", "--iface", "lo", "--api", "localhost"], /expected ADDR:PORT/],
    ["unknown command", ["frobnicate"], /^lbctl: unknown command 'frobnicate'$/m],
    ["unknown subcommand", ["vip", "frobnicate"], /unknown command 'frobnicate'/],
    ["unknown option", ["status", "--frob"], /unknown option '--frob'/],
    ["excess argument", ["vip", "list", "extra"], /too many arguments/],
    ["bad VIP in backend list", ["backend", "list", "tcp/1.2.3.4"], /bad VIP/],
    ["IPv6 VIP without brackets", ["vip", "remove", "udp/2001:db8:1::1:53"], /must be in brackets/],
  ];
  for (const [what, args, message] of usage) {
    test(`usage error exits 2: ${what}`, async () => {
      // Never reaches a socket: with LBCTL_SOCKET pointing nowhere a slip would show as exit 1.
      const r = await lbctl(args, { LBCTL_SOCKET: NO_SOCKET });
      assertExit(r, 2, what);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /^hint: see 'lbctl .*--help'$/m);
      assert.equal(r.stdout, "");
    });
  }

  test("a group without its subcommand shows its help and exits 2", async () => {
    const r = await lbctl(["vip"]);
    assertExit(r, 2, "vip");
    assert.match(r.stderr, /Usage: lbctl vip/);
  });

  test("no daemon: exit 1 with the socket named and a hint", async () => {
    const r = await lbctl(["status", "--socket", NO_SOCKET]);
    assertExit(r, 1, "status");
    assert.equal(r.stderr.split("\n")[0], `lbctl: cannot reach the daemon at ${NO_SOCKET}: ENOENT`);
    assert.match(r.stderr, /^hint: is the daemon running\? start it with: lbctl load --iface IF/m);
  });

  test("no daemon: vip list --json exits 1 and prints nothing on stdout", async () => {
    const r = await lbctl(["vip", "list", "--json"], { LBCTL_SOCKET: NO_SOCKET });
    assertExit(r, 1, "vip list --json");
    assert.equal(r.stdout, "");
    assert.match(r.stderr, new RegExp(`cannot reach the daemon at ${NO_SOCKET}`));
  });

  test("a socket file nobody listens on: ECONNREFUSED", async () => {
    const path = join(tmp, "stale.sock");
    writeFileSync(path, ""); // connect() to a file that is not a listening socket: ECONNREFUSED
    const r = await lbctl(["status", "--socket", path]);
    assertExit(r, 1, "status");
    assert.match(r.stderr, /cannot reach the daemon at .*: ECONNREFUSED/);
  });
});

describe("config check", () => {
  const confs = readdirSync(join(packageRoot(), "confs")).filter((f) => f.endsWith(".yaml"));

  test("confs/simple_1.yaml is valid", async () => {
    const r = await lbctl(["config", "check", "confs/simple_1.yaml"]);
    assertExit(r, 0, "config check");
    assert.match(r.stdout, /^confs\/simple_1\.yaml: ok \(1 VIP, 3 backends\)\n$/);
  });

  test("every example in confs/ is valid", async () => {
    assert.ok(confs.length > 0);
    for (const f of confs) assertExit(await lbctl(["config", "check", join("confs", f)]), 0, f);
  });

  test("a bad file: exit 1 with FILE:LINE on stderr", async () => {
    const file = join(tmp, "bad.yaml");
    writeFileSync(file, "vips:\n  - vip: tcp/198.18.1.1:80\n    backends:\n      - address: not-an-ip\n");
    const r = await lbctl(["config", "check", file]);
    assertExit(r, 1, "config check bad");
    assert.equal(r.stdout, "");
    assert.match(r.stderr, new RegExp(`^lbctl: ${file}:4:\\d+: .*not-an-ip`, "m"));
  });

  test("a missing file: exit 1 naming it", async () => {
    const r = await lbctl(["config", "check", join(tmp, "absent.yaml")]);
    assertExit(r, 1, "config check absent");
    assert.match(r.stderr, /absent\.yaml: cannot read config file: ENOENT/);
  });
});

// ---- a fake daemon: answers each request from a table, records what it was asked

type Answer =
  { ok: true; result: unknown; warnings?: string[] } | { ok: false; error: object } | "hang" | "close";
/** A fixed answer, or one computed from the request and how many of its kind came before. */
type Reply = Answer | ((nth: number) => Answer);

class FakeDaemon {
  readonly path: string;
  readonly requests: Record<string, unknown>[] = [];
  readonly replies = new Map<string, Reply>();
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  constructor(path: string) {
    this.path = path;
    this.#server = createServer((sock) => {
      this.#sockets.add(sock);
      sock.on("close", () => this.#sockets.delete(sock));
      let buf = "";
      sock.setEncoding("utf8").on("data", (chunk: string) => {
        buf += chunk;
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const req = JSON.parse(buf.slice(0, nl)) as Record<string, unknown> & { id: number; cmd: string };
          buf = buf.slice(nl + 1);
          this.requests.push(req);
          const nth = this.requests.filter((q) => q["cmd"] === req.cmd).length - 1;
          const configured = this.replies.get(req.cmd);
          const reply = (typeof configured === "function" ? configured(nth) : configured) ?? {
            ok: false,
            error: { code: "LB_ERR_REQUEST", message: `fake daemon: no reply for ${req.cmd}` },
          };
          if (reply === "hang") continue;
          if (reply === "close") {
            sock.destroy();
            return;
          }
          sock.write(`${JSON.stringify({ id: req.id, ...reply })}\n`);
        }
      });
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(this.path, resolve));
  }

  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }

  last(): Record<string, unknown> | undefined {
    return this.requests[this.requests.length - 1];
  }
}

const VIPS: VipInfo[] = [
  { vip: "tcp/198.18.1.1:80", hash: "5tuple", backends: 3 },
  { vip: "udp/[2001:db8:1::1]:53", hash: "src-ip", backends: 0 },
];

const B1: BackendInfo = {
  vip: "tcp/198.18.1.1:80",
  address: "198.18.0.11",
  port: 6080,
  name: "b1",
  weight: 1,
  state: "active",
};
/** With the details beyond the contract's fields (B1 and the second are a daemon without them). */
const B3: BackendInfo = {
  vip: "tcp/198.18.1.1:80",
  address: "198.18.0.13",
  port: 6080,
  name: "b3",
  weight: 1,
  state: "down",
  source: "registered",
  health: {
    kind: "http",
    check: "http:80/healthz",
    result: "refused",
    detail: "connection refused",
    passes: 0,
    fails: 3,
    lastCheckAt: "2026-01-02T03:04:05.678Z",
  },
  changedAt: "2026-01-02T03:04:05.678Z",
  changeReason:
    "down: http:80/healthz: 3 checks failed, last: connection refused, and more words past the width",
};
const BACKENDS: BackendInfo[] = [
  B1,
  { vip: "tcp/198.18.1.1:80", address: "2001:db8::12", port: 7000, name: "", weight: 2, state: "draining" },
  B3,
];

function stats(n: number): StatsResult {
  return {
    vips: { "tcp/198.18.1.1:80": { packets: 100 * n, bytes: 6400 * n } },
    backends: { "tcp/198.18.1.1:80 198.18.0.11": { packets: 100 * n, bytes: 6400 * n } },
    drops: { no_backend: n },
    counters: { pass_not_vip: 7 },
  };
}

describe("against a fake daemon", () => {
  const daemon = new FakeDaemon(join(tmp, "fake-lbd.sock"));
  const sock = ["--socket", daemon.path];

  before(() => daemon.listen());
  after(() => daemon.close());

  test("vip list --json prints exactly the daemon's array", async () => {
    daemon.replies.set("vip.list", { ok: true, result: VIPS });
    const r = await lbctl(["vip", "list", "--json", ...sock]);
    assertExit(r, 0, "vip list --json");
    assert.equal(r.stdout, `${JSON.stringify(VIPS)}\n`);
    assert.deepEqual(JSON.parse(r.stdout), VIPS);
    assert.equal(r.stderr, "");
    assert.deepEqual(daemon.last(), { cmd: "vip.list", id: 1 });
  });

  test("vip list: a table", async () => {
    daemon.replies.set("vip.list", { ok: true, result: VIPS });
    const r = await lbctl(["vip", "list", ...sock]);
    assertExit(r, 0, "vip list");
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^VIP\s+HASH\s+BACKENDS$/);
    assert.match(lines[1] ?? "", /^tcp\/198\.18\.1\.1:80\s+5tuple\s+3$/);
    assert.match(lines[2] ?? "", /^udp\/\[2001:db8:1::1\]:53\s+src-ip\s+0$/);
  });

  test("LBCTL_SOCKET is honoured without --socket, and --socket wins over it", async () => {
    daemon.replies.set("vip.list", { ok: true, result: [] });
    const viaEnv = await lbctl(["vip", "list", "--json"], { LBCTL_SOCKET: daemon.path });
    assertExit(viaEnv, 0, "via LBCTL_SOCKET");
    assert.equal(viaEnv.stdout, "[]\n");
    const flagWins = await lbctl(["vip", "list", "--json", ...sock], { LBCTL_SOCKET: NO_SOCKET });
    assertExit(flagWins, 0, "--socket over LBCTL_SOCKET");
  });

  test("vip add sends the canonical VIP and the hash", async () => {
    daemon.replies.set("vip.add", { ok: true, result: VIPS[1] });
    const r = await lbctl(["vip", "add", "UDP/[2001:DB8:1:0::1]:53", "--hash", "src-ip", ...sock]);
    assertExit(r, 0, "vip add");
    assert.deepEqual(daemon.last(), { cmd: "vip.add", vip: "udp/[2001:db8:1::1]:53", hash: "src-ip", id: 1 });
  });

  test("backend add: warnings go to stderr, exit 0", async () => {
    const pending: BackendInfo = { ...B1, state: "pending" };
    daemon.replies.set("backend.add", {
      ok: true,
      result: pending,
      warnings: ["next hop of 198.18.0.11 not resolved within 2 s: backend is pending"],
    });
    const r = await lbctl([
      "backend",
      "add",
      "tcp/198.18.1.1:80",
      "198.18.0.11:6080",
      "--weight",
      "3",
      "--name",
      "b1",
      ...sock,
    ]);
    assertExit(r, 0, "backend add");
    assert.equal(
      r.stderr,
      "lbctl: warning: next hop of 198.18.0.11 not resolved within 2 s: backend is pending\n",
    );
    assert.match(r.stdout, /pending/);
    assert.deepEqual(daemon.last(), {
      cmd: "backend.add",
      vip: "tcp/198.18.1.1:80",
      backend: "198.18.0.11:6080",
      weight: 3,
      name: "b1",
      id: 1,
    });
  });

  test("backend drain / resume / remove send VIP and ADDR", async () => {
    for (const verb of ["drain", "resume", "remove"]) {
      daemon.replies.set(`backend.${verb}`, { ok: true, result: BACKENDS[1] });
      const r = await lbctl(["backend", verb, "tcp/198.18.1.1:80", "2001:db8:0::12", ...sock]);
      assertExit(r, 0, `backend ${verb}`);
      assert.deepEqual(daemon.last(), {
        cmd: `backend.${verb}`,
        vip: "tcp/198.18.1.1:80",
        backend: "2001:db8::12",
        id: 1,
      });
    }
  });

  test("backend list [VIP] --json and the table", async () => {
    daemon.replies.set("backend.list", { ok: true, result: BACKENDS });
    const json = await lbctl(["backend", "list", "tcp/198.18.1.1:80", "--json", ...sock]);
    assertExit(json, 0, "backend list --json");
    assert.deepEqual(JSON.parse(json.stdout), BACKENDS);
    assert.deepEqual(daemon.last(), { cmd: "backend.list", vip: "tcp/198.18.1.1:80", id: 1 });
    const table = await lbctl(["backend", "list", ...sock]);
    assertExit(table, 0, "backend list");
    assert.deepEqual(daemon.last(), { cmd: "backend.list", id: 1 });
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(
      lines[0] ?? "",
      /^VIP\s+ADDRESS\s+PORT\s+NAME\s+WEIGHT\s+STATE\s+SOURCE\s+HEALTH\s+CHANGED\s+REASON$/,
    );
    assert.match(lines[2] ?? "", /2001:db8::12\s+7000\s+-\s+2\s+draining\s+-\s+-\s+-\s+-$/);
    assert.match(
      lines[3] ?? "",
      /198\.18\.0\.13\s+6080\s+b3\s+1\s+down\s+registered\s+http:80\/healthz refused 3x\s+2026-01-02T03:04:05Z\s+down: http:80\/healthz: 3 checks failed, last: connection \.\.\.$/,
    );
  });

  test("an ok:false reply: exit 1 with the daemon's message and hint", async () => {
    daemon.replies.set("vip.add", {
      ok: false,
      error: { code: "LB_ERR_EXISTS", message: "VIP tcp/198.18.1.1:80 exists", hint: "remove it first" },
    });
    const r = await lbctl(["vip", "add", "tcp/198.18.1.1:80", ...sock]);
    assertExit(r, 1, "vip add existing");
    assert.equal(r.stderr, "lbctl: VIP tcp/198.18.1.1:80 exists\nhint: remove it first\n");
    assert.equal(r.stdout, "");
  });

  test("a usage error from the daemon exits 2; an unknown code exits 1", async () => {
    daemon.replies.set("vip.remove", {
      ok: false,
      error: { code: "LB_ERR_USAGE", message: "weight too big" },
    });
    assertExit(await lbctl(["vip", "remove", "tcp/198.18.1.1:80", ...sock]), 2, "remote usage error");
    daemon.replies.set("vip.remove", { ok: false, error: { code: "LB_ERR_FROM_THE_FUTURE", message: "no" } });
    const r = await lbctl(["vip", "remove", "tcp/198.18.1.1:80", ...sock]);
    assertExit(r, 1, "unknown remote code");
    assert.match(r.stderr, /^lbctl: no \(LB_ERR_FROM_THE_FUTURE\)$/m);
  });

  test("the daemon hanging up mid-request: exit 1", async () => {
    daemon.replies.set("status", "close");
    const r = await lbctl(["status", ...sock]);
    assertExit(r, 1, "closed");
    assert.match(r.stderr, /closed the connection/);
  });

  test("status: key: value lines; --json passes the result through", async () => {
    const result = {
      iface: "veth0",
      ifindex: 4,
      mode: "generic",
      modeReason: "requested",
      pid: 42,
      socket: daemon.path,
      config: null,
      vips: 1,
      backends: 3,
      uptimeSeconds: 3725,
      settings: { log_level: { value: "info", from: "default" } },
    };
    daemon.replies.set("status", { ok: true, result });
    const json = await lbctl(["status", "--json", ...sock]);
    assertExit(json, 0, "status --json");
    assert.deepEqual(JSON.parse(json.stdout), result);
    const text = await lbctl(["status", ...sock]);
    assertExit(text, 0, "status");
    assert.match(text.stdout, /^iface: veth0 \(ifindex 4\)$/m);
    assert.match(text.stdout, /^mode: generic \(requested\)$/m);
    assert.match(text.stdout, /^uptime: 1h 2m 5s$/m);
    assert.match(text.stdout, /^setting log_level: info \(default\)$/m);
  });

  test("stats: tables; --json the result", async () => {
    daemon.replies.set("stats", { ok: true, result: stats(1) });
    const text = await lbctl(["stats", ...sock]);
    assertExit(text, 0, "stats");
    assert.match(text.stdout, /^tcp\/198\.18\.1\.1:80\s+100\s+6400$/m);
    assert.match(text.stdout, /^ {2}198\.18\.0\.11\s+100\s+6400$/m);
    assert.match(text.stdout, /^no_backend\s+1$/m);
    const json = await lbctl(["stats", "--json", ...sock]);
    assert.deepEqual(JSON.parse(json.stdout), stats(1));
  });

  test("stats --json --watch: one object per line, LBCTL_WATCH_COUNT stops it", async () => {
    daemon.replies.set("stats", { ok: true, result: stats(2) });
    const r = await lbctl(["stats", "--json", "--watch", ...sock], { LBCTL_WATCH_COUNT: "2" });
    assertExit(r, 0, "stats --watch");
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2);
    for (const l of lines) assert.deepEqual(JSON.parse(l), stats(2));
  });

  test("stats --watch: rates from the second frame on", async () => {
    // Each request sees 100 more packets: about 100 pkt/s over the 1 s interval.
    const base = daemon.requests.filter((q) => q["cmd"] === "stats").length;
    daemon.replies.set("stats", (nth) => ({ ok: true, result: stats(nth - base + 1) }));
    const r = await lbctl(["stats", "--watch", ...sock], { LBCTL_WATCH_COUNT: "2" });
    assertExit(r, 0, "stats --watch");
    assert.match(r.stdout, /PKT\/S/);
    assert.match(r.stdout, /^tcp\/198\.18\.1\.1:80\s+200\s+12800\s+(9\d|10\d)\s+\d+$/m);
  });

  test("stats --watch: SIGINT ends it with exit 0", async () => {
    daemon.replies.set("stats", { ok: true, result: stats(1) });
    const run = start(["stats", "--json", "--watch", ...sock]);
    while (!run.stdout().includes("\n")) await new Promise((resolve) => setTimeout(resolve, 20));
    run.child.kill("SIGINT");
    const r = await run.done;
    assertExit(r, 0, "stats --watch after SIGINT");
    assert.equal(r.signal, null);
  });
});
