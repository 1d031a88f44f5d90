// The reconciler: the control plane's state of VIPs and backends, written into the data plane's
// maps in a safe order. A backend's entry is written before a table names it; a table stops
// naming a backend before its entry is cleared; a VIP's table exists before its address is
// matched. Operations are serialized, so map writes never interleave.
import { AsyncLocalStorage } from "node:async_hooks";
import type { Logger } from "pino";
import { formatAddress, parseAddress, type IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { buildMaglevTable } from "../maglev/maglev.js";
import {
  LB_BACKEND_F_IN_USE,
  LB_BACKEND_F_NEIGH,
  LB_MAX_BACKENDS,
  LB_MAX_VIPS,
  LB_VIP_F_HASH_SRC_IP,
  LB_VIP_F_HASH_SRC_IP_PORT,
} from "../maps/abi.js";
import type { BalancerMaps } from "../maps/balancer-maps.js";
import { IndexAllocator, LowestFreeAllocator } from "./index-allocator.js";
import { vipAddrEntry } from "./vip-addr.js";
import {
  PROTO_NUMBER,
  type BackendSource,
  type BackendSpec,
  type BackendState,
  type DesiredState,
  type HashMode,
  type VipRef,
} from "./types.js";
import type { VipSnapshot } from "./state-file.js";
import { formatVip, parseVip } from "./vip-syntax.js";

/** What the data plane needs to reach a backend (src/net/next-hop.ts resolves it). */
export interface NextHop {
  readonly ifindex: number;
  readonly smac: Uint8Array;
  readonly dmac: Uint8Array;
  readonly mtu: number;
}

export interface NextHopSource {
  resolve(address: IpAddress, opts?: { timeoutMs?: number }): Promise<NextHop | undefined>;
  /** Re-confirms a resolved next hop (probing a stale neighbour): the current one, or
   * undefined when it no longer resolves (the previous one is kept then). */
  recheck(address: IpAddress, previous: NextHop): Promise<NextHop | undefined>;
  /** Optional: many resolved next hops read at once, keyed by addrKey; those it leaves out are
   * rechecked one by one. */
  readMany?(addresses: readonly IpAddress[]): Promise<ReadonlyMap<string, NextHop>>;
}

export interface ReconcilerOptions {
  readonly maglevSize: number;
  /** How long `backend add` waits for a next hop before answering `pending`. */
  readonly resolveWaitMs?: number;
  readonly log?: Logger;
  /** Told how long each successful change took (seconds, queue wait excluded): metrics. */
  readonly onChange?: (operation: ReconcileOperation, seconds: number) => void;
}

/** The changes onChange reports, named like the control-socket commands. */
export type ReconcileOperation =
  | "vip.add"
  | "vip.remove"
  | "vip.hash"
  | "backend.add"
  | "backend.remove"
  | "backend.drain"
  | "backend.resume"
  | "backend.update"
  /** A health-check verdict (src/health): down leaves the table, up comes back. */
  | "backend.health"
  /** A whole config file (start-up, reload), its batched table writes included. */
  | "config.apply";

/** Where a VIP or backend came from: a reload removes what the file no longer names, but only
 * what came from the file; run-time additions (CLI, registration) stay unless the file names
 * them, and then the file's settings win. */
export type Origin = "config" | "runtime";

export interface ApplySummary {
  added: string[];
  removed: string[];
  changed: string[];
  warnings: string[];
}

interface BackendRuntime {
  origin: Origin;
  readonly source: BackendSource;
  /** The last change of its state or settings (epoch ms) and why, for `backend list`. */
  changedAt: number;
  changeReason: string;
  readonly index: number;
  readonly address: IpAddress;
  readonly encapPort: number;
  weight: number;
  name: string;
  drained: boolean;
  /** Failed its health checks: out of the table, entry not in use (its flows are re-picked). */
  down: boolean;
  nextHop: NextHop | undefined;
}

interface Batch {
  readonly tables: Set<VipRuntime>;
  readonly newVips: VipRuntime[];
  readonly drops: BackendRuntime[];
}

interface VipRuntime {
  origin: Origin;
  readonly id: number;
  readonly ref: VipRef;
  readonly key: string;
  hash: HashMode;
  readonly backends: Map<string, BackendRuntime>;
}

export interface BackendView {
  vip: string;
  address: string;
  port: number;
  name: string;
  weight: number;
  state: BackendState;
  index: number;
  source: BackendSource;
  /** Epoch ms of the last change, and why. */
  changedAt: number;
  changeReason: string;
}

export interface VipView {
  vip: string;
  hash: HashMode;
  backends: number;
  id: number;
}

const HASH_FLAGS: Readonly<Record<HashMode, number>> = {
  "5tuple": 0,
  "src-ip": LB_VIP_F_HASH_SRC_IP,
  "src-ip-port": LB_VIP_F_HASH_SRC_IP_PORT,
};

const addrKey = (a: IpAddress): string => formatAddress(a.bytes, a.family);

function sameNextHop(a: NextHop | undefined, b: NextHop | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    a.ifindex === b.ifindex &&
    a.mtu === b.mtu &&
    a.dmac.every((v, i) => v === b.dmac[i]) &&
    a.smac.every((v, i) => v === b.smac[i])
  );
}

