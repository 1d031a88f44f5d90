// In-memory MapBackend with the kernel's semantics where the control plane can observe them:
// hash maps refuse a new key when full (E2BIG) unless LRU (then the least recently used entry
// goes); array maps have every index 0..max-1, zero-filled, and refuse delete.
import { Errno, LbError } from "../lib/errors.js";
import { checkBatch, checkSize, valueStrideOf } from "./map-backend.js";
import type { MapBackend } from "./map-backend.js";

export interface MemoryMapOptions {
  readonly name: string;
  readonly type: "hash" | "array";
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  /** Hash only: evict the least recently used entry (lookup and update count as use). */
  readonly lru?: boolean;
  /** Per-CPU values, one per CPU of `ncpus` (default 1). */
  readonly perCpu?: boolean;
  readonly ncpus?: number;
}

function hex(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("hex");
}

export class MemoryMap implements MapBackend {
  readonly name: string;
  readonly type: "hash" | "array";
  readonly keySize: number;
  readonly valueSize: number;
  readonly valueStride: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  readonly lru: boolean;
  /** Hash: hex(key) -> [key, value], in recency order when LRU (oldest first). */
  private readonly entries = new Map<string, [Uint8Array, Uint8Array]>();
  /** Array: the values back to back (valueStride each). */
  private readonly slots: Uint8Array | undefined;

  constructor(opts: MemoryMapOptions) {
    this.name = opts.name;
    this.type = opts.type;
    this.keySize = opts.keySize;
    this.valueSize = opts.valueSize;
    this.maxEntries = opts.maxEntries;
    this.perCpu = opts.perCpu ?? false;
    this.lru = opts.lru ?? false;
    this.valueStride = valueStrideOf(opts.valueSize, this.perCpu, opts.ncpus ?? 1);
    if (opts.type === "array") {
      if (opts.keySize !== 4) throw new LbError("LB_ERR_MAP", `map ${opts.name}: array keys are 4 bytes`);
      if (this.lru) throw new LbError("LB_ERR_MAP", `map ${opts.name}: an array cannot be LRU`);
      this.slots = new Uint8Array(opts.maxEntries * this.valueStride);
    }
  }

  /** Entries present (array: max entries). */
  get size(): number {
    return this.slots === undefined ? this.entries.size : this.maxEntries;
  }

  lookup(key: Uint8Array): Uint8Array | undefined {
    checkSize(this.name, "key", key, this.keySize);
    if (this.slots !== undefined) {
      const i = this.index(key);
      return i === undefined ? undefined : this.slots.slice(i * this.valueStride, (i + 1) * this.valueStride);
    }
    const k = hex(key);
    const entry = this.entries.get(k);
    if (entry === undefined) return undefined;
    if (this.lru) this.touch(k, entry);
    return entry[1].slice();
  }

  update(key: Uint8Array, value: Uint8Array): void {
    checkSize(this.name, "key", key, this.keySize);
    checkSize(this.name, "value", value, this.valueStride);
    if (this.slots !== undefined) {
      const i = this.index(key);
      if (i === undefined) {
        throw new LbError(
          "LB_ERR_MAP",
          `map ${this.name}: index out of range (max_entries ${this.maxEntries})`,
          {
            errno: Errno.E2BIG, // as the kernel
          },
        );
      }
      this.slots.set(value, i * this.valueStride);
      return;
    }
    const k = hex(key);
    const entry = this.entries.get(k);
    if (entry !== undefined) {
      entry[1] = value.slice();
      if (this.lru) this.touch(k, entry);
      return;
    }
    if (this.entries.size >= this.maxEntries) {
      if (!this.lru) {
        throw new LbError("LB_ERR_MAP", `map ${this.name}: full (max_entries ${this.maxEntries})`, {
          errno: Errno.E2BIG,
        });
      }
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(k, [key.slice(), value.slice()]);
  }

  delete(key: Uint8Array): boolean {
    checkSize(this.name, "key", key, this.keySize);
    if (this.slots !== undefined) {
      throw new LbError("LB_ERR_MAP", `map ${this.name}: array entries cannot be deleted`, {
        errno: Errno.EINVAL,
      });
    }
    return this.entries.delete(hex(key));
  }

  updateBatch(keys: Uint8Array, values: Uint8Array, count: number): void {
    checkBatch(this, keys, values, count);
    for (let i = 0; i < count; i++) {
      this.update(
        keys.subarray(i * this.keySize, (i + 1) * this.keySize),
        values.subarray(i * this.valueStride, (i + 1) * this.valueStride),
      );
    }
  }

  keys(): Uint8Array[] {
    if (this.slots !== undefined) {
      const keys: Uint8Array[] = [];
      for (let i = 0; i < this.maxEntries; i++) {
        const key = new Uint8Array(4);
        new DataView(key.buffer).setUint32(0, i, true);
        keys.push(key);
      }
      return keys;
    }
    return [...this.entries.values()].map(([key]) => key.slice());
  }

  /** Array index of a 4-byte key, undefined when out of range. */
  private index(key: Uint8Array): number | undefined {
    const i = new DataView(key.buffer, key.byteOffset, 4).getUint32(0, true);
    return i < this.maxEntries ? i : undefined;
  }

  private touch(k: string, entry: [Uint8Array, Uint8Array]): void {
    this.entries.delete(k);
    this.entries.set(k, entry);
  }
}
