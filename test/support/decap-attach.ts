// Lab helper: attaches lb_decap to a backend's interface and holds it until SIGTERM/SIGINT.
// Runs inside the backend's namespace (nsenter --net=/run/netns/NS), so the ifindex is read
// through netlink (`ip -j link`), never /sys/class/net, which shows the host's devices there.
//   node dist/test/support/decap-attach.js --iface eth0 --addr 198.18.0.11 --addr 2001:db8::11
//        [--port 6080] [--mode native|generic]
// Prints "ready" once attached; exit 0 after a clean detach, 1 on failure, 2 on usage errors.
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";

import { DecapLoader } from "../../src/dataplane/decap-loader.js";
import type { XdpMode } from "../../src/dataplane/xdp.js";
import { tryParseAddress } from "../../src/lib/addr.js";
import type { IpAddress } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";
import { LB_ENCAP_PORT_DEFAULT } from "../../src/maps/abi.js";

const USAGE = "usage: decap-attach --iface IF --addr IP [--addr IP ...] [--port N] [--mode native|generic]";

class UsageError extends Error {}

interface Args {
  iface: string;
  addresses: IpAddress[];
  port: number;
  mode: XdpMode;
}

function parse(argv: string[]): Args {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        iface: { type: "string" },
        addr: { type: "string", multiple: true },
        port: { type: "string" },
        mode: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.iface === undefined) throw new UsageError("--iface is required");
  const texts = values.addr ?? [];
  if (texts.length === 0) throw new UsageError("at least one --addr is required");
  const addresses = texts.map((t) => {
    const a = tryParseAddress(t);
    if (a === undefined) throw new UsageError(`--addr ${t}: not an IPv4 or IPv6 address`);
    return a;
  });
  const port = values.port === undefined ? LB_ENCAP_PORT_DEFAULT : Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--port ${values.port ?? ""}: not a port number (1-65535)`);
  }
  const mode = values.mode ?? "native";
  if (mode !== "native" && mode !== "generic") throw new UsageError(`--mode ${mode}: native or generic`);
  return { iface: values.iface, addresses, port, mode };
}

/** The interface's index in this process's network namespace, through netlink. */
function ifindexOf(ifname: string): number {
  let out: string;
  try {
    out = execFileSync("ip", ["-j", "link", "show", "dev", ifname], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (cause) {
    throw new LbError("LB_ERR_ATTACH", `interface ${ifname}: not found in this network namespace`, {
      hint: "run inside the backend's namespace: nsenter --net=/run/netns/NAME node ...",
      cause,
    });
  }
  const links = JSON.parse(out) as { ifindex?: unknown }[];
  const ifindex = links[0]?.ifindex;
  if (typeof ifindex !== "number") {
    throw new LbError("LB_ERR_ATTACH", `interface ${ifname}: ip -j link printed no ifindex`);
  }
  return ifindex;
}

function main(): void {
  const args = parse(process.argv.slice(2));
  // Handlers first: a signal that arrives during the (synchronous) attach is handled right
  // after it, so the program is detached rather than left on the interface.
  let loader: DecapLoader | undefined;
  // Signal handlers do not keep node alive on their own.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stop = (signal: string): void => {
    clearInterval(keepAlive);
    try {
      loader?.detach();
      process.stdout.write(`detached (${signal})\n`);
      process.exitCode = 0;
    } catch (err) {
      report(err);
      process.exitCode = 1;
    }
  };
  process.once("SIGTERM", () => {
    stop("SIGTERM");
  });
  process.once("SIGINT", () => {
    stop("SIGINT");
  });
  try {
    loader = DecapLoader.attach({
      ifname: args.iface,
      ifindex: ifindexOf(args.iface),
      addresses: args.addresses,
      encapPort: args.port,
      mode: args.mode,
    });
  } catch (err) {
    clearInterval(keepAlive);
    throw err;
  }
  process.stdout.write(`ready\n`);
}

function report(err: unknown): void {
  if (err instanceof LbError) {
    process.stderr.write(`decap-attach: ${err.message}\n`);
    if (err.hint !== undefined) process.stderr.write(`  hint: ${err.hint}\n`);
    if (err.detail !== undefined) process.stderr.write(`${err.detail}\n`);
  } else {
    process.stderr.write(`decap-attach: ${err instanceof Error ? err.message : String(err)}\n`);
  }
}

try {
  main();
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`decap-attach: ${err.message}\n${USAGE}\n`);
    process.exitCode = 2;
  } else {
    report(err);
    process.exitCode = 1;
  }
}
