// Real kernel maps through libcaplance (root): element ops, batches, key walks, per-CPU values,
// map-in-map tables, size errors, RSS under 100k updates through ffi-rs, and the compiled
// objects' maps against the layouts of abi.ts.
import assert from "node:assert/strict";
import { existsSync, statfsSync } from "node:fs";
import { test } from "node:test";

import { BpfObject } from "../../src/dataplane/bpf-object.js";
import { BPF_F_INNER_MAP, BPF_F_MMAPABLE, BpfMapType, Native } from "../../src/dataplane/native.js";
import { AF_INET, parseAddress } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";
import { bpfObjectPath } from "../../src/lib/paths.js";
import * as abi from "../../src/maps/abi.js";
import { BalancerMaps } from "../../src/maps/balancer-maps.js";
import { decodeTraffic, encodeTraffic, encodeU32Key } from "../../src/maps/codec.js";
import { LibbpfMap } from "../../src/maps/libbpf-map.js";
import { LibbpfTables } from "../../src/maps/libbpf-tables.js";

const native = Native.get();

function withMap(map: LibbpfMap, body: (m: LibbpfMap) => void): void {
  try {
    body(map);
  } finally {
    map.close();
  }
}

function isMapError(pattern: RegExp, errno?: number) {
  return (err: unknown): boolean =>
    err instanceof LbError &&
    err.code === "LB_ERR_MAP" &&
    pattern.test(err.message) &&
    (errno === undefined || err.errno === errno);
}

const key8 = (n: number): Uint8Array => Uint8Array.from([n & 0xff, n >> 8, 0, 0, 0, 0, 0, 0]);
const val4 = (n: number): Uint8Array => encodeU32Key(n);

void test("mmapable array: whole-array write and read through mapped memory (8-byte stride)", () => {
  const fd = native.arrayMapCreate("cpl_test_mm", 4, 1000);
  assert.ok(fd >= 0, native.lastError());
  withMap(LibbpfMap.fromFd(fd, "cpl_test_mm", { ownsFd: true }), (m) => {
    const values = Uint32Array.from({ length: 1000 }, (_, i) => i * 7 + 1);
    assert.equal(native.arrayMapWrite(fd, new Uint8Array(values.buffer), 4), 0);
    assert.deepEqual(m.lookup(val4(999)), val4(999 * 7 + 1), "element 999 through the syscall path");
    const back = new Uint32Array(1000);
    assert.equal(native.arrayMapRead(fd, new Uint8Array(back.buffer), 4), 0);
    assert.deepEqual(back, values);
  });
});

