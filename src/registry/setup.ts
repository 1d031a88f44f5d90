// The daemon's side of `--secret-file F [--registration-port N]`: read and check everything before
// the data plane is touched (prepareRegistry), then listen once the reconciler exists
// (startRegistry). Tunables come from the environment (docs/registration.md).
import type { Logger } from "pino";

import type { Reconciler } from "../core/reconciler.js";
import type { IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { parseCidr } from "./cidr.js";
import { readSecretFile } from "./secret.js";
import { RegistrationServer, type RegistrationEvent, type RegistryOptions } from "./server.js";
import { UdpTunnelProber } from "./tunnel-probe.js";
import { DEFAULT_REGISTRATION_PORT } from "./wire.js";

export interface PreparedRegistry {
  readonly port: number;
  readonly options: RegistryOptions;
}

/** Environment variables, in seconds (decimals allowed) or counts. */
export const REGISTRY_ENV = {
  readTimeoutMs: "CAPLANCE_REG_READ_TIMEOUT",
  registerTimeoutMs: "CAPLANCE_REG_REGISTER_TIMEOUT",
  writeTimeoutMs: "CAPLANCE_REG_WRITE_TIMEOUT",
  tunnelTimeoutMs: "CAPLANCE_REG_TUNNEL_TIMEOUT",
  capacityPerVip: "CAPLANCE_REG_CAPACITY",
  maxConnections: "CAPLANCE_REG_MAX_CONNECTIONS",
  maxUnauthenticatedPerPeer: "CAPLANCE_REG_MAX_UNAUTH_PER_PEER",
  allow: "CAPLANCE_REG_ALLOW",
  probeMtu: "CAPLANCE_REG_PROBE_MTU",
} as const;

function envNumber(name: string, env: NodeJS.ProcessEnv, scale: number): number | undefined {
  const text = env[name];
  if (text === undefined || text === "") return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0)
    throw new LbError("LB_ERR_CONFIG", `${name}: expected a positive number, got "${text}"`);
  return Math.max(1, Math.round(n * scale));
}

/** Undefined without --secret-file (no listener). Throws on a bad secret file or setting. */
export function prepareRegistry(
  opts: { secretFile?: string; registrationPort?: number },
  env: NodeJS.ProcessEnv = process.env,
): PreparedRegistry | undefined {
  if (opts.secretFile === undefined) {
    if (opts.registrationPort !== undefined) {
      throw new LbError(
        "LB_ERR_USAGE",
        "--registration-port needs --secret-file (the listener is off without it)",
      );
    }
    return undefined;
  }
  const secret = readSecretFile(opts.secretFile);
  const options: { -readonly [K in keyof RegistryOptions]: RegistryOptions[K] } = { secret };
  const set = (key: "readTimeoutMs" | "registerTimeoutMs" | "writeTimeoutMs" | "tunnelTimeoutMs"): void => {
    const v = envNumber(REGISTRY_ENV[key], env, 1000);
    if (v !== undefined) options[key] = v;
  };
  set("readTimeoutMs");
  set("registerTimeoutMs");
  set("writeTimeoutMs");
  set("tunnelTimeoutMs");
  const capacity = envNumber(REGISTRY_ENV.capacityPerVip, env, 1);
  if (capacity !== undefined) options.capacityPerVip = capacity;
  const maxConnections = envNumber(REGISTRY_ENV.maxConnections, env, 1);
  if (maxConnections !== undefined) options.maxConnections = maxConnections;
  const perPeer = envNumber(REGISTRY_ENV.maxUnauthenticatedPerPeer, env, 1);
  if (perPeer !== undefined) options.maxUnauthenticatedPerPeer = perPeer;
  const probeMtu = env[REGISTRY_ENV.probeMtu];
  if (probeMtu !== undefined && probeMtu !== "") {
    const n = Number(probeMtu);
    if (!Number.isInteger(n) || (n !== 0 && (n < 128 || n > 65535)))
      throw new LbError(
        "LB_ERR_CONFIG",
        `${REGISTRY_ENV.probeMtu}: expected 0 (small tunnel probes only) or an MTU 128..65535, got "${probeMtu}"`,
      );
    options.probeMtu = n;
  }
  const allow = env[REGISTRY_ENV.allow];
  if (allow !== undefined && allow.trim() !== "") {
    options.allow = allow
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)
      .map(parseCidr);
  }
  return { port: opts.registrationPort ?? DEFAULT_REGISTRATION_PORT, options };
}

/** Listens; returns the cleanup (close the listener and the probe sockets). `ifaceMtu`, the
 * balancer interface's MTU, sizes the full-size tunnel probe unless the environment did. */
export async function startRegistry(
  prepared: PreparedRegistry,
  reconciler: Reconciler,
  sources: { v4?: IpAddress; v6?: IpAddress },
  log: Logger,
  onEvent?: (event: RegistrationEvent) => void,
  ifaceMtu?: number,
): Promise<{ server: RegistrationServer; close: () => Promise<void> }> {
  const prober = new UdpTunnelProber(sources);
  const options: RegistryOptions = {
    ...prepared.options,
    ...(onEvent ? { onEvent } : {}),
    ...(prepared.options.probeMtu === undefined && ifaceMtu !== undefined ? { probeMtu: ifaceMtu } : {}),
  };
  const server = new RegistrationServer(reconciler, prober, options, log);
  await server.listen(prepared.port);
  log.info(
    {
      port: prepared.port,
      allow: (prepared.options.allow ?? []).map((c) => c.text),
      readTimeoutMs: server.options.readTimeoutMs,
      probeMtu: server.options.probeMtu,
    },
    "registration listener ready",
  );
  return {
    server,
    close: async () => {
      await server.close();
      prober.close();
    },
  };
}
