// Child process of the next-hop lab test, run inside a namespace with `nsenter --net=...`:
// prints one JSON line for `resolve ADDR [TIMEOUT_MS]`, `link NAME` or `addrs NAME`.
//   {"ok": true, "elapsedMs": 3.2, "result": ...}   or   {"ok": false, "elapsedMs": ..., "error": {...}}
import { addressToString, parseAddress } from "../../src/lib/addr.js";
import type { IpAddress } from "../../src/lib/addr.js";
import { LbError } from "../../src/lib/errors.js";
import { formatMac, getLink, primaryAddresses } from "../../src/net/links.js";
import { NextHopResolver } from "../../src/net/next-hop.js";

const text = (a: IpAddress | undefined): string | undefined =>
  a === undefined ? undefined : addressToString(a);

async function run(
  cmd: string | undefined,
  arg: string | undefined,
  extra: string | undefined,
): Promise<unknown> {
  if (arg === undefined)
    throw new Error("usage: resolve-cli resolve ADDR [TIMEOUT_MS] | link NAME | addrs NAME");
  switch (cmd) {
    case "resolve": {
      const resolver = new NextHopResolver();
      const nh = await resolver.resolve(
        parseAddress(arg),
        extra === undefined ? {} : { timeoutMs: Number(extra) },
      );
      if (nh === undefined) return null;
      return { ...nh, smac: formatMac(nh.smac), dmac: formatMac(nh.dmac), gateway: text(nh.gateway) };
    }
    case "link": {
      const link = await getLink(arg);
      return { ...link, mac: formatMac(link.mac) };
    }
    case "addrs": {
      const addrs = await primaryAddresses(arg);
      return { v4: text(addrs.v4), v6: text(addrs.v6) };
    }
    default:
      throw new Error(`unknown command ${cmd ?? ""}`);
  }
}

const [cmd, arg, extra] = process.argv.slice(2);
const start = performance.now();
try {
  const result = await run(cmd, arg, extra);
  console.log(JSON.stringify({ ok: true, elapsedMs: performance.now() - start, result }));
} catch (err) {
  const elapsedMs = performance.now() - start;
  if (!(err instanceof LbError)) throw err;
  console.log(
    JSON.stringify({ ok: false, elapsedMs, error: { code: err.code, message: err.message, hint: err.hint } }),
  );
}
