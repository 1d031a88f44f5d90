// Hitless restart in the lab: HTTP requests on new connections and one long-lived connection run
// while the daemon is SIGKILLed and restarted, stopped with SIGTERM under --keep and started
// again, upgraded to another build of the program (link update), and reloaded with a VIP
// elsewhere changed. Zero failed requests; every new daemon adopts the pinned data plane.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Lab, uniquePrefix } from "../../src/lab/lab.js";
import { packageRoot } from "../../src/lib/paths.js";

const lab = new Lab(uniquePrefix(), 3);
const tmp = mkdtempSync(join(tmpdir(), "caplance-restart-"));
const CONFIG = join(tmp, "lb.yaml");
const UPGRADE = join(tmp, "balancer-v2.bpf.o");
const WEB = "tcp/198.18.1.1:80";
const NAME_PORT = 8080;
const TOTAL = 10_000;

function writeConfig(elsewhere: string): void {
  const backends =
    "    backends:\n      - { address: 198.18.0.11, name: b1 }\n      - { address: 198.18.0.12, name: b2 }\n";
  writeFileSync(
    CONFIG,
    `vips:\n  - vip: ${WEB}\n${backends}  - vip: tcp/198.18.1.1:${NAME_PORT}\n${backends}  - vip: ${elsewhere}\n${backends}`,
  );
}

interface Status {
  adopted?: boolean;
  upgraded?: boolean;
  keep?: boolean;
  pid: number;
}

