// Resolves a backend's next hop (egress ifindex, source and destination MAC, MTU) from the kernel's
// routing and neighbour tables, for the backend's map entry: the XDP program does not call
// bpf_fib_lookup (see docs/troubleshooting.md, "Next hops"). An unresolved neighbour is probed
// by sending one UDP datagram through the kernel, which starts ARP / neighbour discovery.
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { AF_INET6, addressToString, tryParseAddress } from "../lib/addr.js";
import type { IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import {
  execIp,
  firstLine,
  ipJson,
  ipLinkListSchema,
  ipNeighListSchema,
  ipRouteListSchema,
} from "./ip-json.js";
import type { IpNeigh, IpResult, IpRoute, IpRunner } from "./ip-json.js";
import { getLink, linkFromIp, parseMac } from "./links.js";
import type { Link } from "./links.js";

/** Where the data plane sends a backend's packets: what `struct lb_backend` caches. */
export interface NextHop {
  /** Egress interface (in the daemon's namespace). */
  readonly ifindex: number;
  readonly ifname: string;
  /** Egress interface's MAC, 6 bytes. */
  readonly smac: Uint8Array;
  /** Next hop's MAC (the backend's, or its gateway's), 6 bytes. */
  readonly dmac: Uint8Array;
  /** Egress MTU in bytes: the interface's, lowered by a route or path MTU when one is set. */
  readonly mtu: number;
  /** Set when the backend is behind a router: the neighbour that was resolved. */
  readonly gateway?: IpAddress;
  /** Kernel neighbour state when read (REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP). */
  readonly state: string;
}

/** The route the kernel would use for a backend address. */
export interface BackendRoute {
  readonly dev: string;
  readonly gateway?: IpAddress;
  /** The address whose MAC is needed: the gateway, else the backend itself. */
  readonly neighbour: IpAddress;
  /** A route or cached path MTU, when the route carries one. */
  readonly mtu?: number;
}

export interface ResolveOptions {
  /** How long to wait for ARP / ND, from the call; default DEFAULT_RESOLVE_TIMEOUT_MS. */
  readonly timeoutMs?: number;
}

/** Makes the kernel start resolving the next hop towards `address`. */
export type Prober = (address: IpAddress) => Promise<void>;

export interface NextHopResolverOptions {
  readonly run?: IpRunner;
  readonly probe?: Prober;
  /** Neighbour table polling period while waiting, ms. */
  readonly pollIntervalMs?: number;
  /** Minimum gap between probes while the entry stays missing or FAILED, ms. */
  readonly reprobeIntervalMs?: number;
}

export type RecheckResult =
  /** Same ifindex, MACs and MTU as before; nextHop is the fresh read (state may differ). */
  | { readonly status: "unchanged"; readonly nextHop: NextHop }
  /** Something the data plane uses changed: write nextHop to the backend's entry. */
  | { readonly status: "changed"; readonly nextHop: NextHop }
  /** The neighbour no longer answers within the timeout: the backend is pending again. */
  | { readonly status: "unresolved" };

/** Matches `lbctl backend add`: a backend unresolved after this long is reported `pending`. */
export const DEFAULT_RESOLVE_TIMEOUT_MS = 2000;
const DEFAULT_POLL_INTERVAL_MS = 15;
const DEFAULT_REPROBE_INTERVAL_MS = 500;
/** UDP "discard" (RFC 863): the probe datagram's destination port. */
export const PROBE_PORT = 9;

/** Neighbour states whose lladdr the kernel itself would send to. */
const USABLE_STATES: ReadonlySet<string> = new Set([
  "REACHABLE",
  "STALE",
  "DELAY",
  "PROBE",
  "PERMANENT",
  "NOARP",
]);
/** States in which the kernel currently vouches for the lladdr (no confirmation pending). */
const CONFIRMED_STATES: ReadonlySet<string> = new Set(["REACHABLE", "PERMANENT", "NOARP"]);

/**
 * Sends one empty UDP datagram to `address`, port 9, through the kernel's stack: routing it
 * makes the kernel create the neighbour entry of the next hop and start ARP / ND. Send errors
 * are ignored: the neighbour table, polled afterwards, is the answer.
 */
export function sendProbe(address: IpAddress): Promise<void> {
  return new Promise((resolve) => {
    const socket = createSocket(address.family === AF_INET6 ? "udp6" : "udp4");
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      socket.close();
      resolve();
    };
    socket.once("error", finish);
    socket.send(new Uint8Array(0), PROBE_PORT, addressToString(address), finish);
  });
}

