// The userspace engine's own tables (native/lb_engine.c) through the map layer: the LRU flow
// table evicts the least recently used entry (control-side lookups do not count as use, as with
// the kernel's syscall lookups of an LRU map; the packet path's do), deletes free a slot; the
// mirrored maps read back what was written; a VIP's table can be swapped and removed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { UserspaceEngine } from "../../src/dataplane/userspace-engine.js";
import type { FlowKey } from "../../src/maps/codec.js";

function key(sport: number): FlowKey {
  const src = new Uint8Array(16);
  const dst = new Uint8Array(16);
  src.set([198, 18, 0, 2]);
  dst.set([198, 18, 1, 1]);
  return { src, dst, sport, dport: 80, family: 2, proto: 6 };
}

test("engine flow table: LRU eviction at capacity, updates refresh, delete frees", () => {
  const engine = new UserspaceEngine(4);
  try {
    const maps = engine.maps;
    for (let i = 0; i < 4; i++) maps.putFlow(key(1000 + i), { backend: i, hash: i * 7 });
    maps.putFlow(key(1000), { backend: 5, hash: 5 }); // an update counts as use
    assert.deepEqual(maps.getFlow(key(1001)), { backend: 1, hash: 7 });
    maps.putFlow(key(2000), { backend: 9, hash: 9 });
    assert.equal(maps.getFlow(key(1001)), undefined, "least recently used (1001) evicted");
    assert.deepEqual(maps.getFlow(key(1000)), { backend: 5, hash: 5 }, "refreshed entry kept");
    assert.equal(maps.deleteFlow(key(1002)), true);
    assert.equal(maps.deleteFlow(key(1002)), false);
    maps.putFlow(key(3000), { backend: 3, hash: 3 });
    for (const sport of [1000, 1003, 2000, 3000])
      assert.ok(maps.getFlow(key(sport)), `flow ${sport} present`);
  } finally {
    engine.close();
  }
});

test("engine tables: mirrored maps read back; a Maglev table swaps and clears", () => {
  const engine = new UserspaceEngine(16);
  try {
    const maps = engine.maps;
    maps.replaceTable(3, Uint32Array.of(1, 2, 3));
    assert.deepEqual([...(maps.readTable(3) ?? [])], [1, 2, 3]);
    maps.replaceTable(3, Uint32Array.of(4, 5));
    assert.deepEqual([...(maps.readTable(3) ?? [])], [4, 5]);
    maps.clearTable(3);
    assert.equal(maps.readTable(3), undefined);
    assert.equal(Number(maps.readVipStats(3).packets), 0);
    assert.equal(maps.readCounters().length, 64);
  } finally {
    engine.close();
  }
});
