// The daemon (`lbctl load`): the composition root. Validate everything first (config, interface,
// socket, what is attached), then load → fill the maps → attach → serve; stop in reverse order
// on SIGINT/SIGTERM. Returns the process exit code.
import type { Logger } from "pino";
import { ControlServer, socketIsLive } from "./api/control-server.js";
import { makeHandler } from "./api/handlers.js";
import { ApiServer, DEFAULT_API, splitListenAddress } from "./api/http-server.js";
import { CaplanceMetrics, HealthCheckMetrics, ReconcileTimings, RegistrationMetrics } from "./api/metrics.js";
import {
  DEFAULT_SOCKET,
  type ReloadResult,
  type SettingOrigin,
  type StatsResult,
  type StatusResult,
} from "./api/protocol.js";
import type { DaemonOptions } from "./cli/daemon-options.js";
import { loadConfigFile, type Config } from "./config/load.js";
import { Reconciler } from "./core/reconciler.js";
import { readStats } from "./core/stats.js";
import { HealthChecker } from "./health/checker.js";
import { openDataplane } from "./dataplane/dataplane.js";
import { freshBpfObject } from "./dataplane/bpf-build.js";
import { BpfObject } from "./dataplane/bpf-object.js";
import { queryXdp } from "./dataplane/xdp.js";
import { hasPinnedLink, netnsInode, pinDir } from "./dataplane/pinned-xdp.js";
import {
  readStateFile,
  removeStateFile,
  loadProcessAlive,
  statePath,
  STATE_VERSION,
  writeStateFile,
  type StateFile,
} from "./core/state-file.js";
import { parseAddress, type IpAddress } from "./lib/addr.js";
import { IdleGc } from "./lib/idle-gc.js";
import { LbError } from "./lib/errors.js";
import { createLogger, isLogLevel, type LogLevel } from "./lib/log.js";
import { readTokenFile } from "./lib/private-file.js";
import {
  LB_ABI_VERSION,
  LB_FLOW_TABLE_SIZE,
  LB_MAGLEV_SIZE_DEFAULT,
  LB_SETTINGS_F_HAVE_V4,
  LB_SETTINGS_F_HAVE_V6,
  LbCounter,
} from "./maps/abi.js";
import { BalancerMaps } from "./maps/balancer-maps.js";
import { prepareRegistry, startRegistry, type PreparedRegistry } from "./registry/setup.js";
import { getLink, primaryAddresses } from "./net/links.js";
import { NextHopResolver, type NextHop as KernelNextHop } from "./net/next-hop.js";
import type { NextHop, NextHopSource } from "./core/reconciler.js";

/** Upkeep cadence: pending next hops and the no-neighbour counter every second, all next hops every 10 s. */
const MAINTAIN_MS = 1000;
const RECHECK_ALL_EVERY = 10;

interface Resolved {
  settings: Record<string, SettingOrigin>;
  logLevel: LogLevel;
  logFile: string | undefined;
  socket: string;
  maglevSize: number;
  flowTableSize: number;
  /** REST + /metrics listener, ADDR:PORT. */
  api: string;
  /** Bearer token for REST changes; none: changes refused. */
  apiToken: string | undefined;
}

function pick<T extends string | number>(
  flag: T | undefined,
  envName: string,
  parse: (text: string) => T,
  config: T | undefined,
  fallback: T | null,
): SettingOrigin & { value: T | null } {
  if (flag !== undefined) return { value: flag, from: "flag" };
  const env = process.env[envName];
  if (env !== undefined && env !== "") return { value: parse(env), from: "env" };
  if (config !== undefined) return { value: config, from: "config" };
  return { value: fallback, from: "default" };
}

function positiveInt(name: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n <= 0)
      throw new LbError("LB_ERR_CONFIG", `${name}: expected a positive integer, got "${text}"`);
    return n;
  };
}

