// IdleGc: one collection after a burst of changes settles, and some during a long burst; nothing
// at all without node's --expose-gc. Real timers with short periods, generous bounds.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";

import { IdleGc } from "../../src/lib/idle-gc.js";

test("collects once things are quiet, and at most every maxDelay during a burst", async () => {
  let collections = 0;
  const idle = new IdleGc(30, 150, () => collections++);
  idle.touch();
  await sleep(10);
  assert.equal(collections, 0, "not while changes may still come");
  await sleep(200);
  assert.equal(collections, 1, "once after 30 ms of quiet");

  const until = performance.now() + 500;
  while (performance.now() < until) {
    idle.touch();
    await sleep(5);
  }
  const duringBurst = collections - 1;
  assert.ok(
    duringBurst >= 1 && duringBurst <= 5,
    `a 500 ms burst: ${duringBurst} collection(s), bound by 150 ms`,
  );
  await sleep(300);
  assert.equal(collections - 1 - duringBurst, 1, "one more once the burst ends");
  idle.stop();
});

test("without --expose-gc it does nothing", async () => {
  const idle = new IdleGc(1, 1, undefined);
  idle.touch();
  await sleep(10);
  assert.equal(idle.runs, 0);
});
