// The TUN decapsulation's pure parts: what `--decap` tries in which order, the agent option
// accepting it, and the decapsulator's counters line as its supervisor reads it.
import assert from "node:assert/strict";
import { test } from "node:test";

import { decapSteps } from "../../src/agent/host.js";
import { resolveAgentOptions } from "../../src/agent/options.js";
import { parseTunCounters, zeroTunCounters } from "../../src/dataplane/tun-decap.js";
import { tunDeviceName } from "../../src/dataplane/tun-device.js";

const base = { lb: "198.18.0.1", vip: ["tcp/198.18.1.1:80"], iface: "eth0", secretFile: "/s" };

test("--decap: auto = native, generic, tun; xdp = native, generic; one mode each otherwise", () => {
  assert.deepEqual(decapSteps("auto"), ["native", "generic", "tun"]);
  assert.deepEqual(decapSteps("xdp"), ["native", "generic"]);
  assert.deepEqual(decapSteps("tun"), ["tun"]);
  assert.deepEqual(decapSteps("native"), ["native"]);
  assert.deepEqual(decapSteps("generic"), ["generic"]);
  assert.deepEqual(decapSteps("none"), []);
});

test("agent options: --decap tun and xdp are accepted as given, default auto, others usage errors", () => {
  assert.equal(resolveAgentOptions(base, {}).decap, "auto");
  assert.equal(resolveAgentOptions({ ...base, decap: "tun" }, {}).decap, "tun");
  assert.equal(resolveAgentOptions({ ...base, decap: "xdp" }, {}).decap, "xdp");
  assert.throws(
    () => resolveAgentOptions({ ...base, decap: "fou" }, {}),
    (e: unknown) =>
      (e as { code: string }).code === "LB_ERR_USAGE" &&
      /--decap fou: auto, xdp, tun, native, generic or none/.test((e as Error).message),
  );
});

test("TUN device name: per encap port, within IFNAMSIZ", () => {
  assert.equal(tunDeviceName(6080), "cpltun6080");
  assert.ok(tunDeviceName(65535).length <= 15);
});

test("counters line: parsed by name; the ready line and garbage are not counters", () => {
  const line =
    '{"rx":10,"decap":7,"drops":{"empty":0,"version":1,"short":0,"length":2,"not_vip":0,"oversize":0,"tun_write":0},"socket_drops":3,"batches":4}';
  const c = parseTunCounters(line);
  assert.ok(c);
  assert.equal(c.rx, 10);
  assert.equal(c.decap, 7);
  assert.equal(c.drops.version, 1);
  assert.equal(c.drops.length, 2);
  assert.equal(c.socketDrops, 3);
  assert.equal(c.batches, 4);
  assert.equal(parseTunCounters("ready tun=cpltun6080 port=6080"), undefined);
  assert.equal(parseTunCounters("{not json"), undefined);
  assert.equal(parseTunCounters('{"rx":1}'), undefined);
  assert.deepEqual(Object.keys(zeroTunCounters().drops), [
    "empty",
    "version",
    "short",
    "length",
    "not_vip",
    "oversize",
    "tun_write",
  ]);
});