/** Flags > environment > config file > defaults; every setting remembers where it came from. */
function resolveSettings(opts: DaemonOptions, config: Config | undefined): Resolved {
  const level = pick<string>(
    opts.logLevel,
    "CAPLANCE_LOG_LEVEL",
    (t) => t,
    config?.settings.logLevel,
    "info",
  );
  if (!isLogLevel(String(level.value)))
    throw new LbError("LB_ERR_USAGE", `log level: unknown "${String(level.value)}"`);
  const logFile = pick<string>(opts.logFile, "CAPLANCE_LOG_FILE", (t) => t, config?.settings.logFile, null);
  const socket = pick<string>(opts.socket, "LBCTL_SOCKET", (t) => t, undefined, DEFAULT_SOCKET);
  const maglev = pick<number>(
    undefined,
    "CAPLANCE_MAGLEV_SIZE",
    positiveInt("CAPLANCE_MAGLEV_SIZE"),
    config?.settings.maglevSize,
    LB_MAGLEV_SIZE_DEFAULT,
  );
  const flows = pick<number>(
    undefined,
    "CAPLANCE_FLOW_TABLE_SIZE",
    positiveInt("CAPLANCE_FLOW_TABLE_SIZE"),
    undefined,
    LB_FLOW_TABLE_SIZE,
  );
  return {
    settings: {
      log_level: level,
      log_file: logFile,
      socket,
      maglev_size: maglev,
      flow_table_size: flows,
      mode: { value: opts.mode, from: "flag" },
      config: { value: opts.config ?? null, from: opts.config ? "flag" : "default" },
      api: { value: opts.api ?? DEFAULT_API, from: opts.api ? "flag" : "default" },
      api_token_file: { value: opts.apiTokenFile ?? null, from: opts.apiTokenFile ? "flag" : "default" },
    },
    logLevel: level.value as LogLevel,
    logFile: logFile.value ?? undefined,
    socket: socket.value ?? DEFAULT_SOCKET,
    maglevSize: maglev.value ?? LB_MAGLEV_SIZE_DEFAULT,
    flowTableSize: flows.value ?? LB_FLOW_TABLE_SIZE,
    api: opts.api ?? DEFAULT_API,
    apiToken: opts.apiTokenFile === undefined ? undefined : readTokenFile(opts.apiTokenFile), // mode 0600 checked
  };
}

/** --source (one per family) else the interface's primary address of each family. */
async function sourceAddresses(
  opts: DaemonOptions,
  iface: string,
): Promise<{ v4?: IpAddress; v6?: IpAddress }> {
  const given = opts.sources.map((s) => parseAddress(s));
  const primary = await primaryAddresses(iface);
  const v4 = given.find((a) => a.family === 2) ?? primary.v4;
  const v6 = given.find((a) => a.family === 10) ?? primary.v6;
  return { ...(v4 ? { v4 } : {}), ...(v6 ? { v6 } : {}) };
}

