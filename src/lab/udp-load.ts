// Lab client: N UDP queries to VIP:PORT, each from its own socket (its own source port), and a
// tally of which backend answered. Runs inside the client namespace:
//   node dist/test/support/udp-load.js ADDRESS PORT COUNT
// Prints one JSON line: { ok, failed, byBackend }.
import { createSocket } from "node:dgram";
import { isIPv6 } from "node:net";

const [address = "", portText = "53", countText = "100"] = process.argv.slice(2);

function query(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(address) ? "udp6" : "udp4");
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("timeout"));
    }, 2000);
    socket.on("message", (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg.toString("utf8").trim());
    });
    socket.send("who?\n", Number(portText), address);
  });
}

async function main(): Promise<void> {
  const byBackend: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  for (let i = 0; i < Number(countText); i++) {
    try {
      const name = await query();
      byBackend[name] = (byBackend[name] ?? 0) + 1;
      ok++;
    } catch {
      failed++;
    }
  }
  process.stdout.write(`${JSON.stringify({ ok, failed, byBackend })}\n`);
}

void main();
