// The map interface the control plane writes through: one implementation over libbpf map fds
// (libbpf-map.ts, libbpf-tables.ts) and one in memory (memory-map.ts, memory-tables.ts), so
// the reconciler is testable without root. Keys and values are raw bytes in the C layout
// (see codec.ts).
import { LbError } from "../lib/errors.js";

export interface MapBackend {
  /** The C map name (lb_*), used in every error. */
  readonly name: string;
  readonly keySize: number;
  /** sizeof the C value struct (one CPU's share for per-CPU maps). */
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  /**
   * Bytes a lookup returns and an update takes: valueSize, or for per-CPU maps
   * roundUp(valueSize, 8) x ncpus (CPU i's value at i x roundUp(valueSize, 8)).
   */
  readonly valueStride: number;
  /** A copy of the value, or undefined when the key is absent. */
  lookup(key: Uint8Array): Uint8Array | undefined;
  update(key: Uint8Array, value: Uint8Array): void;
  /** True if the key was present. Array maps refuse (LB_ERR_MAP). */
  delete(key: Uint8Array): boolean;
  /** count keys and count values back to back (values at valueStride). */
  updateBatch(keys: Uint8Array, values: Uint8Array, count: number): void;
  /** Every key present (array maps: every index). */
  keys(): Uint8Array[];
}

/**
 * The Maglev tables of lb_tables (array of maps): vip_id -> table of backend indices. replace()
 * is atomic for the data plane: it never sees a half-written table.
 */
export interface TableStore {
  replace(vipId: number, table: Uint32Array): void;
  /**
   * Several replace()s at once. Each slot still swaps atomically; the kernel waits one RCU grace
   * period per outer-map syscall (~13 ms measured on 6.18), so one batch for many VIPs is far
   * cheaper than one replace() each (startup, reload).
   */
  replaceMany(tables: ReadonlyMap<number, Uint32Array>): void;
  /** Removes the VIP's table (its traffic then drops as no_backend). Idempotent. */
  clear(vipId: number): void;
  read(vipId: number): Uint32Array | undefined;
}

/** Bytes of one CPU's value in a per-CPU map: the kernel rounds each up to 8. */
export function perCpuValueSize(valueSize: number): number {
  return (valueSize + 7) & ~7;
}

/** valueStride of a map. */
export function valueStrideOf(valueSize: number, perCpu: boolean, ncpus: number): number {
  return perCpu ? perCpuValueSize(valueSize) * ncpus : valueSize;
}

/** Throws LB_ERR_MAP naming the map unless buf is exactly `expected` bytes. */
export function checkSize(map: string, what: string, buf: Uint8Array, expected: number): void {
  if (buf.length !== expected) {
    throw new LbError("LB_ERR_MAP", `map ${map}: ${what} is ${buf.length} bytes, expected ${expected}`);
  }
}

/** Throws LB_ERR_MAP unless a batch holds count keys and count values. */
export function checkBatch(map: MapBackend, keys: Uint8Array, values: Uint8Array, count: number): void {
  if (!Number.isInteger(count) || count < 0) {
    throw new LbError("LB_ERR_MAP", `map ${map.name}: invalid batch count ${count}`);
  }
  checkSize(map.name, `batch of ${count} keys`, keys, count * map.keySize);
  checkSize(map.name, `batch of ${count} values`, values, count * map.valueStride);
}
