// The reconciler against the in-memory maps: what it writes, and in which order.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Reconciler, type NextHop, type NextHopSource } from "../../src/core/reconciler.js";
import { vipAddrEntry } from "../../src/core/vip-addr.js";
import type { BackendSpec, VipRef } from "../../src/core/types.js";
import { parseAddress, type IpAddress } from "../../src/lib/addr.js";
import {
  LB_BACKEND_F_IN_USE,
  LB_BACKEND_F_NEIGH,
  LB_NO_BACKEND,
  LB_VIP_ADDR_F_INLINE,
  LB_VIP_ADDR_F_PORTS,
  LB_VIP_ADDR_F_WILDCARD,
} from "../../src/maps/abi.js";
import { BalancerMaps } from "../../src/maps/balancer-maps.js";
import type { Backend } from "../../src/maps/codec.js";

const M = 251;

/** Resolves every address except those listed as unreachable (a test double of src/net). */
class StaticNextHops implements NextHopSource {
  readonly unreachable = new Set<string>();
  resolve(address: IpAddress): Promise<NextHop | undefined> {
    const key = Array.from(address.bytes).join(".");
    if (this.unreachable.has(key)) return Promise.resolve(undefined);
    return Promise.resolve({
      ifindex: 3,
      smac: new Uint8Array(6).fill(1),
      dmac: new Uint8Array(6).fill(2),
      mtu: 1500,
    });
  }
  recheck(address: IpAddress): Promise<NextHop | undefined> {
    return this.resolve(address);
  }
  block(text: string): void {
    this.unreachable.add(Array.from(parseAddress(text).bytes).join("."));
  }
  unblock(text: string): void {
    this.unreachable.delete(Array.from(parseAddress(text).bytes).join("."));
  }
}

/** In-memory maps that also record the order of backend and table writes. */
class RecordingMaps extends BalancerMaps {
  readonly log: string[] = [];
  override putBackend(index: number, backend: Backend): void {
    this.log.push(`put ${index}`);
    super.putBackend(index, backend);
  }
  override deleteBackend(index: number): void {
    this.log.push(`delete ${index}`);
    super.deleteBackend(index);
  }
  override replaceTables(tables: ReadonlyMap<number, Uint32Array>): void {
    this.log.push(`batch of ${tables.size}`);
    for (const [vipId, table] of tables) this.replaceTable(vipId, table);
  }
  override replaceTable(vipId: number, table: Uint32Array): void {
    const members = [...new Set(table)].filter((i) => i !== LB_NO_BACKEND).sort((a, b) => a - b);
    this.log.push(`table ${vipId} [${members.join(",")}]`);
    super.replaceTable(vipId, table);
  }
}

const vip = (text: string, proto: "tcp" | "udp" = "tcp", port = 80): VipRef => ({
  proto,
  address: parseAddress(text),
  port,
});
const be = (text: string, weight = 1): BackendSpec => ({
  address: parseAddress(text),
  encapPort: 6080,
  weight,
});

function setup(): { maps: RecordingMaps; hops: StaticNextHops; rec: Reconciler } {
  const maps = new RecordingMaps(BalancerMaps.inMemory().maps);
  const hops = new StaticNextHops();
  return { maps, hops, rec: new Reconciler(maps, hops, { maglevSize: M, resolveWaitMs: 50 }) };
}

function members(maps: BalancerMaps, vipId: number): number[] {
  return [...new Set(maps.readTable(vipId) ?? [])].filter((i) => i !== LB_NO_BACKEND).sort((a, b) => a - b);
}

