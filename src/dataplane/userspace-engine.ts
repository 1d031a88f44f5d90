// The userspace balancer engine (native/lb_engine.h) in this process, through the FFI shim: the
// NFQUEUE worker's decision function, run directly by the equivalence tests. One runner.
import {
  BackendLayout,
  FlowLayout,
  LB_ENCAP_V6_OVERHEAD,
  LB_NO_BACKEND,
  SettingsLayout,
  TrafficLayout,
  VipAddrLayout,
  VipLayout,
} from "../maps/abi.js";
import { BalancerMaps } from "../maps/balancer-maps.js";
import { EngineMapSet, EngineMapId, type EngineSink } from "../maps/engine-maps.js";
import { Errno, Native, nativeError } from "./native.js";

/** Value size of each engine map (one runner's share for the stats maps). */
const VALUE_SIZE: Record<EngineMapId, number> = {
  [EngineMapId.SETTINGS]: SettingsLayout.size,
  [EngineMapId.VIP_ADDRS]: VipAddrLayout.size,
  [EngineMapId.VIPS]: VipLayout.size,
  [EngineMapId.BACKENDS]: BackendLayout.size,
  [EngineMapId.FLOWS]: FlowLayout.size,
  [EngineMapId.VIP_STATS]: TrafficLayout.size,
  [EngineMapId.BACKEND_STATS]: TrafficLayout.size,
  [EngineMapId.COUNTERS]: 8,
};

/** struct lb_engine_result, decoded. */
export interface EngineResult {
  /** XDP action values (1 drop, 2 pass, 3 tx, 4 redirect). */
  action: number;
  output: Uint8Array;
  /** Where the outer IP header starts in output (encapsulated frames). */
  l2Len: number;
  ifindex: number;
  /** VIP / backend counted (undefined: none). */
  vipId: number | undefined;
  backend: number | undefined;
  frameLen: number;
  /** lb_counters indices incremented, in order. */
  counted: number[];
}

export class UserspaceEngine implements EngineSink {
  readonly runners = 1;
  readonly maps: BalancerMaps;
  private readonly native = Native.get();
  private handle: number;
  private readonly res = new Uint8Array(64);

  constructor(flowTableSize: number) {
    const h = this.native.engCreate(flowTableSize);
    if (h < 0) throw nativeError("LB_ERR_NATIVE", "cannot create a userspace engine", h);
    this.handle = h;
    this.maps = new BalancerMaps(new EngineMapSet(this, flowTableSize));
  }

  /** The decision on one Ethernet frame (the XDP program's, byte for byte). */
  decide(frame: Uint8Array, ingressIfindex: number): EngineResult {
    const out = new Uint8Array(frame.length + LB_ENCAP_V6_OVERHEAD);
    const ret = this.native.engDecide(this.handle, frame, ingressIfindex, out, this.res);
    if (ret < 0) throw nativeError("LB_ERR_NATIVE", "engine decision failed", ret);
    const v = new DataView(this.res.buffer);
    const u = (i: number): number => v.getUint32(i * 4, true);
    const counted: number[] = [];
    for (let i = 0; i < u(6); i++) counted.push(u(8 + i));
    return {
      action: u(0),
      output: out.slice(0, u(1)),
      l2Len: u(2),
      ifindex: u(3),
      vipId: u(4) === LB_NO_BACKEND ? undefined : u(4),
      backend: u(5) === LB_NO_BACKEND ? undefined : u(5),
      frameLen: u(7),
      counted,
    };
  }

  update(map: EngineMapId, keys: Uint8Array, values: Uint8Array, count: number): void {
    const ret = this.native.engUpdate(this.handle, map, keys, values, count);
    if (ret < 0) throw nativeError("LB_ERR_MAP", `engine map ${map}: update failed`, ret);
  }

  delete(map: EngineMapId, key: Uint8Array): boolean {
    const ret = this.native.engDelete(this.handle, map, key);
    if (ret === -Errno.ENOENT) return false;
    if (ret < 0) throw nativeError("LB_ERR_MAP", `engine map ${map}: delete failed`, ret);
    return true;
  }

  lookup(map: EngineMapId, key: Uint8Array): Uint8Array | undefined {
    const out = new Uint8Array(VALUE_SIZE[map]);
    const ret = this.native.engLookup(this.handle, map, key, out);
    if (ret === -Errno.ENOENT) return undefined;
    if (ret < 0) throw nativeError("LB_ERR_MAP", `engine map ${map}: lookup failed`, ret);
    return out;
  }

  table(vipId: number, table: Uint32Array | undefined): void {
    const ret = this.native.engTable(this.handle, vipId, table);
    if (ret < 0) throw nativeError("LB_ERR_MAP", `engine table of VIP ${vipId}: swap failed`, ret);
  }

  close(): void {
    if (this.handle <= 0) return;
    this.native.engDestroy(this.handle);
    this.handle = 0;
  }
}
