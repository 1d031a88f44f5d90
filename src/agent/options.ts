// `lbctl agent` options: from flags and/or a YAML file (--config, same names in snake_case),
// flags winning; validated into AgentOptions. Usage mistakes are LB_ERR_USAGE (exit 2).
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

import { DEFAULT_AGENT_SOCKET } from "../api/protocol.js";
import { formatVip, parseVipResult } from "../core/vip-syntax.js";
import { addressToString, tryParseAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { DEFAULT_REGISTRATION_PORT } from "../registry/wire.js";
import type { DecapRequest } from "./host.js";

const DECAP_REQUESTS: readonly DecapRequest[] = ["auto", "xdp", "native", "generic", "tun", "none"];

export const AGENT_SOCKET_ENV = "LBCTL_AGENT_SOCKET";

/** What commander hands over (all optional: the file may provide them). */
export interface AgentFlags {
  lb?: string;
  vip?: string[];
  iface?: string;
  name?: string;
  address?: string;
  weight?: number;
  encapPort?: number;
  secretFile?: string;
  socket?: string;
  drainTimeout?: number;
  healthInterval?: number;
  decap?: string;
  config?: string;
  logLevel?: string;
}

export interface AgentOptions {
  lbHost: string;
  lbPort: number;
  vips: string[];
  iface: string;
  name: string | undefined;
  address: string | undefined;
  weight: number;
  encapPort: number;
  secretFile: string;
  socket: string;
  drainTimeoutS: number;
  healthIntervalS: number;
  decap: DecapRequest;
  logLevel: string;
}

const FILE_KEYS: Readonly<Record<string, keyof AgentFlags>> = {
  lb: "lb",
  vip: "vip",
  vips: "vip",
  iface: "iface",
  name: "name",
  address: "address",
  weight: "weight",
  encap_port: "encapPort",
  secret_file: "secretFile",
  socket: "socket",
  drain_timeout: "drainTimeout",
  health_interval: "healthInterval",
  decap: "decap",
  log_level: "logLevel",
};

const usage = (message: string, hint?: string): LbError => new LbError("LB_ERR_USAGE", message, { hint });

/** The --config file as flags; unknown keys and wrong types are errors naming the file. */
export function readAgentConfig(file: string): AgentFlags {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, "utf8"));
  } catch (err) {
    throw new LbError("LB_ERR_CONFIG", `${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc))
    throw new LbError("LB_ERR_CONFIG", `${file}: expected a mapping`);
  const flags: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc)) {
    const flag = FILE_KEYS[key];
    if (flag === undefined)
      throw new LbError("LB_ERR_CONFIG", `${file}: unknown key "${key}"`, {
        hint: `known keys: ${Object.keys(FILE_KEYS).join(", ")}`,
      });
    if (flag === "vip") {
      const list = Array.isArray(value) ? value : [value];
      if (!list.every((v) => typeof v === "string"))
        throw new LbError("LB_ERR_CONFIG", `${file}: ${key}: expected VIP strings`);
      flags[flag] = list;
    } else if (["weight", "encapPort", "drainTimeout", "healthInterval"].includes(flag)) {
      if (typeof value !== "number") throw new LbError("LB_ERR_CONFIG", `${file}: ${key}: expected a number`);
      flags[flag] = value;
    } else {
      if (typeof value !== "string") throw new LbError("LB_ERR_CONFIG", `${file}: ${key}: expected a string`);
      flags[flag] = value;
    }
  }
  return flags;
}

/** --lb IP[:PORT] / [IPv6]:PORT / bare IPv6; port default 7070. */
export function parseLb(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text);
  const host = m?.[1] ?? text;
  const portText = m ? m[2] : undefined;
  const addr = tryParseAddress(host);
  if (addr === undefined) throw usage(`--lb ${text}: expected IP[:PORT], e.g. 198.18.0.1:7070`);
  const port = portText === undefined ? DEFAULT_REGISTRATION_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw usage(`--lb ${text}: port 1..65535`);
  return { host: addressToString(addr), port };
}

export function resolveAgentOptions(flags: AgentFlags, env: NodeJS.ProcessEnv = process.env): AgentOptions {
  const file = flags.config === undefined ? {} : readAgentConfig(flags.config);
  const f: AgentFlags = {
    ...file,
    ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)),
  };
  if (flags.vip !== undefined && flags.vip.length === 0 && file.vip) f.vip = file.vip;
  if (f.secretFile === undefined)
    throw usage(
      "lbctl agent needs --secret-file (the daemon's registration secret)",
      "the daemon and the agent share it; mode 0600",
    );
  if (f.lb === undefined) throw usage("lbctl agent needs --lb IP[:PORT]");
  if (f.iface === undefined) throw usage("lbctl agent needs --iface IF");
  if (!f.vip || f.vip.length === 0) throw usage("lbctl agent needs at least one --vip PROTO/ADDR:PORT");
  const vips = f.vip.map((v) => {
    const r = parseVipResult(v);
    if (!r.ok) throw usage(`--vip ${v}: ${r.message}`);
    return formatVip(r.value);
  });
  if (f.address !== undefined && tryParseAddress(f.address) === undefined)
    throw usage(`--address ${f.address}: not an IPv4 or IPv6 address`);
  const int = (v: number | undefined, name: string, min: number, max: number, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!Number.isInteger(v) || v < min || v > max)
      throw usage(`${name} ${v}: expected an integer ${min}..${max}`);
    return v;
  };
  const num = (v: number | undefined, name: string, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!Number.isFinite(v) || v <= 0) throw usage(`${name} ${v}: expected a positive number of seconds`);
    return v;
  };
  const decap = f.decap ?? "auto";
  if (!(DECAP_REQUESTS as readonly string[]).includes(decap))
    throw usage(`--decap ${decap}: auto, xdp, tun, native, generic or none`);
  if (f.name !== undefined && !/^[\x21-\x7e]{1,64}$/.test(f.name))
    throw usage(`--name ${f.name}: 1..64 printable characters without spaces`);
  const lb = parseLb(f.lb);
  const envSocket = env[AGENT_SOCKET_ENV];
  return {
    lbHost: lb.host,
    lbPort: lb.port,
    vips,
    iface: f.iface,
    name: f.name,
    address: f.address,
    weight: int(f.weight, "--weight", 0, 65535, 1),
    encapPort: int(f.encapPort, "--encap-port", 1, 65535, 6080),
    secretFile: f.secretFile,
    socket: f.socket ?? (envSocket !== undefined && envSocket !== "" ? envSocket : DEFAULT_AGENT_SOCKET),
    drainTimeoutS: num(f.drainTimeout, "--drain-timeout", 30),
    healthIntervalS: num(f.healthInterval, "--health-interval", 20),
    decap: decap as DecapRequest,
    logLevel: f.logLevel ?? "info",
  };
}