void test("array map from lb_array_map_create: update, lookup, walk, batch, no delete", () => {
  const fd = native.arrayMapCreate("cpl_test_arr", 4, 16);
  assert.ok(fd >= 0, native.lastError());
  withMap(LibbpfMap.fromFd(fd, "cpl_test_arr", { ownsFd: true }), (m) => {
    assert.equal(m.type, BpfMapType.ARRAY);
    assert.equal(m.flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
    assert.deepEqual([m.keySize, m.valueSize, m.maxEntries, m.valueStride], [4, 4, 16, 4]);
    assert.deepEqual(m.lookup(encodeU32Key(3)), new Uint8Array(4));
    m.update(encodeU32Key(3), val4(0xabcd));
    assert.deepEqual(m.lookup(encodeU32Key(3)), val4(0xabcd));
    assert.equal(m.lookup(encodeU32Key(16)), undefined);
    assert.throws(
      () => {
        m.update(encodeU32Key(16), val4(1));
      },
      isMapError(/map cpl_test_arr: update failed: E2BIG/, 7),
    );
    assert.throws(() => m.delete(encodeU32Key(3)), isMapError(/array entries cannot be deleted/));

    const keys = new Uint8Array(16 * 4);
    const values = new Uint8Array(16 * 4);
    for (let i = 0; i < 16; i++) {
      keys.set(encodeU32Key(i), i * 4);
      values.set(val4(1000 + i), i * 4);
    }
    m.updateBatch(keys, values, 16);
    assert.deepEqual(m.lookup(encodeU32Key(15)), val4(1015));
    assert.equal(m.keys().length, 16);

    const next = new Uint8Array(4);
    assert.equal(native.mapGetNextKey(m.fd, undefined, next), 0);
    assert.deepEqual(next, encodeU32Key(0));
    assert.equal(native.mapGetNextKey(m.fd, encodeU32Key(15), next), -2);
  });
});

void test("hash map: update, lookup, delete, full, key walk across chunks", () => {
  withMap(
    LibbpfMap.create({
      type: BpfMapType.HASH,
      name: "cpl_test_hash",
      keySize: 8,
      valueSize: 4,
      maxEntries: 5000,
    }),
    (m) => {
      assert.equal(m.perCpu, false);
      m.update(key8(1), val4(11));
      assert.deepEqual(m.lookup(key8(1)), val4(11));
      assert.equal(m.lookup(key8(2)), undefined);
      assert.equal(m.delete(key8(1)), true);
      assert.equal(m.delete(key8(1)), false);

      // 5000 keys in one batch, walked back in chunks of 4096.
      const keys = new Uint8Array(5000 * 8);
      const values = new Uint8Array(5000 * 4);
      for (let i = 0; i < 5000; i++) {
        keys.set(key8(i), i * 8);
        values.set(val4(i), i * 4);
      }
      m.updateBatch(keys, values, 5000);
      const walked = m.keys();
      assert.equal(walked.length, 5000);
      assert.equal(new Set(walked.map((k) => Buffer.from(k).toString("hex"))).size, 5000);
      assert.throws(
        () => {
          m.update(key8(60000), val4(1));
        },
        isMapError(/map cpl_test_hash: update failed: E2BIG/, 7),
      );
    },
  );
});

void test("wrong key/value sizes are refused before the kernel, naming the map", () => {
  withMap(
    LibbpfMap.create({
      type: BpfMapType.HASH,
      name: "cpl_test_size",
      keySize: 8,
      valueSize: 4,
      maxEntries: 4,
    }),
    (m) => {
      assert.throws(
        () => m.lookup(new Uint8Array(4)),
        isMapError(/map cpl_test_size: key is 4 bytes, expected 8/),
      );
      assert.throws(
        () => {
          m.update(key8(1), new Uint8Array(8));
        },
        isMapError(/map cpl_test_size: value is 8 bytes, expected 4/),
      );
      assert.throws(() => m.delete(new Uint8Array(9)), isMapError(/key is 9 bytes, expected 8/));
      assert.throws(
        () => {
          m.updateBatch(new Uint8Array(16), new Uint8Array(4), 2);
        },
        isMapError(/batch of 2 values is 4 bytes, expected 8/),
      );
    },
  );
});

void test("per-CPU array: lookups return every CPU's value, summed by the codec", () => {
  const ncpus = native.numPossibleCpus();
  withMap(
    LibbpfMap.create({
      type: BpfMapType.PERCPU_ARRAY,
      name: "cpl_test_pcpu",
      keySize: 4,
      valueSize: abi.TrafficLayout.size,
      maxEntries: 4,
    }),
    (m) => {
      assert.equal(m.perCpu, true);
      assert.equal(m.valueStride, 16 * ncpus);
      const value = new Uint8Array(m.valueStride);
      for (let cpu = 0; cpu < ncpus; cpu++) {
        value.set(encodeTraffic({ packets: BigInt(cpu + 1), bytes: 100n }), cpu * 16);
      }
      m.update(encodeU32Key(2), value);
      const got = m.lookup(encodeU32Key(2));
      assert.ok(got !== undefined);
      assert.equal(got.length, 16 * ncpus);
      assert.deepEqual(decodeTraffic(got), {
        packets: BigInt((ncpus * (ncpus + 1)) / 2),
        bytes: BigInt(100 * ncpus),
      });
      // A 4-byte value per CPU is padded to 8 by the kernel.
      withMap(
        LibbpfMap.create({
          type: BpfMapType.PERCPU_HASH,
          name: "cpl_test_pch",
          keySize: 4,
          valueSize: 4,
          maxEntries: 4,
        }),
        (h) => {
          assert.equal(h.valueStride, 8 * ncpus);
        },
      );
    },
  );
});

void test("LRU hash evicts instead of failing when full", () => {
  withMap(
    LibbpfMap.create({
      type: BpfMapType.LRU_HASH,
      name: "cpl_test_lru",
      keySize: 8,
      valueSize: 4,
      maxEntries: 64,
    }),
    (m) => {
      for (let i = 0; i < 1000; i++) m.update(key8(i), val4(i));
      const n = m.keys().length;
      assert.ok(n > 0 && n <= 64, `${n} entries`);
      assert.deepEqual(m.lookup(key8(999)), val4(999));
    },
  );
});

void test("map-in-map tables: replace swaps whole tables of any size, read and clear", () => {
  const template = native.arrayMapCreate("cpl_test_tmpl", 4, 1024);
  assert.ok(template >= 0, native.lastError());
  try {
    withMap(
      LibbpfMap.create({
        type: BpfMapType.ARRAY_OF_MAPS,
        name: "cpl_test_outer",
        keySize: 4,
        valueSize: 4,
        maxEntries: 8,
        innerMapFd: template,
      }),
      (outer) => {
        const tables = new LibbpfTables(outer);
        assert.equal(tables.read(3), undefined);
        const t7 = Uint32Array.from([0, 1, 2, 0, 1, 2, abi.LB_NO_BACKEND]);
        tables.replace(3, t7);
        assert.deepEqual(tables.read(3), t7);
        const t13 = Uint32Array.from({ length: 13 }, (_, i) => i % 5);
        tables.replace(3, t13);
        assert.deepEqual(tables.read(3), t13);
        const big = Uint32Array.from({ length: 65537 }, (_, i) => (i * 7) % 11);
        tables.replace(5, big);
        assert.deepEqual(tables.read(5), big);
        tables.clear(3);
        tables.clear(3);
        assert.equal(tables.read(3), undefined);
        const many = new Map(
          [0, 1, 2, 4, 6, 7].map((vip) => [vip, Uint32Array.from({ length: 11 + vip }, (_, i) => i + vip)]),
        );
        const t0 = performance.now();
        tables.replaceMany(many);
        console.log(`replaceMany of ${many.size} tables: ${(performance.now() - t0).toFixed(1)} ms`);
        for (const [vip, table] of many) assert.deepEqual(tables.read(vip), table, `VIP ${vip}`);
        assert.throws(
          () => {
            tables.replace(8, t7);
          },
          isMapError(/map cpl_test_outer: VIP id 8 out of range/),
        );
      },
    );
  } finally {
    native.close(template);
  }
});

function rssMb(): number {
  return process.memoryUsage().rss / 1e6;
}

void test("RSS stays flat over 100k map updates through ffi-rs", () => {
  withMap(
    LibbpfMap.create({
      type: BpfMapType.HASH,
      name: "cpl_test_rss",
      keySize: 8,
      valueSize: 4,
      maxEntries: 1024,
    }),
    (m) => {
      const value = val4(7);
      const keys = Array.from({ length: 1024 }, (_, i) => key8(i));
      const churn = (n: number): void => {
        for (let i = 0; i < n; i++) m.update(keys[i & 1023] ?? key8(0), value);
      };
      churn(20_000); // warm-up: JIT, V8 heap and allocator arenas settle
      const before = rssMb();
      const t0 = performance.now();
      churn(100_000);
      const us = ((performance.now() - t0) * 1000) / 100_000;
      const growth = rssMb() - before;
      console.log(`rss growth over 100k updates: ${growth.toFixed(1)} MB, ${us.toFixed(2)} us/update`);
      assert.ok(growth < 50, `RSS grew ${growth.toFixed(1)} MB`);
    },
  );
});

void test("RSS over 300 table swaps (create, batch, swap, close)", () => {
  const template = native.arrayMapCreate("cpl_test_tmpl2", 4, 1024);
  try {
    withMap(
      LibbpfMap.create({
        type: BpfMapType.ARRAY_OF_MAPS,
        name: "cpl_test_out2",
        keySize: 4,
        valueSize: 4,
        maxEntries: 4,
        innerMapFd: template,
      }),
      (outer) => {
        const tables = new LibbpfTables(outer);
        const table = Uint32Array.from({ length: 251 }, (_, i) => i % 3);
        for (let i = 0; i < 50; i++) tables.replace(i % 4, table);
        const before = rssMb();
        const t0 = performance.now();
        for (let i = 0; i < 300; i++) tables.replace(i % 4, table);
        const ms = (performance.now() - t0) / 300;
        const growth = rssMb() - before;
        console.log(`rss growth over 300 table swaps: ${growth.toFixed(1)} MB, ${ms.toFixed(1)} ms/swap`);
        assert.ok(growth < 20, `RSS grew ${growth.toFixed(1)} MB`);
      },
    );
  } finally {
    native.close(template);
  }
});

void test("pin, get and unpin a map on bpffs", (t) => {
  const dir = "/sys/fs/bpf";
  const BPF_FS_MAGIC = 0xcafe4a11;
  if (!existsSync(dir) || statfsSync(dir).type !== BPF_FS_MAGIC) {
    t.skip("no bpffs at /sys/fs/bpf (npm run setup mounts it)");
    return;
  }
  withMap(
    LibbpfMap.create({
      type: BpfMapType.ARRAY,
      name: "cpl_test_pin",
      keySize: 4,
      valueSize: 4,
      maxEntries: 2,
    }),
    (m) => {
      m.update(encodeU32Key(1), val4(77));
      const path = `${dir}/cpl_test_pin_${process.pid}`;
      assert.equal(native.objPin(m.fd, path), 0);
      try {
        const fd = native.objGet(path);
        assert.ok(fd >= 0);
        withMap(LibbpfMap.fromFd(fd, "cpl_test_pin", { ownsFd: true }), (again) => {
          assert.equal(again.id, m.id);
          assert.deepEqual(again.lookup(encodeU32Key(1)), val4(77));
        });
      } finally {
        assert.equal(native.unpin(path), 0);
      }
      assert.equal(native.unpin(path), -2);
      assert.equal(native.objGet(path), -2);
    },
  );
});

/** Key and value size of every map of the compiled objects, from bpf/maps.h and decap.bpf.c. */
const OBJECT_MAPS: Readonly<Record<string, readonly [string, number, number, number][]>> = {
  balancer: [
    [abi.LB_MAP_SETTINGS, 4, abi.SettingsLayout.size, 1],
    [abi.LB_MAP_VIP_ADDRS, abi.VipAddrKeyLayout.size, abi.VipAddrLayout.size, abi.LB_MAX_VIPS],
    [abi.LB_MAP_VIPS, abi.VipKeyLayout.size, abi.VipLayout.size, abi.LB_MAX_VIPS],
    [abi.LB_MAP_TABLES, 4, 4, abi.LB_MAX_VIPS],
    [abi.LB_MAP_BACKENDS, 4, abi.BackendLayout.size, abi.LB_MAX_BACKENDS],
    [abi.LB_MAP_FLOWS, abi.FlowKeyLayout.size, abi.FlowLayout.size, 4096],
    [abi.LB_MAP_VIP_STATS, 4, abi.TrafficLayout.size, abi.LB_MAX_VIPS],
    [abi.LB_MAP_BACKEND_STATS, 4, abi.TrafficLayout.size, abi.LB_MAX_BACKENDS],
    [abi.LB_MAP_COUNTERS, 4, 8, abi.LB_COUNTERS_SIZE],
  ],
  decap: [
    [abi.LB_MAP_DECAP_SETTINGS, 4, abi.DecapSettingsLayout.size, 1],
    [abi.LB_MAP_DECAP_ADDRS, abi.DecapAddrKeyLayout.size, 4, -1],
    [abi.LB_MAP_DECAP_COUNTERS, 4, 8, abi.LB_DECAP_COUNTERS_SIZE],
  ],
};

for (const [name, maps] of Object.entries(OBJECT_MAPS)) {
  void test(`${name}.bpf.o: every map's key/value sizes equal the layouts of abi.ts`, (t) => {
    const path = bpfObjectPath(name);
    if (!existsSync(path)) {
      t.skip(`${path} not built`);
      return;
    }
    const obj = BpfObject.open(path, name === "balancer" ? { maxEntries: { [abi.LB_MAP_FLOWS]: 4096 } } : {});
    try {
      obj.load();
      const got = maps.map(([map]) => {
        const info = native.mapInfo(obj.mapFd(map), map);
        return [map, info.keySize, info.valueSize, info.maxEntries] as const;
      });
      assert.deepEqual(
        got.map(([map, k, v, max], i) => [map, k, v, maps[i]?.[3] === -1 ? -1 : max]),
        maps.map((m) => [...m]),
      );
      assert.throws(
        () => obj.mapFd("lb_no_such_map"),
        (err: unknown) =>
          err instanceof LbError && err.code === "LB_ERR_MAP" && /no map lb_no_such_map/.test(err.message),
      );
    } finally {
      obj.close();
    }
  });
}

void test("balancer.bpf.o through BalancerMaps and BPF_PROG_TEST_RUN", (t) => {
  const path = bpfObjectPath("balancer");
  if (!existsSync(path)) {
    t.skip(`${path} not built`);
    return;
  }
  const obj = BpfObject.open(path, { maxEntries: { [abi.LB_MAP_FLOWS]: 4096 } });
  try {
    assert.throws(() => obj.mapFd(abi.LB_MAP_VIPS), /before load/);
    obj.load();
    const maps = BalancerMaps.fromObject(obj);
    maps.setSettings({
      srcV4: Uint8Array.from([198, 18, 0, 1]),
      srcV6: new Uint8Array(16),
      maglevSize: 7,
      flags: 1,
    });
    assert.equal(maps.getSettings().maglevSize, 7);
    const backend = {
      address: parseAddress("198.18.0.11").bytes,
      family: AF_INET,
      flags: abi.LB_BACKEND_F_IN_USE,
      encapPort: 6080,
      vipId: 1,
      ifindex: 1,
      mtu: 1500,
      dmac: new Uint8Array(6),
      smac: new Uint8Array(6),
    } as const;
    maps.putBackend(4, backend);
    assert.deepEqual(maps.getBackend(4), backend);
    maps.deleteBackend(4);
    assert.equal(maps.getBackend(4), undefined);
    const table = Uint32Array.from([4, 4, 4, 4, 4, 4, abi.LB_NO_BACKEND]);
    maps.replaceTable(1, table);
    assert.deepEqual(maps.readTable(1), table);
    maps.clearTable(1);

    // A frame that is not IP leaves through XDP_PASS and is counted.
    const prog = obj.progFd("lb_balancer");
    const frame = new Uint8Array(60);
    frame.set([0x88, 0xb5], 12); // local experimental ethertype
    const run = native.progTestRun(prog, frame, { repeat: 5 });
    assert.equal(run.retval, 2);
    assert.deepEqual(run.data, frame);
    const counters = maps.readCounters();
    assert.equal(counters[abi.LbCounter.LB_C_RX], 5n);
    assert.equal(counters[abi.LbCounter.LB_C_PASS], 5n);
    assert.throws(() => native.progTestRun(prog, new Uint8Array(13)), /shorter than 14 bytes|EINVAL/);
    assert.throws(
      () => obj.progFd("nope"),
      (err: unknown) => err instanceof LbError && /no program nope/.test(err.message),
    );
  } finally {
    obj.close();
  }
});
