// Lab scenarios every data-plane variant must pass the same way (the XDP lab, NFQUEUE, TUN-decap
// backends): IPv6 and UDP spread, drain keeps a long-lived connection, remove moves only the
// removed backend's flows. Each adds its own VIP on backends b1..b3 and removes it at the end.
import assert from "node:assert/strict";

import type { Lab } from "../../src/lab/lab.js";
import { assertSpread, lbctlOk } from "./lab-assert.js";

const NAME_PORT = 8080; // the backends' line-based name service (long-lived connections)
const BACKENDS = [1, 2, 3];

export async function ipv6Spread(lab: Lab): Promise<void> {
  const vip = "tcp/[2001:db8:1::1]:80";
  await lbctlOk(lab, ["vip", "add", vip]);
  for (const i of BACKENDS) await lbctlOk(lab, ["backend", "add", vip, `2001:db8::1${i}`, "--name", `b${i}`]);
  const r = await lab.http("http://[2001:db8:1::1]/", 1000);
  assert.equal(r.failed, 0, `failures: ${r.errors.join("; ")}`);
  assertSpread(r.byBackend, { b1: 1, b2: 1, b3: 1 }, "IPv6 spread");
  await lbctlOk(lab, ["vip", "remove", vip]);
}

export async function udpSpread(lab: Lab): Promise<void> {
  const vip = "udp/198.18.1.2:53";
  await lbctlOk(lab, ["vip", "add", vip]);
  for (const i of BACKENDS) await lbctlOk(lab, ["backend", "add", vip, `198.18.0.1${i}`]);
  const r = await lab.udp("198.18.1.2", 53, 1500);
  assert.equal(r.failed, 0);
  assertSpread(r.byBackend, { b1: 1, b2: 1, b3: 1 }, "UDP spread");
  await lbctlOk(lab, ["vip", "remove", vip]);
}

export async function drainKeepsConnection(lab: Lab): Promise<void> {
  const vip = `tcp/198.18.1.1:${NAME_PORT}`;
  await lbctlOk(lab, ["vip", "add", vip]);
  for (const i of BACKENDS) await lbctlOk(lab, ["backend", "add", vip, `198.18.0.1${i}`]);
  const session = lab.session("198.18.1.1", NAME_PORT);
  const name = await session.ask();
  assert.ok(name, "long-lived connection answered");
  await lbctlOk(lab, ["backend", "drain", vip, `198.18.0.1${name.slice(1)}`]);
  const fresh = Array.from({ length: 15 }, () => lab.session("198.18.1.1", NAME_PORT));
  const names = await Promise.all(fresh.map((s) => s.ask()));
  assert.ok(
    names.every((n) => n !== undefined && n !== name),
    `new connections avoid ${name}: ${names.join(",")}`,
  );
  for (let i = 0; i < 5; i++) assert.equal(await session.ask(), name, "long-lived connection stays");
  for (const s of [session, ...fresh]) s.close();
  await lbctlOk(lab, ["vip", "remove", vip]);
}

export async function removeMovesOnlyItsFlows(lab: Lab): Promise<void> {
  const vip = `tcp/198.18.1.1:${NAME_PORT}`;
  await lbctlOk(lab, ["vip", "add", vip]);
  for (const i of BACKENDS) await lbctlOk(lab, ["backend", "add", vip, `198.18.0.1${i}`]);
  const sessions = Array.from({ length: 12 }, () => lab.session("198.18.1.1", NAME_PORT));
  const first = await Promise.all(sessions.map((s) => s.ask()));
  const victim = first.find((n) => n !== undefined);
  assert.ok(victim, "sessions answered");
  await lbctlOk(lab, ["backend", "remove", vip, `198.18.0.1${victim.slice(1)}`]);
  const second = await Promise.all(sessions.map((s) => s.ask()));
  sessions.forEach((_, i) => {
    if (first[i] !== victim) assert.equal(second[i], first[i], `session ${i} untouched`);
    else assert.notEqual(second[i], victim, `session ${i} left removed ${victim}`);
  });
  for (const s of sessions) s.close();
  await lbctlOk(lab, ["vip", "remove", vip]);
}
