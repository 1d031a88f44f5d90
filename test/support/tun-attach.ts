// Lab helper: a backend's TUN decapsulation (lab.sh up --decap tun), held until SIGTERM/SIGINT.
// Creates the TUN device, lets decapsulated packets in on it (rp_filter 0, IPv6 on) and runs
// caplance-tun under the same supervisor `lbctl agent --decap tun` uses; on stop, ends it and
// deletes the device. Runs inside the backend's namespace (nsenter --net=/run/netns/NS).
//   node dist/test/support/tun-attach.js --addr 198.18.0.11 --addr 2001:db8::11
//        [--vip 198.18.1.1 ...] [--port 6080] [--tun NAME]
// Prints "ready" once decapsulating, the counters as one JSON line on SIGUSR1 and at exit;
// exit 0 after a clean stop, 1 on failure, 2 on usage errors.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { TunDecap } from "../../src/dataplane/tun-decap.js";
import { createTunDevice, deleteTunDevice, tunDeviceName } from "../../src/dataplane/tun-device.js";
import { AF_INET, tryParseAddress, type IpAddress } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";
import { createLogger } from "../../src/lib/log.js";

const USAGE = "usage: tun-attach --addr IP [--addr IP ...] [--vip IP ...] [--port N] [--tun NAME]";

class UsageError extends Error {}

interface Args {
  addresses: IpAddress[];
  vips: IpAddress[];
  port: number;
  tun: string;
}

function addresses(texts: string[] | undefined, flag: string): IpAddress[] {
  return (texts ?? []).map((t) => {
    const a = tryParseAddress(t);
    if (a === undefined) throw new UsageError(`${flag} ${t}: not an IPv4 or IPv6 address`);
    return a;
  });
}

function parse(argv: string[]): Args {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        addr: { type: "string", multiple: true },
        vip: { type: "string", multiple: true },
        port: { type: "string" },
        tun: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const addrs = addresses(values.addr, "--addr");
  if (addrs.length === 0) throw new UsageError("at least one --addr is required");
  const port = values.port === undefined ? 6080 : Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new UsageError(`--port ${values.port ?? ""}: not a port number (1-65535)`);
  const tun = values.tun ?? tunDeviceName(port);
  if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(tun)) throw new UsageError(`--tun ${tun}: 1-15 of [a-zA-Z0-9_.-]`);
  return { addresses: addrs, vips: addresses(values.vip, "--vip"), port, tun };
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const log = createLogger({ level: "info" }).child({ module: "tun-attach" });
  // A helper killed by SIGKILL leaves its device behind; the lab's namespace is ours, so a
  // re-run of lab.sh up replaces it rather than failing.
  await deleteTunDevice(args.tun);
  await createTunDevice(
    args.tun,
    args.vips.find((v) => v.family === AF_INET),
  );
  let decap: TunDecap | undefined;
  try {
    // The lab runs with rp_filter 0 (lab.sh); a new device inherits conf.default, so be explicit.
    writeFileSync(`/proc/sys/net/ipv4/conf/${args.tun}/rp_filter`, "0\n");
    writeFileSync(`/proc/sys/net/ipv6/conf/${args.tun}/disable_ipv6`, "0\n");
    decap = await TunDecap.start({
      tun: args.tun,
      encapPort: args.port,
      listen: args.addresses,
      vips: args.vips,
      log,
    });
  } catch (err) {
    await deleteTunDevice(args.tun).catch(() => undefined);
    throw err;
  }
  const d = decap;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      const counters = await d.stop();
      process.stdout.write(`${JSON.stringify(counters)}\n`);
      await deleteTunDevice(args.tun);
      process.stdout.write(`stopped (${signal})\n`);
    })().catch((err: unknown) => {
      report(err);
      process.exitCode = 1;
    });
  };
  process.on("SIGTERM", () => {
    stop("SIGTERM");
  });
  process.on("SIGINT", () => {
    stop("SIGINT");
  });
  process.on("SIGUSR1", () => {
    void d.counters().then((c) => process.stdout.write(`${JSON.stringify(c)}\n`));
  });
  process.stdout.write("ready\n");
}

function report(err: unknown): void {
  process.stderr.write(`tun-attach: ${err instanceof Error ? err.message : String(err)}\n`);
  if (err instanceof LbError && err.hint !== undefined) process.stderr.write(`  hint: ${err.hint}\n`);
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`tun-attach: ${err.message}\n${USAGE}\n`);
    process.exitCode = 2;
  } else {
    report(err);
    process.exitCode = 1;
  }
});
