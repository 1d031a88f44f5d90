// IPv4/IPv6 addresses as the maps hold them: 16 bytes in network order, IPv4 in the first 4
// (the rest zero), with the Linux family number (AF_INET 2, AF_INET6 10).
import { LbError } from "./errors.js";

export const AF_INET = 2;
export const AF_INET6 = 10;
export type AddressFamily = typeof AF_INET | typeof AF_INET6;

export interface IpAddress {
  readonly family: AddressFamily;
  /** 16 bytes, network order. */
  readonly bytes: Uint8Array;
}

function parseV4(text: string, out: Uint8Array, offset: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (const [i, part] of parts.entries()) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return false;
    const n = Number(part);
    if (n > 255) return false;
    out[offset + i] = n;
  }
  return true;
}

function parseV6(text: string, out: Uint8Array): boolean {
  const halves = text.split("::");
  if (halves.length > 2) return false;
  const groups = (s: string): string[] => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0] ?? "");
  const tail = halves.length === 2 ? groups(halves[1] ?? "") : [];
  // An embedded IPv4 address takes the last two groups.
  const words: number[] = [];
  const all = [...head, ...tail];
  const last = all[all.length - 1];
  let v4: Uint8Array | undefined;
  if (last?.includes(".") === true) {
    v4 = new Uint8Array(4);
    if (!parseV4(last, v4, 0)) return false;
    if (tail.length > 0) tail.pop();
    else if (halves.length === 2)
      return false; // "1.2.3.4::": the IPv4 part must end it
    else head.pop();
  }
  const toWords = (gs: string[]): boolean => {
    for (const g of gs) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      words.push(parseInt(g, 16));
    }
    return true;
  };
  const total = 8 - (v4 === undefined ? 0 : 2);
  if (!toWords(head)) return false;
  const headLen = words.length;
  if (!toWords(tail)) return false;
  const tailWords = words.splice(headLen);
  if (halves.length === 2) {
    if (headLen + tailWords.length > total - 1) return false;
    while (words.length + tailWords.length < total) words.push(0);
  } else if (headLen !== total) {
    return false;
  }
  words.push(...tailWords);
  for (const [i, w] of words.entries()) {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  }
  if (v4 !== undefined) out.set(v4, 12);
  return true;
}

/** Parses dotted IPv4 or RFC 4291 IPv6 text (no zone, no brackets); undefined if invalid. */
export function tryParseAddress(text: string): IpAddress | undefined {
  const bytes = new Uint8Array(16);
  if (text.includes(":")) return parseV6(text, bytes) ? { family: AF_INET6, bytes } : undefined;
  return parseV4(text, bytes, 0) ? { family: AF_INET, bytes } : undefined;
}

/** Like tryParseAddress; throws LB_ERR_CONFIG naming the text. */
export function parseAddress(text: string): IpAddress {
  const addr = tryParseAddress(text);
  if (addr === undefined) throw new LbError("LB_ERR_CONFIG", `invalid IP address "${text}"`);
  return addr;
}

/** Dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run as "::"). */
export function formatAddress(bytes: Uint8Array, family: AddressFamily): string {
  if (family === AF_INET) return `${bytes[0] ?? 0}.${bytes[1] ?? 0}.${bytes[2] ?? 0}.${bytes[3] ?? 0}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 1; // RFC 5952 4.2.2: a single zero group is not compressed
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(":");
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** formatAddress of a parsed address. */
export function addressToString(addr: IpAddress): string {
  return formatAddress(addr.bytes, addr.family);
}

/** True when the value is a Linux address family Caplance stores. */
export function isAddressFamily(n: number): n is AddressFamily {
  return n === AF_INET || n === AF_INET6;
}
