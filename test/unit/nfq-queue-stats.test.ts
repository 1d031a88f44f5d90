// Parsing the kernel's /proc/net/netfilter/nfnetlink_queue and summing our queues' lines.
import assert from "node:assert/strict";
import { test } from "node:test";

import { nfqueueStats, parseNfnetlinkQueue } from "../../src/dataplane/nfq-queue-stats.js";

// Two of our queues (0, 1) and someone else's (7); fields as net/netfilter/nfnetlink_queue.c prints.
const PROC = [
  "    0  31337     5 2 65531     3    11  1234  1",
  "    1  31338     0 2 65531     0     4  5678  1",
  "    7   4242   100 2 65531    99    99    10  1",
  "garbage line",
  "",
].join("\n");

const WORKER = { packets: 1000, batches: 20, enobufs: 2, sendErrors: 1, verdictErrors: 0 };

test("parses every well-formed line and skips the rest", () => {
  assert.deepEqual(parseNfnetlinkQueue(PROC), [
    { queue: 0, waiting: 5, queueDropped: 3, userDropped: 11 },
    { queue: 1, waiting: 0, queueDropped: 0, userDropped: 4 },
    { queue: 7, waiting: 100, queueDropped: 99, userDropped: 99 },
  ]);
  assert.deepEqual(parseNfnetlinkQueue(""), []);
});

test("sums only our queue range and carries the worker's counters", () => {
  assert.deepEqual(nfqueueStats(parseNfnetlinkQueue(PROC), 0, 2, WORKER, 3), {
    queues: 2,
    bound: 2,
    waiting: 5,
    queue_dropped: 3,
    user_dropped: 15,
    packets: 1000,
    batches: 20,
    enobufs: 2,
    send_errors: 1,
    verdict_errors: 0,
    worker_restarts: 3,
  });
});

test("an unbound queue shows as bound < queues", () => {
  const s = nfqueueStats(parseNfnetlinkQueue(PROC), 1, 2, WORKER, 0);
  assert.equal(s.bound, 1);
  assert.equal(s.user_dropped, 4);
});
