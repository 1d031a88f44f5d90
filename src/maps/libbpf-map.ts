// MapBackend over a kernel map fd (libcaplance). Sizes come from the kernel (map info), so a
// key or value of the wrong size is refused here, naming the map, before it reaches the kernel.
import { LbError } from "../lib/errors.js";
import { BpfMapType, Errno, Native, nativeError } from "../dataplane/native.js";
import type { MapInfo } from "../dataplane/native.js";
import { checkBatch, checkSize } from "./map-backend.js";
import type { MapBackend } from "./map-backend.js";

const PER_CPU_TYPES: ReadonlySet<number> = new Set([
  BpfMapType.PERCPU_HASH,
  BpfMapType.PERCPU_ARRAY,
  BpfMapType.LRU_PERCPU_HASH,
]);
const ARRAY_TYPES: ReadonlySet<number> = new Set([BpfMapType.ARRAY, BpfMapType.PERCPU_ARRAY]);

/** keys() reads this many keys per native call. */
const KEYS_CHUNK = 4096;

export interface LibbpfMapOptions {
  /** close() closes the fd (maps created or fetched by id); default false (object-owned). */
  readonly ownsFd?: boolean;
}

export class LibbpfMap implements MapBackend {
  readonly fd: number;
  readonly name: string;
  readonly type: number;
  readonly id: number;
  readonly flags: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly valueStride: number;
  readonly maxEntries: number;
  readonly perCpu: boolean;
  readonly isArray: boolean;
  private readonly native: Native;
  private readonly ownsFd: boolean;
  private closed = false;

  private constructor(fd: number, name: string, info: MapInfo, ownsFd: boolean) {
    this.native = Native.get();
    this.fd = fd;
    this.name = name;
    this.type = info.type;
    this.id = info.id;
    this.flags = info.flags;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.valueStride = info.valueStride;
    this.maxEntries = info.maxEntries;
    this.perCpu = PER_CPU_TYPES.has(info.type);
    this.isArray = ARRAY_TYPES.has(info.type);
    this.ownsFd = ownsFd;
  }

  /** Wraps a map fd; `name` is used in errors (the kernel truncates names to 15 bytes). */
  static fromFd(fd: number, name: string, opts: LibbpfMapOptions = {}): LibbpfMap {
    return new LibbpfMap(fd, name, Native.get().mapInfo(fd, `map ${name}`), opts.ownsFd ?? false);
  }

  /** Creates a map (owning its fd). innerMapFd: the template of a map-in-map. */
  static create(opts: {
    readonly type: number;
    readonly name: string;
    readonly keySize: number;
    readonly valueSize: number;
    readonly maxEntries: number;
    readonly flags?: number;
    readonly innerMapFd?: number;
  }): LibbpfMap {
    const native = Native.get();
    const fd = native.mapCreate(
      opts.type,
      opts.name,
      opts.keySize,
      opts.valueSize,
      opts.maxEntries,
      opts.flags ?? 0,
      opts.innerMapFd ?? -1,
    );
    if (fd < 0) {
      const hint = fd === -Errno.EPERM ? "creating BPF maps needs root (CAP_BPF)" : undefined;
      throw nativeError("LB_ERR_MAP", `map ${opts.name}: cannot create`, fd, { withLog: true, hint });
    }
    return LibbpfMap.fromFd(fd, opts.name, { ownsFd: true });
  }

  lookup(key: Uint8Array): Uint8Array | undefined {
    checkSize(this.name, "key", key, this.keySize);
    const out = new Uint8Array(this.valueStride);
    const ret = this.native.mapLookup(this.fd, key, out);
    if (ret === 0) return out;
    if (ret === -Errno.ENOENT) return undefined;
    throw this.error("lookup", ret);
  }

  update(key: Uint8Array, value: Uint8Array): void {
    checkSize(this.name, "key", key, this.keySize);
    checkSize(this.name, "value", value, this.valueStride);
    const ret = this.native.mapUpdate(this.fd, key, value);
    if (ret < 0) throw this.error("update", ret);
  }

  delete(key: Uint8Array): boolean {
    checkSize(this.name, "key", key, this.keySize);
    if (this.isArray) throw new LbError("LB_ERR_MAP", `map ${this.name}: array entries cannot be deleted`);
    const ret = this.native.mapDelete(this.fd, key);
    if (ret === 0) return true;
    if (ret === -Errno.ENOENT) return false;
    throw this.error("delete", ret);
  }

  updateBatch(keys: Uint8Array, values: Uint8Array, count: number): void {
    checkBatch(this, keys, values, count);
    const ret = this.native.mapUpdateBatch(this.fd, keys, values, count);
    if (ret < 0) throw this.error(`batch update of ${count}`, ret);
  }

  keys(): Uint8Array[] {
    const result: Uint8Array[] = [];
    const buf = new Uint8Array(KEYS_CHUNK * this.keySize);
    let prev: Uint8Array | undefined;
    for (;;) {
      const n = this.native.mapKeys(this.fd, prev, buf, this.keySize, KEYS_CHUNK);
      if (n < 0) throw this.error("key walk", n);
      for (let i = 0; i < n; i++) result.push(buf.slice(i * this.keySize, (i + 1) * this.keySize));
      if (n < KEYS_CHUNK) return result;
      prev = result[result.length - 1];
    }
  }

  /** Closes the fd if this wrapper owns it. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsFd) this.native.close(this.fd);
  }

  private error(op: string, ret: number): LbError {
    const hint =
      ret === -Errno.E2BIG
        ? `the map is full (max_entries ${this.maxEntries}) or the index is out of range`
        : ret === -Errno.EPERM
          ? "map access needs root (CAP_BPF)"
          : undefined;
    return nativeError("LB_ERR_MAP", `map ${this.name}: ${op} failed`, ret, { hint });
  }
}
