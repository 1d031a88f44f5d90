// Argument and option parsers for lbctl. Option parsers throw commander's InvalidArgumentError
// (reported by commander, exit 2); positional VIP/ADDR checks throw LbError LB_ERR_USAGE (exit 2).
import { InvalidArgumentError } from "commander";

import { AF_INET, tryParseAddress } from "../lib/addr.js";
import { formatBackend, formatVip, parseBackendAddress, parseVip } from "../core/vip-syntax.js";

/** A commander option parser for a decimal integer in min..max. */
export function integerIn(min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^(0|[1-9]\d*)$/.test(value)) throw new InvalidArgumentError(`expected an integer ${min}..${max}.`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`expected an integer ${min}..${max}.`);
    return n;
  };
}

/** 0..65535 like the config file and the daemon accept; 0 = drained from the start. */
export const MAX_WEIGHT = 65535;
export const parseWeight = integerIn(0, MAX_WEIGHT);
export const parsePortNumber = integerIn(1, 65535);

/** The VIP in canonical text (what the daemon is sent); LB_ERR_USAGE naming the text otherwise. */
export function canonicalVip(text: string): string {
  return formatVip(parseVip(text));
}

/** A backend ADDR[:ENCAP_PORT] in canonical text; LB_ERR_USAGE naming the text otherwise. */
export function canonicalBackend(text: string): string {
  const b = parseBackendAddress(text);
  return formatBackend(b.address, b.encapPort);
}

/** --source, repeatable: one IPv4 and/or one IPv6 address. */
export function collectSource(value: string, previous: string[]): string[] {
  const addr = tryParseAddress(value);
  if (addr === undefined) throw new InvalidArgumentError(`"${value}" is not an IPv4 or IPv6 address.`);
  for (const p of previous) {
    if (tryParseAddress(p)?.family === addr.family) {
      const fam = addr.family === AF_INET ? "IPv4" : "IPv6";
      throw new InvalidArgumentError(`a second ${fam} source (${p} was given already): one per family.`);
    }
  }
  return [...previous, value];
}

/** --api ADDR:PORT with an IP address (IPv6 bracketed), port 1..65535. */
export function parseListenAddress(value: string): string {
  const bad = (): never => {
    throw new InvalidArgumentError("expected ADDR:PORT, e.g. 127.0.0.1:7071 or [::1]:7071.");
  };
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(value);
  if (m === null) return bad();
  const v6 = m[1];
  const host = v6 ?? m[2] ?? "";
  const addr = tryParseAddress(host);
  if (addr === undefined || (v6 !== undefined) !== (addr.family !== AF_INET)) return bad();
  const port = Number(m[3]);
  if (!/^[1-9]\d*$/.test(m[3] ?? "") || port > 65535) return bad();
  return value;
}

/** --name: what the daemon, logs and the registration protocol carry in one token. */
export function parseBackendName(value: string): string {
  if (value === "" || value.length > 64 || /[\s\p{Cc}]/u.test(value)) {
    throw new InvalidArgumentError("expected 1..64 characters without spaces or control characters.");
  }
  return value;
}
