// `--mode` decisions of attachWithMode with the attach step injected (the real kernel refusal is
// exercised in test/lab/auto-fallback.test.ts): auto tries native, then generic, and an error
// names every step it skipped.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";

import { attachWithMode } from "../../src/dataplane/attach-mode.js";
import type { XdpMode } from "../../src/dataplane/xdp.js";
import { LbError } from "../../src/lib/errors.js";

const log = pino({ level: "silent" });
// Not an interface, so no veth peer check applies and auto starts with native.
const target = { ifindex: 999_999, ifname: "capl-none0" };

function refusing(refused: readonly XdpMode[]): {
  tried: XdpMode[];
  attach: (t: unknown, fd: number, m: XdpMode) => void;
} {
  const tried: XdpMode[] = [];
  return {
    tried,
    attach: (_t, _fd, mode) => {
      tried.push(mode);
      if (refused.includes(mode))
        throw new LbError("LB_ERR_ATTACH", `cannot attach in ${mode} mode: EEXIST`, { hint: `hint-${mode}` });
    },
  };
}

test("auto: native when the kernel takes it", async () => {
  const a = refusing([]);
  const r = await attachWithMode(target, 3, "auto", log, a.attach);
  assert.deepEqual(a.tried, ["native"]);
  assert.deepEqual(r, { mode: "native", reason: "auto: native XDP attached" });
});

test("auto: generic after native is refused, with native's error and hint in the reason", async () => {
  const a = refusing(["native"]);
  const r = await attachWithMode(target, 3, "auto", log, a.attach);
  assert.deepEqual(a.tried, ["native", "generic"]);
  assert.equal(r.mode, "generic");
  assert.equal(
    r.reason,
    "auto: generic because native refused: cannot attach in native mode: EEXIST (hint-native)",
  );
});

test("auto: both refused throws one error naming both steps", async () => {
  const a = refusing(["native", "generic"]);
  await assert.rejects(attachWithMode(target, 3, "auto", log, a.attach), (err: unknown) => {
    assert.ok(err instanceof LbError);
    assert.equal(err.code, "LB_ERR_ATTACH");
    assert.match(err.message, /native refused: .*\(hint-native\); generic refused: .*\(hint-generic\)$/);
    return true;
  });
});

test("an explicit mode is tried alone and its error passes through", async () => {
  const a = refusing(["native"]);
  await assert.rejects(attachWithMode(target, 3, "native", log, a.attach), /native mode/);
  assert.deepEqual(a.tried, ["native"]);
  const g = refusing([]);
  assert.deepEqual(await attachWithMode(target, 3, "generic", log, g.attach), {
    mode: "generic",
    reason: "requested",
  });
});
