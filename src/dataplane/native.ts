// The binding to libcaplance (native/shim.h) through ffi-rs: opened once, one typed method per
// C function. Methods mirror C: they return >= 0 or -errno; the few that return a structure
// throw LbError instead. nativeError() turns a -errno into an LbError naming the object.
//
// ffi-rs costs: a call is a few microseconds, and (measured with ffi-rs 1.3.7) a call whose
// parameters include no byte buffer leaks ~230 bytes while one with a buffer does not. So hot
// paths (map operations) take fds and buffers only, never strings, and scalar-only calls
// (close, fd_by_id, attach) stay off loops; numPossibleCpus() is cached.
import { DataType, define, open } from "ffi-rs";

import { Errno, LbError, errnoName } from "../lib/errors.js";
import type { LbErrorCode } from "../lib/errors.js";
import { nativeLibraryPath } from "../lib/paths.js";

const LIBRARY = "libcaplance";

const I32 = DataType.I32;
const U32 = DataType.U32;
const STR = DataType.String;
const BUF = DataType.U8Array;

/** Parameter types of every shim function (shim.h), all returning int. */
const SIGNATURES = {
  lb_last_error: [BUF, U32],
  lb_clear_error: [],
  lb_set_log_level: [I32],
  lb_obj_open: [STR],
  lb_obj_set_max_entries: [I32, STR, U32],
  lb_obj_load: [I32],
  lb_obj_close: [I32],
  lb_obj_map_fd: [I32, STR],
  lb_obj_prog_fd: [I32, STR],
  lb_map_create: [U32, STR, U32, U32, U32, U32, I32],
  lb_array_map_create: [STR, U32, U32],
  lb_array_map_write: [I32, BUF, U32, U32],
  lb_array_map_read: [I32, BUF, U32, U32],
  lb_map_update: [I32, BUF, BUF, U32],
  lb_map_lookup: [I32, BUF, BUF],
  lb_map_delete: [I32, BUF],
  lb_map_get_next_key: [I32, BUF, I32, BUF],
  lb_map_keys: [I32, BUF, I32, BUF, U32, U32],
  lb_map_lookup_many: [I32, BUF, BUF, U32],
  lb_map_update_batch: [I32, BUF, BUF, U32, U32],
  lb_map_info: [I32, BUF],
  lb_map_fd_by_id: [U32],
  lb_num_possible_cpus: [],
  lb_close: [I32],
  lb_xdp_attach: [I32, I32, U32],
  lb_xdp_detach: [I32, U32],
  lb_xdp_query: [I32, U32, BUF],
  lb_obj_pin: [I32, STR],
  lb_obj_get: [STR],
  lb_unpin: [STR],
  lb_obj_set_pin_dir: [I32, STR],
  lb_xdp_link_create: [I32, I32, U32],
  lb_link_update: [I32, I32],
  lb_link_info: [I32, BUF],
  lb_prog_tag: [I32, U32, BUF],
  lb_prog_test_run: [I32, BUF, U32, BUF, U32, U32, U32, BUF],
  lb_abi_sizeof: [STR],
  lb_abi_offsetof: [STR, STR],
  lb_abi_const: [STR, BUF],
  lb_abi_string: [STR, BUF, U32],
  lb_abi_name: [I32, U32, BUF, U32],
  lb_abi_selfcheck: [],
  lb_flow_hash: [BUF, U32, BUF],
  lb_eng_create: [U32],
  lb_eng_destroy: [I32],
  lb_eng_update: [I32, I32, BUF, BUF, U32],
  lb_eng_delete: [I32, I32, BUF],
  lb_eng_lookup: [I32, I32, BUF, BUF],
  lb_eng_table: [I32, U32, BUF, U32],
  lb_eng_read_table: [I32, U32, BUF, U32],
  lb_eng_decide: [I32, BUF, U32, U32, BUF, U32, BUF],
  lb_probe_socket: [I32],
  lb_probe_send: [I32, BUF, U32, U32, BUF, U32],
  lb_tun_decide_ffi: [BUF, U32, BUF, U32],
  lb_tun_reason_name_ffi: [I32, BUF, U32],
} as const satisfies Record<string, readonly DataType[]>;

type ShimName = keyof typeof SIGNATURES;
type ShimFn = (args: unknown[]) => number;

/** bpf_map_type values used by Caplance (linux/bpf.h). */
export const BpfMapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
} as const;

/** Map creation and update flags (linux/bpf.h). */
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;
export const BPF_F_NO_PREALLOC = 1 << 0;
export const BPF_F_INNER_MAP = 1 << 12;
export const BPF_F_MMAPABLE = 1 << 10;

