// Source-address allow-lists for the registration listener: "198.18.0.0/24", "2001:db8::/64", or
// a bare address (a /32 or /128). IPv4-mapped IPv6 peers (::ffff:a.b.c.d) match IPv4 entries.
import { AF_INET, tryParseAddress, type IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";

export interface Cidr {
  readonly text: string;
  readonly address: IpAddress;
  readonly prefix: number;
}

export function parseCidr(text: string): Cidr {
  const [addrText = "", prefixText, ...rest] = text.trim().split("/");
  const address = tryParseAddress(addrText);
  const max = address?.family === AF_INET ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (
    address === undefined ||
    rest.length > 0 ||
    (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) ||
    prefix > max
  ) {
    throw new LbError(
      "LB_ERR_CONFIG",
      `allow-list entry "${text}": expected ADDR/PREFIX, e.g. 198.18.0.0/24`,
    );
  }
  return { text: text.trim(), address, prefix };
}

/** The peer address as node reports it (remoteAddress), IPv4-mapped IPv6 unwrapped. */
export function peerAddress(text: string | undefined): IpAddress | undefined {
  if (text === undefined) return undefined;
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  return tryParseAddress(m?.[1] ?? text);
}

export function cidrContains(cidr: Cidr, addr: IpAddress): boolean {
  if (cidr.address.family !== addr.family) return false;
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((cidr.address.bytes[i] ?? 0) & mask) !== ((addr.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

/** True when the list is empty (no allow-list) or an entry contains the address. */
export function allowed(list: readonly Cidr[], addr: IpAddress | undefined): boolean {
  if (list.length === 0) return true;
  return addr !== undefined && list.some((c) => cidrContains(c, addr));
}
