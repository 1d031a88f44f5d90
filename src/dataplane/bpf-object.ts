// A compiled BPF object (build/bpf/*.bpf.o) through libcaplance: open, size maps, load, hand
// out map and program fds. The fds belong to the object and die with close().
import { LbError } from "../lib/errors.js";
import { Errno, Native, nativeError } from "./native.js";

export interface BpfObjectOptions {
  /** max_entries overrides by map name, applied before load (e.g. { lb_flows: 4096 }). */
  readonly maxEntries?: Readonly<Record<string, number>>;
}

export class BpfObject {
  readonly path: string;
  private handle: number;
  private isLoaded = false;

  private constructor(path: string, handle: number) {
    this.path = path;
    this.handle = handle;
  }

  /** Opens (parses) the object; maps are sized now, created by load(). */
  static open(path: string, opts: BpfObjectOptions = {}): BpfObject {
    const native = Native.get();
    const h = native.objOpen(path);
    if (h < 0) {
      throw nativeError("LB_ERR_LOAD", `BPF object ${path}: cannot open`, h, {
        withLog: true,
        hint: h === -Errno.ENOENT ? "build it: npm run setup" : undefined,
      });
    }
    const obj = new BpfObject(path, h);
    try {
      for (const [map, n] of Object.entries(opts.maxEntries ?? {})) obj.setMaxEntries(map, n);
    } catch (err) {
      obj.close();
      throw err;
    }
    return obj;
  }

  get loaded(): boolean {
    return this.isLoaded;
  }

  /** Before load: a map's max_entries. */
  setMaxEntries(map: string, n: number): void {
    const ret = Native.get().objSetMaxEntries(this.live(), map, n);
    if (ret < 0) {
      const what = ret === -Errno.ENOENT ? `no map ${map}` : `map ${map}: cannot set max_entries ${n}`;
      throw nativeError("LB_ERR_MAP", `BPF object ${this.path}: ${what}`, ret, { withLog: true });
    }
  }

  /** Before load: pin every map at DIR/<name>, reusing a compatible map pinned there already. */
  setPinDir(dir: string): void {
    const ret = Native.get().objSetPinDir(this.live(), dir);
    if (ret < 0)
      throw nativeError("LB_ERR_LOAD", `BPF object ${this.path}: cannot pin its maps under ${dir}`, ret);
  }

  /** Creates the maps and loads the programs (the verifier runs here). */
  load(): void {
    const ret = Native.get().objLoad(this.live());
    if (ret < 0) {
      const hint =
        ret === -Errno.EPERM
          ? "loading BPF programs needs root (CAP_BPF, CAP_NET_ADMIN)"
          : ret === -Errno.EACCES || ret === -Errno.EINVAL
            ? "the verifier rejected a program: the log is in the error's detail"
            : undefined;
      throw nativeError("LB_ERR_LOAD", `BPF object ${this.path}: load failed`, ret, { withLog: true, hint });
    }
    this.isLoaded = true;
  }

  /** A map's fd (after load); LB_ERR_MAP naming the map when the object has none by that name. */
  mapFd(name: string): number {
    const fd = Native.get().objMapFd(this.loadedHandle(`map ${name}`), name);
    if (fd < 0) throw nativeError("LB_ERR_MAP", `BPF object ${this.path}: no map ${name}`, fd);
    return fd;
  }

  /** A program's fd (after load), by its C function name. */
  progFd(name: string): number {
    const fd = Native.get().objProgFd(this.loadedHandle(`program ${name}`), name);
    if (fd < 0) throw nativeError("LB_ERR_LOAD", `BPF object ${this.path}: no program ${name}`, fd);
    return fd;
  }

  /** Frees the object, its maps and programs (unless pinned or attached). Idempotent. */
  close(): void {
    if (this.handle === 0) return;
    Native.get().objClose(this.handle);
    this.handle = 0;
    this.isLoaded = false;
  }

  private live(): number {
    if (this.handle === 0) throw new LbError("LB_ERR_USAGE", `BPF object ${this.path} is closed`);
    return this.handle;
  }

  private loadedHandle(what: string): number {
    const h = this.live();
    if (!this.isLoaded) throw new LbError("LB_ERR_USAGE", `BPF object ${this.path}: ${what} before load()`);
    return h;
  }
}
