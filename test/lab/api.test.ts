// The REST API and /metrics of a real daemon in a namespace lab (root): `lbctl load --api
// 127.0.0.1:PORT --api-token-file F` in the balancer's namespace, queried from inside it with
// curl. Traffic shows in the VIP and backend series; a POST with the token adds a backend that
// `lbctl backend list` then shows and that takes traffic; a busy port or an open token file
// refuse the load before anything stays behind.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Lab, uniquePrefix } from "../../src/lab/lab.js";
import { packageRoot } from "../../src/lib/paths.js";

const lab = new Lab(uniquePrefix(), 4);
const LBCTL = join(packageRoot(), "bin", "lbctl");
const WEB = "tcp/198.18.1.1:80";
const PORT = 7181;
const API = `127.0.0.1:${PORT}`;
const TOKEN = "lab-token-0123456789abcdef";
const tmp = mkdtempSync(join(tmpdir(), "caplance-api-lab-"));
const tokenFile = join(tmp, "api.token");

interface Http {
  status: number;
  body: string;
  headers: string;
}

/** curl inside the balancer's namespace (the API listens on its loopback). */
async function curl(
  method: string,
  path: string,
  opts: { body?: unknown; token?: string } = {},
): Promise<Http> {
  const headerFile = join(tmp, "headers");
  const args = ["-sS", "-m", "10", "-X", method, "-D", headerFile, "-w", "\n%{http_code}"];
  if (opts.token !== undefined) args.push("-H", `Authorization: Bearer ${opts.token}`);
  if (opts.body !== undefined)
    args.push("-H", "Content-Type: application/json", "--data", JSON.stringify(opts.body));
  args.push(`http://${API}${path}`);
  const r = await lab.inNs("lb", "curl", args, 20_000);
  assert.equal(r.code, 0, `curl ${method} ${path}: ${r.stderr}`);
  const cut = r.stdout.lastIndexOf("\n");
  return {
    status: Number(r.stdout.slice(cut + 1)),
    body: r.stdout.slice(0, cut),
    headers: readFileSync(headerFile, "utf8"),
  };
}