/** XDP attach flags (linux/if_link.h). */
export const XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0;
export const XDP_FLAGS_SKB_MODE = 1 << 1;
export const XDP_FLAGS_DRV_MODE = 1 << 2;
export const XDP_FLAGS_HW_MODE = 1 << 3;
export const XDP_FLAGS_REPLACE = 1 << 4;

export interface MapInfo {
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly id: number;
  /** Bytes one lookup writes: valueSize, or roundUp(valueSize, 8) x possible CPUs when per-CPU. */
  readonly valueStride: number;
}

export interface XdpQueryResult {
  /** The program the query flags select (bpf_xdp_query_id semantics); 0 = none. */
  readonly progId: number;
  readonly drvProgId: number;
  readonly skbProgId: number;
  /** XDP_ATTACHED_*: 0 none, 1 drv, 2 skb, 3 hw, 4 multi. */
  readonly attachMode: number;
}

export interface TestRunResult {
  /** The program's return value (XDP action). */
  readonly retval: number;
  /** The frame after the program ran (data_size_out bytes). */
  readonly data: Uint8Array;
  /** Average run time per repetition, in ns. */
  readonly durationNs: number;
}

export { Errno };

const EMPTY_KEY = new Uint8Array(1); // ffi-rs hands an empty buffer to C as an invalid pointer

/** libcaplance, opened once per process. */
export class Native {
  private static instance: Native | undefined;

  readonly path: string;
  private readonly fn: Readonly<Record<ShimName, ShimFn>>;
  private cpus: number | undefined;

  private constructor(path: string) {
    this.path = path;
    try {
      open({ library: LIBRARY, path });
    } catch (cause) {
      throw new LbError("LB_ERR_NATIVE", `cannot open native library ${path}`, {
        hint: "build it: npm run setup",
        cause,
      });
    }
    const specs: Record<string, { library: string; retType: DataType; paramsType: DataType[] }> = {};
    for (const [name, params] of Object.entries(SIGNATURES)) {
      specs[name] = { library: LIBRARY, retType: DataType.I32, paramsType: [...params] };
    }
    this.fn = define(specs) as unknown as Record<ShimName, ShimFn>;
  }

  /** The process-wide instance; the first call opens the library. */
  static get(): Native {
    Native.instance ??= new Native(nativeLibraryPath());
    return Native.instance;
  }

  // ---- diagnostics

  /** libbpf's and the shim's messages since the last clear (see shim.h). */
  lastError(): string {
    const probe = new Uint8Array(4096);
    const len = this.fn.lb_last_error([probe, probe.length]);
    const buf = len < probe.length ? probe : new Uint8Array(len + 1);
    if (buf !== probe) this.fn.lb_last_error([buf, buf.length]);
    return Buffer.from(buf.buffer, buf.byteOffset, Math.min(len, buf.length - 1))
      .toString("utf8")
      .trimEnd();
  }

  clearError(): void {
    this.fn.lb_clear_error([]);
  }

  /** 0 warnings, 1 + info, 2 + debug: what lastError() collects from libbpf. */
  setLogLevel(level: 0 | 1 | 2): void {
    this.fn.lb_set_log_level([level]);
  }

  // ---- objects (handles)

  objOpen(path: string): number {
    return this.fn.lb_obj_open([path]);
  }
  objSetMaxEntries(handle: number, map: string, n: number): number {
    return this.fn.lb_obj_set_max_entries([handle, map, n]);
  }
  objLoad(handle: number): number {
    return this.fn.lb_obj_load([handle]);
  }
  objClose(handle: number): number {
    return this.fn.lb_obj_close([handle]);
  }
  objMapFd(handle: number, name: string): number {
    return this.fn.lb_obj_map_fd([handle, name]);
  }
  objProgFd(handle: number, name: string): number {
    return this.fn.lb_obj_prog_fd([handle, name]);
  }

  // ---- maps (fds and buffers only)

