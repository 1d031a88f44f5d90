// Lab client: N HTTP GETs to a URL, each on a new connection (keep-alive off), C at a time,
// and a tally of which backend answered. Runs inside the client namespace:
//   node dist/test/support/http-load.js URL COUNT [CONCURRENCY] [LOCAL_ADDRESS]
// Prints one JSON line: { ok, failed, byBackend: { name: count }, errors: [first few], ms }.
import { request, Agent } from "node:http";

const [url = "", countText = "100", concurrencyText = "8"] = process.argv.slice(2);
const count = Number(countText);
const concurrency = Number(concurrencyText);
const agent = new Agent({ keepAlive: false, maxSockets: concurrency });

function get(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, timeout: 3000, headers: { Connection: "close" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        if (res.statusCode === 200) resolve(body.trim());
        else reject(new Error(`HTTP ${res.statusCode}`));
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout after 3000 ms")));
    req.on("error", reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  const byBackend: Record<string, number> = {};
  const errors: string[] = [];
  let ok = 0;
  let failed = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      try {
        const name = await get();
        byBackend[name] = (byBackend[name] ?? 0) + 1;
        ok++;
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  process.stdout.write(`${JSON.stringify({ ok, failed, byBackend, errors, ms: Date.now() - started })}\n`);
}

void main();