test("a VIP with three backends: entries, flags, table", async () => {
  const { maps, rec } = setup();
  const web = vip("198.18.1.1");
  await rec.addVip(web, "5tuple");
  for (const a of ["198.18.0.11", "198.18.0.12", "198.18.0.13"]) await rec.addBackend(web, be(a));
  const v = maps.getVip({ address: web.address.bytes, port: 80, family: 2, proto: 6 });
  assert.deepEqual(v, { vipId: 0, flags: 0 });
  assert.equal(
    maps.getVipAddr({ address: web.address.bytes, family: 2, proto: 6 })?.flags,
    LB_VIP_ADDR_F_PORTS | LB_VIP_ADDR_F_INLINE,
  );
  assert.deepEqual(members(maps, 0), [0, 1, 2]);
  assert.equal(maps.getBackend(1)?.flags, LB_BACKEND_F_IN_USE | LB_BACKEND_F_NEIGH);
  assert.deepEqual(
    rec.listBackends().map((b) => `${b.address}:${b.state}`),
    ["198.18.0.11:active", "198.18.0.12:active", "198.18.0.13:active"],
  );
  // Entry before the table that names it (an add's table goes in with its group commit).
  assert.deepEqual(maps.log.slice(0, 4), ["table 0 []", "put 0", "batch of 1", "table 0 [0]"]);
});

test("a burst of adds shares table swaps; each returns with its backend in the table", async () => {
  const { maps, rec } = setup();
  const web = vip("198.18.1.1");
  const dns = vip("198.18.1.2");
  await rec.addVip(web, "5tuple");
  await rec.addVip(dns, "5tuple");
  maps.log.length = 0;
  const addresses = Array.from({ length: 20 }, (_, i) => `198.18.0.${20 + i}`);
  const inTableOnReturn: boolean[] = [];
  await Promise.all(
    addresses.map(async (a, i) => {
      const ref = i % 2 === 0 ? web : dns;
      const { backend } = await rec.addBackend(ref, be(a));
      inTableOnReturn.push(members(maps, i % 2 === 0 ? 0 : 1).includes(backend.index));
    }),
  );
  assert.deepEqual(
    inTableOnReturn,
    addresses.map(() => true),
    "every add returns once it is in the table",
  );
  // One swap per VIP per group commit (the first add's commit may go alone): not one per add.
  const tableWrites = maps.log.filter((l) => l.startsWith("table"));
  assert.ok(
    tableWrites.length <= 4,
    `20 adds to 2 VIPs in ${tableWrites.length} table writes: ${maps.log.join(" | ")}`,
  );
  // Every entry is written before the first table that names it.
  const firstTable = maps.log.findIndex((l) => l.startsWith("table"));
  assert.equal(maps.log.slice(0, firstTable).filter((l) => l.startsWith("put")).length, 20);
  assert.deepEqual(members(maps, 0).length + members(maps, 1).length, 20);
});

test("a removal between an add and its group commit: no swap names the removed backend", async () => {
  const { maps, rec } = setup();
  const web = vip("198.18.1.1");
  await rec.addVip(web, "5tuple");
  await rec.addBackend(web, be("198.18.0.11"));
  const adding = rec.addBackend(web, be("198.18.0.12"));
  const removing = rec.removeBackend(web, parseAddress("198.18.0.12"));
  await Promise.allSettled([adding, removing]);
  assert.deepEqual(members(maps, 0), [0]);
  assert.equal(rec.listBackends().length, 1);
});

test("drain keeps the entry and leaves the table; resume brings it back", async () => {
  const { maps, rec } = setup();
  const web = vip("198.18.1.1");
  await rec.addVip(web, "5tuple");
  await rec.addBackend(web, be("198.18.0.11"));
  await rec.addBackend(web, be("198.18.0.12"));
  const drained = await rec.setDrained(web, parseAddress("198.18.0.11"), true);
  assert.equal(drained.state, "draining");
  assert.deepEqual(members(maps, 0), [1]);
  assert.equal(
    maps.getBackend(0)?.flags,
    LB_BACKEND_F_IN_USE | LB_BACKEND_F_NEIGH,
    "drained backend keeps its flows",
  );
  await rec.setDrained(web, parseAddress("198.18.0.11"), false);
  assert.deepEqual(members(maps, 0), [0, 1]);
});

test("remove: table first, then the entry; the index is not reused at once", async () => {
  const { maps, rec } = setup();
  const web = vip("198.18.1.1");
  await rec.addVip(web, "5tuple");
  await rec.addBackend(web, be("198.18.0.11"));
  await rec.addBackend(web, be("198.18.0.12"));
  maps.log.length = 0;
  await rec.removeBackend(web, parseAddress("198.18.0.11"));
  assert.deepEqual(maps.log, ["table 0 [1]", "delete 0"]);
  assert.equal(maps.getBackend(0), undefined);
  const again = await rec.addBackend(web, be("198.18.0.11"));
  assert.notEqual(again.backend.index, 0, "a freed index waits for every other one");
});

