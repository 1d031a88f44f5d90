// Prometheus metrics (docs/metrics.md) on a prom-client Registry of the daemon's own (not the
// global default, so tests and several daemons in one process never share series). The data-plane
// families are read at scrape time from the sources `lbctl stats` and `backend list` use.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

import type { BackendView, ReconcileOperation, VipView } from "../core/reconciler.js";
import type { BackendState } from "../core/types.js";
import { packageVersion } from "../lib/paths.js";
import { LB_ABI_VERSION } from "../maps/abi.js";
import type { DaemonContext } from "./handlers.js";
import type { StatsResult, StatusResult } from "./protocol.js";

/** What the metrics read: the daemon's context (handlers.ts) less what they never call. */
export type MetricsSource = Pick<DaemonContext, "reconciler" | "status" | "stats">;

const BACKEND_STATES: readonly BackendState[] = ["active", "draining", "down", "pending"];
const MODES: readonly StatusResult["mode"][] = ["native", "generic", "nfqueue"];
/** Data-plane verdicts by their `lbctl stats` counter name. */
const ACTIONS = ["pass", "tx", "redirect", "drop"] as const;
/** Flow-table outcomes; stale and syn are subsets of miss (bpf/lb_abi.h). */
const FLOW_RESULTS = { hit: "flow_hit", miss: "flow_miss", stale: "flow_stale", syn: "flow_syn" } as const;
/** Why a packet was passed up to the kernel, by counter name. */
const PASS_REASONS = {
  not_vip: "pass_not_vip",
  malformed: "pass_malformed",
  no_neighbour: "no_neigh",
} as const;

/**
 * Seconds: a VIP or drain is a map write or a table swap (sub-millisecond to tens of ms at
 * M = 65537); a backend add includes its next-hop resolution (up to 2 s before `pending`).
 */
export const RECONCILE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** caplance_reconcile_duration_seconds: made before the reconciler, whose onChange feeds it. */
export class ReconcileTimings {
  readonly histogram = new Histogram({
    name: "caplance_reconcile_duration_seconds",
    help: "Time to apply one change (VIP, backend, drain, weight, hash) to the data plane's maps, in seconds",
    labelNames: ["operation"] as const,
    buckets: RECONCILE_BUCKETS,
    registers: [],
  });

  readonly observe = (operation: ReconcileOperation, seconds: number): void => {
    this.histogram.observe({ operation }, seconds);
  };
}

/** Seconds: a probe on a LAN answers in well under a millisecond; a dead one lasts its timeout. */
export const HEALTH_CHECK_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** caplance_health_check_*: fed by the health checker (src/health/checker.ts) as probes finish. */
export class HealthCheckMetrics {
  readonly checks = new Counter({
    name: "caplance_health_check_total",
    help: "Active health probes of a backend, by result (success, timeout, refused, bad_status, error)",
    labelNames: ["vip", "backend", "result"] as const,
    registers: [],
  });

  readonly duration = new Histogram({
    name: "caplance_health_check_duration_seconds",
    help: "Time an active health probe took (connect, or HTTP GET and status), in seconds",
    labelNames: ["vip"] as const,
    buckets: HEALTH_CHECK_BUCKETS,
    registers: [],
  });

  readonly observe = (o: { vip: string; backend: string; result: string; seconds: number }): void => {
    this.checks.inc({ vip: o.vip, backend: o.backend, result: o.result });
    this.duration.observe({ vip: o.vip }, o.seconds);
  };

  /** A backend left its VIP (or its checks were removed): its series go. */
  readonly forget = (vip: string, backend: string): void => {
    for (const result of ["success", "timeout", "refused", "bad_status", "error"])
      this.checks.remove({ vip, backend, result });
  };
}

/** caplance_registration_events_total: fed by the registration server (src/registry). */
export class RegistrationMetrics {
  readonly events = new Counter({
    name: "caplance_registration_events_total",
    help: "Backend self-registration events: registered, paused, resumed, deregistered, timed_out (silent past the read timeout), rejected (ERR answers)",
    labelNames: ["event"] as const,
    registers: [],
  });

  readonly observe = (event: string): void => {
    this.events.inc({ event });
  };

  private states: () => Readonly<Record<string, number>> = () => ({});

  readonly connections = new Gauge({
    name: "caplance_registration_connections",
    help: "Open registration connections by stage: unauthenticated, authenticated, registered",
    labelNames: ["stage"] as const,
    registers: [],
    collect: () => {
      this.connections.reset();
      for (const [stage, n] of Object.entries(this.states())) this.connections.set({ stage }, n);
    },
  });

