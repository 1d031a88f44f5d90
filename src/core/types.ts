// The control plane's vocabulary: what a VIP and a backend are, independent of how they are
// written (config file, CLI, registration) or stored (BPF maps). Pure data.
import type { IpAddress } from "../lib/addr.js";

export type Proto = "tcp" | "udp";
export type HashMode = "5tuple" | "src-ip" | "src-ip-port";

export const PROTO_NUMBER: Readonly<Record<Proto, number>> = { tcp: 6, udp: 17 };
export const DEFAULT_ENCAP_PORT = 6080;
export const DEFAULT_WEIGHT = 1;

/** A virtual service: (protocol, address, port); port 0 = every port of the address. */
export interface VipRef {
  readonly proto: Proto;
  readonly address: IpAddress;
  readonly port: number;
}

/** Where a backend came from, as `lbctl backend list` shows it: the config file, lbctl or the
 * API ("static"), or an agent's registration ("registered"). */
export type BackendSource = "static" | "registered";

export interface BackendSpec {
  readonly address: IpAddress;
  readonly encapPort: number;
  /** Configured weight (0 = drained from the start). */
  readonly weight: number;
  readonly name?: string;
  /** Default "static". */
  readonly source?: BackendSource;
}

export interface VipSpec {
  readonly vip: VipRef;
  readonly hash: HashMode;
  readonly backends: readonly BackendSpec[];
}

/** What the operator wants (config file, then CLI changes on top). */
export interface DesiredState {
  readonly vips: readonly VipSpec[];
}

/** Backend states as `lbctl backend list` shows them (DESIGN.md CLI contract). */
export type BackendState = "active" | "draining" | "down" | "pending";
