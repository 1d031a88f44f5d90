// `lbctl agent`: a backend that registers itself (docs/agent.md). Prepare the host, serve the
// agent socket, register and heartbeat; on SIGTERM/SIGINT drain (PAUSE), wait for established
// connections to the VIPs to finish or --drain-timeout, DEREGISTER, undo the host changes, exit 0.
import { execFile } from "node:child_process";

import { ControlServer } from "../api/control-server.js";
import type { Request } from "../api/protocol.js";
import { parseVip } from "../core/vip-syntax.js";
import { addressToString, parseAddress, type IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { createLogger, isLogLevel } from "../lib/log.js";
import { getLink, primaryAddresses } from "../net/links.js";
import { readSecretFile } from "../registry/secret.js";
import { RegistrationClient } from "./client.js";
import { HostSetup } from "./host.js";
import type { AgentOptions } from "./options.js";

export interface AgentStatus {
  name: string;
  lb: string;
  vips: string[];
  address: string;
  iface: string;
  decap: string;
  state: string;
  paused: boolean;
  draining: boolean;
  registrations: number;
  lastError: string | null;
  lastHeartbeatAt: string | null;
  establishedConnections: number;
  hostChanges: string[];
  /** The decapsulator's counters (docs/agent.md); null with --decap none. */
  decapCounters: Record<string, unknown> | null;
}

/** TCP connections (established or in the handshake) whose local end is one of the VIPs
 * (port-matched unless 0), from `ss -Htn` output. */
export function countEstablished(
  ssOutput: string,
  vips: readonly { address: string; port: number }[],
): number {
  let n = 0;
  for (const line of ssOutput.split("\n")) {
    const cols = line.trim().split(/\s+/);
    // Local address is second to last, with or without ss's State column (several states).
    const local = cols.length >= 4 ? cols[cols.length - 2] : undefined;
    if (local === undefined) continue;
    const colon = local.lastIndexOf(":");
    let host = local.slice(0, colon).replace(/^\[|\]$/g, "");
    const port = Number(local.slice(colon + 1));
    host = host.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1").replace(/%.*$/, "");
    if (vips.some((v) => v.address === host && (v.port === 0 || v.port === port))) n++;
  }
  return n;
}

function ss(): Promise<string> {
  return new Promise((resolve, reject) => {
    // A connection still in its handshake (SYN-RECV) is one a DEREGISTER now would cut.
    execFile(
      "ss",
      ["-Htn", "state", "established", "state", "syn-recv"],
      { encoding: "utf8", timeout: 5000 },
      (err, out) => {
        if (err) reject(new Error(`ss failed: ${err.message}`));
        else resolve(out);
      },
    );
  });
}

export async function runAgent(opts: AgentOptions): Promise<number> {
  if (!isLogLevel(opts.logLevel)) throw new LbError("LB_ERR_USAGE", `--log-level ${opts.logLevel}: unknown`);
  const log = createLogger({ level: opts.logLevel }).child({ module: "agent" });
  const secret = readSecretFile(opts.secretFile); // refuse before touching the host
  const link = await getLink(opts.iface);
  let address: IpAddress;
  if (opts.address !== undefined) address = parseAddress(opts.address);
  else {
    const p = await primaryAddresses(link.name);
    const a = p.v4 ?? p.v6;
    if (!a)
      throw new LbError("LB_ERR_CONFIG", `interface ${link.name} has no address to register`, {
        hint: "give one with --address IP",
      });
    address = a;
  }
  const vipRefs = opts.vips.map(parseVip);
  const vipAddresses = [...new Map(vipRefs.map((v) => [addressToString(v.address), v.address])).values()];
  const tcpVips = vipRefs
    .filter((v) => v.proto === "tcp")
    .map((v) => ({ address: addressToString(v.address), port: v.port }));
  const name = opts.name ?? addressToString(address);

  const host = new HostSetup(
    {
      iface: link.name,
      ifindex: link.ifindex,
      mtu: link.mtu,
      address,
      encapPort: opts.encapPort,
      vipAddresses,
      decap: opts.decap,
    },
    log.child({ part: "host" }),
  );
  await host.prepare();

  const client = new RegistrationClient({
    host: opts.lbHost,
    port: opts.lbPort,
    secret,
    vips: opts.vips,
    address: addressToString(address),
    encapPort: opts.encapPort,
    weight: opts.weight,
    name,
    healthIntervalMs: opts.healthIntervalS * 1000,
    log,
  });
  let draining = false;
  let established = 0;
  let stopRequested: (() => void) | undefined;
  const stopSignal = new Promise<string>((resolve) => {
    stopRequested = () => {
      resolve("deregister");
    };
    const onSignal = (signal: string): void => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });

  let decapCounters: Record<string, unknown> | null = null;
  const status = (): AgentStatus => {
    const c = client.status();
    return {
      name,
      lb: `${opts.lbHost}:${opts.lbPort}`,
      vips: opts.vips,
      address: addressToString(address),
      iface: link.name,
      decap: host.decapMode,
      state: c.state,
      paused: c.paused,
      draining,
      registrations: c.registrations,
      lastError: c.lastError,
      lastHeartbeatAt: c.lastHeartbeatAt,
      establishedConnections: established,
      hostChanges: host.changes(),
      decapCounters,
    };
  };

  let control: ControlServer | undefined;
  try {
    control = await ControlServer.listen(
      opts.socket,
      async (request: Request) => {
        switch (request.cmd) {
          case "agent.status":
            established = countEstablished(await ss().catch(() => ""), tcpVips);
            decapCounters = (await host.decapCounters().catch(() => undefined)) ?? null;
            return { result: status() };
          case "agent.pause":
            await client.setPaused(true);
            return { result: status() };
          case "agent.resume":
            if (draining) throw new LbError("LB_ERR_REQUEST", "the agent is stopping: resume refused");
            await client.setPaused(false);
            return { result: status() };
          case "agent.deregister":
            stopRequested?.();
            return { result: status() };
          default:
            throw new LbError("LB_ERR_REQUEST", `unknown agent command ${JSON.stringify(request.cmd)}`, {
              hint: "agent commands: pause, resume, deregister, status",
            });
        }
      },
      log.child({ part: "control" }),
    );
    await client.start();
    log.info(
      {
        lb: `${opts.lbHost}:${opts.lbPort}`,
        vips: opts.vips,
        address: addressToString(address),
        socket: opts.socket,
      },
      "agent running",
    );

    const why = await stopSignal;
    log.info({ why }, "stopping: draining");
    draining = true;
    if (why !== "deregister") {
      try {
        await client.setPaused(true);
      } catch (err) {
        log.warn(
          { err: err instanceof Error ? err.message : String(err) },
          "PAUSE failed; deregistering anyway",
        );
      }
      const deadline = Date.now() + opts.drainTimeoutS * 1000;
      for (;;) {
        established = countEstablished(await ss().catch(() => ""), tcpVips);
        if (established === 0 || Date.now() >= deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      if (established > 0) log.warn({ established }, "drain timeout: deregistering with connections open");
      else log.info("drained: no established connection to the VIPs");
    }
    try {
      await client.deregister();
      log.info("deregistered");
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, "DEREGISTER failed");
    }
  } finally {
    client.stop();
    await control?.close().catch(() => undefined);
    await host.restore();
  }
  log.info("agent stopped; host settings restored");
  return 0;
}