async function status(): Promise<Status> {
  const r = await lab.lbctl(["status", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Status;
}

async function start(): Promise<void> {
  await lab.startDaemon({ mode: "native", config: CONFIG, extra: ["--keep"] });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

before(async () => {
  process.env.CAPLANCE_STATE_DIR = join(tmp, "state");
  // The same source built for another BPF ISA version (v2: no ALU32): other instructions, same maps.
  const root = packageRoot();
  execFileSync("clang", [
    "-target",
    "bpf",
    "-mcpu=v2",
    "-O2",
    "-g",
    `-I${join(root, "bpf")}`,
    `-I/usr/include/${execFileSync("uname", ["-m"], { encoding: "utf8" }).trim()}-linux-gnu`,
    "-c",
    join(root, "bpf", "balancer.bpf.c"),
    "-o",
    UPGRADE,
  ]);
  writeConfig("tcp/198.18.1.2:80");
  await lab.up();
  await start();
});

after(async () => {
  await lab.kill("SIGTERM");
  await lab.inNs("lb", process.execPath, [join(packageRoot(), "bin", "lbctl"), "unload", "--iface", "eth0"]);
  await lab.down();
  delete process.env.CAPLANCE_STATE_DIR;
  delete process.env.CAPLANCE_BALANCER_OBJECT;
  rmSync(tmp, { recursive: true, force: true });
});

test("SIGKILL, SIGTERM --keep, upgrade and reload cost no request and no connection", async (t) => {
  // A run-time addition that must survive every restart.
  assert.equal((await lab.lbctl(["backend", "add", WEB, "198.18.0.13", "--name", "b3"])).code, 0);
  assert.equal((await lab.lbctl(["backend", "drain", WEB, "198.18.0.12"])).code, 0);
  const first = await status();
  assert.equal(first.adopted, false);
  assert.equal(first.keep, true);

  const session = lab.session("198.18.1.1", NAME_PORT);
  const owner = await session.ask();
  assert.ok(owner, "long-lived connection answers");

  const events = { done: false };
  let ok = 0;
  let failed = 0;
  const errors: string[] = [];
  const load = (async () => {
    while (!events.done || ok + failed < TOTAL) {
      const r = await lab.http("http://198.18.1.1/", 500, 16);
      ok += r.ok;
      failed += r.failed;
      errors.push(...r.errors);
    }
  })();

  const steps: string[] = [];
  const adoptedAfter = async (what: string, upgraded = false): Promise<void> => {
    await start();
    const s = await status();
    assert.equal(s.adopted, true, `${what}: the new daemon adopts\n${lab.daemonLog}`);
    assert.equal(s.upgraded, upgraded, `${what}: program ${upgraded ? "" : "not "}swapped`);
    assert.equal(await session.ask(), owner, `${what}: long-lived connection survives`);
    steps.push(what);
    await sleep(1000);
  };
  try {
    await sleep(1000);
    assert.notEqual(await lab.kill("SIGKILL"), undefined);
    await adoptedAfter("SIGKILL");

    assert.equal(await lab.kill("SIGTERM"), 0, "SIGTERM under --keep exits 0");
    await adoptedAfter("SIGTERM --keep");

    process.env.CAPLANCE_BALANCER_OBJECT = UPGRADE;
    assert.equal(await lab.kill("SIGTERM"), 0);
    await adoptedAfter("upgrade", true);

    writeConfig("tcp/198.18.1.3:80");
    const r = await lab.lbctl(["reload", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { added: string[]; removed: string[] };
    assert.deepEqual(summary.removed, ["tcp/198.18.1.2:80"]);
    assert.deepEqual(
      summary.added.filter((a) => !a.includes(" ")),
      ["tcp/198.18.1.3:80"],
    );
    assert.equal(await session.ask(), owner, "reload: long-lived connection survives");
    steps.push("reload");
    await sleep(1000);
  } finally {
    events.done = true;
    await load;
  }
  t.diagnostic(`${ok + failed} requests on new connections, ${failed} failed, during: ${steps.join(", ")}`);
  assert.deepEqual(steps, ["SIGKILL", "SIGTERM --keep", "upgrade", "reload"]);
  assert.ok(ok + failed >= TOTAL, `${ok + failed} requests`);
  assert.equal(failed, 0, `${failed} of ${ok + failed} failed: ${errors.slice(0, 5).join("; ")}`);

  const list = await lab.lbctl(["backend", "list", WEB, "--json"]);
  const backends = (JSON.parse(list.stdout) as { address: string; state: string }[])
    .map((b) => `${b.address} ${b.state}`)
    .sort();
  assert.deepEqual(
    backends,
    ["198.18.0.11 active", "198.18.0.12 draining", "198.18.0.13 active"],
    "run-time addition and drain survive the restarts",
  );
  assert.equal(await session.ask(), owner);
});

test("load --once applies the config, exits 0 and leaves it forwarding; the next load adopts it", async () => {
  assert.equal(await lab.kill("SIGTERM"), 0);
  const session = lab.session("198.18.1.1", NAME_PORT);
  const owner = await session.ask();
  writeConfig("tcp/198.18.1.2:80"); // back on an address the lab backends serve
  const lbctl = join(packageRoot(), "bin", "lbctl");
  const once = await lab.inNs("lb", process.execPath, [
    lbctl,
    "load",
    "--once",
    "--iface",
    "eth0",
    "--mode",
    "native",
    "--config",
    CONFIG,
    "--source",
    "198.18.0.1",
    "--socket",
    lab.socket,
  ]);
  assert.equal(once.code, 0, once.stderr);
  assert.equal(existsSync(lab.socket), false, "--once serves no socket");
  const r = await lab.http("http://198.18.1.2/", 200, 8);
  assert.equal(r.failed, 0, `the VIP --once added forwards: ${r.errors.join("; ")}`);
  assert.equal(await session.ask(), owner, "long-lived connection survives --once");
  await start();
  assert.equal((await status()).adopted, true);
  const vips = JSON.parse((await lab.lbctl(["vip", "list", "--json"])).stdout) as { vip: string }[];
  assert.ok(
    vips.some((v) => v.vip === "tcp/198.18.1.2:80"),
    JSON.stringify(vips),
  );
  session.close();
});

test("unload removes the link, the pins and the state file; a second unload is a no-op", async () => {
  assert.equal(await lab.kill("SIGTERM"), 0);
  const lbctl = join(packageRoot(), "bin", "lbctl");
  const ino = (await lab.inNs("lb", "stat", ["-L", "-c", "%i", "/proc/self/ns/net"])).stdout.trim();
  const pins = (): string[] =>
    existsSync("/sys/fs/bpf/caplance")
      ? readdirSync("/sys/fs/bpf/caplance").filter((d) => d.startsWith(`${ino}-`))
      : [];
  assert.equal(pins().length, 1, "--keep left the pins");
  for (let i = 0; i < 2; i++) {
    const r = await lab.inNs("lb", process.execPath, [
      lbctl,
      "unload",
      "--iface",
      "eth0",
      "--socket",
      lab.socket,
    ]);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.deepEqual(pins(), []);
  assert.deepEqual(
    readdirSync(join(tmp, "state")).filter((f) => f.endsWith(".json")),
    [],
  );
  const link = JSON.parse((await lab.inNs("lb", "ip", ["-j", "link", "show", "dev", "eth0"])).stdout) as {
    xdp?: unknown;
  }[];
  assert.equal(link[0]?.xdp, undefined, "XDP detached");
});
