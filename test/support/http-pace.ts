// Lab client: HTTP GETs to a URL at a steady rate, each on a new connection, for a while; an
// open loop (a request starts on schedule whether or not the previous one finished), so a
// stall shows up as failures and late answers rather than as fewer requests. Runs inside the
// client namespace:
//   node dist/test/support/http-pace.js URL RATE_PER_S DURATION_MS [TIMEOUT_MS]
// Prints one JSON line: { sent, ok, failed, byBackend, failures: [{ at, error }], maxMs,
// started, ended } with times in epoch milliseconds (the host clock the test reads too).
import { Agent, request } from "node:http";

const [url = "", rateText = "10", durationText = "1000", timeoutText = "3000"] = process.argv.slice(2);
const rate = Number(rateText);
const duration = Number(durationText);
const timeout = Number(timeoutText);
if (!url || !(rate > 0 && rate <= 1000) || !(duration > 0 && duration <= 600_000) || !(timeout > 0)) {
  process.stderr.write("usage: http-pace URL RATE_PER_S(1..1000) DURATION_MS [TIMEOUT_MS]\n");
  process.exit(2);
}
const agent = new Agent({ keepAlive: false, maxSockets: Infinity });

function get(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, timeout, headers: { Connection: "close" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        if (res.statusCode === 200) resolve(body.trim());
        else reject(new Error(`HTTP ${res.statusCode}`));
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeout} ms`)));
    req.on("error", reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  const byBackend: Record<string, number> = {};
  const failures: { at: number; error: string }[] = [];
  let ok = 0;
  let maxMs = 0;
  const inFlight: Promise<void>[] = [];
  const total = Math.max(1, Math.round((rate * duration) / 1000));
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const at = Date.now();
    inFlight.push(
      get().then(
        (name) => {
          ok++;
          byBackend[name] = (byBackend[name] ?? 0) + 1;
          maxMs = Math.max(maxMs, Date.now() - at);
        },
        (err: unknown) => {
          failures.push({ at, error: err instanceof Error ? err.message : String(err) });
        },
      ),
    );
  }
  await Promise.all(inFlight);
  const result = {
    sent: total,
    ok,
    failed: failures.length,
    byBackend,
    failures,
    maxMs,
    started,
    ended: Date.now(),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

void main();