test("pending next hop: not in the table until it resolves", async () => {
  const { maps, hops, rec } = setup();
  const web = vip("198.18.1.1");
  await rec.addVip(web, "5tuple");
  hops.block("198.18.0.14");
  const added = await rec.addBackend(web, be("198.18.0.14"));
  assert.equal(added.backend.state, "pending");
  assert.match(added.warning ?? "", /pending/);
  assert.deepEqual(members(maps, 0), []);
  assert.equal(maps.getBackend(added.backend.index), undefined);
  hops.unblock("198.18.0.14");
  await rec.maintain(false);
  assert.deepEqual(members(maps, 0), [added.backend.index]);
  assert.equal(rec.listBackends()[0]?.state, "active");
});

test("VIP addresses: flags are the union of the VIPs on them; removal cleans up", async () => {
  const { maps, rec } = setup();
  const http = vip("198.18.1.1");
  const all = vip("198.18.1.1", "tcp", 0);
  await rec.addVip(http, "5tuple");
  await rec.addVip(all, "src-ip");
  const key = { address: http.address.bytes, family: 2 as const, proto: 6 };
  assert.deepEqual(maps.getVipAddr(key), {
    flags: LB_VIP_ADDR_F_PORTS | LB_VIP_ADDR_F_WILDCARD | LB_VIP_ADDR_F_INLINE,
    port: 80,
    vip: { vipId: 0, flags: 0 },
  });
  await rec.addBackend(all, be("198.18.0.11"));
  await rec.removeVip(http);
  assert.equal(maps.getVipAddr(key)?.flags, LB_VIP_ADDR_F_WILDCARD);
  await rec.removeVip(all);
  assert.equal(maps.getVipAddr(key), undefined);
  assert.equal(maps.readTable(1), undefined);
  assert.equal(maps.getBackend(0), undefined, "a removed VIP's backends are gone");
});

test("errors name the object: duplicate VIP, unknown VIP, duplicate backend", async () => {
  const { rec } = setup();
  const web = vip("198.18.1.1");
  await rec.addVip(web, "5tuple");
  await assert.rejects(rec.addVip(web, "5tuple"), /VIP tcp\/198\.18\.1\.1:80 already exists/);
  await assert.rejects(rec.addBackend(vip("198.18.1.9"), be("198.18.0.11")), /no VIP tcp\/198\.18\.1\.9:80/);
  await rec.addBackend(web, be("198.18.0.11"));
  await assert.rejects(rec.addBackend(web, be("198.18.0.11")), /backend 198\.18\.0\.11 already exists/);
  await assert.rejects(rec.removeBackend(web, parseAddress("198.18.0.99")), /no backend 198\.18\.0\.99/);
});

test("applyConfig adds, keeps and removes to match", async () => {
  const { maps, rec } = setup();
  const web = vip("198.18.1.1");
  await rec.applyConfig({
    vips: [{ vip: web, hash: "5tuple", backends: [be("198.18.0.11"), be("198.18.0.12", 2)] }],
  });
  assert.equal(rec.listBackends().length, 2);
  await rec.applyConfig({
    vips: [{ vip: web, hash: "5tuple", backends: [be("198.18.0.12", 2), be("198.18.0.13")] }],
  });
  assert.deepEqual(
    rec.listBackends().map((b) => b.address),
    ["198.18.0.12", "198.18.0.13"],
  );
  await rec.applyConfig({ vips: [] });
  assert.equal(rec.listVips().length, 0);
  assert.equal(maps.readTable(0), undefined);
});

