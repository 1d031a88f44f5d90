// XDP attach/detach/query through libcaplance on a throwaway veth pair (root): modes, the
// already-attached error, and the hints for a native attach the driver refuses.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { after, before, test } from "node:test";

import { BpfObject } from "../../src/dataplane/bpf-object.js";
import { attachXdp, detachXdp, queryXdp } from "../../src/dataplane/xdp.js";
import type { XdpTarget } from "../../src/dataplane/xdp.js";
import { LbError } from "../../src/lib/errors.js";
import { bpfObjectPath } from "../../src/lib/paths.js";

const objPath = bpfObjectPath("balancer");
const prefix = `cpl${process.pid % 100000}`;
const ifA = `${prefix}a`;
const ifB = `${prefix}b`;
let obj: BpfObject | undefined;
let target: XdpTarget | undefined;
let progFd = -1;

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function attachError(errno: number, hint: RegExp) {
  return (err: unknown): boolean =>
    err instanceof LbError &&
    err.code === "LB_ERR_ATTACH" &&
    err.errno === errno &&
    err.message.includes(ifA) &&
    hint.test(err.hint ?? "");
}

const skip = existsSync(objPath) ? false : `${objPath} not built`;

before(() => {
  if (skip !== false) return;
  ip("link", "add", ifA, "type", "veth", "peer", "name", ifB);
  ip("link", "set", ifA, "up");
  ip("link", "set", ifB, "up");
  const ifindex = Number(readFileSync(`/sys/class/net/${ifA}/ifindex`, "utf8"));
  target = { ifindex, ifname: ifA };
  obj = BpfObject.open(objPath, { maxEntries: { lb_flows: 4096 } });
  obj.load();
  progFd = obj.progFd("lb_balancer");
});

after(() => {
  if (target !== undefined) {
    try {
      ip("link", "del", ifA);
    } catch {
      // already gone
    }
  }
  obj?.close();
});

function must(): XdpTarget {
  if (target === undefined) throw new Error("no test interface");
  return target;
}

void test("generic attach, query, refusal to attach twice, detach", { skip }, () => {
  const t = must();
  assert.equal(queryXdp(t).mode, "none");
  attachXdp(t, progFd, "generic");
  const state = queryXdp(t);
  assert.equal(state.mode, "generic");
  assert.ok(state.progId > 0);
  assert.equal(state.genericProgId, state.progId);
  assert.throws(
    () => {
      attachXdp(t, progFd, "generic");
    },
    attachError(16, /unload/),
  ); // EBUSY
  attachXdp(t, progFd, "generic", { replace: true });
  detachXdp(t, "generic");
  assert.equal(queryXdp(t).mode, "none");
  detachXdp(t, "generic"); // idempotent
});

void test("native attach on veth, and the MTU hint when the peer MTU is too big", { skip }, () => {
  const t = must();
  attachXdp(t, progFd, "native");
  assert.equal(queryXdp(t).mode, "native");
  detachXdp(t, "native");
  assert.equal(queryXdp(t).mode, "none");

  ip("link", "set", ifB, "mtu", "9000");
  try {
    assert.throws(
      () => {
        attachXdp(t, progFd, "native");
      },
      (err: unknown) => {
        assert.ok(err instanceof LbError);
        assert.equal(err.code, "LB_ERR_ATTACH");
        assert.match(err.message, new RegExp(`interface ${ifA}: cannot attach XDP in native mode: ERANGE`));
        assert.match(err.hint ?? "", /MTU too big for native XDP.*--mode generic/);
        return true;
      },
    );
    attachXdp(t, progFd, "generic"); // generic has no such limit
    detachXdp(t, "generic");
  } finally {
    ip("link", "set", ifB, "mtu", "1500");
  }
});

void test("an unknown interface fails with ENODEV", { skip }, () => {
  assert.throws(
    () => {
      attachXdp({ ifindex: 999_999, ifname: "nope0" }, progFd, "generic");
    },
    (err: unknown) => err instanceof LbError && err.errno === 19 && /no interface nope0/.test(err.hint ?? ""),
  );
});
