// Maglev table builder: golden tables, completeness, order-independence, weights, disruption on
// removal, draining, input validation, IPv6, and the build time (printed, not asserted).

import { test } from "node:test";
import assert from "node:assert/strict";
import type { MaglevBackend } from "../../src/maglev/maglev.js";
import { buildMaglevTable, isPrime, permutation, slotCounts, slotDiff } from "../../src/maglev/maglev.js";
import { buildTimeMs1000, labBackends, survivorChurnPct, weightErrorPct } from "../../src/maglev/metrics.js";
import { LB_NO_BACKEND } from "../../src/maps/abi.js";

function v4(host: number, port = 6080, weight = 1, index = host): MaglevBackend {
  const address = new Uint8Array(16);
  address.set([198, 18, 0, host]);
  return { address, encapPort: port, weight, index };
}

function v6(last: number, index: number): MaglevBackend {
  const address = new Uint8Array(16);
  address.set([0x20, 0x01, 0x0d, 0xb8]); // 2001:db8::<last>
  address[15] = last;
  return { address, encapPort: 6080, weight: 1, index };
}

// Deterministic Fisher-Yates (LCG), so a failing order can be reproduced.
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

// The paper's Maglev (equal weights): backends sorted, round-robin, each taking its next free
// preferred slot. An independent oracle for the weighted builder's equal-weight case.
function textbookMaglev(sortedBackends: readonly MaglevBackend[], m: number): Uint32Array {
  const table = new Uint32Array(m).fill(LB_NO_BACKEND);
  const perms = sortedBackends.map((b) => permutation(b.address, b.encapPort, m));
  const j = perms.map(() => 0);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < sortedBackends.length; i++) {
      const p = perms[i];
      const b = sortedBackends[i];
      if (!p || !b) throw new Error("unreachable");
      let slot = (p.offset + (j[i] ?? 0) * p.skip) % m;
      while (table[slot] !== LB_NO_BACKEND) {
        j[i] = (j[i] ?? 0) + 1;
        slot = (p.offset + (j[i] ?? 0) * p.skip) % m;
      }
      table[slot] = b.index;
      j[i] = (j[i] ?? 0) + 1;
      if (++filled === m) return table;
    }
  }
}

void test("golden table: 198.18.0.11/.12/.13:6080, equal weights, M=13", () => {
  // Permutations (offset, skip): .11 (5, 11), .12 (9, 11), .13 (11, 6). Quotas 5/4/4 (the
  // leftover slot goes to the first in address order). Round-robin in address order:
  //   .11: 5 3 1 8 0   .12: 9 7 12 6   .13: 11 4 10 2
  const backends = [v4(11, 6080, 1, 2), v4(12, 6080, 1, 0), v4(13, 6080, 1, 1)];
  assert.deepEqual(
    backends.map((b) => permutation(b.address, b.encapPort, 13)),
    [
      { offset: 5, skip: 11 },
      { offset: 9, skip: 11 },
      { offset: 11, skip: 6 },
    ],
  );
  assert.deepEqual(buildMaglevTable(backends, 13), Uint32Array.from([2, 2, 1, 2, 1, 2, 0, 0, 2, 0, 1, 1, 0]));
});

void test("golden table: weights 2/1/1, M=13", () => {
  // Quotas 7/3/3. .11 earns two turns a round: .11 5 3 | 1 12 | 10 6 | 0, .12 9 7 8, .13 11 4 2.
  const backends = [v4(11, 6080, 2, 2), v4(12, 6080, 1, 0), v4(13, 6080, 1, 1)];
  assert.deepEqual(buildMaglevTable(backends, 13), Uint32Array.from([2, 2, 1, 2, 1, 2, 2, 0, 0, 0, 2, 1, 2]));
});

void test("equal weights reproduce textbook Maglev", () => {
  for (const [count, m] of [
    [1, 7],
    [37, 251],
    [100, 65537],
  ] as const) {
    const backends = labBackends(count);
    assert.deepEqual(
      buildMaglevTable(shuffled(backends, count), m),
      textbookMaglev(backends, m),
      `n=${count}`,
    );
  }
});

void test("no empty slots, and only known backend indices", () => {
  for (const [count, m] of [
    [1, 65537],
    [3, 13],
    [1000, 65537],
  ] as const) {
    const backends = labBackends(count, (i) => 1 + (i % 3));
    const counts = slotCounts(buildMaglevTable(backends, m));
    const known = new Set(backends.map((b) => b.index));
    assert.ok(
      [...counts.keys()].every((k) => known.has(k)),
      `n=${count}: unknown index`,
    );
    assert.equal(
      [...counts.values()].reduce((s, c) => s + c, 0),
      m,
      `n=${count}: empty slots`,
    );
  }
});

void test("the table does not depend on input order", () => {
  const backends = labBackends(200, (i) => 1 + (i % 5));
  const reference = buildMaglevTable(backends);
  for (const seed of [1, 2, 3, 42, 4242]) {
    assert.equal(slotDiff(reference, buildMaglevTable(shuffled(backends, seed))), 0, `seed ${seed}`);
  }
  assert.equal(slotDiff(reference, buildMaglevTable([...backends].reverse())), 0, "reversed");
});

