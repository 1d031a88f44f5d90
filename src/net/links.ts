// Network interfaces of the daemon's namespace, read through `ip -j link/addr` (never
// /sys/class/net, which shows the host's devices under `nsenter --net`), and MAC text helpers.
import { AF_INET, AF_INET6, tryParseAddress } from "../lib/addr.js";
import type { IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { execIp, ipAddrListSchema, ipJson, ipLinkListSchema } from "./ip-json.js";
import type { IpAddrInfo, IpFailureMapper, IpLink, IpRunner } from "./ip-json.js";

export interface Link {
  readonly ifindex: number;
  readonly name: string;
  /** 6 bytes; all zero when the link has no hardware address (tun, wireguard). */
  readonly mac: Uint8Array;
  /** Bytes of L3 payload per frame. */
  readonly mtu: number;
  /** Administratively up (IFF_UP). */
  readonly up: boolean;
  /** Carrier present (IFF_LOWER_UP). */
  readonly carrier: boolean;
  /** iproute2's link type: "ether", "loopback", "none", ... Encapsulation needs "ether". */
  readonly linkType: string;
}

export interface PrimaryAddresses {
  readonly v4?: IpAddress;
  readonly v6?: IpAddress;
}

/** "aa:bb:cc:dd:ee:ff" → 6 bytes; undefined unless exactly six hex octets. */
export function parseMac(text: string): Uint8Array | undefined {
  const parts = text.split(":");
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) return undefined;
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

/** Lowercase colon-separated hex, as `ip` prints it. */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Link of an `ip -j link show` entry. */
export function linkFromIp(entry: IpLink): Link {
  return {
    ifindex: entry.ifindex,
    name: entry.ifname,
    mac: (entry.address === undefined ? undefined : parseMac(entry.address)) ?? new Uint8Array(6),
    mtu: entry.mtu,
    up: entry.flags.includes("UP"),
    carrier: entry.flags.includes("LOWER_UP"),
    linkType: entry.link_type,
  };
}

const IFACE_HINT =
  "list interfaces with `ip link`; the daemon sees only those of the network namespace it runs in";

function missingInterface(name: string): IpFailureMapper {
  return (stderr) =>
    /does not exist|Cannot find device/.test(stderr)
      ? new LbError("LB_ERR_IFACE", `interface "${name}" does not exist`, {
          hint: IFACE_HINT,
          detail: stderr,
        })
      : undefined;
}

/** The interface called `name`; LB_ERR_IFACE when there is none. */
export async function getLink(name: string, run: IpRunner = execIp): Promise<Link> {
  const links = await ipJson(run, ["link", "show", "dev", name], ipLinkListSchema, missingInterface(name));
  const entry = links.find((l) => l.ifname === name) ?? links[0];
  if (entry === undefined)
    throw new LbError("LB_ERR_IFACE", `interface "${name}" does not exist`, { hint: IFACE_HINT });
  return linkFromIp(entry);
}

/** The interface with this ifindex; LB_ERR_IFACE when there is none. */
export async function getLinkByIndex(ifindex: number, run: IpRunner = execIp): Promise<Link> {
  const links = await ipJson(run, ["link", "show"], ipLinkListSchema);
  const entry = links.find((l) => l.ifindex === ifindex);
  if (entry === undefined) {
    throw new LbError("LB_ERR_IFACE", `no interface has ifindex ${ifindex}`, { hint: IFACE_HINT });
  }
  return linkFromIp(entry);
}

// Addresses that may still disappear or that the kernel avoids as a source.
function isStable(a: IpAddrInfo): boolean {
  return a.tentative !== true && a.dadfailed !== true && a.deprecated !== true && a.temporary !== true;
}

/**
 * First global-scope address of each family on `ifname` (the daemon's default `--source`),
 * skipping tentative, failed-DAD, deprecated and privacy (temporary) IPv6 addresses.
 */
export async function primaryAddresses(ifname: string, run: IpRunner = execIp): Promise<PrimaryAddresses> {
  const links = await ipJson(
    run,
    ["addr", "show", "dev", ifname, "scope", "global"],
    ipAddrListSchema,
    missingInterface(ifname),
  );
  let v4: IpAddress | undefined;
  let v6: IpAddress | undefined;
  for (const info of links.flatMap((l) => l.addr_info)) {
    if (info.local === undefined || info.scope !== "global" || !isStable(info)) continue;
    const addr = tryParseAddress(info.local);
    if (info.family === "inet" && v4 === undefined && addr?.family === AF_INET) v4 = addr;
    if (info.family === "inet6" && v6 === undefined && addr?.family === AF_INET6) v6 = addr;
  }
  return { ...(v4 === undefined ? {} : { v4 }), ...(v6 === undefined ? {} : { v6 }) };
}
