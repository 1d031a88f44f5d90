// The active health checker: probes every backend (static or registered) of each VIP, with its
// configured checks or the default (TCP connect on a TCP VIP's port), on its own address; `fall`
// failures in a row take it down, `rise` successes bring it back, through the reconciler like any
// other change. It keeps each backend's latest result for `lbctl backend list`.
import type { Logger } from "pino";

import type { Reconciler } from "../core/reconciler.js";
import { parseVip } from "../core/vip-syntax.js";
import { parseAddress } from "../lib/addr.js";
import { probeBackend, type Probe, type ProbeResult, type ProbeResultName } from "./probe.js";
import { defaultCheck, describeCheck, type HealthCheckSpec, type HealthType } from "./spec.js";

/** What the checker needs of the reconciler (an interface, so tests can fake it). */
export type HealthTarget = Pick<Reconciler, "listBackends" | "setHealth">;

/** One finished probe, for metrics. */
export interface ProbeObservation {
  readonly vip: string;
  readonly backend: string;
  readonly result: ProbeResult["result"];
  readonly seconds: number;
}

export interface HealthCheckerOptions {
  readonly probe?: Probe;
  /** Probes in flight at once, over all VIPs (default 64): the rest wait for a free slot. */
  readonly concurrency?: number;
  /** Scheduler resolution (default 50 ms): a probe starts at most this late. */
  readonly tickMs?: number;
  readonly log?: Logger;
  readonly onProbe?: (o: ProbeObservation) => void;
  /** A backend's series can go (it left its VIP). */
  readonly onForget?: (vip: string, backend: string) => void;
  readonly now?: () => number;
}

/** A backend's checks as `backend list` shows them. */
export interface HealthDetail {
  readonly kind: HealthType;
  /** describeCheck(): "http:80/healthz"; null for kind none. */
  readonly check: string | null;
  /** The latest probe's result and why; null before the first. */
  readonly result: ProbeResultName | null;
  readonly detail: string | null;
  /** Consecutive successes and failures (one of them is 0 after any probe). */
  readonly passes: number;
  readonly fails: number;
  /** Epoch ms of the latest probe's end. */
  readonly lastCheckAt: number | null;
}

const NO_CHECKS: HealthDetail = {
  kind: "none",
  check: null,
  result: null,
  detail: null,
  passes: 0,
  fails: 0,
  lastCheckAt: null,
};

interface Tracked {
  readonly vip: string;
  readonly address: string;
  readonly index: number;
  spec: HealthCheckSpec;
  lastAt: number | undefined;
  /** The checker's verdict (the reconciler's `down` follows it). */
  up: boolean;
  successes: number;
  failures: number;
  /** When the next probe is due (ms, opts.now's clock). */
  due: number;
  inFlight: boolean;
  last: ProbeResult | undefined;
}

export class HealthChecker {
  private specs: ReadonlyMap<string, HealthCheckSpec> = new Map();
  /** Per-backend checks, keyed "VIP ADDR": they replace the VIP's for that backend. */
  private overrides: ReadonlyMap<string, HealthCheckSpec> = new Map();
  /** defaultCheck() by VIP text, for VIPs without configured checks (null: none applies). */
  private readonly defaults = new Map<string, HealthCheckSpec | null>();
  private readonly tracked = new Map<string, Tracked>();
  /** The same entries keyed "VIP ADDR" (detail() without a scan). */
  private readonly byBackend = new Map<string, Tracked>();
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly probe: Probe;
  private readonly now: () => number;

  constructor(
    private readonly target: HealthTarget,
    private readonly opts: HealthCheckerOptions = {},
  ) {
    this.probe = opts.probe ?? probeBackend;
    this.now = opts.now ?? (() => performance.now());
  }

  /** The checks by canonical VIP text (config `health`) and by "VIP ADDR" (a backend's own
   * `health`, merged over its VIP's); at start-up and on every reload. */
  configure(
    specs: ReadonlyMap<string, HealthCheckSpec>,
    overrides: ReadonlyMap<string, HealthCheckSpec> = new Map(),
  ): void {
    this.specs = specs;
    this.overrides = overrides;
    const described = (m: ReadonlyMap<string, HealthCheckSpec>): Record<string, string> =>
      Object.fromEntries([...m].map(([k, s]) => [k, describeCheck(s)]));
    this.opts.log?.info(
      { vips: described(specs), ...(overrides.size > 0 ? { backends: described(overrides) } : {}) },
      "health checks configured",
    );
  }

  /** What `backend list` shows of a backend's checks. */
  detail(vip: string, address: string): HealthDetail {
    const t = this.byBackend.get(`${vip} ${address}`);
    const spec = this.specFor(vip, address);
    if (!spec || spec.type === "none") return NO_CHECKS;
    if (!t) return { ...NO_CHECKS, kind: spec.type, check: describeCheck(spec) };
    return {
      kind: spec.type,
      check: describeCheck(spec),
      result: t.last?.result ?? null,
      detail: t.last?.detail ?? null,
      passes: t.successes,
      fails: t.failures,
      lastCheckAt: t.lastAt ?? null,
    };
  }