  mapCreate(
    type: number,
    name: string,
    keySize: number,
    valueSize: number,
    maxEntries: number,
    flags = 0,
    innerMapFd = -1,
  ): number {
    return this.fn.lb_map_create([type, name, keySize, valueSize, maxEntries, flags, innerMapFd]);
  }
  /** An inner Maglev table: array, 4-byte keys, BPF_F_INNER_MAP. */
  arrayMapCreate(name: string, valueSize: number, maxEntries: number): number {
    return this.fn.lb_array_map_create([name, valueSize, maxEntries]);
  }
  /** Copies values.length / valueSize elements into / out of an array from arrayMapCreate
   * (mmapable), from element 0, through mapped memory. */
  arrayMapWrite(fd: number, values: Uint8Array, valueSize: number): number {
    return this.fn.lb_array_map_write([fd, values, valueSize, values.length / valueSize]);
  }
  arrayMapRead(fd: number, out: Uint8Array, valueSize: number): number {
    return this.fn.lb_array_map_read([fd, out, valueSize, out.length / valueSize]);
  }
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array, flags = BPF_ANY): number {
    return this.fn.lb_map_update([fd, key, value, flags]);
  }
  mapLookup(fd: number, key: Uint8Array, valueOut: Uint8Array): number {
    return this.fn.lb_map_lookup([fd, key, valueOut]);
  }
  mapDelete(fd: number, key: Uint8Array): number {
    return this.fn.lb_map_delete([fd, key]);
  }
  /** key undefined: the first key. -ENOENT after the last. */
  mapGetNextKey(fd: number, key: Uint8Array | undefined, nextOut: Uint8Array): number {
    return this.fn.lb_map_get_next_key([fd, key ?? EMPTY_KEY, key === undefined ? 0 : 1, nextOut]);
  }
  /** Up to cap keys after prev (undefined: from the start) into out; returns how many. */
  mapKeys(fd: number, prev: Uint8Array | undefined, out: Uint8Array, keySize: number, cap: number): number {
    return this.fn.lb_map_keys([fd, prev ?? EMPTY_KEY, prev === undefined ? 0 : 1, out, keySize, cap]);
  }
  mapLookupMany(fd: number, keys: Uint8Array, valuesOut: Uint8Array, count: number): number {
    return this.fn.lb_map_lookup_many([fd, keys, valuesOut, count]);
  }
  mapUpdateBatch(fd: number, keys: Uint8Array, values: Uint8Array, count: number, flags = BPF_ANY): number {
    if (count === 0) return 0;
    return this.fn.lb_map_update_batch([fd, keys, values, count, flags]);
  }
  mapFdById(id: number): number {
    return this.fn.lb_map_fd_by_id([id]);
  }
  close(fd: number): number {
    return this.fn.lb_close([fd]);
  }

  /** A UDP socket whose datagrams carry DF and are never fragmented (probe_socket.c). */
  probeSocket(family: 4 | 6): number {
    return this.fn.lb_probe_socket([family]);
  }
  /** Sends one datagram to addr (4 or 16 bytes):port; bytes sent or -errno (-EMSGSIZE: larger
   * than the interface MTU). */
  probeSend(fd: number, addr: Uint8Array, port: number, payload: Uint8Array): number {
    return this.fn.lb_probe_send([fd, addr, addr.length, port, payload, payload.length]);
  }

  /** Type, sizes and id of a map; throws LB_ERR_MAP naming `what`. */
  mapInfo(fd: number, what = `map fd ${fd}`): MapInfo {
    const out = new Uint8Array(28);
    const ret = this.fn.lb_map_info([fd, out]);
    if (ret < 0) throw nativeError("LB_ERR_MAP", `${what}: cannot read map info`, ret);
    const v = new DataView(out.buffer);
    const u = (i: number): number => v.getUint32(i * 4, true);
    return {
      type: u(0),
      keySize: u(1),
      valueSize: u(2),
      maxEntries: u(3),
      flags: u(4),
      id: u(5),
      valueStride: u(6),
    };
  }

  /** Possible CPUs (the per-CPU value count), cached. */
  numPossibleCpus(): number {
    if (this.cpus === undefined) {
      const n = this.fn.lb_num_possible_cpus([]);
      if (n < 0) throw nativeError("LB_ERR_NATIVE", "cannot count possible CPUs", n);
      this.cpus = n;
    }
    return this.cpus;
  }

  // ---- XDP

  xdpAttach(ifindex: number, progFd: number, flags: number): number {
    return this.fn.lb_xdp_attach([ifindex, progFd, flags]);
  }
  xdpDetach(ifindex: number, flags: number): number {
    return this.fn.lb_xdp_detach([ifindex, flags]);
  }
  /** Throws LB_ERR_ATTACH naming `what`. */
  xdpQuery(ifindex: number, flags = 0, what = `interface #${ifindex}`): XdpQueryResult {
    const out = new Uint8Array(16);
    const ret = this.fn.lb_xdp_query([ifindex, flags, out]);
    if (ret < 0) throw nativeError("LB_ERR_ATTACH", `${what}: XDP query failed`, ret);
    const v = new DataView(out.buffer);
    return {
      progId: v.getUint32(0, true),
      drvProgId: v.getUint32(4, true),
      skbProgId: v.getUint32(8, true),
      attachMode: v.getUint32(12, true),
    };
  }

  // ---- bpffs

  objPin(fd: number, path: string): number {
    return this.fn.lb_obj_pin([fd, path]);
  }
  objGet(path: string): number {
    return this.fn.lb_obj_get([path]);
  }
  unpin(path: string): number {
    return this.fn.lb_unpin([path]);
  }

  // ---- pinned maps and XDP links (hitless restart)

  objSetPinDir(h: number, dir: string): number {
    return this.fn.lb_obj_set_pin_dir([h, dir]);
  }
  xdpLinkCreate(progFd: number, ifindex: number, flags: number): number {
    return this.fn.lb_xdp_link_create([progFd, ifindex, flags]);
  }
  linkUpdate(linkFd: number, progFd: number): number {
    return this.fn.lb_link_update([linkFd, progFd]);
  }
  /** The link's ids and its interface (0 once the interface went away). */
  linkInfo(linkFd: number): { id: number; progId: number; type: number; ifindex: number } {
    const out = new Uint8Array(16);
    const ret = this.fn.lb_link_info([linkFd, out]);
    if (ret < 0) throw nativeError("LB_ERR_ATTACH", "BPF link: cannot read its info", ret);
    const v = new DataView(out.buffer);
    return {
      id: v.getUint32(0, true),
      progId: v.getUint32(4, true),
      type: v.getUint32(8, true),
      ifindex: v.getUint32(12, true),
    };
  }
  /** The program's tag (hex): equal tags, equal instructions. progFd < 0: by progId. */
  progTag(progFd: number, progId = 0): string {
    const out = new Uint8Array(8);
    const ret = this.fn.lb_prog_tag([progFd, progId, out]);
    if (ret < 0)
      throw nativeError(
        "LB_ERR_LOAD",
        `BPF program ${progFd < 0 ? `id ${progId}` : `fd ${progFd}`}: cannot read its tag`,
        ret,
      );
    return Buffer.from(out).toString("hex");
  }

  // ---- BPF_PROG_TEST_RUN

  /**
   * Runs an XDP program once (repeat > 1: again on its own output) over `data` (>= 14 bytes).
   * outCap bounds the output frame. Throws LB_ERR_NATIVE on failure.
   */
  progTestRun(
    progFd: number,
    data: Uint8Array,
    opts: { readonly repeat?: number; readonly ingressIfindex?: number; readonly outCap?: number } = {},
  ): TestRunResult {
    const out = new Uint8Array(opts.outCap ?? data.length + 512);
    const meta = new Uint8Array(12);
    const ret = this.fn.lb_prog_test_run([
      progFd,
      data,
      data.length,
      out,
      out.length,
      opts.repeat ?? 1,
      opts.ingressIfindex ?? 0,
      meta,
    ]);
    const v = new DataView(meta.buffer);
    if (ret < 0) {
      const hint = data.length < 14 ? "the kernel rejects frames shorter than 14 bytes" : undefined;
      throw nativeError("LB_ERR_NATIVE", `BPF_PROG_TEST_RUN of program fd ${progFd} failed`, ret, { hint });
    }
    return {
      retval: v.getUint32(0, true),
      data: out.slice(0, Math.min(v.getUint32(4, true), out.length)),
      durationNs: v.getUint32(8, true),
    };
  }

  // ---- the flow hash of bpf/hash.h (native/flow_hash.c)

  /** key: an encoded struct lb_flow_key; vipFlags: LB_VIP_F_HASH_*. */
  flowHash(key: Uint8Array, vipFlags: number): number {
    const out = new Uint8Array(4);
    this.fn.lb_flow_hash([key, vipFlags, out]);
    return new DataView(out.buffer).getUint32(0, true);
  }

  // ---- the userspace engine (native/lb_engine.h, engine_shim.c): handles, buffers

  /** A new engine (handle > 0) or -errno. Scalar-only: call once per engine, not in loops. */
  engCreate(flowTableSize: number): number {
    return this.fn.lb_eng_create([flowTableSize]);
  }
  engDestroy(handle: number): number {
    return this.fn.lb_eng_destroy([handle]);
  }
  engUpdate(handle: number, map: number, keys: Uint8Array, values: Uint8Array, count: number): number {
    if (count === 0) return 0;
    return this.fn.lb_eng_update([handle, map, keys, values, count]);
  }
  engDelete(handle: number, map: number, key: Uint8Array): number {
    return this.fn.lb_eng_delete([handle, map, key]);
  }
  engLookup(handle: number, map: number, key: Uint8Array, valueOut: Uint8Array): number {
    return this.fn.lb_eng_lookup([handle, map, key, valueOut]);
  }
  /** slots undefined: remove the VIP's table. */
  engTable(handle: number, vipId: number, slots: Uint32Array | undefined): number {
    const bytes =
      slots === undefined || slots.length === 0
        ? EMPTY_KEY
        : new Uint8Array(slots.buffer, slots.byteOffset, slots.byteLength);
    return this.fn.lb_eng_table([handle, vipId, bytes, slots?.length ?? 0]);
  }
  engReadTable(handle: number, vipId: number, out: Uint32Array): number {
    return this.fn.lb_eng_read_table([
      handle,
      vipId,
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength),
      out.length,
    ]);
  }
  /** res: 64 bytes (struct lb_engine_result). Returns the action or -errno. */
  engDecide(
    handle: number,
    frame: Uint8Array,
    ingressIfindex: number,
    out: Uint8Array,
    res: Uint8Array,
  ): number {
    return this.fn.lb_eng_decide([handle, frame, frame.length, ingressIfindex, out, out.length, res]);
  }

  // ---- the TUN decapsulator's decision (native/tun_decide.h, tun_shim.c)

  /** vipKeys: LB_TUN_KEY_SIZE (17) bytes per VIP (tun_decide.h), any order; empty = any.
   * Returns enum lb_tun_reason (0 = write the payload unchanged) or -errno. */
  tunDecide(payload: Uint8Array, vipKeys: Uint8Array): number {
    return this.fn.lb_tun_decide_ffi([
      payload.length === 0 ? EMPTY_KEY : payload,
      payload.length,
      vipKeys.length === 0 ? EMPTY_KEY : vipKeys,
      Math.floor(vipKeys.length / 17),
    ]);
  }
  /** The stable name of an lb_tun_reason; undefined past the last. */
  tunReasonName(reason: number): string | undefined {
    const out = new Uint8Array(32);
    const n = this.fn.lb_tun_reason_name_ffi([reason, out, out.length]);
    return n < 0 ? undefined : Buffer.from(out.subarray(0, n)).toString("latin1");
  }

  // ---- ABI export (native/abi_layout.c)

  abiSizeof(struct: string): number | undefined {
    const r = this.fn.lb_abi_sizeof([struct]);
    return r < 0 ? undefined : r;
  }
  abiOffsetof(struct: string, field: string): number | undefined {
    const r = this.fn.lb_abi_offsetof([struct, field]);
    return r < 0 ? undefined : r;
  }
  abiConst(name: string): bigint | undefined {
    const out = new Uint8Array(8);
    const r = this.fn.lb_abi_const([name, out]);
    return r < 0 ? undefined : new DataView(out.buffer).getBigInt64(0, true);
  }
  abiString(name: string): string | undefined {
    const out = new Uint8Array(256);
    const r = this.fn.lb_abi_string([name, out, out.length]);
    return r < 0 ? undefined : Buffer.from(out.subarray(0, r)).toString("utf8");
  }
  /** Every name of one kind: 0 structs, 1 fields ("struct.field"), 2 constants, 3 strings. */
  abiNames(kind: 0 | 1 | 2 | 3): string[] {
    const names: string[] = [];
    const out = new Uint8Array(256);
    for (let i = 0; ; i++) {
      const r = this.fn.lb_abi_name([kind, i, out, out.length]);
      if (r < 0) return names;
      names.push(Buffer.from(out.subarray(0, r)).toString("utf8"));
    }
  }
  /** 0, or -EPROTO when native/abi_layout.c misses a field of lb_abi.h (see lastError()). */
  abiSelfcheck(): number {
    return this.fn.lb_abi_selfcheck([]);
  }
}

export interface NativeErrorOptions {
  readonly hint?: string | undefined;
  /** Attach lastError() as detail: only for calls that clear it first (see shim.h). */
  readonly withLog?: boolean;
}

/** The LbError for a failed native call: "message: ENAME". `ret` is the call's -errno. */
export function nativeError(
  code: LbErrorCode,
  message: string,
  ret: number,
  opts: NativeErrorOptions = {},
): LbError {
  const errno = Math.abs(ret);
  const log = opts.withLog === true ? Native.get().lastError() : "";
  return new LbError(code, `${message}: ${errnoName(errno)}`, {
    errno,
    hint: opts.hint,
    detail: log === "" ? undefined : log,
  });
}
