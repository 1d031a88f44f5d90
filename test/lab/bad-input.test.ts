// The CLI contract under bad input, in a namespace lab (root): refused loads touch nothing,
// a second load leaves the running daemon alone, the control socket survives garbage, object
// errors name the object, an unresolvable backend stays pending and out of the data plane, a
// SIGKILLed daemon is cleaned up by `lbctl unload`, and SIGTERM removes everything.
import assert from "node:assert/strict";
import { once } from "node:events";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Lab, uniquePrefix, type Exec } from "../../src/lab/lab.js";
import { packageRoot } from "../../src/lib/paths.js";

const LBCTL = join(packageRoot(), "bin", "lbctl");
const lab = new Lab(uniquePrefix(), 2);
const tmp = mkdtempSync(join(tmpdir(), "caplance-bad-input-"));
const WEB = "tcp/198.18.1.1:80";
const GOOD_CONFIG = join(tmp, "good.yaml");
const OTHER_SOCKET = `/run/caplance-lab/${lab.prefix}/other.sock`;
const WAIT_MS = 5000;

writeFileSync(
  GOOD_CONFIG,
  [
    "vips:",
    `  - vip: ${WEB}`,
    "    backends:",
    "      - { address: 198.18.0.11, name: b1 }",
    "      - { address: 198.18.0.12, name: b2 }",
    "",
  ].join("\n"),
);

before(async () => {
  await lab.up(["--owner", String(process.pid)]);
});