  private specFor(vip: string, address: string): HealthCheckSpec | undefined {
    const configured = this.overrides.get(`${vip} ${address}`) ?? this.specs.get(vip);
    if (configured) return configured;
    let ref = this.defaults.get(vip);
    if (ref === undefined) {
      const v = parseVip(vip);
      ref = defaultCheck(v.proto, v.port) ?? null;
      this.defaults.set(vip, ref);
    }
    return ref ?? undefined;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.tick();
    }, this.opts.tickMs ?? 50);
  }

  /** Stops scheduling and waits for the probes in flight (each ends within its timeout). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.idle();
  }

  /** Resolves once no probe (and no state change it caused) is in flight. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** One scheduling round: track new backends, forget gone ones, start the probes that are due. */
  tick(): void {
    const now = this.now();
    const seen = new Set<string>();
    for (const b of this.target.listBackends()) {
      const found = this.specFor(b.vip, b.address);
      const spec = found?.type === "none" ? undefined : found;
      const key = `${b.vip} ${b.address} ${b.index}`;
      let t = this.tracked.get(key);
      if (!spec) {
        // Checks removed from the config (or never there): a backend they took down comes back.
        if (b.state === "down")
          this.apply(b.vip, b.address, b.index, true, "health checks no longer configured");
        continue;
      }
      seen.add(key);
      if (!t) {
        t = {
          vip: b.vip,
          address: b.address,
          index: b.index,
          spec,
          lastAt: undefined,
          up: b.state !== "down",
          successes: 0,
          failures: 0,
          due: now,
          inFlight: false,
          last: undefined,
        };
        this.tracked.set(key, t);
        this.byBackend.set(`${b.vip} ${b.address}`, t);
      } else if (t.spec !== spec && JSON.stringify(t.spec) !== JSON.stringify(spec)) {
        // Reloaded: the counts restart under the new settings; the verdict stays until they flip it.
        t.spec = spec;
        t.successes = t.failures = 0;
        t.last = undefined;
      } else t.spec = spec;
      if (t.inFlight || t.due > now || this.inFlight.size >= (this.opts.concurrency ?? 64)) continue;
      t.due = now + spec.intervalMs;
      this.launch(t, spec);
    }
    for (const [key, t] of this.tracked) {
      if (seen.has(key) || t.inFlight) continue;
      this.tracked.delete(key);
      if (this.byBackend.get(`${t.vip} ${t.address}`) === t) this.byBackend.delete(`${t.vip} ${t.address}`);
      this.opts.onForget?.(t.vip, t.address);
    }
  }

  private launch(t: Tracked, spec: HealthCheckSpec): void {
    t.inFlight = true;
    const started = this.now();
    const run = this.probe(t.address, spec)
      .catch((err: unknown): ProbeResult => ({ result: "error", detail: String(err) }))
      .then((r) => {
        t.inFlight = false;
        t.last = r;
        t.lastAt = Date.now();
        this.opts.onProbe?.({
          vip: t.vip,
          backend: t.address,
          result: r.result,
          seconds: (this.now() - started) / 1000,
        });
        this.record(t, spec, r);
      })
      .finally(() => {
        this.inFlight.delete(run);
      });
    this.inFlight.add(run);
  }

  /** Hysteresis: only `fall` failures (or `rise` successes) in a row flip the verdict. */
  private record(t: Tracked, spec: HealthCheckSpec, r: ProbeResult): void {
    if (r.result === "success") {
      t.failures = 0;
      t.successes++;
      if (!t.up && t.successes >= spec.rise) {
        t.up = true;
        this.apply(t.vip, t.address, t.index, true, `${describeCheck(spec)}: ${t.successes} checks passed`);
      }
    } else {
      t.successes = 0;
      t.failures++;
      if (t.up && t.failures >= spec.fall) {
        t.up = false;
        this.apply(
          t.vip,
          t.address,
          t.index,
          false,
          `${describeCheck(spec)}: ${t.failures} checks failed, last: ${r.detail}`,
        );
      }
    }
  }

  private apply(vip: string, address: string, index: number, healthy: boolean, reason: string): void {
    const run = this.target
      .setHealth(parseVip(vip), parseAddress(address), healthy, reason, index)
      .then(() => undefined)
      .catch((err: unknown) => {
        // Removed while we looked: its state goes with it.
        this.opts.log?.debug({ vip, backend: address, err }, "health verdict not applied");
      })
      .finally(() => {
        this.inFlight.delete(run);
      });
    this.inFlight.add(run);
  }
}
