// `lbctl load --mode auto` on an interface where the kernel refuses XDP in both modes: a
// macvlan stacked on the balancer's eth0 carries an XDP program, and the kernel refuses XDP
// below a device that has one. auto must fall back to NFQUEUE, say why each XDP step was
// skipped, and balance as in the XDP lab.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import { packageRoot } from "../../src/lib/paths.js";
import { Lab, uniquePrefix } from "../../src/lab/lab.js";
import { assertSpread, lbctlOk as lbctlOkIn } from "../support/lab-assert.js";

const lab = new Lab(uniquePrefix(), 3);
const CONFIG = join(packageRoot(), "confs", "simple_1.yaml");
const PASS_OBJ = join(packageRoot(), "build", "bpf", "pass.bpf.o");
const UPPER = "caplmv0";

const lbctlOk = (args: string[]): Promise<string> => lbctlOkIn(lab, args);

async function inLb(cmd: string, args: string[]): Promise<string> {
  const r = await lab.inNs("lb", cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

before(async () => {
  await lab.up();
  await inLb("ip", ["link", "add", UPPER, "link", "eth0", "type", "macvlan", "mode", "private"]);
  await inLb("ip", ["link", "set", UPPER, "up"]);
  await inLb("ip", ["link", "set", "dev", UPPER, "xdpgeneric", "obj", PASS_OBJ, "sec", "xdp"]);
  // The premise: the kernel itself refuses XDP on eth0 now, in both modes.
  for (const mode of ["xdpdrv", "xdpgeneric"]) {
    const r = await lab.inNs("lb", "ip", ["link", "set", "dev", "eth0", mode, "obj", PASS_OBJ, "sec", "xdp"]);
    assert.notEqual(r.code, 0, `${mode} on eth0 should be refused under ${UPPER}`);
  }
  await lab.startDaemon({ mode: "auto", config: CONFIG });
});

after(async () => {
  const code = await lab.stopDaemon();
  const rules = await lab.inNs("lb", "iptables-save", ["-t", "raw"]);
  const xdp = await lab.inNs("lb", "ip", ["-d", "link", "show", "dev", "eth0"]);
  await lab.down();
  assert.equal(code, 0, `daemon exit code on SIGTERM\n${lab.daemonLog}`);
  assert.ok(!rules.stdout.includes("CAPLANCE"), `rules removed on stop:\n${rules.stdout}`);
  assert.ok(!/prog\/xdp/.test(xdp.stdout), `no XDP left on eth0:\n${xdp.stdout}`);
});

test("auto falls back to nfqueue and says why native and generic were skipped", async (t) => {
  const s = JSON.parse(await lbctlOk(["status", "--json"])) as { mode: string; modeReason: string };
  t.diagnostic(`modeReason: ${s.modeReason}`);
  assert.equal(s.mode, "nfqueue");
  assert.match(s.modeReason, /^auto: nfqueue because /);
  assert.match(s.modeReason, /native (refused|skipped): /);
  assert.match(s.modeReason, /generic refused: .*stacked on eth0/);
  assert.match(lab.daemonLog, /falling back to NFQUEUE/);
  const human = await lbctlOk(["status"]);
  assert.match(human, /nfqueue/);
});

test("the fallback balances: 1000 HTTP requests, all succeed, 1/3 ± 15% each", async () => {
  const r = await lab.http("http://198.18.1.1/", 1000);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assertSpread(r.byBackend, { b1: 1, b2: 1, b3: 1 }, "spread");
  const rules = await inLb("iptables-save", ["-t", "raw"]);
  assert.match(rules, /-A PREROUTING -i eth0 -j CAPLANCE/);
});