/** Series → value from a text exposition (labels as printed). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.set(m[1], Number(m[2]));
  }
  return out;
}

async function xdpOnEth0(): Promise<unknown> {
  const r = await lab.inNs("lb", "ip", ["-j", "link", "show", "dev", "eth0"]);
  const [link] = JSON.parse(r.stdout) as Record<string, unknown>[];
  return link?.["xdp"];
}

before(async () => {
  writeFileSync(tokenFile, `${TOKEN}\n`);
  chmodSync(tokenFile, 0o600);
  await lab.up(["--owner", String(process.pid)]);
});

after(async () => {
  try {
    const code = await lab.stopDaemon();
    assert.ok(code === undefined || code === 0, `daemon exit status ${String(code)}\n${lab.daemonLog}`);
  } finally {
    await lab.down();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("a busy --api port or an open token file: exit 1, clear message, nothing left behind", async () => {
  const load = (extra: string[]) =>
    lab.inNs(
      "lb",
      process.execPath,
      [
        LBCTL,
        "load",
        "--iface",
        "eth0",
        "--source",
        "198.18.0.1",
        "--socket",
        lab.socket,
        "--mode",
        "generic",
        ...extra,
      ],
      30_000,
    );
  // Something else holds the port in the balancer's namespace.
  const blocker = spawn(
    "nsenter",
    [
      `--net=${lab.ns("lb")}`,
      process.execPath,
      "-e",
      `require("net").createServer().listen(${PORT}, "127.0.0.1", () => console.log("ready"))`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error("port blocker not ready"));
      }, 10_000);
      blocker.stdout.on("data", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    const busy = await load(["--api", API]);
    assert.equal(busy.code, 1, `busy port: ${busy.stderr}`);
    assert.match(busy.stderr, new RegExp(`cannot listen on ${API.replace(/\./g, "\\.")} .*in use`));
    assert.match(busy.stderr, /hint: .*--api/);
  } finally {
    const exited = once(blocker, "exit");
    blocker.kill("SIGTERM");
    await exited; // the port is free again for the daemon of the next test
  }
  assert.equal(await xdpOnEth0(), undefined, "busy port: XDP detached again");
  assert.equal(existsSync(lab.socket), false, "busy port: control socket removed");

  const open = join(tmp, "open.token");
  writeFileSync(open, TOKEN);
  chmodSync(open, 0o644);
  const r = await load(["--api", API, "--api-token-file", open]);
  assert.equal(r.code, 1, `open token file: ${r.stderr}`);
  assert.match(r.stderr, /API token file .* has mode 0644/);
  assert.match(r.stderr, /hint: chmod 600/);
  assert.equal(await xdpOnEth0(), undefined, "open token file: nothing attached");
});

test("/metrics after 100 requests: VIP packets ≥ 400, a series for each backend", async () => {
  await lab.startDaemon({
    mode: "native",
    config: join(packageRoot(), "confs", "simple_1.yaml"),
    extra: ["--api", API, "--api-token-file", tokenFile],
  });
  const r = await lab.http("http://198.18.1.1/", 100);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  const m = await curl("GET", "/metrics");
  assert.equal(m.status, 200);
  assert.match(m.headers, /content-type: text\/plain; version=0\.0\.4/i);
  const s = samples(m.body);
  const vipPackets = s.get(`caplance_vip_packets_total{vip="${WEB}"}`) ?? 0;
  assert.ok(vipPackets >= 400, `VIP packets ${vipPackets}`);
  let sum = 0;
  for (const b of ["198.18.0.11", "198.18.0.12", "198.18.0.13"]) {
    const packets = s.get(`caplance_backend_packets_total{vip="${WEB}",backend="${b}"}`);
    assert.ok(packets !== undefined && packets > 0, `backend ${b}: ${String(packets)}`);
    sum += packets;
    assert.equal(s.get(`caplance_backend_state{vip="${WEB}",backend="${b}",state="active"}`), 1);
  }
  assert.equal(sum, vipPackets, "every VIP packet went to a backend");
  assert.equal(s.get(`caplance_dataplane_mode{mode="native"}`), 1);
  assert.ok((s.get(`caplance_dataplane_packets_total{action="tx"}`) ?? 0) > 0);
  assert.equal(s.get("caplance_vips"), 1);
  assert.equal(s.get(`caplance_reconcile_duration_seconds_count{operation="backend.add"}`), 3);
  assert.equal(s.get(`caplance_reconcile_duration_seconds_count{operation="config.apply"}`), 1);
  // The same numbers as lbctl stats, through the REST API.
  const stats = await curl("GET", "/v1/stats");
  assert.equal(stats.status, 200);
  const body = JSON.parse(stats.body) as { vips: Record<string, { packets: number }> };
  assert.ok((body.vips[WEB]?.packets ?? 0) >= vipPackets);
});

test("POST /v1/backends with the token adds a backend lbctl lists and traffic reaches", async () => {
  const refused = await curl("POST", "/v1/backends", {
    body: { vip: WEB, backend: "198.18.0.14", name: "b4" },
  });
  assert.equal(refused.status, 401, refused.body);
  const added = await curl("POST", "/v1/backends", {
    body: { vip: WEB, backend: "198.18.0.14", name: "b4" },
    token: TOKEN,
  });
  assert.equal(added.status, 201, added.body);
  const { vip, address, port, name, weight, state, source, changeReason } = JSON.parse(added.body) as Record<
    string,
    unknown
  >;
  assert.deepEqual(
    { vip, address, port, name, weight, state, source, changeReason },
    {
      vip: WEB,
      address: "198.18.0.14",
      port: 6080,
      name: "b4",
      weight: 1,
      state: "active",
      source: "static",
      changeReason: "added at run time",
    },
  );
  const list = await lab.lbctl(["backend", "list", WEB, "--json"]);
  assert.equal(list.code, 0, list.stderr);
  const b4 = (JSON.parse(list.stdout) as { address: string; name: string; state: string }[]).find(
    (b) => b.address === "198.18.0.14",
  );
  assert.deepEqual(b4 && { name: b4.name, state: b4.state }, { name: "b4", state: "active" });
  const r = await lab.http("http://198.18.1.1/", 200);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assert.ok((r.byBackend["b4"] ?? 0) > 20, `b4 got ${r.byBackend["b4"] ?? 0} of 200`);

  const drained = await curl("POST", "/v1/backends/drain", {
    body: { vip: WEB, backend: "198.18.0.14" },
    token: TOKEN,
  });
  assert.equal((JSON.parse(drained.body) as { state: string }).state, "draining");
  const removed = await curl("DELETE", `/v1/backends?vip=${encodeURIComponent(WEB)}&backend=198.18.0.14`, {
    token: TOKEN,
  });
  assert.equal(removed.status, 204);
  const after = JSON.parse((await lab.lbctl(["backend", "list", "--json"])).stdout) as { address: string }[];
  assert.equal(
    after.find((b) => b.address === "198.18.0.14"),
    undefined,
  );
  const status = JSON.parse((await lab.lbctl(["status", "--json"])).stdout) as {
    settings: Record<string, { value: unknown; from: string }>;
  };
  assert.deepEqual(status.settings["api"], { value: API, from: "flag" });
});
