// The reference model's view of a BalancerMaps (normally the in-memory one): raw keys in, the
// decoded values the program would read out. Tables are cached: call refreshTables() after a
// table changes.
import type { BalancerMaps } from "../maps/balancer-maps.js";
import { decodeBackend, decodeFlow, decodeFlowKey, decodeVip, decodeVipAddr } from "../maps/codec.js";
import { encodeU32Key } from "../maps/codec.js";
import type {
  BalancerView,
  ModelBackend,
  ModelFlow,
  ModelSettings,
  ModelVip,
  ModelVipAddr,
} from "./state.js";

export class MapsView implements BalancerView {
  private readonly tables = new Map<number, Uint32Array | undefined>();

  constructor(private readonly maps: BalancerMaps) {}

  refreshTables(): void {
    this.tables.clear();
  }

  settings(): ModelSettings | undefined {
    return this.maps.getSettings();
  }

  vipAddr(key: Uint8Array): ModelVipAddr | undefined {
    const value = this.maps.maps.vipAddrs.lookup(key);
    return value && decodeVipAddr(value);
  }

  vip(key: Uint8Array): ModelVip | undefined {
    const value = this.maps.maps.vips.lookup(key);
    return value && decodeVip(value);
  }

  tableSlot(vipId: number, slot: number): number | undefined {
    if (!this.tables.has(vipId)) this.tables.set(vipId, this.maps.readTable(vipId));
    return this.tables.get(vipId)?.[slot];
  }

  backend(index: number): ModelBackend | undefined {
    const value = this.maps.maps.backends.lookup(encodeU32Key(index));
    return value && decodeBackend(value);
  }

  flow(key: Uint8Array): ModelFlow | undefined {
    const value = this.maps.maps.flows.lookup(key);
    return value && decodeFlow(value);
  }

  putFlow(key: Uint8Array, flow: ModelFlow): void {
    this.maps.putFlow(decodeFlowKey(key), flow);
  }
}
