// Hot reload in the lab: `lbctl reload` and SIGHUP re-read the config file, apply only the
// difference, keep run-time additions, and leave everything untouched when the file is bad.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Lab, uniquePrefix } from "../../src/lab/lab.js";

const lab = new Lab(uniquePrefix(), 3);
const dir = mkdtempSync(join(tmpdir(), "caplance-reload-"));
const file = join(dir, "lb.yaml");

function writeConfig(backends: string): void {
  writeFileSync(file, `vips:\n  - vip: tcp/198.18.1.1:80\n    backends:\n${backends}`);
}

async function backends(): Promise<string[]> {
  const r = await lab.lbctl(["backend", "list", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { address: string; weight: number }[])
    .map((b) => `${b.address}/${b.weight}`)
    .sort();
}

before(async () => {
  writeConfig("      - address: 198.18.0.11\n");
  await lab.up();
  await lab.startDaemon({ mode: "native", config: file });
});

after(async () => {
  await lab.stopDaemon();
  await lab.down();
  rmSync(dir, { recursive: true, force: true });
});

test("reload applies the difference and keeps run-time additions", async () => {
  assert.deepEqual((await lab.http("http://198.18.1.1/", 50)).byBackend, { b1: 50 });
  assert.equal((await lab.lbctl(["backend", "add", "tcp/198.18.1.1:80", "198.18.0.13"])).code, 0);
  writeConfig("      - address: 198.18.0.11\n      - { address: 198.18.0.12, weight: 2 }\n");
  const r = await lab.lbctl(["reload", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { added: string[]; removed: string[] };
  assert.deepEqual(summary.added, ["tcp/198.18.1.1:80 198.18.0.12"]);
  assert.deepEqual(summary.removed, []);
  assert.deepEqual(await backends(), ["198.18.0.11/1", "198.18.0.12/2", "198.18.0.13/1"]);
  const spread = await lab.http("http://198.18.1.1/", 200);
  assert.equal(spread.failed, 0);
  assert.ok((spread.byBackend.b2 ?? 0) > 50, JSON.stringify(spread.byBackend));
});

test("a bad file changes nothing and names file:line", async () => {
  const before = await backends();
  writeFileSync(
    file,
    "vips:\n  - vip: tcp/198.18.1.1:80\n    backends:\n      - { address: 198.18.0.11, weight: heavy }\n",
  );
  const r = await lab.lbctl(["reload"]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:4:\\d+: vips\\[0\\]\\.backends\\[0\\]\\.weight`,
    ),
  );
  assert.deepEqual(await backends(), before);
});

test("SIGHUP reloads too", async () => {
  writeConfig("      - address: 198.18.0.12\n");
  const status = JSON.parse((await lab.lbctl(["status", "--json"])).stdout) as { pid: number };
  process.kill(status.pid, "SIGHUP");
  const deadline = Date.now() + 5000;
  let now: string[] = [];
  while (Date.now() < deadline) {
    now = await backends();
    if (!now.includes("198.18.0.11/1")) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(
    now,
    ["198.18.0.12/1", "198.18.0.13/1"],
    "198.18.0.11 left the file, the run-time .13 stays",
  );
});