/** Next-hop lookups that adds start before taking the queue, at most this many at once. */
const EARLY_LOOKUPS = 16;

export class Reconciler {
  private readonly vips = new Map<string, VipRuntime>();
  private readonly vipIds = new LowestFreeAllocator(LB_MAX_VIPS);
  private readonly backendIndices = new IndexAllocator(LB_MAX_BACKENDS);
  private queue: Promise<unknown> = Promise.resolve();
  private readonly holder = new AsyncLocalStorage<boolean>();
  /** During applyConfig: writes deferred to one flush, so N backends cost one table swap per
   * VIP (each swap waits for an RCU grace period, and each fill writes M slots). */
  private batch: Batch | undefined;
  /** During applyConfig: next hops looked up concurrently before the batch took the queue. */
  private prefetched: Map<string, Promise<NextHop | undefined>> | undefined;
  /** Group commit of `backend add`: VIPs whose table still lacks a backend just added (its entry
   * is written), swapped in by one queued flush shared by every add queued before it, so a burst
   * of N adds (agents registering, a script) costs one table swap per VIP instead of N. */
  private readonly lateTables = new Set<VipRuntime>();
  private lateFlush: Promise<void> | undefined;
  private lookupsInFlight = 0;
  private readonly lookupWaiters: (() => void)[] = [];

  constructor(
    private readonly maps: BalancerMaps,
    private readonly nextHops: NextHopSource,
    private readonly opts: ReconcilerOptions,
  ) {}

