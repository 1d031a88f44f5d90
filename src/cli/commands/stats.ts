// `lbctl stats [--json] [--watch]`: packets and bytes per VIP and backend, drops by reason.
// --watch asks again every second and shows per-second rates (the human view redraws on a
// terminal; --json prints one result per line); SIGINT ends it with exit 0, and
// $LBCTL_WATCH_COUNT=N after N results (for tests).
import { setTimeout as sleep } from "node:timers/promises";
import type { Command } from "commander";

import type { NfqueueStats, StatsResult } from "../../api/protocol.js";
import { LbError } from "../../lib/errors.js";
import { ControlClient } from "../../api/client.js";
import {
  addSocketOption,
  out,
  printJson,
  printWarnings,
  resolveSocket,
  withClient,
  type SocketOpts,
} from "../context.js";
import { asStats } from "../results.js";
import { formatTable, type Column } from "../table.js";

export const WATCH_COUNT_ENV = "LBCTL_WATCH_COUNT";
const WATCH_INTERVAL_MS = 1000;

interface StatsOpts extends SocketOpts {
  json?: boolean;
  watch?: boolean;
}

/** The previous result and how long ago it was taken, for rates. */
export interface Previous {
  readonly stats: StatsResult;
  readonly seconds: number;
}

function rate(cur: number, old: number | undefined, seconds: number): string {
  // A counter that went down (daemon restarted, backend re-added) has no meaningful rate.
  if (old === undefined || cur < old || seconds <= 0) return "-";
  return String(Math.round((cur - old) / seconds));
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Tables of the stats result. With `withRates` (watch mode) per-second rate columns too, "-"
 * until there is a previous result to compare with.
 */
export function formatStats(stats: StatsResult, withRates: boolean, prev?: Previous): string {
  const dt = prev?.seconds ?? 0;
  const num = (title: string): Column => ({ title, align: "right" });
  const trafficCols: Column[] = [
    { title: "VIP / BACKEND" },
    num("PACKETS"),
    num("BYTES"),
    ...(withRates ? [num("PKT/S"), num("BYTES/S")] : []),
  ];
  const trafficRow = (
    label: string,
    c: { packets: number; bytes: number },
    p: { packets: number; bytes: number } | undefined,
  ): string[] => [
    label,
    String(c.packets),
    String(c.bytes),
    ...(withRates ? [rate(c.packets, p?.packets, dt), rate(c.bytes, p?.bytes, dt)] : []),
  ];

  // Backends are keyed "VIP ADDR": list each under its VIP.
  const backendsOf = new Map<string, string[]>();
  for (const key of Object.keys(stats.backends)) {
    const sp = key.indexOf(" ");
    const vip = sp < 0 ? key : key.slice(0, sp);
    backendsOf.set(vip, [...(backendsOf.get(vip) ?? []), key]);
  }
  const vips = [...new Set([...Object.keys(stats.vips), ...backendsOf.keys()])].sort(byName);
  const traffic: string[][] = [];
  for (const vip of vips) {
    traffic.push(trafficRow(vip, stats.vips[vip] ?? { packets: 0, bytes: 0 }, prev?.stats.vips[vip]));
    for (const key of (backendsOf.get(vip) ?? []).sort(byName)) {
      const c = stats.backends[key];
      if (c === undefined) continue;
      traffic.push(trafficRow(`  ${key.slice(vip.length + 1)}`, c, prev?.stats.backends[key]));
    }
  }

  const countCols = (title: string): Column[] => [
    { title },
    num("COUNT"),
    ...(withRates ? [num("PER S")] : []),
  ];
  const countRows = (cur: Record<string, number>, old: Record<string, number> | undefined): string[][] =>
    Object.keys(cur)
      .sort(byName)
      .map((k) => {
        const n = cur[k] ?? 0;
        return [k, String(n), ...(withRates ? [rate(n, old?.[k], dt)] : [])];
      });

  const parts = [
    formatTable(trafficCols, traffic),
    formatTable(countCols("DROP REASON"), countRows(stats.drops, prev?.stats.drops)),
  ];
  if (Object.keys(stats.counters).length > 0) {
    parts.push(formatTable(countCols("COUNTER"), countRows(stats.counters, prev?.stats.counters)));
  }
  if (stats.nfqueue) {
    const asCounts = (q: NfqueueStats | undefined): Record<string, number> | undefined =>
      q ? Object.fromEntries(Object.entries(q)) : undefined;
    parts.push(
      formatTable(
        countCols("NFQUEUE"),
        countRows(asCounts(stats.nfqueue) ?? {}, asCounts(prev?.stats.nfqueue)),
      ),
    );
  }
  return parts.join("\n");
}

function watchCount(): number | undefined {
  const text = process.env[WATCH_COUNT_ENV];
  if (text === undefined || text === "") return undefined;
  if (!/^[1-9]\d*$/.test(text)) {
    throw new LbError("LB_ERR_USAGE", `$${WATCH_COUNT_ENV} is "${text}", not a positive integer`, {
      hint: `unset it to watch until Ctrl-C`,
    });
  }
  return Number(text);
}

async function watch(opts: StatsOpts): Promise<void> {
  const count = watchCount();
  const client = await ControlClient.connect(resolveSocket(opts.socket));
  const stop = new AbortController();
  // Ctrl-C ends the watch with exit 0, also while a request is in flight (closing the client
  // rejects it; the rejection is then ignored).
  const onSigint = (): void => {
    stop.abort();
    client.close();
  };
  process.on("SIGINT", onSigint);
  const tty = process.stdout.isTTY;
  try {
    let prev: { stats: StatsResult; at: number } | undefined;
    for (let i = 0; count === undefined || i < count; i++) {
      if (i > 0) await sleep(WATCH_INTERVAL_MS, undefined, { signal: stop.signal }).catch(() => undefined);
      if (stop.signal.aborted) return;
      const reply = await client.request({ cmd: "stats" });
      const at = performance.now();
      printWarnings(reply.warnings);
      if (opts.json === true) {
        printJson(reply.result);
        continue;
      }
      const stats = asStats(reply.result);
      const view = formatStats(stats, true, prev && { stats: prev.stats, seconds: (at - prev.at) / 1000 });
      const title = `lbctl stats, every ${WATCH_INTERVAL_MS / 1000} s, ${new Date().toTimeString().slice(0, 8)} (Ctrl-C to stop)`;
      // On a terminal redraw in place; into a file or pipe append frames, blank-line separated.
      out(tty ? `\x1b[H\x1b[2J${title}\n\n${view}` : `${i > 0 ? "\n" : ""}${title}\n\n${view}`);
      prev = { stats, at };
    }
  } catch (err) {
    if (!stop.signal.aborted) throw err;
  } finally {
    process.off("SIGINT", onSigint);
    client.close();
  }
}

export function register(program: Command): void {
  addSocketOption(
    program
      .command("stats")
      .description("packets and bytes per VIP and backend, drops by reason")
      .option("--json", "print the result as JSON (with --watch: one object per line)")
      .option("--watch", `repeat every ${WATCH_INTERVAL_MS / 1000} s with per-second rates, until Ctrl-C`),
  ).action(async (opts: StatsOpts) => {
    if (opts.watch === true) return watch(opts);
    await withClient(opts, async (client) => {
      const reply = await client.request({ cmd: "stats" });
      printWarnings(reply.warnings);
      if (opts.json === true) printJson(reply.result);
      else out(formatStats(asStats(reply.result), false));
    });
  });
}
