// The reference model of one balancer decision (the spec bpf/balancer.bpf.c is tested against):
// (frame, maps' content) -> (XDP action, output frame, counter deltas), flow writes applied to
// the view like the program applies them to lb_flows.
import {
  LB_AF_INET,
  LB_BACKEND_F_IN_USE,
  LB_BACKEND_F_NEIGH,
  LB_C_DROP_BASE,
  LB_COUNTERS_SIZE,
  LB_ENCAP_V4_OVERHEAD,
  LB_ENCAP_V6_OVERHEAD,
  LB_NO_BACKEND,
  LB_SETTINGS_F_HAVE_V4,
  LB_SETTINGS_F_HAVE_V6,
  LB_VIP_ADDR_F_INLINE,
  LB_VIP_ADDR_F_PORTS,
  LB_VIP_ADDR_F_WILDCARD,
  LbCounter,
  LbDropReason,
  VipKeyLayout,
} from "../maps/abi.js";
import { encapsulate } from "./encap.js";
import { flowHash } from "./flow-hash.js";
import { parsePacket, type ParsedPacket } from "./packet-parse.js";
import type { BalancerView, ModelBackend, ModelFlow, ModelVip } from "./state.js";
import { XdpAction } from "./xdp-action.js";

const IPPROTO_TCP = 6;
const TCP_SYN = 0x02;
const TCP_ACK = 0x10;

export interface TrafficDelta {
  index: number;
  bytes: number;
}

export interface Decision {
  action: number;
  /** The frame after the program: the input when passed or dropped. */
  output: Uint8Array;
  /** Deltas of lb_counters, indexed like it. */
  counters: number[];
  vipTraffic?: TrafficDelta;
  backendTraffic?: TrafficDelta;
  /** Egress ifindex of a redirect. */
  redirectIfindex?: number;
}

function vipKey(pkt: ParsedPacket, port: number): Uint8Array {
  const key = new Uint8Array(VipKeyLayout.size);
  key.set(pkt.dst, VipKeyLayout.fields.addr);
  new DataView(key.buffer).setUint16(VipKeyLayout.fields.port_be, port);
  key[VipKeyLayout.fields.family] = pkt.family;
  key[VipKeyLayout.fields.proto] = pkt.proto;
  return key;
}

function lookupVip(pkt: ParsedPacket, view: BalancerView): ModelVip | undefined {
  const { flags, port, vip: inline } = pkt.addr;
  if (flags & LB_VIP_ADDR_F_INLINE && port === pkt.dport) return inline;
  let vip: ModelVip | undefined;
  if (flags & LB_VIP_ADDR_F_PORTS && !(flags & LB_VIP_ADDR_F_INLINE)) vip = view.vip(vipKey(pkt, pkt.dport));
  if (!vip && flags & LB_VIP_ADDR_F_WILDCARD) vip = view.vip(vipKey(pkt, 0));
  return vip;
}

function usableBackend(view: BalancerView, index: number, vipId: number): ModelBackend | undefined {
  const backend = view.backend(index);
  if (!backend || !(backend.flags & LB_BACKEND_F_IN_USE) || backend.vipId !== vipId) return undefined;
  return backend;
}

interface Selection {
  backend: ModelBackend | undefined;
  flow: ModelFlow;
  isNew: boolean;
}

function select(
  pkt: ParsedPacket,
  vip: ModelVip,
  maglevSize: number,
  view: BalancerView,
  count: (c: number) => void,
): Selection {
  const syn = pkt.proto === IPPROTO_TCP && (pkt.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
  if (syn) {
    count(LbCounter.LB_C_FLOW_SYN);
  } else {
    const cached = view.flow(pkt.flowKey);
    if (cached) {
      const backend = usableBackend(view, cached.backend, vip.vipId);
      if (backend) {
        count(LbCounter.LB_C_FLOW_HIT);
        return { backend, flow: { ...cached }, isNew: false };
      }
      count(LbCounter.LB_C_FLOW_STALE);
    }
  }
  count(LbCounter.LB_C_FLOW_MISS);
  const hash = flowHash(pkt, vip.flags);
  const index = view.tableSlot(vip.vipId, hash % maglevSize) ?? LB_NO_BACKEND;
  const flow = { backend: index, hash };
  if (index === LB_NO_BACKEND) return { backend: undefined, flow, isNew: true };
  return { backend: usableBackend(view, index, vip.vipId), flow, isNew: true };
}

export function decide(frame: Uint8Array, view: BalancerView, ingressIfindex: number): Decision {
  const counters = new Array<number>(LB_COUNTERS_SIZE).fill(0);
  const count = (c: number): void => {
    counters[c] = (counters[c] ?? 0) + 1;
  };
  const result = (action: number, extra: Partial<Decision> = {}): Decision => ({
    action,
    output: frame,
    counters,
    ...extra,
  });
  const passAs = (counter: number, extra: Partial<Decision> = {}): Decision => {
    count(counter);
    count(LbCounter.LB_C_PASS);
    return result(XdpAction.XDP_PASS, extra);
  };
  const dropAs = (reason: number, extra: Partial<Decision> = {}): Decision => {
    count(LB_C_DROP_BASE + reason);
    count(LbCounter.LB_C_DROP);
    return result(XdpAction.XDP_DROP, extra);
  };

  count(LbCounter.LB_C_RX);
  const parsed = parsePacket(frame, view);
  if (parsed.kind === "pass") return passAs(parsed.counter);
  if (parsed.kind === "drop") return dropAs(parsed.reason);
  const pkt = parsed.pkt;
  const vip = lookupVip(pkt, view);
  if (!vip) return passAs(LbCounter.LB_C_PASS_NOT_VIP);
  const vipTraffic = { index: vip.vipId, bytes: frame.length };

  const settings = view.settings();
  if (!settings || settings.maglevSize === 0)
    return dropAs(LbDropReason.LB_DROP_NOT_CONFIGURED, { vipTraffic });
  const { backend, flow, isNew } = select(pkt, vip, settings.maglevSize, view, count);
  if (!backend) return dropAs(LbDropReason.LB_DROP_NO_BACKEND, { vipTraffic });
  if (!(backend.flags & LB_BACKEND_F_NEIGH)) return passAs(LbCounter.LB_C_NO_NEIGH, { vipTraffic });

  const v4 = backend.family === LB_AF_INET;
  if (!(settings.flags & (v4 ? LB_SETTINGS_F_HAVE_V4 : LB_SETTINGS_F_HAVE_V6)))
    return dropAs(LbDropReason.LB_DROP_NO_SOURCE, { vipTraffic });
  const overhead = v4 ? LB_ENCAP_V4_OVERHEAD : LB_ENCAP_V6_OVERHEAD;
  if (backend.mtu && pkt.l3Len + overhead > backend.mtu)
    return dropAs(LbDropReason.LB_DROP_TOO_BIG, { vipTraffic });
  if (isNew) view.putFlow(pkt.flowKey, flow);

  const output = encapsulate(frame, pkt, backend, settings, flow.hash);
  const backendTraffic = { index: flow.backend, bytes: frame.length };
  if (backend.ifindex === ingressIfindex) {
    count(LbCounter.LB_C_TX);
    return result(XdpAction.XDP_TX, { output, vipTraffic, backendTraffic });
  }
  count(LbCounter.LB_C_REDIRECT);
  return result(XdpAction.XDP_REDIRECT, {
    output,
    vipTraffic,
    backendTraffic,
    redirectIfindex: backend.ifindex,
  });
}
