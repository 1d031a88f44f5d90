// The TUN device a backend's userspace decapsulator (caplance-tun) writes inner packets into:
// created persistent by the agent or the lab helper (so it outlives a decapsulator restart, and
// its settings with it), brought up, and deleted on stop. Through `ip`, in the caller's
// network namespace.
import { addressToString, AF_INET, type IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { execIp, firstLine, ipCommandText, type IpRunner } from "../net/ip-json.js";

/** The device name of an encap port: one decapsulator per port and namespace (IFNAMSIZ 15). */
export function tunDeviceName(encapPort: number): string {
  return `cpltun${encapPort}`;
}

async function ip(run: IpRunner, args: readonly string[]): Promise<void> {
  const r = await run(args);
  if (!r.ok)
    throw new LbError("LB_ERR_NETLINK", `\`${ipCommandText(args)}\` failed: ${firstLine(r.stderr)}`, {
      detail: r.stderr,
    });
}

/** True when a link of that name exists in this namespace. */
export async function linkExists(name: string, run: IpRunner = execIp): Promise<boolean> {
  return (await run(["link", "show", "dev", name])).ok;
}

/**
 * Creates TUN device `name` (IFF_TUN | IFF_NO_PI, persistent) and brings it up. Refuses a name
 * that exists (a leftover of a killed agent, or someone else's): nothing is changed then.
 *
 * anchor: an IPv4 address (a VIP: local already) put on the device as /32 scope host. The
 * kernel's reverse-path check drops every IPv4 packet that arrives on a device without an IPv4
 * address whenever rp_filter is not 0, loose mode (2) included (__fib_validate_source: no
 * address -> last resort -> reject); with one, loose mode accepts as on any other device.
 */
export async function createTunDevice(
  name: string,
  anchor?: IpAddress,
  run: IpRunner = execIp,
): Promise<void> {
  if (await linkExists(name, run))
    throw new LbError("LB_ERR_IFACE", `interface ${name} exists already`, {
      hint: `a killed agent may have left it: remove it with ip link del dev ${name}`,
    });
  if (anchor !== undefined && anchor.family !== AF_INET)
    throw new LbError("LB_ERR_CONFIG", `TUN device ${name}: the anchor address must be IPv4`);
  await ip(run, ["tuntap", "add", "dev", name, "mode", "tun"]);
  try {
    if (anchor !== undefined)
      await ip(run, ["addr", "add", `${addressToString(anchor)}/32`, "dev", name, "scope", "host"]);
    await ip(run, ["link", "set", "dev", name, "up"]);
  } catch (err) {
    await deleteTunDevice(name, run).catch(() => undefined);
    throw err;
  }
}

/** Deletes the device; a device that is gone already is fine. */
export async function deleteTunDevice(name: string, run: IpRunner = execIp): Promise<void> {
  if (!(await linkExists(name, run))) return;
  await ip(run, ["link", "del", "dev", name]);
}