void test("slot shares follow weights within 1% (100 backends, weights 1..4, M=65537)", (t) => {
  const m = 65537;
  const backends = labBackends(100, (i) => 1 + (i % 4));
  const counts = slotCounts(buildMaglevTable(backends, m));
  const total = backends.reduce((s, b) => s + b.weight, 0);
  for (const b of backends) {
    const exact = (m * b.weight) / total;
    const got = counts.get(b.index) ?? 0;
    assert.ok(
      Math.abs(got - exact) < 1,
      `backend ${b.index} (weight ${b.weight}): ${got} slots, want ${exact}`,
    );
  }
  const pct = weightErrorPct();
  t.diagnostic(`maglev_weight_error_pct ${pct.toFixed(3)}`);
  assert.ok(pct <= 1.0, `weight error ${pct}%`);
});

void test("removing 1 of 100 backends moves at most 1% of slots between survivors", (t) => {
  const m = 65537;
  const all = labBackends(100);
  const before = buildMaglevTable(all, m);
  const after = buildMaglevTable(
    all.filter((b) => b.index !== 42),
    m,
  );
  const orphaned = slotCounts(before).get(42) ?? 0;
  assert.ok(!after.includes(42), "removed backend still has slots");
  assert.ok(slotDiff(before, after) - orphaned <= m / 100, "too many slots moved");
  const pct = survivorChurnPct();
  t.diagnostic(`maglev_survivor_churn_pct ${pct.toFixed(3)}`);
  assert.ok(pct <= 1.0, `survivor churn ${pct}%`);
});

void test("a weight-0 backend gets no slots and leaves the others where they were", () => {
  const backends = labBackends(10);
  const drained = backends.map((b) => (b.index === 3 ? { ...b, weight: 0 } : b));
  const table = buildMaglevTable(drained, 251);
  assert.equal(slotCounts(table).get(3), undefined);
  assert.deepEqual(
    table,
    buildMaglevTable(
      backends.filter((b) => b.index !== 3),
      251,
    ),
  );
});

void test("no backend with weight > 0 gives LB_NO_BACKEND in every slot", () => {
  const none = new Uint32Array(13).fill(LB_NO_BACKEND);
  assert.deepEqual(buildMaglevTable([v4(11, 6080, 0), v4(12, 6080, 0)], 13), none);
  assert.deepEqual(buildMaglevTable([], 13), none);
});

void test("bad M and bad backends throw", () => {
  const three = [v4(11), v4(12), v4(13)];
  assert.throws(() => buildMaglevTable(three, 65536), /M=65536 is not a prime/);
  assert.throws(() => buildMaglevTable(three, 1), /not a prime/);
  assert.throws(() => buildMaglevTable(three, 12.5), /not a prime/);
  assert.throws(() => buildMaglevTable(three, 3), /greater than the 3 backends/);
  assert.throws(
    () => buildMaglevTable([v4(11), v4(11, 6080, 1, 99)], 13),
    /duplicate backend 198\.18\.0\.11:6080/,
  );
  assert.throws(
    () => buildMaglevTable([v4(11), v4(12, 6080, 1, 11)], 13),
    /198\.18\.0\.12:6080 \(index 11\): index is used twice/,
  );
  assert.throws(() => buildMaglevTable([v4(11, 6080, 1.5)], 13), /weight 1\.5/);
  assert.throws(() => buildMaglevTable([v4(11, 6080, -1)], 13), /weight -1/);
  assert.throws(() => buildMaglevTable([v4(11, 70000)], 13), /encap port 70000/);
  assert.throws(
    () => buildMaglevTable([v4(11, 6080, 1, LB_NO_BACKEND)], 13),
    /\(index 4294967295\): index is not in/,
  );
  const short = { address: new Uint8Array(4), encapPort: 6080, weight: 1, index: 0 };
  assert.throws(() => buildMaglevTable([short], 13), /address is 4 bytes, not 16/);
  // Same address on another encap port is a different backend.
  assert.equal(buildMaglevTable([v4(11, 6080, 1, 0), v4(11, 6081, 1, 1)], 13).length, 13);
});

void test("IPv6 backends: every address byte feeds the permutation", () => {
  const backends = [v6(0x11, 0), v6(0x12, 1), v6(0x13, 2)];
  const [a, b] = backends;
  assert.ok(a && b);
  assert.notDeepEqual(permutation(a.address, 6080, 65537), permutation(b.address, 6080, 65537));
  const counts = slotCounts(buildMaglevTable(backends, 65537));
  assert.deepEqual(
    [...counts.entries()].sort(([x], [y]) => x - y),
    [
      [0, 21846],
      [1, 21846],
      [2, 21845],
    ],
  );
  assert.equal(slotDiff(buildMaglevTable(backends), buildMaglevTable(shuffled(backends, 7))), 0);
});

void test("slotDiff, slotCounts and isPrime", () => {
  assert.equal(slotDiff(Uint32Array.from([1, 2, 3]), Uint32Array.from([1, 5, 3])), 1);
  assert.throws(() => slotDiff(new Uint32Array(3), new Uint32Array(5)), /different sizes/);
  assert.deepEqual(
    slotCounts(Uint32Array.from([7, 7, LB_NO_BACKEND, 9])),
    new Map([
      [7, 2],
      [9, 1],
    ]),
  );
  for (const n of [2, 3, 13, 65537, 1048573]) assert.ok(isPrime(n), `${n} is prime`);
  for (const n of [0, 1, 4, 9, 25, 49, 91, 65536, 1048575, 7.5]) assert.ok(!isPrime(n), `${n} is not prime`);
});

void test("build time, 1000 backends, M=65537 (printed, not asserted)", (t) => {
  t.diagnostic(`maglev_build_ms_1000 ${buildTimeMs1000().toFixed(2)} (median of 5 warm runs)`);
});
