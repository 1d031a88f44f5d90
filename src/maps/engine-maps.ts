// The balancer's maps in the userspace engine (native/lb_engine.h) behind MapBackend/TableStore,
// so BalancerMaps, the reconciler and the packet tests drive the NFQUEUE data path unchanged.
// Control-written maps are mirrored here (lookups, and a full replay into a restarted worker);
// data-plane-written ones (flows, stats, counters) are read from the engine.
import { LbError } from "../lib/errors.js";
import {
  BackendLayout,
  FlowKeyLayout,
  FlowLayout,
  LB_COUNTERS_SIZE,
  LB_MAP_BACKENDS,
  LB_MAP_BACKEND_STATS,
  LB_MAP_COUNTERS,
  LB_MAP_FLOWS,
  LB_MAP_SETTINGS,
  LB_MAP_TABLES,
  LB_MAP_VIPS,
  LB_MAP_VIP_ADDRS,
  LB_MAP_VIP_STATS,
  LB_MAX_BACKENDS,
  LB_MAX_VIPS,
  SettingsLayout,
  TrafficLayout,
  VipAddrKeyLayout,
  VipAddrLayout,
  VipKeyLayout,
  VipLayout,
} from "./abi.js";
import type { BalancerMapSet } from "./balancer-maps.js";
import { checkBatch, checkSize, valueStrideOf, type MapBackend, type TableStore } from "./map-backend.js";
import { MemoryMap } from "./memory-map.js";
import { MemoryTables } from "./memory-tables.js";

/** enum lb_engine_map of native/lb_engine.h. */
export const EngineMapId = {
  SETTINGS: 0,
  VIP_ADDRS: 1,
  VIPS: 2,
  BACKENDS: 3,
  FLOWS: 4,
  VIP_STATS: 5,
  BACKEND_STATS: 6,
  COUNTERS: 7,
} as const;
export type EngineMapId = (typeof EngineMapId)[keyof typeof EngineMapId];

/** Where the maps' writes go and the data plane's values come from. */
export interface EngineSink {
  /** Runners (packet threads): the "CPUs" of the stats maps' per-runner values. */
  readonly runners: number;
  update(map: EngineMapId, keys: Uint8Array, values: Uint8Array, count: number): void;
  /** True if the key was present. */
  delete(map: EngineMapId, key: Uint8Array): boolean;
  /** Flows (runner 0's table) and stats (every runner's value back to back). */
  lookup(map: EngineMapId, key: Uint8Array): Uint8Array | undefined;
  /** undefined: remove the VIP's table. */
  table(vipId: number, table: Uint32Array | undefined): void;
}

/** A control-written map: mirrored in memory, every write forwarded to the engine. */
class MirroredMap implements MapBackend {
  readonly perCpu = false;
  constructor(
    private readonly mirror: MemoryMap,
    private readonly id: EngineMapId,
    private readonly sink: () => EngineSink,
  ) {}
  get name(): string {
    return this.mirror.name;
  }
  get keySize(): number {
    return this.mirror.keySize;
  }
  get valueSize(): number {
    return this.mirror.valueSize;
  }
  get valueStride(): number {
    return this.mirror.valueStride;
  }
  get maxEntries(): number {
    return this.mirror.maxEntries;
  }
  lookup(key: Uint8Array): Uint8Array | undefined {
    return this.mirror.lookup(key);
  }
  update(key: Uint8Array, value: Uint8Array): void {
    this.mirror.update(key, value); // checks sizes and capacity first
    this.sink().update(this.id, key, value, 1);
  }
  delete(key: Uint8Array): boolean {
    const present = this.mirror.delete(key);
    if (present) this.sink().delete(this.id, key);
    return present;
  }
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number): void {
    checkBatch(this, keys, values, count);
    this.mirror.updateBatch(keys, values, count);
    this.sink().update(this.id, keys, values, count);
  }
  keys(): Uint8Array[] {
    return this.mirror.keys();
  }
  /** Every entry into a fresh engine (array maps: only slots that are not all zero). */
  replay(sink: EngineSink): void {
    for (const key of this.mirror.keys()) {
      const value = this.mirror.lookup(key);
      if (value === undefined || (this.mirror.type === "array" && value.every((b) => b === 0))) continue;
      sink.update(this.id, key, value, 1);
    }
  }
}

/** A map the data plane writes (flows, stats): read from the engine. */
class EngineOwnedMap implements MapBackend {
  readonly valueStride: number;
  constructor(
    readonly name: string,
    private readonly id: EngineMapId,
    readonly keySize: number,
    readonly valueSize: number,
    readonly maxEntries: number,
    readonly perCpu: boolean,
    private readonly sink: () => EngineSink,
  ) {
    this.valueStride = valueStrideOf(valueSize, perCpu, perCpu ? sink().runners : 1);
  }
  lookup(key: Uint8Array): Uint8Array | undefined {
    checkSize(this.name, "key", key, this.keySize);
    return this.sink().lookup(this.id, key);
  }
  update(key: Uint8Array, value: Uint8Array): void {
    checkSize(this.name, "key", key, this.keySize);
    checkSize(this.name, "value", value, this.valueStride);
    this.sink().update(this.id, key, value, 1);
  }
  delete(key: Uint8Array): boolean {
    if (this.perCpu) throw new LbError("LB_ERR_MAP", `map ${this.name}: array entries cannot be deleted`);
    return this.sink().delete(this.id, key);
  }
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number): void {
    checkBatch(this, keys, values, count);
    this.sink().update(this.id, keys, values, count);
  }
  keys(): Uint8Array[] {
    if (!this.perCpu)
      throw new LbError("LB_ERR_UNSUPPORTED", `map ${this.name}: the engine's flow table cannot be listed`);
    return Array.from({ length: this.maxEntries }, (_, i) => {
      const key = new Uint8Array(4);
      new DataView(key.buffer).setUint32(0, i, true);
      return key;
    });
  }
}