/** True when the next hop was read in a state the kernel has not confirmed lately (STALE, DELAY, PROBE). */
export function isStale(nextHop: NextHop): boolean {
  return !nextHop.state.split(",").some((s) => CONFIRMED_STATES.has(s));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** True when both send the same frames: ifindex, MACs and MTU equal (gateway and state ignored). */
export function sameForwarding(a: NextHop, b: NextHop): boolean {
  return a.ifindex === b.ifindex && a.mtu === b.mtu && sameBytes(a.dmac, b.dmac) && sameBytes(a.smac, b.smac);
}

/** The lladdr of a neighbour entry the kernel would use, else undefined. */
export function usableLladdr(entry: IpNeigh | undefined): Uint8Array | undefined {
  if (entry?.lladdr === undefined || !entry.state.some((s) => USABLE_STATES.has(s))) return undefined;
  return parseMac(entry.lladdr);
}

function routeMtu(route: IpRoute): number | undefined {
  for (const metrics of route.metrics ?? []) {
    const mtu = metrics["mtu"];
    // `mtu lock N` prints as {"lock": true, "value": N} in some iproute2 versions.
    const value =
      typeof mtu === "number"
        ? mtu
        : typeof mtu === "object" && mtu !== null
          ? (mtu as { value?: unknown }).value
          : undefined;
    if (typeof value === "number" && value > 0) return value;
  }
  return undefined;
}

const ROUTE_HINT_PREFIX = "add a route to it in the daemon's network namespace; check with `ip route get";

/** BackendRoute of a `ip -j route get ADDR` entry; LB_ERR_ROUTE when the route is not unicast. */
export function backendRouteFromIp(address: IpAddress, route: IpRoute): BackendRoute {
  const text = addressToString(address);
  const type = route.type ?? "unicast";
  if (type === "local") {
    throw new LbError("LB_ERR_ROUTE", `backend address ${text} is local`, {
      hint: "a backend must be another host: this address belongs to the balancer's own network namespace",
    });
  }
  if (type === "broadcast" || type === "multicast" || type === "anycast") {
    throw new LbError("LB_ERR_ROUTE", `backend address ${text} is a ${type} address`, {
      hint: "a backend needs a unicast address",
    });
  }
  if (type !== "unicast") {
    throw new LbError("LB_ERR_ROUTE", `no usable route to backend ${text} (route type ${type})`, {
      hint: `${ROUTE_HINT_PREFIX} ${text}\``,
    });
  }
  if (route.dev === undefined) {
    throw new LbError("LB_ERR_ROUTE", `the route to backend ${text} names no interface`, {
      hint: `${ROUTE_HINT_PREFIX} ${text}\``,
    });
  }
  const gatewayText = route.gateway ?? route.via?.host;
  let gateway: IpAddress | undefined;
  if (gatewayText !== undefined) {
    gateway = tryParseAddress(gatewayText);
    if (gateway === undefined) {
      throw new LbError(
        "LB_ERR_NETLINK",
        `\`ip -j route get ${text}\` printed an invalid gateway "${gatewayText}"`,
      );
    }
  }
  const mtu = routeMtu(route);
  return {
    dev: route.dev,
    neighbour: gateway ?? address,
    ...(gateway === undefined ? {} : { gateway }),
    ...(mtu === undefined ? {} : { mtu }),
  };
}

/** LB_ERR_ROUTE / LB_ERR_IFACE when the data plane cannot send through this egress link. */
function checkEgress(address: IpAddress, link: Link): void {
  const text = addressToString(address);
  if (link.linkType === "loopback") {
    throw new LbError("LB_ERR_ROUTE", `backend address ${text} is local (routed to ${link.name})`, {
      hint: "a backend must be another host reached through an Ethernet interface",
    });
  }
  if (link.linkType !== "ether") {
    throw new LbError(
      "LB_ERR_IFACE",
      `backend ${text} is reached through ${link.name}, which is not Ethernet (link type ${link.linkType})`,
      { hint: "the data plane writes an Ethernet header: route backends through an Ethernet interface" },
    );
  }
}

export class NextHopResolver {
  readonly #run: IpRunner;
  readonly #probe: Prober;
  readonly #pollIntervalMs: number;
  readonly #reprobeIntervalMs: number;

  constructor(options: NextHopResolverOptions = {}) {
    this.#run = options.run ?? execIp;
    this.#probe = options.probe ?? sendProbe;
    this.#pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.#reprobeIntervalMs = options.reprobeIntervalMs ?? DEFAULT_REPROBE_INTERVAL_MS;
  }

  /** `ip route get ADDR`: egress device and gateway. LB_ERR_ROUTE when unreachable or not unicast. */
  async route(address: IpAddress): Promise<BackendRoute> {
    const text = addressToString(address);
    const routes = await ipJson(this.#run, ["route", "get", text], ipRouteListSchema, (stderr) =>
      stderr.includes("RTNETLINK answers")
        ? new LbError("LB_ERR_ROUTE", `no route to backend ${text} (${firstLine(stderr)})`, {
            hint: `${ROUTE_HINT_PREFIX} ${text}\``,
            detail: stderr,
          })
        : undefined,
    );
    const route = routes[0];
    if (route === undefined) {
      throw new LbError("LB_ERR_ROUTE", `no route to backend ${text}`, {
        hint: `${ROUTE_HINT_PREFIX} ${text}\``,
      });
    }
    return backendRouteFromIp(address, route);
  }

  /** The kernel's neighbour entry for `address` on `dev`, whatever its state. */
  async neighbour(address: IpAddress, dev: string): Promise<IpNeigh | undefined> {
    const entries = await ipJson(
      this.#run,
      ["neigh", "show", "to", addressToString(address), "dev", dev],
      ipNeighListSchema,
    );
    return entries[0];
  }

  /**
   * The next hop towards a backend; probes and waits up to timeoutMs when the kernel has no
   * usable neighbour entry, then gives undefined (the backend stays pending). Throws LB_ERR_ROUTE
   * (no route, local address), LB_ERR_IFACE (egress not Ethernet) or LB_ERR_NETLINK.
   */
  async resolve(address: IpAddress, opts: ResolveOptions = {}): Promise<NextHop | undefined> {
    const deadline = performance.now() + (opts.timeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS);
    const { route, link, entry: first } = await this.#read(address);
    let entry = first;
    let lastProbe = -Infinity;
    for (;;) {
      const found = nextHopOf(route, link, entry);
      if (found !== undefined) return found;
      const now = performance.now();
      if (now >= deadline) return undefined;
      // INCOMPLETE: the kernel is already asking. Missing or FAILED: (re)start it, not too often.
      const asking = entry?.state.includes("INCOMPLETE") === true;
      if (lastProbe === -Infinity || (!asking && now - lastProbe >= this.#reprobeIntervalMs)) {
        lastProbe = now;
        await this.#probe(address);
      } else {
        await sleep(Math.max(1, Math.min(this.#pollIntervalMs, deadline - now)));
      }
      entry = await this.neighbour(route.neighbour, route.dev);
    }
  }

  /**
   * Re-reads a resolved backend's next hop. An entry the kernel has not confirmed lately (STALE)
   * is used as read and probed, so the kernel re-confirms it (or marks it FAILED) before the next
   * recheck; a missing or FAILED entry is resolved again with opts.timeoutMs. Throws as resolve().
   */
  async recheck(address: IpAddress, previous: NextHop, opts: ResolveOptions = {}): Promise<RecheckResult> {
    const { route, link, entry } = await this.#read(address);
    let current = nextHopOf(route, link, entry);
    if (current !== undefined && isStale(current)) await this.#probe(address);
    current ??= await this.resolve(address, opts);
    if (current === undefined) return { status: "unresolved" };
    return { status: sameForwarding(current, previous) ? "unchanged" : "changed", nextHop: current };
  }

  /**
   * The current next hops of many backends with three `ip` processes in all (every `route get` in
   * one `ip -batch`, one link dump, one neighbour dump) instead of three per backend, read as
   * recheck() reads them (a stale entry is used and probed). Keyed by addressToString. Backends
   * it cannot settle this way (the batch failed, an unusable route, no usable neighbour entry)
   * are absent: the caller rechecks those one by one.
   */
  async readMany(addresses: readonly IpAddress[]): Promise<Map<string, NextHop>> {
    const out = new Map<string, NextHop>();
    if (addresses.length === 0) return out;
    const dir = mkdtempSync(join(tmpdir(), "caplance-routes-"));
    const file = join(dir, "batch");
    let batch: IpResult;
    try {
      writeFileSync(file, addresses.map((a) => `route get ${addressToString(a)}\n`).join(""));
      batch = await this.#run(["-batch", file]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    if (!batch.ok) return out; // one unroutable backend fails the batch: all go one by one
    const routes = new Map<string, IpRoute>();
    for (const line of batch.stdout.split("\n")) {
      if (line.trim() === "") continue;
      const parsed = ipRouteListSchema.safeParse(JSON.parse(line));
      const route = parsed.success ? parsed.data[0] : undefined;
      const dst = route ? tryParseAddress(route.dst) : undefined;
      if (route && dst) routes.set(addressToString(dst), route);
    }
    const [links, neighbours] = await Promise.all([
      ipJson(this.#run, ["link", "show"], ipLinkListSchema),
      ipJson(this.#run, ["neigh", "show"], ipNeighListSchema),
    ]);
    const linkByName = new Map(links.map((l) => [l.ifname, linkFromIp(l)]));
    const neighbourOf = new Map<string, IpNeigh>();
    for (const n of neighbours) {
      const dst = tryParseAddress(n.dst);
      if (dst && n.dev !== undefined) neighbourOf.set(`${addressToString(dst)}%${n.dev}`, n);
    }
    for (const address of addresses) {
      const key = addressToString(address);
      const raw = routes.get(key);
      if (raw === undefined) continue;
      try {
        const route = backendRouteFromIp(address, raw);
        const link = linkByName.get(route.dev);
        if (link === undefined) continue;
        checkEgress(address, link);
        const current = nextHopOf(
          route,
          link,
          neighbourOf.get(`${addressToString(route.neighbour)}%${route.dev}`),
        );
        if (current === undefined) continue;
        if (isStale(current)) await this.#probe(address);
        out.set(key, current);
      } catch {
        continue; // recheck() one by one says what is wrong with it
      }
    }
    return out;
  }

  /** Route, then egress link and neighbour entry (in parallel: each is an `ip` child process). */
  async #read(address: IpAddress): Promise<{ route: BackendRoute; link: Link; entry: IpNeigh | undefined }> {
    const route = await this.route(address);
    const [link, entry] = await Promise.all([
      getLink(route.dev, this.#run),
      this.neighbour(route.neighbour, route.dev),
    ]);
    checkEgress(address, link);
    return { route, link, entry };
  }
}

function nextHopOf(route: BackendRoute, link: Link, entry: IpNeigh | undefined): NextHop | undefined {
  const dmac = usableLladdr(entry);
  if (dmac === undefined || entry === undefined) return undefined;
  return {
    ifindex: link.ifindex,
    ifname: link.name,
    smac: link.mac,
    dmac,
    mtu: route.mtu === undefined ? link.mtu : Math.min(route.mtu, link.mtu),
    ...(route.gateway === undefined ? {} : { gateway: route.gateway }),
    state: entry.state.join(","),
  };
}