test("vipAddrEntry: the one port VIP inline; none with two; wildcard flagged", () => {
  assert.equal(vipAddrEntry([]), undefined);
  assert.deepEqual(vipAddrEntry([{ port: 80, vipId: 4, flags: 1 }]), {
    flags: LB_VIP_ADDR_F_PORTS | LB_VIP_ADDR_F_INLINE,
    port: 80,
    vip: { vipId: 4, flags: 1 },
  });
  assert.equal(
    vipAddrEntry([
      { port: 80, vipId: 4, flags: 0 },
      { port: 443, vipId: 5, flags: 0 },
    ])?.flags,
    LB_VIP_ADDR_F_PORTS,
  );
  assert.equal(vipAddrEntry([{ port: 0, vipId: 1, flags: 0 }])?.flags, LB_VIP_ADDR_F_WILDCARD);
});

test("reload: run-time additions stay, changes touch only what changed", async () => {
  const { maps, rec } = setup();
  const web = vip("198.18.1.1");
  const dns = vip("198.18.1.2", "udp", 53);
  const file = (weight: number) => ({
    vips: [
      { vip: web, hash: "5tuple" as const, backends: [be("198.18.0.11"), be("198.18.0.12", weight)] },
      { vip: dns, hash: "5tuple" as const, backends: [be("198.18.0.13")] },
    ],
  });
  await rec.applyConfig(file(1));
  await rec.addBackend(web, be("198.18.0.14")); // run-time (CLI)
  maps.log.length = 0;
  const same = await rec.applyConfig(file(1));
  assert.deepEqual(
    [same.added, same.removed, same.changed],
    [[], [], []],
    "an unchanged file changes nothing",
  );
  assert.deepEqual(maps.log, [], "no map write at all");
  const dnsTable = maps.readTable(1);
  const changed = await rec.applyConfig(file(3));
  assert.deepEqual(changed.changed, ["tcp/198.18.1.1:80 198.18.0.12 weight 3"]);
  assert.deepEqual(maps.log, ["batch of 1", "table 0 [0,1,3]"], "only the changed VIP's table is swapped");
  assert.deepEqual(maps.readTable(1), dnsTable, "the other VIP's table is byte-identical");
  assert.ok(
    rec.listBackends(web).some((b) => b.address === "198.18.0.14"),
    "a backend added at run time survives a reload",
  );
  const dropped = await rec.applyConfig({
    vips: [{ vip: web, hash: "src-ip", backends: [be("198.18.0.11")] }],
  });
  assert.deepEqual(dropped.removed.sort(), ["tcp/198.18.1.1:80 198.18.0.12", "udp/198.18.1.2:53"]);
  assert.deepEqual(dropped.changed, ["tcp/198.18.1.1:80 hash src-ip"]);
  assert.deepEqual(
    rec.listBackends().map((b) => b.address),
    ["198.18.0.11", "198.18.0.14"],
  );
});

test("applyConfig swaps each VIP's table once, however many backends it adds", async () => {
  const { maps, rec } = setup();
  const backends = Array.from({ length: 40 }, (_, i) => be(`198.18.0.${20 + i}`));
  await rec.applyConfig({
    vips: [
      { vip: vip("198.18.1.1"), hash: "5tuple", backends },
      { vip: vip("198.18.1.2"), hash: "5tuple", backends: backends.slice(0, 5) },
    ],
  });
  const tableWrites = maps.log.filter((l) => l.startsWith("table"));
  assert.equal(maps.log.filter((l) => l.startsWith("batch")).length, 1, "one batch");
  assert.equal(tableWrites.length, 2, "one table per VIP");
  // Every entry the tables name was written before the batch.
  assert.ok(maps.log.indexOf("batch of 2") > maps.log.lastIndexOf("put 44"));
  assert.equal(members(maps, 0).length, 40);
  assert.equal(members(maps, 1).length, 5);
  // Removing most of them: one swap, then the entries go.
  maps.log.length = 0;
  await rec.applyConfig({
    vips: [{ vip: vip("198.18.1.1"), hash: "5tuple", backends: backends.slice(0, 2) }],
  });
  assert.equal(maps.log[0], "batch of 1");
  assert.ok(
    maps.log.slice(2).every((l) => l.startsWith("delete")),
    maps.log.join(" | "),
  );
  assert.deepEqual(members(maps, 0), [0, 1]);
});