  /** Where the connection gauge reads from (the registration server, once it listens). */
  countConnections(states: () => Readonly<Record<string, number>>): void {
    this.states = states;
  }
}

interface Snapshot {
  readonly stats: StatsResult;
  readonly vips: VipView[];
  readonly backends: BackendView[];
  readonly mode: StatusResult["mode"];
}

export interface MetricsOptions {
  readonly timings?: ReconcileTimings;
  readonly health?: HealthCheckMetrics;
  readonly registration?: RegistrationMetrics;
  /** prom-client's process_* and nodejs_* metrics (default true). */
  readonly processMetrics?: boolean;
}

/** One series: its labels and its value. */
type Sample = readonly [Readonly<Record<string, string>>, number];

/** A family read at scrape time: its series from one snapshot. */
interface Family {
  readonly type: "counter" | "gauge";
  readonly name: string;
  readonly help: string;
  readonly labels: readonly string[];
  readonly samples: (s: Snapshot) => Iterable<Sample>;
}

const traffic = (s: Snapshot, b: BackendView): { packets: number; bytes: number } =>
  s.stats.backends[`${b.vip} ${b.address}`] ?? { packets: 0, bytes: 0 };
const counterOf = (s: Snapshot, name: string): number => s.stats.counters[name] ?? 0;
const oneOf = <T extends string>(
  label: string,
  all: readonly T[],
  current: T,
  base: Record<string, string> = {},
) => all.map((v): Sample => [{ ...base, [label]: v }, v === current ? 1 : 0]);

const FAMILIES: readonly Family[] = [
  {
    type: "counter",
    name: "caplance_vip_packets_total",
    help: "Packets received for a VIP",
    labels: ["vip"],
    samples: (s) => Object.entries(s.stats.vips).map(([vip, t]) => [{ vip }, t.packets]),
  },
  {
    type: "counter",
    name: "caplance_vip_bytes_total",
    help: "Bytes (received frame length) for a VIP",
    labels: ["vip"],
    samples: (s) => Object.entries(s.stats.vips).map(([vip, t]) => [{ vip }, t.bytes]),
  },
  {
    type: "counter",
    name: "caplance_backend_packets_total",
    help: "Packets sent to a backend of a VIP",
    labels: ["vip", "backend"],
    samples: (s) => s.backends.map((b) => [{ vip: b.vip, backend: b.address }, traffic(s, b).packets]),
  },
  {
    type: "counter",
    name: "caplance_backend_bytes_total",
    help: "Bytes (received frame length, before encapsulation) sent to a backend of a VIP",
    labels: ["vip", "backend"],
    samples: (s) => s.backends.map((b) => [{ vip: b.vip, backend: b.address }, traffic(s, b).bytes]),
  },
  {
    type: "counter",
    name: "caplance_drops_total",
    help: "Packets dropped by the data plane, by reason",
    labels: ["reason"],
    samples: (s) => Object.entries(s.stats.drops).map(([reason, n]) => [{ reason }, n]),
  },
  {
    type: "counter",
    name: "caplance_nfqueue_dropped_packets_total",
    help: "nfqueue mode: packets lost around the queue (queue full, worker socket full, worker ENOBUFS reports)",
    labels: ["where"],
    samples: (s) => {
      const q = s.stats.nfqueue;
      if (!q) return [];
      return [
        [{ where: "queue_full" }, q.queue_dropped],
        [{ where: "socket_full" }, q.user_dropped],
        [{ where: "enobufs" }, q.enobufs],
      ];
    },
  },
  {
    type: "counter",
    name: "caplance_dataplane_received_packets_total",
    help: "Packets the data plane program saw",
    labels: [],
    samples: (s) => [[{}, counterOf(s, "rx")]],
  },
  {
    type: "counter",
    name: "caplance_dataplane_packets_total",
    help: "Data-plane verdicts: pass (to the kernel), tx and redirect (encapsulated, sent), drop",
    labels: ["action"],
    samples: (s) => ACTIONS.map((action) => [{ action }, counterOf(s, action)]),
  },
  {
    type: "counter",
    name: "caplance_passed_packets_total",
    help: "Packets passed to the kernel, by reason: not for a VIP, too short to tell, backend next hop unresolved",
    labels: ["reason"],
    samples: (s) => Object.entries(PASS_REASONS).map(([reason, name]) => [{ reason }, counterOf(s, name)]),
  },
  {
    type: "counter",
    name: "caplance_flow_lookups_total",
    help: "Flow-table lookups: hit, or miss (a Maglev pick); stale and syn count the misses that had an entry",
    labels: ["result"],
    samples: (s) => Object.entries(FLOW_RESULTS).map(([result, name]) => [{ result }, counterOf(s, name)]),
  },
  {
    type: "counter",
    name: "caplance_no_neighbour_total",
    help: "VIP packets passed to the kernel because the chosen backend's next hop is not resolved yet",
    labels: [],
    samples: (s) => [[{}, counterOf(s, "no_neigh")]],
  },
  {
    type: "gauge",
    name: "caplance_backend_state",
    help: "1 for a backend's current state (active, draining, down, pending), 0 for the others",
    labels: ["vip", "backend", "state"],
    samples: (s) =>
      s.backends.flatMap((b) => oneOf("state", BACKEND_STATES, b.state, { vip: b.vip, backend: b.address })),
  },
  {
    type: "gauge",
    name: "caplance_backend_weight",
    help: "A backend's configured weight",
    labels: ["vip", "backend"],
    samples: (s) => s.backends.map((b) => [{ vip: b.vip, backend: b.address }, b.weight]),
  },
  {
    type: "gauge",
    name: "caplance_backend_info",
    help: "Always 1: a backend's name and encap port",
    labels: ["vip", "backend", "name", "port"],
    samples: (s) =>
      s.backends.map((b) => [{ vip: b.vip, backend: b.address, name: b.name, port: String(b.port) }, 1]),
  },
  {
    type: "gauge",
    name: "caplance_vips",
    help: "Configured VIPs",
    labels: [],
    samples: (s) => [[{}, s.vips.length]],
  },
  {
    type: "gauge",
    name: "caplance_backends",
    help: "Configured backends over all VIPs (any state)",
    labels: [],
    samples: (s) => [[{}, s.backends.length]],
  },
  {
    type: "gauge",
    name: "caplance_dataplane_mode",
    help: "1 for the data plane's mode (native, generic, nfqueue)",
    labels: ["mode"],
    samples: (s) => oneOf("mode", MODES, s.mode),
  },
];

