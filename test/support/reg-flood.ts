// Lab tool: a flood of hostile connections against the registration port, and what became of
// each. Kinds, in turn: silent (connects, sends nothing), garbage (random bytes in lines),
// oversized (one line past the limit), wrong-secret (AUTH with another secret's MAC), replay
// (AUTH with the MAC of a recorded good exchange), early (REGISTER, PAUSE, DEREGISTER before
// AUTH, then silence). The good exchange that the replays copy is made first, on its own
// connection (AUTH only: it changes nothing). Runs inside a client namespace:
//   node dist/test/support/reg-flood.js --host IP --port N --secret-file F --count N
//        [--v6-host IP --v6-count N] [--batch N] [--wait-ms MS]
// Prints one JSON line: per kind, how many connected, the ERR codes seen, whether any OK came,
// how many the server closed and how late; plus those still open at --wait-ms (then dropped).
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { parseArgs } from "node:util";

import { authMac, parseLine } from "../../src/registry/wire.js";

const KINDS = ["silent", "garbage", "oversized", "wrong-secret", "replay", "early"] as const;
type Kind = (typeof KINDS)[number] | "v6";

interface Outcome {
  kind: Kind;
  connected: boolean;
  codes: string[];
  ok: boolean;
  closed: boolean;
  closeMs: number;
}

const { values } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string" },
    "secret-file": { type: "string" },
    count: { type: "string", default: "1000" },
    "v6-host": { type: "string" },
    "v6-count": { type: "string", default: "0" },
    batch: { type: "string", default: "50" },
    "wait-ms": { type: "string", default: "10000" },
  },
  strict: true,
});
const host = values.host ?? "";
const port = Number(values.port);
const count = Number(values.count);
const v6Count = Number(values["v6-count"]);
const batch = Number(values.batch);
const waitMs = Number(values["wait-ms"]);
if (!host || !(port > 0) || !values["secret-file"] || !(count >= 0) || !(batch > 0)) {
  process.stderr.write("usage: reg-flood --host IP --port N --secret-file F --count N [...]\n");
  process.exit(2);
}
const raw = readFileSync(values["secret-file"]);
const secret = raw[raw.length - 1] === 0x0a ? raw.subarray(0, raw.length - 1) : raw;
const wrongSecret = randomBytes(32);

/** Opens one connection, lets `act` drive it on each line received, and records the outcome. */
function open(
  kind: Kind,
  address: string,
  act: (s: Socket, line: string, first: boolean) => void,
  onOpen?: (s: Socket) => void,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { kind, connected: false, codes: [], ok: false, closed: false, closeMs: 0 };
    const s = connect({ host: address, port });
    let connectedAt = 0;
    let buffered = "";
    let lines = 0;
    const giveUp = setTimeout(() => {
      s.destroy();
    }, waitMs);
    s.setEncoding("latin1");
    s.on("connect", () => {
      out.connected = true;
      connectedAt = Date.now();
      onOpen?.(s);
    });
    s.on("data", (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const m = /^ERR ([a-z-]+)/.exec(line);
        if (m?.[1]) out.codes.push(m[1]);
        if (line.startsWith("OK")) out.ok = true;
        act(s, line, lines++ === 0);
      }
    });
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(giveUp);
      // Closed by the server unless our own give-up timer fired.
      out.closed = out.connected && Date.now() - connectedAt < waitMs;
      out.closeMs = out.connected ? Date.now() - connectedAt : 0;
      resolve(out);
    });
  });
}

const nonceOf = (hello: string): string => parseLine(hello).kv.get("nonce")?.[0] ?? "";
const garbageLine = (): string =>
  randomBytes(40)
    .toString("latin1")
    .replace(/[\n\r]/g, "x");

function flood(kind: Kind, address: string, replayMac: string): Promise<Outcome> {
  switch (kind) {
    case "silent":
    case "v6":
      return open(kind, address, () => undefined);
    case "garbage":
      return open(kind, address, (s, _line, first) => {
        if (first) s.write(Array.from({ length: 20 }, garbageLine).join("\n") + "\n");
      });
    case "oversized":
      return open(kind, address, (s, _line, first) => {
        if (first) s.write("REGISTER " + "A".repeat(4096));
      });
    case "wrong-secret":
      return open(kind, address, (s, line, first) => {
        if (first) s.write(`AUTH mac=${authMac(wrongSecret, "agent", nonceOf(line))}\n`);
      });
    case "replay":
      return open(kind, address, (s, _line, first) => {
        if (first) s.write(`AUTH mac=${replayMac}\n`);
      });
    case "early":
      return open(kind, address, (s, _line, first) => {
        if (first)
          s.write("REGISTER vip=tcp/198.18.1.1:80 address=198.18.0.66 probe=4000\nPAUSE\nDEREGISTER\n");
      });
  }
}

/** One good AUTH (no state change): its MAC is what the replays send on fresh nonces. */
async function record(): Promise<{ mac: string; answer: string }> {
  let mac = "";
  let answer = "";
  await open("silent", host, (s, line, first) => {
    if (first) {
      mac = authMac(secret, "agent", nonceOf(line));
      s.write(`AUTH mac=${mac}\n`);
    } else {
      answer = line;
      s.destroy();
    }
  });
  return { mac, answer };
}

async function main(): Promise<void> {
  const started = Date.now();
  const recorded = await record();
  const runs: Promise<Outcome>[] = [];
  // IPv6 peers first: past the connection limit the kernel-level drop comes before the
  // allow-list, so late ones would only test the limit again.
  const plan: [Kind, string][] = [
    ...Array.from({ length: v6Count }, (): [Kind, string] => ["v6", values["v6-host"] ?? "::1"]),
    ...Array.from({ length: count }, (_, i): [Kind, string] => [KINDS[i % KINDS.length] ?? "silent", host]),
  ];
  for (let i = 0; i < plan.length; i += batch) {
    for (const [kind, address] of plan.slice(i, i + batch)) runs.push(flood(kind, address, recorded.mac));
    await new Promise((r) => setTimeout(r, 10));
  }
  const outcomes = await Promise.all(runs);
  const byKind: Record<
    string,
    {
      n: number;
      connected: number;
      ok: number;
      closed: number;
      maxCloseMs: number;
      codes: Record<string, number>;
    }
  > = {};
  for (const o of outcomes) {
    const k = (byKind[o.kind] ??= { n: 0, connected: 0, ok: 0, closed: 0, maxCloseMs: 0, codes: {} });
    k.n++;
    if (o.connected) k.connected++;
    if (o.ok) k.ok++;
    if (o.closed) k.closed++;
    k.maxCloseMs = Math.max(k.maxCloseMs, o.closeMs);
    const codes = o.codes.length === 0 ? ["(none)"] : [...new Set(o.codes)];
    for (const c of codes) k.codes[c] = (k.codes[c] ?? 0) + 1;
  }
  const stillOpen = outcomes.filter((o) => o.connected && !o.closed).length;
  process.stdout.write(
    `${JSON.stringify({ recorded: recorded.answer, total: outcomes.length, stillOpen, byKind, ms: Date.now() - started })}\n`,
  );
}

void main();
