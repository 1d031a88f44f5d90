// The TypeScript flow hash (src/model/flow-hash.ts over src/lib/jhash.ts) equals the one C
// implementation (bpf/hash.h, compiled into libcaplance) for random flows of both families and
// every hash mode.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Native } from "../../src/dataplane/native.js";
import {
  FlowKeyLayout,
  LB_AF_INET,
  LB_AF_INET6,
  LB_VIP_F_HASH_SRC_IP,
  LB_VIP_F_HASH_SRC_IP_PORT,
} from "../../src/maps/abi.js";
import { flowHash } from "../../src/model/flow-hash.js";
import { Prng } from "../support/prng.js";

test("flow hash: TypeScript mirror equals bpf/hash.h for 20000 random flows", () => {
  const rng = new Prng(20261123);
  const native = Native.get();
  const seen = new Set<number>();
  for (let i = 0; i < 20000; i++) {
    const family = rng.chance(0.5) ? LB_AF_INET : LB_AF_INET6;
    const width = family === LB_AF_INET ? 4 : 16;
    const src = new Uint8Array(16);
    const dst = new Uint8Array(16);
    src.set(rng.bytes(width));
    dst.set(rng.bytes(width));
    const ports = rng.bytes(4);
    const proto = rng.pick([6, 17]);
    const flags = rng.pick([0, LB_VIP_F_HASH_SRC_IP, LB_VIP_F_HASH_SRC_IP_PORT]);
    const key = new Uint8Array(FlowKeyLayout.size);
    key.set(src, FlowKeyLayout.fields.src);
    key.set(dst, FlowKeyLayout.fields.dst);
    key.set(ports, FlowKeyLayout.fields.sport_be);
    key[FlowKeyLayout.fields.family] = family;
    key[FlowKeyLayout.fields.proto] = proto;
    const expected = native.flowHash(key, flags);
    assert.equal(
      flowHash({ family, proto, src, dst, ports }, flags),
      expected,
      `flow #${i} (family ${family}, flags ${flags})`,
    );
    seen.add(expected);
  }
  assert.ok(seen.size > 19000, "hashes spread (not a constant)");
});