export class CaplanceMetrics {
  readonly registry = new Registry();
  private snapshot: Snapshot | undefined;

  constructor(
    private readonly source: MetricsSource,
    opts: MetricsOptions = {},
  ) {
    for (const f of FAMILIES) {
      const config = { name: f.name, help: f.help, labelNames: f.labels, registers: [this.registry] };
      // Replace, never accumulate: the counters mirror the data plane's own totals.
      const fill = (metric: Counter | Gauge): void => {
        metric.reset();
        for (const [labels, value] of f.samples(this.current())) {
          if (metric instanceof Counter) metric.inc(labels, value);
          else metric.set(labels, value);
        }
      };
      if (f.type === "counter") {
        new Counter({
          ...config,
          collect() {
            fill(this);
          },
        });
      } else {
        new Gauge({
          ...config,
          collect() {
            fill(this);
          },
        });
      }
    }
    const info = new Gauge({
      name: "caplance_build_info",
      help: "Always 1: the Caplance version and the data plane's ABI version (bpf/lb_abi.h)",
      labelNames: ["version", "abi"] as const,
      registers: [this.registry],
    });
    info.set({ version: packageVersion(), abi: String(LB_ABI_VERSION) }, 1);

    this.registry.registerMetric((opts.timings ?? new ReconcileTimings()).histogram);
    const health = opts.health ?? new HealthCheckMetrics();
    this.registry.registerMetric(health.checks);
    this.registry.registerMetric(health.duration);
    const registration = opts.registration ?? new RegistrationMetrics();
    this.registry.registerMetric(registration.events);
    this.registry.registerMetric(registration.connections);
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One scrape in the text exposition format: the data plane is read once for all families. */
  async scrape(): Promise<string> {
    this.snapshot = undefined;
    try {
      return await this.registry.metrics();
    } finally {
      this.snapshot = undefined;
    }
  }

  private current(): Snapshot {
    this.snapshot ??= {
      stats: this.source.stats(),
      vips: this.source.reconciler.listVips(),
      backends: this.source.reconciler.listBackends(),
      mode: this.source.status().mode,
    };
    return this.snapshot;
  }
}
