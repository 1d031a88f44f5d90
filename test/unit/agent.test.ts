// lbctl agent's pure parts: option resolution (flags, YAML, usage errors) and the drain's count
// of established connections to the VIPs from `ss -Htn state established`.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { countEstablished } from "../../src/agent/agent.js";
import { parseLb, resolveAgentOptions } from "../../src/agent/options.js";

const base = { lb: "198.18.0.1", vip: ["tcp/198.18.1.1:80"], iface: "eth0", secretFile: "/s" };

test("options: defaults, --lb port 7070, socket from the environment", () => {
  const o = resolveAgentOptions(base, { LBCTL_AGENT_SOCKET: "/tmp/a.sock" });
  assert.equal(o.lbPort, 7070);
  assert.equal(o.socket, "/tmp/a.sock");
  assert.equal(o.drainTimeoutS, 30);
  assert.equal(o.healthIntervalS, 20);
  assert.equal(o.encapPort, 6080);
  assert.equal(resolveAgentOptions(base, {}).socket, "/run/caplance/agent.sock");
  assert.deepEqual(parseLb("[2001:db8::1]:7000"), { host: "2001:db8::1", port: 7000 });
  assert.deepEqual(parseLb("2001:db8::1"), { host: "2001:db8::1", port: 7070 });
});

test("options: missing secret, lb, vip are usage errors; bad VIP names itself", () => {
  const noSecret = { lb: base.lb, vip: base.vip, iface: base.iface };
  assert.throws(
    () => resolveAgentOptions(noSecret, {}),
    (e: unknown) => (e as { code: string }).code === "LB_ERR_USAGE",
  );
  assert.throws(() => resolveAgentOptions({ ...base, lb: "nope" }, {}), /--lb nope/);
  assert.throws(() => resolveAgentOptions({ ...base, vip: ["tcp/1.2.3"] }, {}), /--vip tcp\/1\.2\.3/);
});

test("options: YAML config with flags winning; unknown keys are errors", () => {
  const dir = mkdtempSync(join(tmpdir(), "agent-opts-"));
  const file = join(dir, "a.yaml");
  writeFileSync(
    file,
    "lb: 198.18.0.1:7071\nvips: [tcp/198.18.1.1:80, udp/198.18.1.2:53]\niface: eth0\nsecret_file: /s\nweight: 3\n",
  );
  const o = resolveAgentOptions({ config: file, weight: 5 }, {});
  assert.equal(o.lbPort, 7071);
  assert.deepEqual(o.vips, ["tcp/198.18.1.1:80", "udp/198.18.1.2:53"]);
  assert.equal(o.weight, 5);
  writeFileSync(file, "lb: 198.18.0.1\ncolour: red\n");
  assert.throws(() => resolveAgentOptions({ config: file }, {}), /unknown key "colour"/);
});

test("drain: established connections counted by VIP and port, mapped IPv4 included", () => {
  const out = [
    "0      0      198.18.1.1:80        198.18.0.2:40000",
    "0      0      [::ffff:198.18.1.1]:80 [::ffff:198.18.0.2]:40001",
    "0      0      198.18.1.1:22        198.18.0.2:40002",
    "0      0      198.18.0.11:80       198.18.0.2:40003",
    "0      0      [2001:db8:1::1]:80   [2001:db8::2]:40004",
  ].join("\n");
  assert.equal(countEstablished(out, [{ address: "198.18.1.1", port: 80 }]), 2);
  assert.equal(countEstablished(out, [{ address: "198.18.1.1", port: 0 }]), 3);
  assert.equal(countEstablished(out, [{ address: "2001:db8:1::1", port: 80 }]), 1);
  assert.equal(countEstablished("", [{ address: "198.18.1.1", port: 80 }]), 0);
  // Several states (established, syn-recv): ss adds a State column in front.
  const withState = [
    "ESTAB    0      0      198.18.1.1:80        198.18.0.2:40000",
    "SYN-RECV 0      0      198.18.1.1:80        198.18.0.2:40005",
    "ESTAB    0      0      198.18.0.11:80       198.18.0.2:40003",
  ].join("\n");
  assert.equal(countEstablished(withState, [{ address: "198.18.1.1", port: 80 }]), 2);
});
