// The in-memory maps: hash, LRU and array semantics, per-CPU strides, size errors naming the map.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LbError } from "../../src/lib/errors.js";
import { encodeU32Key } from "../../src/maps/codec.js";
import { MemoryMap } from "../../src/maps/memory-map.js";
import { MemoryTables } from "../../src/maps/memory-tables.js";

const key = (n: number): Uint8Array => Uint8Array.from([n, 0, 0, 0, 0, 0, 0, 0]);
const val = (n: number): Uint8Array => Uint8Array.from([n, n, n, n]);

function hash(maxEntries: number, lru = false): MemoryMap {
  return new MemoryMap({ name: "lb_test", type: "hash", keySize: 8, valueSize: 4, maxEntries, lru });
}

void test("hash: update, lookup (a copy), delete, keys", () => {
  const m = hash(4);
  m.update(key(1), val(1));
  m.update(key(2), val(2));
  const got = m.lookup(key(1));
  assert.deepEqual(got, val(1));
  got.fill(9);
  assert.deepEqual(m.lookup(key(1)), val(1));
  assert.equal(m.delete(key(1)), true);
  assert.equal(m.delete(key(1)), false);
  assert.equal(m.lookup(key(1)), undefined);
  assert.deepEqual(m.keys(), [key(2)]);
});

void test("hash: a new key beyond max entries fails with E2BIG", () => {
  const m = hash(2);
  m.update(key(1), val(1));
  m.update(key(2), val(2));
  m.update(key(2), val(3)); // existing key: fine
  assert.throws(
    () => {
      m.update(key(3), val(3));
    },
    (err: unknown) =>
      err instanceof LbError && err.code === "LB_ERR_MAP" && err.errno === 7 && /lb_test/.test(err.message),
  );
});

void test("LRU: evicts the least recently used on insert beyond max", () => {
  const m = hash(3, true);
  m.update(key(1), val(1));
  m.update(key(2), val(2));
  m.update(key(3), val(3));
  m.lookup(key(1)); // 2 is now the oldest
  m.update(key(4), val(4));
  assert.equal(m.lookup(key(2)), undefined);
  assert.deepEqual(m.lookup(key(1)), val(1));
  m.update(key(3), val(33)); // 4 is now the oldest
  m.update(key(5), val(5));
  assert.equal(m.lookup(key(4)), undefined);
  assert.equal(m.size, 3);
  assert.deepEqual(
    m.keys().map((k) => k[0]),
    [1, 3, 5],
  );
});

void test("array: fixed zero-filled indices, out of range refused, delete refused", () => {
  const m = new MemoryMap({ name: "lb_arr", type: "array", keySize: 4, valueSize: 4, maxEntries: 3 });
  assert.deepEqual(m.lookup(encodeU32Key(2)), new Uint8Array(4));
  assert.equal(m.lookup(encodeU32Key(3)), undefined);
  m.update(encodeU32Key(1), val(7));
  assert.deepEqual(m.lookup(encodeU32Key(1)), val(7));
  assert.equal(m.keys().length, 3);
  assert.throws(() => {
    m.update(encodeU32Key(3), val(1));
  }, /map lb_arr: index out of range/);
  assert.throws(() => m.delete(encodeU32Key(1)), /map lb_arr: array entries cannot be deleted/);
});

void test("per-CPU values are roundUp(valueSize, 8) x ncpus", () => {
  const m = new MemoryMap({
    name: "lb_pc",
    type: "array",
    keySize: 4,
    valueSize: 4,
    maxEntries: 2,
    perCpu: true,
    ncpus: 3,
  });
  assert.equal(m.valueStride, 24);
  assert.equal(m.lookup(encodeU32Key(0))?.length, 24);
  assert.throws(() => {
    m.update(encodeU32Key(0), new Uint8Array(4));
  }, /map lb_pc: value is 4 bytes, expected 24/);
});

void test("wrong key/value sizes name the map and both sizes", () => {
  const m = hash(4);
  assert.throws(() => m.lookup(new Uint8Array(3)), /map lb_test: key is 3 bytes, expected 8/);
  assert.throws(() => {
    m.update(key(1), new Uint8Array(5));
  }, /map lb_test: value is 5 bytes, expected 4/);
  assert.throws(() => {
    m.updateBatch(new Uint8Array(16), new Uint8Array(4), 2);
  }, /map lb_test: batch of 2 values is 4 bytes, expected 8/);
});

void test("batch update writes every element", () => {
  const m = hash(8);
  const keys = new Uint8Array(24);
  const values = new Uint8Array(12);
  for (let i = 0; i < 3; i++) {
    keys.set(key(i + 1), i * 8);
    values.set(val(i + 1), i * 4);
  }
  m.updateBatch(keys, values, 3);
  assert.deepEqual(m.lookup(key(3)), val(3));
  assert.equal(m.size, 3);
});

void test("memory tables store copies and check the VIP id", () => {
  const t = new MemoryTables("lb_tables", 4);
  const table = Uint32Array.from([1, 2, 3]);
  t.replace(1, table);
  table[0] = 9;
  assert.deepEqual(t.read(1), Uint32Array.from([1, 2, 3]));
  assert.deepEqual(t.vipIds(), [1]);
  t.clear(1);
  t.clear(1);
  assert.equal(t.read(1), undefined);
  assert.throws(() => {
    t.replace(4, table);
  }, /map lb_tables: VIP id 4 out of range/);
  assert.throws(() => {
    t.replace(0, new Uint32Array(0));
  }, /empty table/);
});
