// What the kernel dropped before our NFQUEUE worker saw it, next to what the worker counted
// itself, so `lbctl stats` shows queue overflow in nfqueue mode. The kernel's side comes from
// /proc/net/netfilter/nfnetlink_queue (per network namespace), one line per bound queue:
//   queue portid waiting copy_mode copy_range queue_dropped user_dropped last_seq 1
// queue_dropped: the queue was at its maximum length; user_dropped: the netlink socket was full.
import { readFileSync } from "node:fs";

import type { NfqueueStats } from "../api/protocol.js";
import type { NfqWorkerCounters } from "./nfq-worker.js";

export const NFNETLINK_QUEUE_PROC = "/proc/net/netfilter/nfnetlink_queue";

export interface KernelQueueLine {
  readonly queue: number;
  readonly waiting: number;
  readonly queueDropped: number;
  readonly userDropped: number;
}

/** The proc file's lines; lines that do not parse are skipped (the format is the kernel's). */
export function parseNfnetlinkQueue(text: string): KernelQueueLine[] {
  const lines: KernelQueueLine[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 7 || f.slice(0, 7).some((n) => !Number.isSafeInteger(n))) continue;
    lines.push({ queue: f[0] ?? 0, waiting: f[2] ?? 0, queueDropped: f[5] ?? 0, userDropped: f[6] ?? 0 });
  }
  return lines;
}

/** Sums the kernel's lines for queues first .. first + count - 1 with the worker's counters. */
export function nfqueueStats(
  kernel: readonly KernelQueueLine[],
  first: number,
  count: number,
  worker: NfqWorkerCounters,
  restarts: number,
): NfqueueStats {
  const ours = kernel.filter((l) => l.queue >= first && l.queue < first + count);
  const sum = (pick: (l: KernelQueueLine) => number): number => ours.reduce((n, l) => n + pick(l), 0);
  return {
    queues: count,
    bound: ours.length,
    waiting: sum((l) => l.waiting),
    queue_dropped: sum((l) => l.queueDropped),
    user_dropped: sum((l) => l.userDropped),
    packets: worker.packets,
    batches: worker.batches,
    enobufs: worker.enobufs,
    send_errors: worker.sendErrors,
    verdict_errors: worker.verdictErrors,
    worker_restarts: restarts,
  };
}

/** The proc file's text, or "" when nfnetlink_queue is not loaded (no queue bound yet). */
export function readNfnetlinkQueue(path = NFNETLINK_QUEUE_PROC): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