export async function runDaemon(opts: DaemonOptions): Promise<number> {
  if ((opts.keep || opts.once === true) && opts.mode === "nfqueue") {
    throw new LbError(
      "LB_ERR_UNSUPPORTED",
      "--keep and --once need an XDP data plane: the NFQUEUE worker stops with the daemon",
      {
        hint: "use --mode auto, native or generic with --keep",
      },
    );
  }
  const config = opts.config ? loadConfigFile(opts.config) : undefined; // nothing touched if it is bad
  const registry = prepareRegistry(opts); // secret file checked (mode 0600) before anything is touched
  const resolved = resolveSettings(opts, config);
  const log = createLogger({ level: resolved.logLevel, file: resolved.logFile });
  const link = await getLink(opts.iface);
  if (await socketIsLive(resolved.socket)) {
    throw new LbError("LB_ERR_EXISTS", `a daemon already listens on ${resolved.socket}`, {
      hint: "stop it first (lbctl status shows which interface it serves), or give this one another --socket",
    });
  }
  // Pins a previous daemon left (--keep, or a crash): adopt them, if their state is readable.
  const pinned = hasPinnedLink(link.ifindex);
  const adopt = pinned ? readStateFile(statePath(netnsInode(), link.ifindex), link.name) : undefined;
  if (pinned && (adopt === undefined || opts.mode === "nfqueue")) {
    throw new LbError(
      "LB_ERR_EXISTS",
      adopt === undefined
        ? `interface ${link.name} has a pinned Caplance data plane (${pinDir(link.ifindex)}) but no state file to adopt it with`
        : `interface ${link.name} has a pinned XDP data plane: --mode nfqueue cannot adopt it`,
      { hint: `remove it (this drops its flows) with: lbctl unload --iface ${link.name}` },
    );
  }
  if (adopt && adopt.pid !== process.pid && loadProcessAlive(adopt.pid)) {
    throw new LbError(
      "LB_ERR_EXISTS",
      `interface ${link.name} already has an XDP program: Caplance's, served by a running lbctl load (pid ${adopt.pid})`,
      {
        hint: `stop that daemon first (with --keep to hand over without loss); lbctl unload --iface ${link.name} removes it`,
      },
    );
  }
  const attached = queryXdp({ ifindex: link.ifindex, ifname: link.name });
  if (!pinned && attached.progId !== 0) {
    throw new LbError(
      "LB_ERR_EXISTS",
      `interface ${link.name} already has an XDP program (id ${attached.progId}, ${attached.mode})`,
      {
        hint: `if no lbctl load is running on it, remove it with: lbctl unload --iface ${link.name}`,
      },
    );
  }
  const sources = await sourceAddresses(opts, link.name);
  if (!sources.v4 && !sources.v6) {
    throw new LbError("LB_ERR_CONFIG", `interface ${link.name} has no address to use as the outer source`, {
      hint: "give one with --source IP",
    });
  }
  return serve(opts, resolved, config, link, sources, log, registry, adopt);
}