  /** Runs fn after every operation queued before it (one writer for the maps). */
  private serialize<T>(fn: () => Promise<T> | T): Promise<T> {
    // Re-entrant: an operation already holding the queue (applyConfig's batch) runs nested
    // operations directly instead of queueing behind itself.
    if (this.holder.getStore()) return Promise.resolve().then(fn);
    const locked = (): Promise<T> | T => this.holder.run(true, fn);
    const run = this.queue.then(locked, locked);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** serialize() for a change, timed for opts.onChange when it succeeds. */
  private change<T>(operation: ReconcileOperation, fn: () => Promise<T> | T): Promise<T> {
    const observe = this.opts.onChange;
    if (!observe) return this.serialize(fn);
    return this.serialize(async () => {
      const started = performance.now();
      const result = await fn();
      observe(operation, (performance.now() - started) / 1000);
      return result;
    });
  }

  // ---- queries

  listVips(): VipView[] {
    return [...this.vips.values()].map((v) => ({
      vip: v.key,
      hash: v.hash,
      backends: v.backends.size,
      id: v.id,
    }));
  }

  listBackends(vip?: VipRef): BackendView[] {
    const vips = vip ? [this.getVip(vip)] : [...this.vips.values()];
    return vips.flatMap((v) => [...v.backends.values()].map((b) => this.view(v, b)));
  }

  get backendCount(): number {
    return this.backendIndices.inUse;
  }

  // ---- hitless restart (state-file.ts)

  /** Everything a restarted daemon needs to take over the maps this reconciler wrote. */
  snapshot(): VipSnapshot[] {
    return [...this.vips.values()].map((v) => ({
      vip: v.key,
      id: v.id,
      hash: v.hash,
      origin: v.origin,
      backends: [...v.backends.values()].map((b) => ({
        address: addrKey(b.address),
        encapPort: b.encapPort,
        index: b.index,
        weight: b.weight,
        name: b.name,
        drained: b.drained,
        origin: b.origin,
        source: b.source,
        changedAt: b.changedAt,
        changeReason: b.changeReason,
      })),
    }));
  }

  /**
   * Takes over adopted maps: the VIPs and backends of a snapshot, with their ids and indices,
   * without writing anything (the maps hold them already; flows keep pointing at the same
   * indices). A backend whose entry is in lb_backends keeps that next hop; one without is
   * pending and resolved by maintain(). Only on an empty reconciler.
   */
  restore(vips: readonly VipSnapshot[]): void {
    if (this.vips.size > 0) throw new LbError("LB_ERR_INTERNAL", "restore() on a reconciler in use");
    for (const s of vips) {
      const ref = parseVip(s.vip);
      const vip: VipRuntime = {
        origin: s.origin,
        id: s.id,
        ref,
        key: formatVip(ref),
        hash: s.hash,
        backends: new Map(),
      };
      this.vipIds.reserve(s.id);
      for (const b of s.backends) {
        const address = parseAddress(b.address);
        const entry = this.maps.getBackend(b.index);
        const inMap =
          entry !== undefined &&
          (entry.flags & LB_BACKEND_F_NEIGH) !== 0 &&
          entry.vipId === s.id &&
          formatAddress(entry.address, entry.family) === addrKey(address);
        this.backendIndices.reserve(b.index);
        vip.backends.set(addrKey(address), {
          origin: b.origin,
          // Older state files have neither: the change is the adoption itself.
          source: b.source ?? "static",
          changedAt: b.changedAt ?? Date.now(),
          changeReason: b.changeReason ?? "adopted from the previous daemon",
          index: b.index,
          address,
          encapPort: b.encapPort,
          weight: b.weight,
          name: b.name,
          drained: b.drained,
          // Down before the restart (entry kept, not in use): stays out of the table until the
          // checks pass again (or, without checks, the checker brings it back at once).
          down: inMap && (entry.flags & LB_BACKEND_F_IN_USE) === 0,
          nextHop: inMap
            ? { ifindex: entry.ifindex, smac: entry.smac, dmac: entry.dmac, mtu: entry.mtu }
            : undefined,
        });
      }
      this.vips.set(vip.key, vip);
    }
    this.opts.log?.info({ vips: this.vips.size, backends: this.backendIndices.inUse }, "state restored");
  }

  // ---- VIPs

  addVip(ref: VipRef, hash: HashMode, origin: Origin = "runtime"): Promise<VipView> {
    return this.change("vip.add", () => {
      const key = formatVip(ref);
      if (this.vips.has(key)) throw new LbError("LB_ERR_EXISTS", `VIP ${key} already exists`);
      const vip: VipRuntime = { origin, id: this.vipIds.allocate(), ref, key, hash, backends: new Map() };
      this.maps.resetVipStats(vip.id); // counters of a VIP that had this id before
      // Table, then the VIP, then its address: a packet matching the address finds the rest.
      this.writeTable(vip);
      this.vips.set(key, vip);
      if (this.batch) {
        this.batch.newVips.push(vip);
      } else {
        this.writeVip(vip);
        this.writeVipAddr(ref);
      }
      this.opts.log?.info({ vip: key, vipId: vip.id, hash }, "VIP added");
      return { vip: key, hash, backends: 0, id: vip.id };
    });
  }

  removeVip(ref: VipRef): Promise<void> {
    return this.change("vip.remove", () => {
      const vip = this.getVip(ref);
      // Address first (traffic stops matching), then the VIP, its table, its backends.
      this.vips.delete(vip.key);
      this.writeVipAddr(ref);
      this.maps.deleteVip(this.vipKey(ref));
      this.maps.clearTable(vip.id);
      for (const b of vip.backends.values()) this.dropBackend(b);
      this.vipIds.release(vip.id);
      this.opts.log?.info({ vip: vip.key, vipId: vip.id }, "VIP removed");
    });
  }

  // ---- backends

  /** Adds a backend; resolves its next hop first (waiting up to resolveWaitMs). `reason` is
   * what `backend list` shows as its last change. */
  addBackend(
    ref: VipRef,
    spec: BackendSpec,
    origin: Origin = "runtime",
    reason?: string,
  ): Promise<{ backend: BackendView; warning?: string }> {
    // Inside applyConfig (the queue already held) its batch defers the table and prefetched the
    // next hop. On its own, the lookup (a few `ip` children) starts before taking the queue, so a
    // burst of adds resolves in parallel, and the table goes in with the burst's group commit.
    const nested = this.holder.getStore() === true;
    const early = nested ? undefined : this.earlyResolve(ref, spec.address);
    const added = this.change("backend.add", async () => {
      const vip = this.getVip(ref);
      const key = addrKey(spec.address);
      if (vip.backends.has(key))
        throw new LbError("LB_ERR_EXISTS", `backend ${key} already exists in VIP ${vip.key}`);
      const source = spec.source ?? "static";
      const backend: BackendRuntime = {
        origin,
        source,
        changedAt: Date.now(),
        changeReason:
          reason ??
          (origin === "config"
            ? "added from the config file"
            : source === "registered"
              ? "registered by its agent"
              : "added at run time"),
        index: this.backendIndices.allocate(),
        address: spec.address,
        encapPort: spec.encapPort,
        weight: spec.weight,
        name: spec.name ?? key,
        drained: false,
        down: false,
        nextHop: undefined,
      };
      vip.backends.set(key, backend);
      this.maps.resetBackendStats(backend.index);
      backend.nextHop = await (early ?? this.resolve(backend.address, this.opts.resolveWaitMs ?? 2000));
      if (backend.nextHop) {
        this.writeBackend(vip, backend);
        if (nested) this.writeTable(vip);
        else this.lateTables.add(vip);
      }
      this.opts.log?.info(
        { vip: vip.key, backend: key, index: backend.index, state: this.state(backend) },
        "backend added",
      );
      const view = this.view(vip, backend);
      if (backend.nextHop) return { backend: view };
      return {
        backend: view,
        warning: `backend ${key} of VIP ${vip.key} is pending: its next hop did not resolve within ${
          this.opts.resolveWaitMs ?? 2000
        } ms; it enters the tables as soon as it resolves`,
      };
    });
    if (nested) return added;
    // Returns once the backend is in the data plane's tables (the group commit's swap).
    return added.then(async (result) => {
      await this.flushLateTables();
      return result;
    });
  }

  /** The next hop of a backend about to be added, looked up now, or undefined when the add will
   * fail anyway (no such VIP, or the backend exists): then nothing is spawned for it. */
  private earlyResolve(ref: VipRef, address: IpAddress): Promise<NextHop | undefined> | undefined {
    const vip = this.vips.get(formatVip(ref));
    if (!vip || vip.backends.has(addrKey(address))) return undefined;
    return this.lookupSlot(() => this.resolve(address, this.opts.resolveWaitMs ?? 2000));
  }

  /** Runs fn when fewer than EARLY_LOOKUPS early lookups are in flight: each is a few `ip`
   * children, and a burst of a hundred adds must not fork hundreds at once. */
  private async lookupSlot<T>(fn: () => Promise<T>): Promise<T> {
    while (this.lookupsInFlight >= EARLY_LOOKUPS) await new Promise<void>((r) => this.lookupWaiters.push(r));
    this.lookupsInFlight++;
    try {
      return await fn();
    } finally {
      this.lookupsInFlight--;
      this.lookupWaiters.shift()?.();
    }
  }

  /** The group commit: queued behind every operation already queued, so one swap per VIP covers
   * all the adds before it. Tables are computed from the state at that time (entries written). */
  private flushLateTables(): Promise<void> {
    this.lateFlush ??= this.serialize(() => {
      this.lateFlush = undefined;
      const tables = new Map<number, Uint32Array>();
      for (const vip of this.lateTables)
        if (this.vips.get(vip.key) === vip) tables.set(vip.id, this.tableOf(vip));
      this.lateTables.clear();
      if (tables.size > 0) this.maps.replaceTables(tables);
    });
    return this.lateFlush;
  }

  removeBackend(ref: VipRef, address: IpAddress): Promise<void> {
    return this.change("backend.remove", () => {
      const vip = this.getVip(ref);
      const backend = this.getBackend(vip, address);
      vip.backends.delete(addrKey(address));
      // The table stops naming it before its entry goes: its flows then miss and re-pick.
      this.writeTable(vip);
      this.dropBackend(backend);
      this.opts.log?.info({ vip: vip.key, backend: addrKey(address) }, "backend removed");
    });
  }

  /** Drain (true): no new flows, existing flows stay. Resume (false): back in rotation. */
  setDrained(ref: VipRef, address: IpAddress, drained: boolean, reason?: string): Promise<BackendView> {
    return this.change(drained ? "backend.drain" : "backend.resume", () => {
      const vip = this.getVip(ref);
      const backend = this.getBackend(vip, address);
      if (backend.drained !== drained) {
        backend.drained = drained;
        this.touch(backend, reason ?? (drained ? "drained" : "resumed"));
        this.writeTable(vip);
      }
      this.opts.log?.info(
        { vip: vip.key, backend: addrKey(address), drained },
        drained ? "backend drained" : "backend resumed",
      );
      return this.view(vip, backend);
    });
  }

  /**
   * A health verdict (src/health). Down: the table stops naming the backend, then its entry loses
   * LB_BACKEND_F_IN_USE, so its established flows miss and are re-picked (it is dead: keeping them
   * would black-hole them), while its index stays allocated and is not reused. Up: entry first,
   * then the table. Drain is independent: a drained backend that goes down and comes back is
   * still drained. `index` (optional) ignores a verdict about a backend since replaced.
   */
  setHealth(
    ref: VipRef,
    address: IpAddress,
    healthy: boolean,
    reason: string,
    index?: number,
  ): Promise<BackendView> {
    return this.change("backend.health", () => {
      const vip = this.getVip(ref);
      const backend = this.getBackend(vip, address);
      if (backend.down === !healthy || (index !== undefined && backend.index !== index))
        return this.view(vip, backend);
      backend.down = !healthy;
      this.touch(backend, `${healthy ? "up" : "down"}: ${reason}`);
      if (backend.down) {
        this.writeTable(vip);
        this.writeBackend(vip, backend);
      } else {
        this.writeBackend(vip, backend);
        this.writeTable(vip);
      }
      this.opts.log?.info(
        { vip: vip.key, backend: addrKey(address), state: this.state(backend), reason },
        healthy ? "backend up: health checks pass" : "backend down: health checks fail",
      );
      return this.view(vip, backend);
    });
  }

  /**
   * Applies a config file's desired state (start-up and reload): what the file adds is added,
   * what it changes is changed, config-origin objects it no longer names are removed; nothing
   * unchanged is touched, so its flows and its table stay exactly as they were.
   */
  async applyConfig(desired: DesiredState): Promise<ApplySummary> {
    this.prefetched = this.prefetch(desired);
    try {
      return await this.change("config.apply", async () => {
        this.batch = { tables: new Set(), newVips: [], drops: [] };
        try {
          return await this.applyConfigLocked(desired);
        } finally {
          this.flush();
        }
      });
    } finally {
      this.prefetched = undefined;
    }
  }

  /** Next hops of the backends a config adds, looked up 16 at a time. */
  private prefetch(desired: DesiredState): Map<string, Promise<NextHop | undefined>> {
    const wanted = new Map<string, IpAddress>();
    for (const spec of desired.vips) for (const b of spec.backends) wanted.set(addrKey(b.address), b.address);
    const out = new Map<string, Promise<NextHop | undefined>>();
    const queue = [...wanted.entries()];
    const waiters = new Map<string, (nh: NextHop | undefined) => void>();
    for (const [key] of queue) out.set(key, new Promise((resolve) => waiters.set(key, resolve)));
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const [key, address] = next;
        const nh = await this.nextHops
          .resolve(address, { timeoutMs: this.opts.resolveWaitMs ?? 2000 })
          .catch(() => undefined);
        waiters.get(key)?.(nh);
      }
    };
    for (let i = 0; i < 16; i++) void worker();
    return out;
  }

  /** The deferred writes of a batch, in the safe order: entries are already written; tables
   * (one swap for all VIPs), then new VIPs and their addresses, then removed backends' entries. */
  private flush(): void {
    const batch = this.batch;
    this.batch = undefined;
    if (!batch) return;
    const tables = new Map<number, Uint32Array>();
    for (const vip of batch.tables) if (this.vips.get(vip.key) === vip) tables.set(vip.id, this.tableOf(vip));
    if (tables.size > 0) this.maps.replaceTables(tables);
    for (const vip of batch.newVips) {
      if (this.vips.get(vip.key) !== vip) continue;
      this.writeVip(vip);
      this.writeVipAddr(vip.ref);
    }
    for (const b of batch.drops) this.dropBackend(b);
  }

  private async applyConfigLocked(desired: DesiredState): Promise<ApplySummary> {
    const summary: ApplySummary = { added: [], removed: [], changed: [], warnings: [] };
    const wanted = new Set(desired.vips.map((v) => formatVip(v.vip)));
    for (const vip of [...this.vips.values()]) {
      if (vip.origin === "config" && !wanted.has(vip.key)) {
        await this.removeVip(vip.ref);
        summary.removed.push(vip.key);
      }
    }
    for (const spec of desired.vips) {
      const key = formatVip(spec.vip);
      const existing = this.vips.get(key);
      if (!existing) {
        await this.addVip(spec.vip, spec.hash, "config");
        summary.added.push(key);
      } else {
        existing.origin = "config";
        if (existing.hash !== spec.hash) {
          await this.setHash(spec.vip, spec.hash);
          summary.changed.push(`${key} hash ${spec.hash}`);
        }
      }
      await this.applyBackends(spec.vip, spec.backends, summary);
    }
    return summary;
  }

  private async applyBackends(
    ref: VipRef,
    specs: readonly BackendSpec[],
    summary: ApplySummary,
  ): Promise<void> {
    const vip = this.getVip(ref);
    const keep = new Set(specs.map((b) => addrKey(b.address)));
    for (const b of [...vip.backends.values()]) {
      if (b.origin === "config" && !keep.has(addrKey(b.address))) {
        await this.removeBackend(ref, b.address);
        summary.removed.push(`${vip.key} ${addrKey(b.address)}`);
      }
    }
    for (const spec of specs) {
      const name = `${vip.key} ${addrKey(spec.address)}`;
      const current = vip.backends.get(addrKey(spec.address));
      if (current && current.encapPort !== spec.encapPort) {
        // The encap port is part of the backend's Maglev identity: a new backend.
        await this.removeBackend(ref, spec.address);
      } else if (current) {
        current.origin = "config";
        if (current.weight !== spec.weight || (spec.name !== undefined && current.name !== spec.name)) {
          await this.updateBackend(ref, spec);
          summary.changed.push(`${name} weight ${spec.weight}`);
        }
        continue;
      }
      const added = await this.addBackend(ref, spec, "config");
      (current ? summary.changed : summary.added).push(name);
      if (added.warning) summary.warnings.push(added.warning);
    }
  }

  private setHash(ref: VipRef, hash: HashMode): Promise<void> {
    return this.change("vip.hash", () => {
      const vip = this.getVip(ref);
      vip.hash = hash;
      this.writeVip(vip);
      this.writeVipAddr(vip.ref);
      this.opts.log?.info({ vip: vip.key, hash }, "VIP hash changed");
    });
  }

  private updateBackend(ref: VipRef, spec: BackendSpec): Promise<void> {
    return this.change("backend.update", () => {
      const vip = this.getVip(ref);
      const backend = this.getBackend(vip, spec.address);
      const what: string[] = [];
      if (spec.name !== undefined && spec.name !== backend.name) {
        what.push(`name ${spec.name}`);
        backend.name = spec.name;
      }
      if (backend.weight !== spec.weight) {
        what.push(`weight ${backend.weight} → ${spec.weight}`);
        backend.weight = spec.weight;
        this.writeTable(vip);
      }
      if (what.length > 0) this.touch(backend, `config file: ${what.join(", ")}`);
      this.opts.log?.info(
        { vip: vip.key, backend: addrKey(spec.address), weight: spec.weight },
        "backend changed",
      );
    });
  }

  /**
   * Periodic upkeep: resolve pending backends, and re-check every next hop (a changed MAC,
   * interface or MTU is rewritten). Cheap enough every few seconds for hundreds of backends.
   */
  async maintain(all: boolean): Promise<void> {
    // Lookups run outside the queue (each is a few `ip` processes, and hundreds of them must not
    // hold up control requests); only the writes for what changed take the queue.
    const found: { vip: VipRuntime; b: BackendRuntime; next: NextHop }[] = [];
    // Every resolved backend at once where the source can (a few `ip` processes, not three per
    // backend: at thousands of backends a pass would otherwise fork for minutes).
    const resolved = all
      ? [...this.vips.values()].flatMap((v) => [...v.backends.values()].filter((b) => b.nextHop))
      : [];
    const read: ReadonlyMap<string, NextHop> =
      resolved.length > 0 ? await this.readMany(resolved.map((b) => b.address)) : new Map<string, NextHop>();
    for (const vip of [...this.vips.values()]) {
      for (const b of [...vip.backends.values()]) {
        if (b.nextHop && !all) continue;
        const batched = read.get(addrKey(b.address));
        const next = b.nextHop
          ? (batched ?? (await this.recheck(b, b.nextHop)))
          : await this.resolve(b.address, 500);
        if (next && !sameNextHop(next, b.nextHop)) found.push({ vip, b, next });
      }
    }
    if (found.length === 0) return;
    await this.serialize(() => {
      const grown = new Set<VipRuntime>();
      for (const { vip, b, next } of found) {
        // Skip what went away while we looked.
        if (this.vips.get(vip.key) !== vip || vip.backends.get(addrKey(b.address)) !== b) continue;
        const wasPending = !b.nextHop;
        b.nextHop = next;
        this.touch(b, wasPending ? "next hop resolved" : "next hop changed");
        this.writeBackend(vip, b);
        if (wasPending) grown.add(vip);
        this.opts.log?.info(
          { vip: vip.key, backend: addrKey(b.address), wasPending },
          "backend next hop updated",
        );
      }
      for (const vip of grown) this.writeTable(vip);
    });
  }

  // ---- writes

  private vipKey(ref: VipRef): { address: Uint8Array; port: number; family: 2 | 10; proto: number } {
    return {
      address: ref.address.bytes,
      port: ref.port,
      family: ref.address.family,
      proto: PROTO_NUMBER[ref.proto],
    };
  }

  private writeVip(vip: VipRuntime): void {
    this.maps.putVip(this.vipKey(vip.ref), { vipId: vip.id, flags: HASH_FLAGS[vip.hash] });
  }

  /** lb_vip_addrs for one (address, protocol): the union of its VIPs, or gone when none. */
  private writeVipAddr(ref: VipRef): void {
    const onAddress = [...this.vips.values()]
      .filter((v) => v.ref.proto === ref.proto && addrKey(v.ref.address) === addrKey(ref.address))
      .map((v) => ({ port: v.ref.port, vipId: v.id, flags: HASH_FLAGS[v.hash] }));
    const entry = vipAddrEntry(onAddress);
    const key = { address: ref.address.bytes, family: ref.address.family, proto: PROTO_NUMBER[ref.proto] };
    if (entry) this.maps.putVipAddr(key, entry);
    else this.maps.deleteVipAddr(key);
  }

  private writeBackend(vip: VipRuntime, b: BackendRuntime): void {
    const nh = b.nextHop;
    if (!nh) return;
    this.maps.putBackend(b.index, {
      address: b.address.bytes,
      family: b.address.family,
      flags: (b.down ? 0 : LB_BACKEND_F_IN_USE) | LB_BACKEND_F_NEIGH,
      encapPort: b.encapPort,
      vipId: vip.id,
      ifindex: nh.ifindex,
      mtu: nh.mtu,
      dmac: nh.dmac,
      smac: nh.smac,
    });
  }

  private dropBackend(b: BackendRuntime): void {
    if (this.batch) {
      this.batch.drops.push(b); // after the table swap that stops naming it
      return;
    }
    this.maps.deleteBackend(b.index);
    this.backendIndices.release(b.index);
  }

  /** Backends in the table: resolved ones not down, at weight 0 when drained. */
  private writeTable(vip: VipRuntime): void {
    if (this.batch) {
      this.batch.tables.add(vip);
      return;
    }
    this.lateTables.delete(vip); // written now, from the same state the group commit would use
    this.maps.replaceTable(vip.id, this.tableOf(vip));
  }

  private tableOf(vip: VipRuntime): Uint32Array {
    const members = [...vip.backends.values()]
      .filter((b) => b.nextHop && !b.down)
      .map((b) => ({
        address: b.address.bytes,
        encapPort: b.encapPort,
        weight: b.drained ? 0 : b.weight,
        index: b.index,
      }));
    return buildMaglevTable(members, this.opts.maglevSize);
  }

  // ---- helpers

  private async resolve(address: IpAddress, timeoutMs: number): Promise<NextHop | undefined> {
    const prefetched = this.prefetched?.get(addrKey(address));
    if (prefetched) return prefetched;
    try {
      return await this.nextHops.resolve(address, { timeoutMs });
    } catch (err) {
      this.opts.log?.warn({ backend: addrKey(address), err }, "next hop lookup failed");
      return undefined;
    }
  }

  private async readMany(addresses: readonly IpAddress[]): Promise<ReadonlyMap<string, NextHop>> {
    if (!this.nextHops.readMany) return new Map();
    try {
      return await this.nextHops.readMany(addresses);
    } catch (err) {
      this.opts.log?.warn({ err }, "batched next-hop read failed: rechecking one by one");
      return new Map();
    }
  }

  private async recheck(b: BackendRuntime, previous: NextHop): Promise<NextHop | undefined> {
    try {
      return await this.nextHops.recheck(b.address, previous);
    } catch (err) {
      this.opts.log?.warn({ backend: addrKey(b.address), err }, "next hop recheck failed");
      return undefined;
    }
  }

  private getVip(ref: VipRef): VipRuntime {
    const key = formatVip(ref);
    const vip = this.vips.get(key);
    if (!vip)
      throw new LbError("LB_ERR_NOT_FOUND", `no VIP ${key}`, { hint: "lbctl vip list shows the VIPs" });
    return vip;
  }

  private getBackend(vip: VipRuntime, address: IpAddress): BackendRuntime {
    const b = vip.backends.get(addrKey(address));
    if (!b) {
      throw new LbError("LB_ERR_NOT_FOUND", `no backend ${addrKey(address)} in VIP ${vip.key}`, {
        hint: `lbctl backend list ${vip.key} shows its backends`,
      });
    }
    return b;
  }

  private state(b: BackendRuntime): BackendState {
    if (!b.nextHop) return "pending";
    if (b.down) return "down";
    return b.drained || b.weight === 0 ? "draining" : "active";
  }

  private view(vip: VipRuntime, b: BackendRuntime): BackendView {
    return {
      vip: vip.key,
      address: addrKey(b.address),
      port: b.encapPort,
      name: b.name,
      weight: b.weight,
      state: this.state(b),
      index: b.index,
      source: b.source,
      changedAt: b.changedAt,
      changeReason: b.changeReason,
    };
  }

  private touch(b: BackendRuntime, reason: string): void {
    b.changedAt = Date.now();
    b.changeReason = reason;
  }
}
