// The active health checker: probes every backend (static or registered) of each VIP that has
// checks configured, on its own address, every interval; `fall` failures in a row take it down,
// `rise` successes bring it back, through the reconciler like any other change.
import type { Logger } from "pino";

import type { Reconciler } from "../core/reconciler.js";
import { parseVip } from "../core/vip-syntax.js";
import { parseAddress } from "../lib/addr.js";
import { probeBackend, type Probe, type ProbeResult } from "./probe.js";
import { describeCheck, type HealthCheckSpec } from "./spec.js";

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

interface Tracked {
  readonly vip: string;
  readonly address: string;
  readonly index: number;
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
  private readonly tracked = new Map<string, Tracked>();
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

  /** The checks by canonical VIP text (config `health`); at start-up and on every reload. */
  configure(specs: ReadonlyMap<string, HealthCheckSpec>): void {
    this.specs = specs;
    this.opts.log?.info(
      { vips: Object.fromEntries([...specs].map(([vip, s]) => [vip, describeCheck(s)])) },
      "health checks configured",
    );
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
      const spec = this.specs.get(b.vip);
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
          up: b.state !== "down",
          successes: 0,
          failures: 0,
          due: now,
          inFlight: false,
          last: undefined,
        };
        this.tracked.set(key, t);
      }
      if (t.inFlight || t.due > now || this.inFlight.size >= (this.opts.concurrency ?? 64)) continue;
      t.due = now + spec.intervalMs;
      this.launch(t, spec);
    }
    for (const [key, t] of this.tracked) {
      if (seen.has(key) || t.inFlight) continue;
      this.tracked.delete(key);
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