class EngineTables implements TableStore {
  readonly mirror = new MemoryTables(LB_MAP_TABLES, LB_MAX_VIPS);
  constructor(private readonly sink: () => EngineSink) {}
  replace(vipId: number, table: Uint32Array): void {
    this.mirror.replace(vipId, table);
    this.sink().table(vipId, table);
  }
  replaceMany(tables: ReadonlyMap<number, Uint32Array>): void {
    for (const [vipId, table] of tables) this.replace(vipId, table);
  }
  clear(vipId: number): void {
    this.mirror.clear(vipId);
    this.sink().table(vipId, undefined);
  }
  read(vipId: number): Uint32Array | undefined {
    return this.mirror.read(vipId);
  }
  replay(sink: EngineSink): void {
    for (const vipId of this.mirror.vipIds()) {
      const table = this.mirror.read(vipId);
      if (table) sink.table(vipId, table);
    }
  }
}

/**
 * The map set of one engine. The sink can change (a restarted worker): replayInto() pushes the
 * mirrored state into the new one, after which writes go there.
 */
export class EngineMapSet implements BalancerMapSet {
  readonly settings: MapBackend;
  readonly vipAddrs: MapBackend;
  readonly vips: MapBackend;
  readonly backends: MapBackend;
  readonly flows: MapBackend;
  readonly vipStats: MapBackend;
  readonly backendStats: MapBackend;
  readonly counters: MapBackend;
  readonly tables: TableStore;
  private readonly mirrored: MirroredMap[];
  private readonly engineTables: EngineTables;

  constructor(
    private sink: EngineSink,
    flowTableSize: number,
  ) {
    const current = (): EngineSink => this.sink;
    const mirror = (
      id: EngineMapId,
      name: string,
      type: "hash" | "array",
      keySize: number,
      valueSize: number,
      maxEntries: number,
    ): MirroredMap =>
      new MirroredMap(new MemoryMap({ name, type, keySize, valueSize, maxEntries }), id, current);
    const settings = mirror(EngineMapId.SETTINGS, LB_MAP_SETTINGS, "array", 4, SettingsLayout.size, 1);
    const vipAddrs = mirror(
      EngineMapId.VIP_ADDRS,
      LB_MAP_VIP_ADDRS,
      "hash",
      VipAddrKeyLayout.size,
      VipAddrLayout.size,
      LB_MAX_VIPS,
    );
    const vips = mirror(
      EngineMapId.VIPS,
      LB_MAP_VIPS,
      "hash",
      VipKeyLayout.size,
      VipLayout.size,
      LB_MAX_VIPS,
    );
    const backends = mirror(
      EngineMapId.BACKENDS,
      LB_MAP_BACKENDS,
      "array",
      4,
      BackendLayout.size,
      LB_MAX_BACKENDS,
    );
    this.settings = settings;
    this.vipAddrs = vipAddrs;
    this.vips = vips;
    this.backends = backends;
    this.mirrored = [settings, vipAddrs, vips, backends];
    this.flows = new EngineOwnedMap(
      LB_MAP_FLOWS,
      EngineMapId.FLOWS,
      FlowKeyLayout.size,
      FlowLayout.size,
      flowTableSize,
      false,
      current,
    );
    const stats = (id: EngineMapId, name: string, valueSize: number, maxEntries: number): MapBackend =>
      new EngineOwnedMap(name, id, 4, valueSize, maxEntries, true, current);
    this.vipStats = stats(EngineMapId.VIP_STATS, LB_MAP_VIP_STATS, TrafficLayout.size, LB_MAX_VIPS);
    this.backendStats = stats(
      EngineMapId.BACKEND_STATS,
      LB_MAP_BACKEND_STATS,
      TrafficLayout.size,
      LB_MAX_BACKENDS,
    );
    this.counters = stats(EngineMapId.COUNTERS, LB_MAP_COUNTERS, 8, LB_COUNTERS_SIZE);
    this.engineTables = new EngineTables(current);
    this.tables = this.engineTables;
  }

  /** Switches to a fresh engine (same runner count) and writes the whole mirrored state into it. */
  replayInto(sink: EngineSink): void {
    if (sink.runners !== this.sink.runners)
      throw new LbError("LB_ERR_MAP", `engine runners changed (${this.sink.runners} -> ${sink.runners})`);
    // Settings first, tables before the VIPs that lead to them: the order the reconciler uses.
    const [settings, vipAddrs, vips, backends] = this.mirrored;
    for (const map of [settings, backends]) map?.replay(sink);
    this.engineTables.replay(sink);
    for (const map of [vips, vipAddrs]) map?.replay(sink);
    this.sink = sink;
  }
}
