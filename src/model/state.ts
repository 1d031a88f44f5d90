// What the reference model reads of the balancer's maps, as plain values. The fixture and
// differential tests build it from the same in-memory maps the daemon's map layer writes.

export interface ModelSettings {
  srcV4: Uint8Array; // 4 bytes
  srcV6: Uint8Array; // 16 bytes
  maglevSize: number;
  flags: number;
}

export interface ModelVip {
  vipId: number;
  flags: number;
}

export interface ModelBackend {
  address: Uint8Array; // 16 bytes
  family: number;
  flags: number;
  encapPort: number;
  vipId: number;
  ifindex: number;
  mtu: number;
  dmac: Uint8Array;
  smac: Uint8Array;
}

export interface ModelVipAddr {
  flags: number;
  /** With LB_VIP_ADDR_F_INLINE: the address's one port VIP. */
  port: number;
  vip: ModelVip;
}

export interface ModelFlow {
  backend: number;
  hash: number;
}

/** Keys are the ABI's key structs, encoded (src/maps/abi.ts layouts) and compared bytewise. */
export interface BalancerView {
  settings(): ModelSettings | undefined;
  vipAddr(key: Uint8Array): ModelVipAddr | undefined;
  vip(key: Uint8Array): ModelVip | undefined;
  /** Slot of the VIP's Maglev table; undefined when the VIP has no table or slot >= its size. */
  tableSlot(vipId: number, slot: number): number | undefined;
  backend(index: number): ModelBackend | undefined;
  flow(key: Uint8Array): ModelFlow | undefined;
  putFlow(key: Uint8Array, flow: ModelFlow): void;
}
