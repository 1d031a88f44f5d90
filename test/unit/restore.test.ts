// Hitless restart without root: a reconciler restored from another's snapshot over the same
// (adopted) maps writes nothing for an unchanged config, keeps run-time additions, drain and
// indices, and the state file round-trips atomically with its ABI version checked.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Reconciler, type NextHop, type NextHopSource } from "../../src/core/reconciler.js";
import { readStateFile, STATE_VERSION, writeStateFile } from "../../src/core/state-file.js";
import type { DesiredState } from "../../src/core/types.js";
import { parseAddress } from "../../src/lib/addr.js";
import { LB_ABI_VERSION } from "../../src/maps/abi.js";
import { BalancerMaps } from "../../src/maps/balancer-maps.js";

const M = 251;
const hop: NextHop = {
  ifindex: 3,
  smac: new Uint8Array(6).fill(1),
  dmac: new Uint8Array(6).fill(2),
  mtu: 1500,
};
const hops: NextHopSource = {
  resolve: () => Promise.resolve(hop),
  recheck: () => Promise.resolve(hop),
};
const web = { proto: "tcp" as const, address: parseAddress("198.18.1.1"), port: 80 };
const desired: DesiredState = {
  vips: [
    {
      vip: web,
      hash: "5tuple",
      backends: [
        { address: parseAddress("198.18.0.11"), encapPort: 6080, weight: 1 },
        { address: parseAddress("198.18.0.12"), encapPort: 6080, weight: 2 },
      ],
    },
  ],
};

/** Counts the writes a reconciler makes. */
class CountingMaps extends BalancerMaps {
  writes = 0;
  override replaceTables(tables: ReadonlyMap<number, Uint32Array>): void {
    this.writes++;
    super.replaceTables(tables);
  }
  override replaceTable(vipId: number, table: Uint32Array): void {
    this.writes++;
    super.replaceTable(vipId, table);
  }
  override putBackend(...args: Parameters<BalancerMaps["putBackend"]>): void {
    this.writes++;
    super.putBackend(...args);
  }
  override putVip(...args: Parameters<BalancerMaps["putVip"]>): void {
    this.writes++;
    super.putVip(...args);
  }
}

test("restore + the same config: no map write, same indices, run-time changes kept", async () => {
  const maps = new CountingMaps(BalancerMaps.inMemory().maps);
  const first = new Reconciler(maps, hops, { maglevSize: M });
  await first.applyConfig(desired);
  await first.addBackend(web, { address: parseAddress("198.18.0.13"), encapPort: 6080, weight: 1 });
  await first.setDrained(web, parseAddress("198.18.0.12"), true);
  const table = maps.readTable(0);
  const snapshot = first.snapshot();

  maps.writes = 0;
  const second = new Reconciler(maps, hops, { maglevSize: M });
  second.restore(snapshot);
  const summary = await second.applyConfig(desired);
  assert.deepEqual(summary, { added: [], removed: [], changed: [], warnings: [] });
  assert.equal(maps.writes, 0, "an adopted, unchanged config writes nothing");
  assert.deepEqual(maps.readTable(0), table, "table byte-identical");
  assert.deepEqual(second.listBackends(), first.listBackends(), "indices, weights, drain, names");

  // The allocator knows the restored indices: a new backend gets a fresh one.
  const added = await second.addBackend(web, {
    address: parseAddress("198.18.0.14"),
    encapPort: 6080,
    weight: 1,
  });
  assert.ok(![0, 1, 2].includes(added.backend.index), `index ${added.backend.index}`);

  // Config-origin objects the file drops go; the run-time .13 stays.
  const third = new Reconciler(maps, hops, { maglevSize: M });
  third.restore(second.snapshot());
  const [spec] = desired.vips;
  assert.ok(spec);
  await third.applyConfig({ vips: [{ ...spec, backends: spec.backends.slice(0, 1) }] });
  assert.deepEqual(
    third.listBackends().map((b) => b.address),
    ["198.18.0.11", "198.18.0.13", "198.18.0.14"],
  );
});

test("state file: atomic write, round trip, ABI version checked", () => {
  const dir = mkdtempSync(join(tmpdir(), "caplance-state-"));
  try {
    const path = join(dir, "sub", "1-2.json");
    const state = {
      version: STATE_VERSION,
      abi: LB_ABI_VERSION,
      iface: "eth0",
      pid: 1,
      maglevSize: M,
      vips: [],
    };
    writeStateFile(path, state);
    assert.deepEqual(readdirSync(join(dir, "sub")), ["1-2.json"], "no temporary file left");
    assert.deepEqual(readStateFile(path, "eth0"), state);
    assert.equal(readStateFile(join(dir, "none.json"), "eth0"), undefined);
    writeFileSync(path, JSON.stringify({ ...state, abi: LB_ABI_VERSION + 1 }));
    assert.throws(
      () => readStateFile(path, "eth0"),
      (err: Error) =>
        /ABI version/.test(err.message) &&
        /unload --iface eth0/.test(String((err as { hint?: string }).hint)),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
