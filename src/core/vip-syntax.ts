// The text forms of VIPs and backend addresses shared by the CLI, the config file and the
// registration protocol (DESIGN.md "CLI contract"): PROTO/ADDR:PORT and ADDR[:ENCAP_PORT].
import { AF_INET6, addressToString, tryParseAddress } from "../lib/addr.js";
import type { IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import type { HashMode, VipRef } from "./types.js";

export const HASH_MODES = ["5tuple", "src-ip", "src-ip-port"] as const satisfies readonly HashMode[];

export const VIP_EXAMPLE = "tcp/198.18.1.1:80";
const VIP_EXPECTED = `expected PROTO/ADDR:PORT, e.g. ${VIP_EXAMPLE}`;
const BACKEND_EXPECTED =
  "expected ADDR or ADDR:ENCAP_PORT, e.g. 198.18.0.11, 198.18.0.11:6080, 2001:db8::11 or [2001:db8::11]:6080";

/** A parse outcome whose failure message is ready for the user (names the text, says what was expected). */
export type SyntaxResult<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };

export interface BackendAddress {
  readonly address: IpAddress;
  /** Present only when the text carried one (ADDR:PORT). */
  readonly encapPort?: number;
}

export function isHashMode(text: string): text is HashMode {
  return (HASH_MODES as readonly string[]).includes(text);
}

/** Decimal port without sign or leading zeros, in min..65535; undefined otherwise. */
function parsePort(text: string, min: number): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n >= min && n <= 65535 ? n : undefined;
}

/** ADDR[:PORT] text cut at its port separator, before either part is validated. */
interface HostSplit {
  readonly host: string;
  readonly bracketed: boolean;
  /** Text after the ":" separating the port; undefined when there is none. */
  readonly port: string | undefined;
}

function splitBracketed(text: string): HostSplit | undefined {
  const close = text.indexOf("]");
  if (close < 0) return undefined;
  const host = text.slice(1, close);
  const rest = text.slice(close + 1);
  if (rest === "") return { host, bracketed: true, port: undefined };
  if (!rest.startsWith(":")) return undefined;
  return { host, bracketed: true, port: rest.slice(1) };
}

function notAnAddress(host: string): string {
  return `"${host}" is not an IPv4 or IPv6 address`;
}

/** PROTO/ADDR:PORT → VipRef; PROTO is case-insensitive, IPv6 must be bracketed, port 0 = all ports. */
export function parseVipResult(text: string): SyntaxResult<VipRef> {
  const fail = (reason: string): SyntaxResult<VipRef> => ({
    ok: false,
    message: `bad VIP "${text}": ${reason}`,
  });
  const slash = text.indexOf("/");
  if (slash < 0) return fail(VIP_EXPECTED);
  const proto = text.slice(0, slash).toLowerCase();
  if (proto !== "tcp" && proto !== "udp") {
    return fail(`protocol "${text.slice(0, slash)}" is not tcp or udp (${VIP_EXPECTED})`);
  }
  const rest = text.slice(slash + 1);
  let split: HostSplit | undefined;
  if (rest.startsWith("[")) {
    split = splitBracketed(rest);
  } else {
    const colon = rest.lastIndexOf(":");
    if (colon >= 0) split = { host: rest.slice(0, colon), bracketed: false, port: rest.slice(colon + 1) };
  }
  if (split?.port === undefined) return fail(VIP_EXPECTED);
  if (!split.bracketed && split.host.includes(":")) {
    return fail("an IPv6 address must be in brackets, e.g. udp/[2001:db8:1::1]:53");
  }
  const address = tryParseAddress(split.host);
  if (address === undefined) return fail(notAnAddress(split.host));
  if (split.bracketed && address.family !== AF_INET6) {
    return fail("brackets are for IPv6 addresses only, e.g. tcp/198.18.1.1:80");
  }
  const port = parsePort(split.port, 0);
  if (port === undefined) return fail(`port "${split.port}" is not an integer 0..65535 (0 = all ports)`);
  return { ok: true, value: { proto, address, port } };
}

/** ADDR or ADDR:ENCAP_PORT (IPv6 with a port bracketed) → address and optional encap port 1..65535. */
export function parseBackendAddressResult(text: string): SyntaxResult<BackendAddress> {
  const fail = (reason: string): SyntaxResult<BackendAddress> => ({
    ok: false,
    message: `bad backend address "${text}": ${reason}`,
  });
  let split: HostSplit | undefined;
  if (text.startsWith("[")) {
    split = splitBracketed(text);
  } else {
    const colons = text.split(":").length - 1;
    // Exactly one colon: IPv4:PORT. Two or more: a bare IPv6 address (its port needs brackets).
    const colon = colons === 1 ? text.indexOf(":") : -1;
    split =
      colon < 0
        ? { host: text, bracketed: false, port: undefined }
        : { host: text.slice(0, colon), bracketed: false, port: text.slice(colon + 1) };
  }
  if (split === undefined || split.host === "") return fail(BACKEND_EXPECTED);
  const address = tryParseAddress(split.host);
  if (address === undefined) return fail(`${notAnAddress(split.host)} (${BACKEND_EXPECTED})`);
  if (split.bracketed && address.family !== AF_INET6) return fail("brackets are for IPv6 addresses only");
  if (split.port === undefined) return { ok: true, value: { address } };
  const encapPort = parsePort(split.port, 1);
  if (encapPort === undefined) return fail(`encap port "${split.port}" is not an integer 1..65535`);
  return { ok: true, value: { address, encapPort } };
}

function orThrow<T>(result: SyntaxResult<T>): T {
  if (!result.ok) throw new LbError("LB_ERR_USAGE", result.message);
  return result.value;
}

/** Like parseVipResult; throws LbError LB_ERR_USAGE naming the text and the expected form. */
export function parseVip(text: string): VipRef {
  return orThrow(parseVipResult(text));
}

/** Like parseBackendAddressResult; throws LbError LB_ERR_USAGE naming the text and the expected form. */
export function parseBackendAddress(text: string): BackendAddress {
  return orThrow(parseBackendAddressResult(text));
}

function hostPort(address: IpAddress, port: number): string {
  const host = addressToString(address);
  return address.family === AF_INET6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Canonical text: lowercase protocol, RFC 5952 address, IPv6 bracketed; parseVip round-trips it. */
export function formatVip(ref: VipRef): string {
  return `${ref.proto}/${hostPort(ref.address, ref.port)}`;
}

/** The canonical VIP text, used as the key of maps indexed by VIP. */
export function vipKey(ref: VipRef): string {
  return formatVip(ref);
}

/** ADDR:PORT (IPv6 bracketed), or the bare address when no port is given. */
export function formatBackend(address: IpAddress, port?: number): string {
  return port === undefined ? addressToString(address) : hostPort(address, port);
}
