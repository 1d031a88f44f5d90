// Lab helper: a backend's services, answering with the backend's name so a test can tell which
// backend served it. HTTP on [::]:80 (dual-stack: every address, the VIPs on lo included; one
// request per connection) and UDP port 53 bound to each VIP, because a UDP socket bound to the
// wildcard would reply from the host's own address, not the VIP (docs/backend-setup.md).
//   node dist/test/support/http-backend.js --name b1 [--vip 198.18.1.1 --vip 2001:db8:1::1 ...]
//        [--http-port 80] [--udp-port 53]
// Prints "ready" once every socket listens; SIGTERM/SIGINT close them (exit 0).
import { createSocket } from "node:dgram";
import type { Socket } from "node:dgram";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { once } from "node:events";
import { createServer as createNetServer } from "node:net";
import type { Server as NetServer, Socket as NetSocket } from "node:net";
import { parseArgs } from "node:util";

import { tryParseAddress, AF_INET } from "../../src/lib/addr.js";

const NAME_SERVICE_PORT = 8080;
const openSockets = new Set<NetSocket>();
const USAGE = "usage: http-backend --name NAME [--vip IP ...] [--http-port N] [--udp-port N]";

interface Args {
  name: string;
  vips: string[];
  httpPort: number;
  udpPort: number;
}

function port(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${flag} ${text}: not a port number`);
  return n;
}

function parse(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      name: { type: "string" },
      vip: { type: "string", multiple: true },
      "http-port": { type: "string" },
      "udp-port": { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.name === undefined || values.name === "") throw new Error("--name is required");
  const vips = values.vip ?? [];
  for (const v of vips) {
    if (tryParseAddress(v) === undefined) throw new Error(`--vip ${v}: not an IPv4 or IPv6 address`);
  }
  return {
    name: values.name,
    vips,
    httpPort: port(values["http-port"], 80, "--http-port"),
    udpPort: port(values["udp-port"], 53, "--udp-port"),
  };
}

async function startHttp(args: Args): Promise<Server> {
  const body = `${args.name}\n`;
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, {
      "Content-Type": "text/plain",
      "Content-Length": Buffer.byteLength(body),
      Connection: "close",
    });
    res.end(body);
  });
  server.keepAliveTimeout = 0;
  server.listen({ host: "::", port: args.httpPort, ipv6Only: false });
  await once(server, "listening");
  return server;
}

async function startUdp(args: Args, vip: string): Promise<Socket> {
  const family = tryParseAddress(vip)?.family === AF_INET ? "udp4" : "udp6";
  const socket = createSocket(family);
  const answer = Buffer.from(`${args.name}\n`);
  socket.on("message", (_msg, peer) => {
    socket.send(answer, peer.port, peer.address);
  });
  socket.on("error", (err) => {
    process.stderr.write(`http-backend: udp ${vip}:${args.udpPort}: ${err.message}\n`);
  });
  socket.bind({ address: vip, port: args.udpPort, exclusive: true });
  await once(socket, "listening");
  return socket;
}

/** A line service on [::]:8080: every line gets the name back, on the same connection, so a
 * test can hold one connection open across data-plane changes. */
async function startNameService(args: Args): Promise<NetServer> {
  const server = createNetServer((socket) => {
    openSockets.add(socket);
    socket.on("close", () => openSockets.delete(socket));
    socket.on("error", () => undefined);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      for (let i = 0; i < chunk.split("\n").length - 1; i++) socket.write(`${args.name}\n`);
    });
  });
  server.listen({ host: "::", port: NAME_SERVICE_PORT, ipv6Only: false });
  await once(server, "listening");
  return server;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const http = await startHttp(args);
  const names = await startNameService(args);
  const udp: Socket[] = [];
  for (const vip of args.vips) udp.push(await startUdp(args, vip));
  const stop = (): void => {
    for (const s of udp) s.close();
    http.close();
    http.closeAllConnections();
    names.close();
    for (const c of openSockets) c.destroy();
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  process.stdout.write("ready\n");
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`http-backend: ${message}\n${USAGE}\n`);
  process.exitCode = message.startsWith("--") || err instanceof TypeError ? 2 : 1;
});