after(async () => {
  try {
    await lab.down();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

/** `lbctl load` on the balancer's eth0 that is expected to fail fast (bounded anyway). */
function load(args: readonly string[]): Promise<Exec> {
  return lab.inNs(
    "lb",
    process.execPath,
    [
      LBCTL,
      "load",
      "--source",
      "198.18.0.1",
      ...(args.includes("--iface") ? [] : ["--iface", "eth0"]),
      ...args,
    ],
    20_000,
  );
}

/** `lbctl ARGS` run inside the balancer's namespace (unload reads the namespace's interfaces). */
function lbctlInLb(args: readonly string[]): Promise<Exec> {
  return lab.inNs("lb", process.execPath, [LBCTL, ...args], 20_000);
}

/** The XDP attachment `ip -j link` reports on the balancer's eth0, or undefined. */
async function xdpOnEth0(): Promise<unknown> {
  const r = await lab.inNs("lb", "ip", ["-j", "link", "show", "dev", "eth0"]);
  assert.equal(r.code, 0, `ip link: ${r.stderr}`);
  const [link] = JSON.parse(r.stdout) as Record<string, unknown>[];
  assert.ok(link, "eth0 listed");
  return link["xdp"];
}

async function assertUntouched(what: string): Promise<void> {
  assert.equal(await xdpOnEth0(), undefined, `${what}: nothing attached to eth0`);
  assert.equal(existsSync(lab.socket), false, `${what}: no socket at ${lab.socket}`);
  assert.equal(existsSync(OTHER_SOCKET), false, `${what}: no socket at ${OTHER_SOCKET}`);
}

function assertFailed(r: Exec, what: string, ...patterns: RegExp[]): void {
  assert.equal(r.code, 1, `${what}: exit status (stderr: ${r.stderr})`);
  for (const p of patterns) assert.match(r.stderr, p, `${what}: stderr`);
}

async function lbctlOk(args: readonly string[]): Promise<Exec> {
  const r = await lab.lbctl(args);
  assert.equal(r.code, 0, `lbctl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

async function daemonPid(): Promise<number> {
  const status = JSON.parse((await lbctlOk(["status", "--json"])).stdout) as { pid: number };
  return status.pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function assertHttpThroughVip(count: number, label: string): Promise<Record<string, number>> {
  const r = await lab.http("http://198.18.1.1/", count);
  assert.equal(r.failed, 0, `${label}: ${r.failed} of ${count} failed: ${r.errors.slice(0, 5).join("; ")}`);
  for (const name of Object.keys(r.byBackend))
    assert.ok(name === "b1" || name === "b2", `${label}: answered by ${name}`);
  return r.byBackend;
}

interface Reply {
  id: number;
  ok: boolean;
  error?: { code: string; message: string };
}

/** A raw unix-socket client of the control socket: send a line, read the next reply line. */
class RawClient {
  private buffered = "";
  private readonly replies: Reply[] = [];
  private wake: (() => void) | undefined;
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf("\n")) >= 0) {
        this.replies.push(JSON.parse(this.buffered.slice(0, nl)) as Reply);
        this.buffered = this.buffered.slice(nl + 1);
      }
      this.wake?.();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      this.closed = true;
      this.wake?.();
    });
  }

  static async open(path: string): Promise<RawClient> {
    const socket = connect(path);
    const timer = setTimeout(() => socket.destroy(new Error(`connect ${path}: timeout`)), WAIT_MS);
    try {
      await once(socket, "connect");
    } finally {
      clearTimeout(timer);
    }
    return new RawClient(socket);
  }

  async send(text: string): Promise<Reply> {
    this.socket.write(text);
    const deadline = Date.now() + WAIT_MS;
    while (this.replies.length === 0) {
      if (this.closed) throw new Error("connection closed without a reply");
      if (Date.now() > deadline) throw new Error(`no reply within ${WAIT_MS} ms`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 100);
      });
    }
    const reply = this.replies.shift();
    assert.ok(reply);
    return reply;
  }

  close(): void {
    this.socket.destroy();
  }
}

test("a bad config file: exit 1, FILE:LINE:COL: per error, nothing attached, no socket", async () => {
  const bad = join(tmp, "bad.yaml");
  writeFileSync(
    bad,
    [
      "vips:",
      `  - vip: ${WEB}`,
      "    colour: blue",
      "    backends:",
      "      - address: 198.18.0.11",
      "        weight: -3",
      "",
    ].join("\n"),
  );
  const r = await load(["--config", bad, "--socket", lab.socket]);
  assertFailed(r, "bad config");
  const escaped = bad.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  assert.match(r.stderr, new RegExp(`${escaped}:3:\\d+: .*colour`), "unknown key located");
  assert.match(r.stderr, new RegExp(`${escaped}:6:\\d+: .*weight`), "bad weight located");
  await assertUntouched("bad config");
});

test("an interface that does not exist: exit 1, named, with a hint", async () => {
  const r = await load(["--iface", "nosuch0", "--socket", lab.socket]);
  assertFailed(r, "missing interface", /nosuch0/, /hint: /);
  await assertUntouched("missing interface");
});

// --mode nfqueue is supported now (test/lab/nfqueue-lab.test.ts).
// --keep works with XDP (test/lab/restart.test.ts); the NFQUEUE worker cannot outlive the daemon.
test("--keep with --mode nfqueue is refused before anything is touched", async () => {
  const keep = await load(["--keep", "--mode", "nfqueue", "--config", GOOD_CONFIG, "--socket", lab.socket]);
  assertFailed(keep, "--keep", /--keep and --once need an XDP data plane/, /hint: /);
  await assertUntouched("--keep");
});

test("a registration secret readable by others, or a port without a secret: refused, nothing touched", async () => {
  const secret = join(tmp, "secret");
  writeFileSync(secret, "bad-input-secret-0123456789abcdef\n", { mode: 0o640 });
  chmodSync(secret, 0o640); // writeFileSync's mode is filtered by the umask
  const open = await load(["--config", GOOD_CONFIG, "--socket", lab.socket, "--secret-file", secret]);
  assertFailed(
    open,
    "open secret",
    /secret file .*secret has mode 0640: group and others must have no access/,
    /hint: chmod 600/,
  );
  await assertUntouched("open secret");
  const portOnly = await load([
    "--config",
    GOOD_CONFIG,
    "--socket",
    lab.socket,
    "--registration-port",
    "7070",
  ]);
  assert.equal(portOnly.code, 2, `--registration-port alone: usage error (stderr: ${portOnly.stderr})`);
  assert.match(portOnly.stderr, /--registration-port needs --secret-file/);
  await assertUntouched("port without secret");
});

test("a second load on the same interface is refused; the first daemon keeps serving", async () => {
  await lab.startDaemon({ mode: "native", config: GOOD_CONFIG });
  assert.ok(await xdpOnEth0(), "the daemon attached XDP to eth0");
  await assertHttpThroughVip(100, "first daemon");

  const same = await load(["--config", GOOD_CONFIG, "--socket", lab.socket]);
  assertFailed(same, "same socket", new RegExp(`already listens on ${lab.socket.replace(/\./g, "\\.")}`));
  const other = await load(["--config", GOOD_CONFIG, "--socket", OTHER_SOCKET]);
  assertFailed(other, "other socket", /interface eth0 already has an XDP program/, /lbctl unload/);
  assert.equal(existsSync(OTHER_SOCKET), false, "the refused daemon left no socket");
  // unload through another socket must not pull the data plane from under the live daemon.
  const unload = await lbctlInLb(["unload", "--iface", "eth0", "--socket", OTHER_SOCKET]);
  assertFailed(unload, "unload via another socket", /a daemon serves eth0 \(lbctl load, pid \d+\)/);
  assert.ok(await xdpOnEth0(), "XDP still attached after the refused unload");

  await lbctlOk(["status"]);
  await assertHttpThroughVip(100, "after the refused loads");
});

test("control socket: garbage gets LB_ERR_* replies, the daemon keeps answering", async () => {
  assert.equal(statSync(lab.socket).mode & 0o777, 0o600, "socket mode");
  const pid = await daemonPid();
  const c = await RawClient.open(lab.socket);
  try {
    const cases: [string, RegExp][] = [
      ["not json\n", /not JSON/],
      ['{"id":2,"vip":"tcp/198.18.1.1:80"}\n', /cmd/],
      ['{"id":3,"cmd":"vip.explode"}\n', /unknown command "vip\.explode"/],
      [`{"id":4,"cmd":"backend.add","vip":"${WEB}","backend":"198.18.0.300"}\n`, /198\.18\.0\.300/],
    ];
    for (const [line, message] of cases) {
      const reply = await c.send(line);
      assert.equal(reply.ok, false, `${line.trim()}: ${JSON.stringify(reply)}`);
      assert.match(reply.error?.code ?? "", /^LB_ERR_[A-Z_]+$/, `${line.trim()}: code`);
      assert.match(reply.error?.message ?? "", message, `${line.trim()}: message`);
    }
  } finally {
    c.close();
  }
  const big = await RawClient.open(lab.socket);
  try {
    const padded = JSON.stringify({ id: 5, cmd: "status", pad: "p".repeat(70 * 1024) });
    const reply = await big.send(`${padded}\n`);
    assert.equal(reply.ok, false, "a status request longer than 64 KiB is refused");
    assert.equal(reply.error?.code, "LB_ERR_REQUEST");
  } finally {
    big.close();
  }
  const fresh = await RawClient.open(lab.socket);
  try {
    const reply = await fresh.send('{"id":6,"cmd":"status"}\n');
    assert.equal(reply.ok, true, JSON.stringify(reply));
    assert.equal(reply.id, 6);
  } finally {
    fresh.close();
  }
  assert.ok(alive(pid), `daemon ${pid} is alive`);
  assert.equal(await daemonPid(), pid, "same daemon answers status");
  const names = JSON.parse((await lbctlOk(["backend", "list", "--json"])).stdout) as { address: string }[];
  assert.equal(names.length, 2, "the bad backend.add changed nothing");
});

test("existing and unknown objects: exit 1, the message names the object", async () => {
  assertFailed(await lab.lbctl(["vip", "add", WEB]), "vip add existing", /tcp\/198\.18\.1\.1:80/);
  assertFailed(
    await lab.lbctl(["backend", "add", "tcp/198.18.1.2:80", "198.18.0.11"]),
    "backend add to unknown VIP",
    /tcp\/198\.18\.1\.2:80/,
  );
  assertFailed(
    await lab.lbctl(["backend", "remove", WEB, "198.18.0.13"]),
    "backend remove unknown",
    /198\.18\.0\.13/,
  );
  const vips = JSON.parse((await lbctlOk(["vip", "list", "--json"])).stdout) as { vip: string }[];
  assert.deepEqual(
    vips.map((v) => v.vip),
    [WEB],
  );
});

test("a backend whose next hop does not resolve: pending within ~2.5 s, kept out of the data plane", async (t) => {
  const started = Date.now();
  const r = await lab.lbctl(["backend", "add", WEB, "198.18.0.99", "--name", "ghost"]);
  const elapsed = Date.now() - started;
  assert.equal(r.code, 0, `backend add: ${r.stderr}`);
  assert.ok(elapsed < 3500, `backend add returned after ${elapsed} ms (2 s next-hop wait + lbctl start-up)`);
  t.diagnostic(`backend add of an unresolvable backend returned after ${elapsed} ms`);
  assert.match(r.stderr, /warning: .*198\.18\.0\.99/);
  try {
    const list = JSON.parse((await lbctlOk(["backend", "list", WEB, "--json"])).stdout) as {
      address: string;
      state: string;
    }[];
    assert.equal(list.find((b) => b.address === "198.18.0.99")?.state, "pending");
    await assertHttpThroughVip(200, "with a pending backend");
    const stats = JSON.parse((await lbctlOk(["stats", "--json"])).stdout) as {
      backends: Record<string, { packets: number }>;
    };
    assert.equal(
      stats.backends[`${WEB} 198.18.0.99`]?.packets ?? 0,
      0,
      "no packet sent to the pending backend",
    );
  } finally {
    await lab.lbctl(["backend", "remove", WEB, "198.18.0.99"]);
  }
});

test("a SIGKILLed daemon: lbctl unload removes its XDP and stale socket; a new load works", async () => {
  const pid = await daemonPid();
  process.kill(pid, "SIGKILL");
  const deadline = Date.now() + WAIT_MS;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(alive(pid), false, "daemon is gone");
  await lab.stopDaemon(); // forget the dead child
  assert.ok(await xdpOnEth0(), "a killed daemon leaves its XDP program");
  assert.ok(existsSync(lab.socket), "a killed daemon leaves its socket file");

  const r = await lbctlInLb(["unload", "--iface", "eth0", "--socket", lab.socket]);
  assert.equal(r.code, 0, `unload: ${r.stderr}`);
  assert.equal(await xdpOnEth0(), undefined, "XDP removed from eth0");
  assert.equal(existsSync(lab.socket), false, "stale socket removed");
  const again = await lbctlInLb(["unload", "--iface", "eth0", "--socket", lab.socket]);
  assert.equal(again.code, 0, `second unload: ${again.stderr}`);

  await lab.startDaemon({ mode: "native", config: GOOD_CONFIG });
  await lbctlOk(["status"]);
  await assertHttpThroughVip(100, "after reload");
});

test("SIGTERM: exit 0, XDP detached, socket removed", async () => {
  const code = await lab.stopDaemon();
  assert.equal(code, 0, `daemon exit status\n${lab.daemonLog}`);
  assert.equal(await xdpOnEth0(), undefined, "XDP detached");
  assert.equal(existsSync(lab.socket), false, "socket removed");
});
