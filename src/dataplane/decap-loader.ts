// The backend's decapsulation: build/bpf/decap.bpf.o loaded, its maps filled (encap port, local
// addresses) and lb_decap attached to one interface; detach() undoes it. Used by the lab's
// decap-attach helper and by `lbctl agent --decap xdp`.
import { addressToString } from "../lib/addr.js";
import type { IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { bpfObjectPath } from "../lib/paths.js";
import {
  LB_MAP_DECAP_ADDRS,
  LB_MAP_DECAP_COUNTERS,
  LB_MAP_DECAP_SETTINGS,
  LbDecapCounter,
} from "../maps/abi.js";
import { decodeCounter, encodeDecapAddrKey, encodeDecapSettings, encodeU32Key } from "../maps/codec.js";
import { BpfObject } from "./bpf-object.js";
import { Native, nativeError } from "./native.js";
import { attachXdp, detachXdp } from "./xdp.js";
import type { XdpMode, XdpTarget } from "./xdp.js";

export const DECAP_PROGRAM = "lb_decap";

export interface DecapAttachOptions {
  readonly ifname: string;
  /** The interface's index in the caller's network namespace (read it through netlink). */
  readonly ifindex: number;
  /** Local addresses whose encapsulated traffic is ours (outer destination), at least one. */
  readonly addresses: readonly IpAddress[];
  /** Outer UDP destination port, host number (default 6080). */
  readonly encapPort: number;
  readonly mode: XdpMode;
  /** Replace an XDP program already attached in this mode (default: fail, naming it). */
  readonly replace?: boolean;
  /** Default build/bpf/decap.bpf.o. */
  readonly objectPath?: string;
}

/** lb_decap_counters summed over CPUs. */
export interface DecapCounterValues {
  readonly rx: bigint;
  readonly decap: bigint;
  readonly pass: bigint;
  readonly malformed: bigint;
}

export class DecapLoader {
  readonly target: XdpTarget;
  readonly mode: XdpMode;
  readonly encapPort: number;
  readonly addresses: readonly IpAddress[];
  private obj: BpfObject | undefined;
  private attached: boolean;

  private constructor(obj: BpfObject, opts: DecapAttachOptions) {
    this.obj = obj;
    this.target = { ifindex: opts.ifindex, ifname: opts.ifname };
    this.mode = opts.mode;
    this.encapPort = opts.encapPort;
    this.addresses = opts.addresses;
    this.attached = false;
  }

  /** Open → load → fill lb_decap_settings and lb_decap_addrs → attach. Nothing is left behind
   * on failure. */
  static attach(opts: DecapAttachOptions): DecapLoader {
    if (opts.addresses.length === 0) {
      throw new LbError("LB_ERR_CONFIG", `decap on ${opts.ifname}: no local address to decapsulate for`);
    }
    const obj = BpfObject.open(opts.objectPath ?? bpfObjectPath("decap"));
    const loader = new DecapLoader(obj, opts);
    try {
      obj.load();
      loader.fill();
      attachXdp(loader.target, obj.progFd(DECAP_PROGRAM), opts.mode, { replace: opts.replace ?? false });
      loader.attached = true;
    } catch (err) {
      obj.close();
      loader.obj = undefined;
      throw err;
    }
    return loader;
  }

  get isAttached(): boolean {
    return this.attached;
  }

  /** The per-CPU counters, summed. */
  counters(): DecapCounterValues {
    const native = Native.get();
    const fd = this.live().mapFd(LB_MAP_DECAP_COUNTERS);
    const value = new Uint8Array(native.mapInfo(fd, `map ${LB_MAP_DECAP_COUNTERS}`).valueStride);
    const read = (index: number): bigint => {
      const ret = native.mapLookup(fd, encodeU32Key(index), value);
      if (ret < 0) throw nativeError("LB_ERR_MAP", `map ${LB_MAP_DECAP_COUNTERS}: lookup ${index}`, ret);
      return decodeCounter(value);
    };
    return {
      rx: read(LbDecapCounter.LB_DC_RX),
      decap: read(LbDecapCounter.LB_DC_DECAP),
      pass: read(LbDecapCounter.LB_DC_PASS),
      malformed: read(LbDecapCounter.LB_DC_MALFORMED),
    };
  }

  /** Detaches lb_decap (if this loader attached it) and frees the object. Idempotent. */
  detach(): void {
    if (this.obj === undefined) return;
    try {
      if (this.attached) detachXdp(this.target, this.mode);
      this.attached = false;
    } finally {
      this.obj.close();
      this.obj = undefined;
    }
  }

  private fill(): void {
    const native = Native.get();
    const obj = this.live();
    const settingsFd = obj.mapFd(LB_MAP_DECAP_SETTINGS);
    const settings = encodeDecapSettings({ encapPort: this.encapPort, flags: 0 });
    const ret = native.mapUpdate(settingsFd, encodeU32Key(0), settings);
    if (ret < 0) throw nativeError("LB_ERR_MAP", `map ${LB_MAP_DECAP_SETTINGS}: update`, ret);
    const addrsFd = obj.mapFd(LB_MAP_DECAP_ADDRS);
    const present = encodeU32Key(1); // the __u32 value is unused: a key's presence makes it ours
    for (const addr of this.addresses) {
      const key = encodeDecapAddrKey({ address: addr.bytes, family: addr.family });
      const r = native.mapUpdate(addrsFd, key, present);
      if (r < 0) {
        throw nativeError("LB_ERR_MAP", `map ${LB_MAP_DECAP_ADDRS}: add ${addressToString(addr)}`, r);
      }
    }
  }

  private live(): BpfObject {
    if (this.obj === undefined) {
      throw new LbError("LB_ERR_USAGE", `decap on ${this.target.ifname ?? "?"}: already detached`);
    }
    return this.obj;
  }
}
