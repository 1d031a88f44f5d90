// Typed access to the balancer's maps (bpf/maps.h) over MapBackend/TableStore: real ones from a
// loaded BpfObject, or in-memory ones with the same sizes for tests without root.
import type { BpfObject } from "../dataplane/bpf-object.js";
import { Native } from "../dataplane/native.js";
import { LbError } from "../lib/errors.js";
import {
  BackendLayout,
  FlowKeyLayout,
  FlowLayout,
  LB_COUNTERS_SIZE,
  LB_FLOW_TABLE_SIZE,
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
import {
  decodeBackend,
  decodeCounter,
  decodeFlow,
  decodeSettings,
  decodeTraffic,
  decodeVip,
  decodeVipAddr,
  encodeBackend,
  encodeEmptyBackend,
  encodeFlow,
  encodeFlowKey,
  encodeSettings,
  encodeU32Key,
  encodeVip,
  encodeVipAddr,
  encodeVipAddrKey,
  encodeVipKey,
} from "./codec.js";
import type {
  Backend,
  Flow,
  FlowKey,
  Settings,
  Traffic,
  Vip,
  VipAddrKey,
  VipAddrValue,
  VipKey,
} from "./codec.js";
import { LibbpfMap } from "./libbpf-map.js";
import { LibbpfTables } from "./libbpf-tables.js";
import type { MapBackend, TableStore } from "./map-backend.js";
import { MemoryMap } from "./memory-map.js";
import { MemoryTables } from "./memory-tables.js";

export interface BalancerMapSet {
  readonly settings: MapBackend;
  readonly vipAddrs: MapBackend;
  readonly vips: MapBackend;
  readonly backends: MapBackend;
  readonly flows: MapBackend;
  readonly vipStats: MapBackend;
  readonly backendStats: MapBackend;
  readonly counters: MapBackend;
  readonly tables: TableStore;
}

export interface InMemoryOptions {
  /** CPUs of the per-CPU maps (default 1). */
  readonly ncpus?: number;
  /** lb_flows max entries (default LB_FLOW_TABLE_SIZE). */
  readonly flowTableSize?: number;
}

/** Key and value size each map must have: the layouts of abi.ts. */
const EXPECTED: Readonly<
  Record<keyof Omit<BalancerMapSet, "tables">, { map: string; key: number; value: number }>
> = {
  settings: { map: LB_MAP_SETTINGS, key: 4, value: SettingsLayout.size },
  vipAddrs: { map: LB_MAP_VIP_ADDRS, key: VipAddrKeyLayout.size, value: VipAddrLayout.size },
  vips: { map: LB_MAP_VIPS, key: VipKeyLayout.size, value: VipLayout.size },
  backends: { map: LB_MAP_BACKENDS, key: 4, value: BackendLayout.size },
  flows: { map: LB_MAP_FLOWS, key: FlowKeyLayout.size, value: FlowLayout.size },
  vipStats: { map: LB_MAP_VIP_STATS, key: 4, value: TrafficLayout.size },
  backendStats: { map: LB_MAP_BACKEND_STATS, key: 4, value: TrafficLayout.size },
  counters: { map: LB_MAP_COUNTERS, key: 4, value: 8 },
};

const ZERO_KEY = encodeU32Key(0);

export class BalancerMaps {
  constructor(readonly maps: BalancerMapSet) {}

  /** The maps of a loaded balancer object, checked against the layouts of abi.ts. */
  static fromObject(obj: BpfObject): BalancerMaps {
    const get = (field: keyof typeof EXPECTED): LibbpfMap => {
      const want = EXPECTED[field];
      const map = LibbpfMap.fromFd(obj.mapFd(want.map), want.map);
      if (map.keySize !== want.key || map.valueSize !== want.value) {
        throw new LbError(
          "LB_ERR_MAP",
          `map ${want.map} in ${obj.path}: key/value ${map.keySize}/${map.valueSize} bytes, src/maps/abi.ts expects ${want.key}/${want.value}`,
          { hint: "the object and the control plane disagree on bpf/lb_abi.h: rebuild (npm run build)" },
        );
      }
      return map;
    };
    const tables = LibbpfMap.fromFd(obj.mapFd(LB_MAP_TABLES), LB_MAP_TABLES);
    return new BalancerMaps({
      settings: get("settings"),
      vipAddrs: get("vipAddrs"),
      vips: get("vips"),
      backends: get("backends"),
      flows: get("flows"),
      vipStats: get("vipStats"),
      backendStats: get("backendStats"),
      counters: get("counters"),
      tables: new LibbpfTables(tables),
    });
  }

  /** In-memory maps with the C maps' sizes and semantics (flows LRU, stats per-CPU). */
  static inMemory(opts: InMemoryOptions = {}): BalancerMaps {
    const ncpus = opts.ncpus ?? 1;
    const array = (field: keyof typeof EXPECTED, maxEntries: number, perCpu = false): MemoryMap =>
      new MemoryMap({
        name: EXPECTED[field].map,
        type: "array",
        keySize: 4,
        valueSize: EXPECTED[field].value,
        maxEntries,
        perCpu,
        ncpus,
      });
    const hash = (field: keyof typeof EXPECTED, maxEntries: number, lru = false): MemoryMap =>
      new MemoryMap({
        name: EXPECTED[field].map,
        type: "hash",
        keySize: EXPECTED[field].key,
        valueSize: EXPECTED[field].value,
        maxEntries,
        lru,
      });
    return new BalancerMaps({
      settings: array("settings", 1),
      vipAddrs: hash("vipAddrs", LB_MAX_VIPS),
      vips: hash("vips", LB_MAX_VIPS),
      backends: array("backends", LB_MAX_BACKENDS),
      flows: hash("flows", opts.flowTableSize ?? LB_FLOW_TABLE_SIZE, true),
      vipStats: array("vipStats", LB_MAX_VIPS, true),
      backendStats: array("backendStats", LB_MAX_BACKENDS, true),
      counters: array("counters", LB_COUNTERS_SIZE, true),
      tables: new MemoryTables(LB_MAP_TABLES, LB_MAX_VIPS),
    });
  }

  /** Possible CPUs of this machine (what fromObject's per-CPU values hold). */
  static hostCpus(): number {
    return Native.get().numPossibleCpus();
  }

  // ---- lb_settings

  setSettings(s: Settings): void {
    this.maps.settings.update(ZERO_KEY, encodeSettings(s));
  }

  getSettings(): Settings {
    const b = this.maps.settings.lookup(ZERO_KEY);
    if (b === undefined) throw new LbError("LB_ERR_MAP", `map ${this.maps.settings.name}: no entry 0`);
    return decodeSettings(b);
  }

  // ---- lb_vip_addrs

  putVipAddr(key: VipAddrKey, value: VipAddrValue): void {
    this.maps.vipAddrs.update(encodeVipAddrKey(key), encodeVipAddr(value));
  }

  getVipAddr(key: VipAddrKey): VipAddrValue | undefined {
    const b = this.maps.vipAddrs.lookup(encodeVipAddrKey(key));
    return b === undefined ? undefined : decodeVipAddr(b);
  }

  deleteVipAddr(key: VipAddrKey): boolean {
    return this.maps.vipAddrs.delete(encodeVipAddrKey(key));
  }

  // ---- lb_vips

  putVip(key: VipKey, vip: Vip): void {
    this.checkIndex(this.maps.vipStats, "VIP id", vip.vipId);
    this.maps.vips.update(encodeVipKey(key), encodeVip(vip));
  }

  getVip(key: VipKey): Vip | undefined {
    const b = this.maps.vips.lookup(encodeVipKey(key));
    return b === undefined ? undefined : decodeVip(b);
  }

  deleteVip(key: VipKey): boolean {
    return this.maps.vips.delete(encodeVipKey(key));
  }

  // ---- lb_backends (array: a deleted slot has family 0)

  putBackend(index: number, backend: Backend): void {
    this.checkIndex(this.maps.backends, "backend index", index);
    this.maps.backends.update(encodeU32Key(index), encodeBackend(backend));
  }

  getBackend(index: number): Backend | undefined {
    this.checkIndex(this.maps.backends, "backend index", index);
    const b = this.maps.backends.lookup(encodeU32Key(index));
    return b === undefined ? undefined : decodeBackend(b);
  }

  deleteBackend(index: number): void {
    this.checkIndex(this.maps.backends, "backend index", index);
    this.maps.backends.update(encodeU32Key(index), encodeEmptyBackend());
  }

  // ---- lb_tables

  replaceTable(vipId: number, table: Uint32Array): void {
    this.maps.tables.replace(vipId, table);
  }

  /** Many tables with one swap syscall (see TableStore.replaceMany). */
  replaceTables(tables: ReadonlyMap<number, Uint32Array>): void {
    this.maps.tables.replaceMany(tables);
  }

  clearTable(vipId: number): void {
    this.maps.tables.clear(vipId);
  }

  readTable(vipId: number): Uint32Array | undefined {
    return this.maps.tables.read(vipId);
  }

  // ---- lb_flows

  getFlow(key: FlowKey): Flow | undefined {
    const b = this.maps.flows.lookup(encodeFlowKey(key));
    return b === undefined ? undefined : decodeFlow(b);
  }

  putFlow(key: FlowKey, flow: Flow): void {
    this.maps.flows.update(encodeFlowKey(key), encodeFlow(flow));
  }

  deleteFlow(key: FlowKey): boolean {
    return this.maps.flows.delete(encodeFlowKey(key));
  }

  // ---- counters and stats (per-CPU, summed)

  /** lb_counters summed over CPUs, indexed by LbCounter / LB_C_DROP_BASE + reason. */
  readCounters(): bigint[] {
    const counters = this.maps.counters;
    const out: bigint[] = [];
    for (let i = 0; i < counters.maxEntries; i++) {
      const b = counters.lookup(encodeU32Key(i));
      out.push(b === undefined ? 0n : decodeCounter(b));
    }
    return out;
  }

  readVipStats(vipId: number): Traffic {
    return this.readTraffic(this.maps.vipStats, "VIP id", vipId);
  }

  readBackendStats(index: number): Traffic {
    return this.readTraffic(this.maps.backendStats, "backend index", index);
  }

  /** Zeroes a VIP's traffic on every CPU (before a VIP id is reused). */
  resetVipStats(vipId: number): void {
    this.resetTraffic(this.maps.vipStats, "VIP id", vipId);
  }

  /** Zeroes a backend's traffic on every CPU (before a backend index is reused). */
  resetBackendStats(index: number): void {
    this.resetTraffic(this.maps.backendStats, "backend index", index);
  }

  private readTraffic(map: MapBackend, what: string, index: number): Traffic {
    this.checkIndex(map, what, index);
    const b = map.lookup(encodeU32Key(index));
    return b === undefined ? { packets: 0n, bytes: 0n } : decodeTraffic(b);
  }

  private resetTraffic(map: MapBackend, what: string, index: number): void {
    this.checkIndex(map, what, index);
    map.update(encodeU32Key(index), new Uint8Array(map.valueStride));
  }

  private checkIndex(map: MapBackend, what: string, index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= map.maxEntries) {
      throw new LbError(
        "LB_ERR_MAP",
        `map ${map.name}: ${what} ${index} out of range (max_entries ${map.maxEntries})`,
      );
    }
  }
}