async function serve(
  opts: DaemonOptions,
  resolved: Resolved,
  config: Config | undefined,
  link: { ifindex: number; name: string; mtu: number },
  sources: { v4?: IpAddress; v6?: IpAddress },
  log: Logger,
  registry?: PreparedRegistry,
  adopt?: StateFile,
): Promise<number> {
  const started = Date.now();
  // Adopted tables keep their size: settings take effect after an unload (docs/operations.md).
  const maglevSize = adopt?.maglevSize ?? resolved.maglevSize;
  if (maglevSize !== resolved.maglevSize)
    log.warn(
      { adopted: maglevSize, configured: resolved.maglevSize },
      "maglev_size of the adopted tables kept",
    );
  const stateFile = statePath(netnsInode(), link.ifindex);
  // Adopted: an error before ready leaves the running data plane alone. Ready: --keep decides.
  let keep = adopt !== undefined;
  let persistTimer: NodeJS.Immediate | undefined;
  // $CAPLANCE_BALANCER_OBJECT: another build of the balancer (an upgrade, adopted through a link update).
  const objectPath =
    process.env.CAPLANCE_BALANCER_OBJECT ??
    freshBpfObject("balancer", (line) => {
      log.info(line);
    });
  const obj = BpfObject.open(objectPath, { maxEntries: { lb_flows: resolved.flowTableSize } });
  const cleanups: (() => void | Promise<void>)[] = [
    () => {
      obj.close();
    },
  ];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (err) {
        log.warn({ err }, "cleanup step failed");
      }
    }
  };
  try {
    // XDP (attached now, passing everything until the maps are filled) or the NFQUEUE worker.
    const dataplane = await openDataplane({
      requested: opts.mode,
      link,
      obj,
      flowTableSize: resolved.flowTableSize,
      log,
    });
    cleanups.push(() => {
      if (!keep) removeStateFile(stateFile);
      return dataplane.stop(keep);
    });
    const { maps, mode, reason } = dataplane;
    if ((opts.keep || opts.once === true) && mode === "nfqueue") {
      throw new LbError(
        "LB_ERR_ATTACH",
        `--keep and --once need XDP, and ${link.name} fell back to NFQUEUE (${reason})`,
      );
    }
    maps.setSettings({
      srcV4: sources.v4?.bytes.slice(0, 4) ?? new Uint8Array(4),
      srcV6: sources.v6?.bytes ?? new Uint8Array(16),
      maglevSize,
      flags: (sources.v4 ? LB_SETTINGS_F_HAVE_V4 : 0) | (sources.v6 ? LB_SETTINGS_F_HAVE_V6 : 0),
    });
    const timings = new ReconcileTimings();
    // Run-time state on disk after every change (coalesced per event-loop turn), for adoption.
    const saveState = (): void => {
      // In nfqueue mode too: its pid tells lbctl unload that a daemon serves the interface.
      writeStateFile(stateFile, {
        version: STATE_VERSION,
        abi: LB_ABI_VERSION,
        iface: link.name,
        pid: process.pid,
        maglevSize,
        vips: reconciler.snapshot(),
      });
    };
    const idleGc = new IdleGc();
    cleanups.push(() => {
      idleGc.stop();
    });
    const persist = (): void => {
      persistTimer ??= setImmediate(() => {
        persistTimer = undefined;
        try {
          saveState();
        } catch (err) {
          log.error({ err, stateFile }, "state file not written");
        }
      });
    };
    const reconciler = new Reconciler(maps, kernelNextHops(), {
      maglevSize,
      log: log.child({ module: "reconciler" }),
      onChange: (operation, seconds) => {
        timings.observe(operation, seconds);
        persist();
        idleGc.touch();
      },
    });
    if (adopt) reconciler.restore(adopt.vips); // then the config on top, as a reload would
    cleanups.push(() => {
      if (persistTimer) clearImmediate(persistTimer);
      if (keep) saveState();
    });
    for (const warning of (await reconciler.applyConfig(config?.desired ?? { vips: [] })).warnings)
      log.warn(warning);

    await dataplane.activate();
    saveState();
    if (opts.once === true) {
      keep = true; // the next load (or lbctl unload) takes it from here
      log.info(
        { iface: link.name, mode, adopted: dataplane.adopted ?? false },
        "--once: applied, left pinned",
      );
      await stop();
      return 0;
    }
    // Health checks (config `health`): configured now, started once everything else serves.
    const healthMetrics = new HealthCheckMetrics();
    const checker = new HealthChecker(reconciler, {
      log: log.child({ module: "health" }),
      onProbe: healthMetrics.observe,
      onForget: healthMetrics.forget,
    });
    checker.configure(config?.health ?? new Map(), config?.healthOverrides);

    const status = (): StatusResult => ({
      iface: link.name,
      ifindex: link.ifindex,
      mode,
      modeReason: reason,
      pid: process.pid,
      socket: resolved.socket,
      config: opts.config ?? null,
      vips: reconciler.listVips().length,
      backends: reconciler.backendCount,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      settings: resolved.settings,
      adopted: dataplane.adopted ?? false,
      upgraded: dataplane.upgraded ?? false,
      keep: opts.keep,
    });
    const reload = async (): Promise<ReloadResult> => {
      if (!opts.config) {
        throw new LbError("LB_ERR_CONFIG", "nothing to reload: the daemon was started without --config", {
          hint: "start it with lbctl load --config FILE",
        });
      }
      const next = loadConfigFile(opts.config); // invalid: throws with file:line, nothing applied
      const summary = await reconciler.applyConfig(next.desired);
      checker.configure(next.health, next.healthOverrides);
      if (JSON.stringify(next.settings) !== JSON.stringify(config?.settings ?? {})) {
        summary.warnings.push(
          "settings (maglev_size, log_level, log_file) take effect at the next lbctl load",
        );
      }
      log.info({ config: opts.config, ...summary }, "config reloaded");
      return { config: opts.config, ...summary };
    };
    const withQueueStats = (stats: StatsResult): StatsResult =>
      dataplane.queueStats ? { ...stats, nfqueue: dataplane.queueStats() } : stats;
    // Listens after the control socket (below); until then nothing is registering.
    let registrations: Awaited<ReturnType<typeof startRegistry>>["server"] | undefined;
    const context = {
      reconciler,
      status,
      stats: () => withQueueStats(readStats(maps, reconciler)),
      reload,
      health: (vip: string, address: string) => checker.detail(vip, address),
      registering: () => registrations?.registering() ?? [],
    };
    const handler = makeHandler(context);
    const server = await ControlServer.listen(resolved.socket, handler, log.child({ module: "control" }));
    cleanups.push(() => server.close());
    // The REST API runs the control socket's handler: the same changes, the same checks.
    const registrationMetrics = new RegistrationMetrics();
    const api = await ApiServer.listen(splitListenAddress(resolved.api), {
      handler,
      metrics: new CaplanceMetrics(context, {
        timings,
        health: healthMetrics,
        registration: registrationMetrics,
      }),
      token: resolved.apiToken,
      log: log.child({ module: "api" }),
    });
    cleanups.push(() => api.close());
    if (registry) {
      const listener = await startRegistry(
        registry,
        reconciler,
        sources,
        log.child({ module: "registry" }),
        registrationMetrics.observe,
        link.mtu,
      );
      registrations = listener.server;
      registrationMetrics.countConnections(() => listener.server.connectionStates());
      cleanups.push(() => listener.close());
    }

    checker.start();
    cleanups.push(() => checker.stop());
    const timer = maintainLoop(reconciler, maps, log);
    cleanups.push(() => {
      clearInterval(timer);
    });
    log.info(
      { iface: link.name, mode, socket: resolved.socket, vips: reconciler.listVips().length },
      "caplance ready",
    );
    keep = opts.keep;
    await untilStopSignal(log, reload);
    log.info("stopping");
    await stop();
    return 0;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Next hops from the kernel's routes and neighbours (src/net), as the reconciler wants them. */
function kernelNextHops(): NextHopSource {
  const resolver = new NextHopResolver();
  return {
    resolve: (address, opts) => resolver.resolve(address, opts),
    recheck: async (address, previous: NextHop) => {
      const r = await resolver.recheck(address, previous as KernelNextHop);
      return r.status === "unresolved" ? undefined : r.nextHop;
    },
    readMany: (addresses) => resolver.readMany(addresses),
  };
}

/** Re-probes pending backends every tick, every backend when no_neigh moves or every 10 ticks. */
function maintainLoop(reconciler: Reconciler, maps: BalancerMaps, log: Logger): NodeJS.Timeout {
  let ticks = 0;
  let noNeigh = -1n;
  let running = false;
  return setInterval(() => {
    if (running) return;
    running = true;
    ticks++;
    const now = maps.readCounters()[LbCounter.LB_C_NO_NEIGH] ?? 0n;
    const all = now !== noNeigh && noNeigh >= 0n ? true : ticks % RECHECK_ALL_EVERY === 0;
    if (now !== noNeigh && noNeigh >= 0n)
      log.info({ noNeigh: Number(now) }, "no-neighbour counter moved: re-probing next hops");
    noNeigh = now;
    reconciler
      .maintain(all)
      .catch((err: unknown) => {
        log.warn({ err }, "next-hop upkeep failed");
      })
      .finally(() => {
        running = false;
      });
  }, MAINTAIN_MS);
}

function untilStopSignal(log: Logger, reload: () => Promise<ReloadResult>): Promise<void> {
  return new Promise((resolve) => {
    const done = (signal: string): void => {
      log.info({ signal }, "signal received");
      process.off("SIGINT", done);
      process.off("SIGTERM", done);
      resolve();
    };
    process.on("SIGINT", done);
    process.on("SIGTERM", done);
    process.on("SIGHUP", () => {
      log.info("SIGHUP: reloading the config file");
      reload().catch((err: unknown) => {
        log.error(
          { err: err instanceof Error ? err.message : String(err) },
          "reload failed; running state unchanged",
        );
      });
    });
  });
}
