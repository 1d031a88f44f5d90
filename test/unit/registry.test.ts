// The registration server against a real reconciler on in-memory maps, over real TCP on
// 127.0.0.1: authentication (success, wrong MAC, replay), every command, the tunnel check,
// malformed input, limits and timeouts (shortened).
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, test } from "node:test";

import { Reconciler, type NextHop, type NextHopSource } from "../../src/core/reconciler.js";
import { parseAddress } from "../../src/lib/addr.js";
import { BalancerMaps } from "../../src/maps/balancer-maps.js";
import { parseCidr, cidrContains, peerAddress } from "../../src/registry/cidr.js";
import {
  RegistrationServer,
  type RegistryOptions,
  type TunnelProbe,
  type TunnelProber,
} from "../../src/registry/server.js";
import { probePacket } from "../../src/registry/tunnel-probe.js";
import {
  authMac,
  encapOverhead,
  LineSplitter,
  macMatches,
  parseLine,
  probeNonce,
} from "../../src/registry/wire.js";

const SECRET = Buffer.from("0123456789abcdef0123456789abcdef");
const WEB = "tcp/198.18.1.1:80";

class StaticNextHops implements NextHopSource {
  resolve(): Promise<NextHop | undefined> {
    return Promise.resolve({ ifindex: 3, smac: new Uint8Array(6), dmac: new Uint8Array(6), mtu: 1500 });
  }
  recheck(): Promise<NextHop | undefined> {
    return this.resolve();
  }
}

/** Delivers probes to whichever test client registered with that probe port (or drops them),
 * through a "path" whose MTU drops larger outer packets, as a link with a smaller MTU does. */
class LoopbackProber implements TunnelProber {
  readonly sent: TunnelProbe[] = [];
  readonly receivers = new Map<number, (nonce: string) => void>();
  pathMtu = 1500;
  send(probe: TunnelProbe): Promise<void> {
    this.sent.push(probe);
    const inner = probePacket(parseAddress("198.18.0.1"), probe); // IPv4 in IPv4 here
    if (inner.length + 28 > this.pathMtu) return Promise.resolve();
    const nonce = probeNonce(Buffer.from(inner.subarray(28)).toString("latin1"));
    if (nonce !== undefined) this.receivers.get(probe.probePort)?.(nonce);
    return Promise.resolve();
  }
}

const servers: RegistrationServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function setup(opts: Partial<RegistryOptions> = {}): Promise<{
  maps: BalancerMaps;
  rec: Reconciler;
  server: RegistrationServer;
  prober: LoopbackProber;
  port: number;
}> {
  const maps = BalancerMaps.inMemory();
  const rec = new Reconciler(maps, new StaticNextHops(), {
    maglevSize: 251,
    resolveWaitMs: 50,
  });
  await rec.addVip({ proto: "tcp", address: parseAddress("198.18.1.1"), port: 80 }, "5tuple");
  const prober = new LoopbackProber();
  const server = new RegistrationServer(rec, prober, {
    secret: SECRET,
    tunnelTimeoutMs: 300,
    tunnelResendMs: 50,
    ...opts,
  });
  servers.push(server);
  const port = await server.listen(0, "127.0.0.1");
  return { maps, rec, server, prober, port };
}

/** A scripted agent: lines in, lines out, with a timeout per expected line. */
class Peer {
  private readonly lines: string[] = [];
  private waiting: ((line: string | undefined) => void) | undefined;
  closed = false;
  constructor(readonly socket: Socket) {
    socket.setEncoding("utf8");
    const splitter = new LineSplitter(
      (line) => {
        if (this.waiting) {
          const w = this.waiting;
          this.waiting = undefined;
          w(line);
        } else this.lines.push(line);
      },
      () => undefined,
      1 << 20,
    );
    socket.on("data", (c: string) => {
      splitter.push(c);
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      this.closed = true;
      this.waiting?.(undefined);
      this.waiting = undefined;
    });
  }
  static async open(port: number): Promise<Peer> {
    const s = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      s.once("connect", resolve);
      s.once("error", reject);
    });
    return new Peer(s);
  }
  send(line: string): void {
    this.socket.write(`${line}\n`);
  }
  next(timeoutMs = 2000): Promise<string | undefined> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiting = undefined;
        resolve("<timeout>");
      }, timeoutMs);
      this.waiting = (l) => {
        clearTimeout(t);
        resolve(l);
      };
    });
  }
  async ask(line: string): Promise<string | undefined> {
    this.send(line);
    return this.next();
  }
  /** Reads HELLO, answers AUTH; returns the HELLO nonce. */
  async auth(secret: Uint8Array = SECRET): Promise<{ nonce: string; answer: string | undefined }> {
    const hello = await this.next();
    const nonce = parseLine(hello ?? "").kv.get("nonce")?.[0] ?? "";
    const mine = "00112233445566778899aabbccddeeff";
    const answer = await this.ask(`AUTH mac=${authMac(secret, "agent", nonce)} nonce=${mine}`);
    return { nonce, answer };
  }
  close(): void {
    this.socket.destroy();
  }
}

function register(
  env: { prober: LoopbackProber },
  peer: Peer,
  probePort: number,
  extra = "",
): Promise<string | undefined> {
  env.prober.receivers.set(probePort, (nonce) => {
    peer.send(`TUNNEL ${nonce}`);
  });
  return peer.ask(
    `REGISTER vip=${WEB} address=198.18.0.11 port=6080 weight=2 name=b1 probe=${probePort}${extra}`,
  );
}

const state = (rec: Reconciler): string[] =>
  rec.listBackends().map((b) => `${b.address} ${b.name} w${b.weight} ${b.state}`);

test("wire: MACs are role-bound and compared in constant time; lines parse", () => {
  const a = authMac(SECRET, "agent", "aa");
  assert.notEqual(a, authMac(SECRET, "server", "aa"));
  assert.ok(macMatches(a, a));
  assert.ok(!macMatches(a, a.slice(0, 62)));
  assert.ok(!macMatches(a, "zz" + a.slice(2)));
  const p = parseLine("register vip=a vip=b name=x extra");
  assert.equal(p.verb, "REGISTER");
  assert.deepEqual(p.kv.get("vip"), ["a", "b"]);
  assert.deepEqual(p.args, ["extra"]);
});

test("cidr: allow-list matching, mapped IPv4 peers", () => {
  const c = parseCidr("198.18.0.0/24");
  assert.ok(cidrContains(c, parseAddress("198.18.0.77")));
  assert.ok(!cidrContains(c, parseAddress("198.18.1.1")));
  assert.ok(cidrContains(c, peerAddress("::ffff:198.18.0.5") ?? parseAddress("::")));
  assert.ok(cidrContains(parseCidr("2001:db8::/64"), parseAddress("2001:db8::11")));
  assert.throws(() => parseCidr("198.18.0.0/33"), /allow-list entry/);
  assert.throws(() => parseCidr("nonsense"), /allow-list entry/);
});

test("probe packet: inner IPv4/UDP to VIP:probe port carrying the nonce", () => {
  const pkt = probePacket(parseAddress("198.18.0.1"), {
    backend: parseAddress("198.18.0.11"),
    encapPort: 6080,
    vip: parseAddress("198.18.1.1"),
    probePort: 40000,
    nonce: "abcd",
  });
  assert.equal(pkt[0], 0x45);
  assert.equal(pkt[9], 17);
  assert.deepEqual([...pkt.subarray(16, 20)], [198, 18, 1, 1]);
  assert.equal((pkt[22] ?? 0) * 256 + (pkt[23] ?? 0), 40000);
  assert.equal(Buffer.from(pkt.subarray(28)).toString(), "CAPLANCE-TUNNEL abcd");
});

test("full-size probe: padded so the outer packet is exactly outerBytes; the nonce still parses", () => {
  const nonce = "0123456789abcdef0123456789abcdef";
  const cases = [
    { backend: "198.18.0.11", vip: "198.18.1.1", src: "198.18.0.1", outer: 1500, overhead: 28 },
    { backend: "2001:db8::11", vip: "2001:db8:1::1", src: "2001:db8::1", outer: 1500, overhead: 48 },
    { backend: "2001:db8::11", vip: "198.18.1.1", src: "198.18.0.1", outer: 1280, overhead: 48 },
    { backend: "198.18.0.11", vip: "2001:db8:1::1", src: "2001:db8::1", outer: 9000, overhead: 28 },
  ];
  for (const c of cases) {
    const backend = parseAddress(c.backend);
    assert.equal(encapOverhead(backend.family), c.overhead);
    const probe = { backend, encapPort: 6080, vip: parseAddress(c.vip), probePort: 40000, nonce };
    const pkt = probePacket(parseAddress(c.src), { ...probe, outerBytes: c.outer });
    assert.equal(pkt.length + c.overhead, c.outer, `${c.backend} / ${c.vip}`);
    const inner = c.vip.includes(":") ? 48 : 28;
    const payload = Buffer.from(pkt.subarray(inner)).toString("latin1");
    assert.match(payload, /^CAPLANCE-TUNNEL [0-9a-f]{32} +$/);
    assert.equal(probeNonce(payload), nonce);
    // Smaller than the unpadded probe: no padding, never truncated.
    assert.equal(probePacket(parseAddress(c.src), { ...probe, outerBytes: 10 }).length, inner + 48);
  }
  assert.equal(probeNonce("CAPLANCE-TUNNEL 0123456789abcdef"), "0123456789abcdef");
  assert.equal(probeNonce("CAPLANCE-TUNNEL xyz " + " ".repeat(100)), undefined);
  assert.equal(probeNonce("CAPLANCE-TUNNELS 0123456789abcdef"), undefined);
});

test("tunnel check with probeMtu: a path that drops full-size probes fails with the MTU hint", async () => {
  const env = await setup({ probeMtu: 1500 });
  const peer = await Peer.open(env.port);
  await peer.auth();
  env.prober.pathMtu = 1400;
  const answer = await register(env, peer, 40030);
  assert.match(
    answer ?? "",
    /^ERR tunnel small probes through the tunnel to 198\.18\.0\.11:6080 came back but the full-size one \(a 1500-byte outer packet with DF set/,
  );
  assert.match(answer ?? "", /path MTU to the backend is below 1500/);
  assert.match(answer ?? "", /advmss/);
  assert.match(answer ?? "", /minus 28 bytes/);
  assert.doesNotMatch(answer ?? "", /decap not attached/, "not the generic hint: the small probe passed");
  assert.deepEqual(state(env.rec), []);
  const sizes = new Set(env.prober.sent.map((p) => p.outerBytes ?? 0));
  assert.deepEqual([...sizes].sort(), [0, 1500], "a small and a full-size probe");
  env.prober.pathMtu = 1500;
  assert.match((await register(env, peer, 40031)) ?? "", /^OK registered/, "the full path passes");
  assert.deepEqual(state(env.rec), ["198.18.0.11 b1 w2 active"]);
  peer.close();
});

test("register after auth: tunnel check, then in the table; pause, resume, health, deregister", async () => {
  const events: string[] = [];
  const env = await setup({ onEvent: (e) => events.push(e) });
  const peer = await Peer.open(env.port);
  const { answer } = await peer.auth();
  const serverMac = parseLine(answer ?? "").kv.get("mac")?.[0] ?? "";
  assert.match(answer ?? "", /^OK auth mac=/);
  assert.equal(
    serverMac,
    authMac(SECRET, "server", "00112233445566778899aabbccddeeff"),
    "server proves the secret",
  );
  assert.deepEqual(state(env.rec), []);
  assert.match(
    (await register(env, peer, 40001)) ?? "",
    /^OK registered name=b1 address=198.18.0.11 vips=1$/,
  );
  assert.ok(env.prober.sent.length >= 1);
  assert.equal(env.prober.sent[0]?.encapPort, 6080);
  assert.deepEqual(state(env.rec), ["198.18.0.11 b1 w2 active"]);
  assert.equal(await peer.ask("HEALTH"), "OK health");
  assert.equal(await peer.ask("PAUSE"), "OK paused");
  assert.deepEqual(state(env.rec), ["198.18.0.11 b1 w2 draining"], "paused: drained, still present");
  assert.equal(await peer.ask("RESUME"), "OK resumed");
  assert.deepEqual(state(env.rec), ["198.18.0.11 b1 w2 active"]);
  assert.match((await peer.ask("REGISTER vip=x")) ?? "", /^ERR already-registered/);
  assert.equal(await peer.ask("DEREGISTER"), "OK deregistered");
  assert.deepEqual(state(env.rec), []);
  assert.match((await peer.ask("PAUSE")) ?? "", /^ERR not-registered/);
  assert.deepEqual(events, ["registered", "paused", "resumed", "rejected", "deregistered", "rejected"]);
  peer.close();
});

test("auth: wrong secret, replayed response and commands before AUTH are refused; nothing changes", async () => {
  const env = await setup();
  const early = await Peer.open(env.port);
  await early.next();
  assert.match(
    (await early.ask(`REGISTER vip=${WEB} address=198.18.0.11 probe=1`)) ?? "",
    /^ERR not-authenticated/,
  );
  assert.match((await early.ask("PAUSE")) ?? "", /^ERR not-authenticated/);
  early.close();

  const wrong = await Peer.open(env.port);
  const w = await wrong.auth(Buffer.from("another secret of sixteen+ bytes"));
  assert.match(w.answer ?? "", /^ERR auth /);
  assert.equal(await wrong.next(), undefined, "connection closed after a failed AUTH");

  // Record a good exchange, then replay its response on a new connection.
  const first = await Peer.open(env.port);
  const hello = await first.next();
  const nonce = parseLine(hello ?? "").kv.get("nonce")?.[0] ?? "";
  const mac = authMac(SECRET, "agent", nonce);
  assert.match((await first.ask(`AUTH mac=${mac}`)) ?? "", /^OK auth$/);
  first.close();
  const replay = await Peer.open(env.port);
  const hello2 = await replay.next();
  assert.notEqual(parseLine(hello2 ?? "").kv.get("nonce")?.[0], nonce, "a fresh nonce per connection");
  assert.match((await replay.ask(`AUTH mac=${mac}`)) ?? "", /^ERR auth /);
  assert.equal(await replay.next(), undefined);
  assert.deepEqual(state(env.rec), []);
});

test("register: unknown VIP, bad arguments, static backend, tunnel failure", async () => {
  const env = await setup();
  const peer = await Peer.open(env.port);
  await peer.auth();
  assert.match(
    (await peer.ask("REGISTER vip=tcp/198.18.1.9:80 address=198.18.0.11 probe=40002")) ?? "",
    /^ERR unknown-vip no VIP tcp\/198.18.1.9:80/,
  );
  assert.match((await peer.ask(`REGISTER vip=${WEB} address=nope probe=1`)) ?? "", /^ERR syntax address=IP/);
  assert.match(
    (await peer.ask(`REGISTER vip=${WEB} address=198.18.0.11`)) ?? "",
    /^ERR syntax probe= is required/,
  );
  assert.match(
    (await peer.ask(`REGISTER vip=${WEB} address=198.18.0.11 probe=1 color=red`)) ?? "",
    /^ERR syntax unknown key/,
  );
  assert.match(
    (await peer.ask(`REGISTER vip=${WEB} address=198.18.0.11 probe=1 weight=70000`)) ?? "",
    /^ERR syntax weight=/,
  );
  // No receiver for probe port 40003: the tunnel check fails with the hint.
  const t0 = Date.now();
  const tunnel = await peer.ask(`REGISTER vip=${WEB} address=198.18.0.11 probe=40003`);
  assert.match(tunnel ?? "", /^ERR tunnel no probe .* within 300 ms .*likely causes: decap not attached/);
  assert.ok(Date.now() - t0 >= 280);
  assert.deepEqual(state(env.rec), []);
  peer.close();

  await env.rec.addBackend(
    { proto: "tcp", address: parseAddress("198.18.1.1"), port: 80 },
    { address: parseAddress("198.18.0.11"), encapPort: 6080, weight: 1 },
  );
  const other = await Peer.open(env.port);
  await other.auth();
  assert.match((await register(env, other, 40004)) ?? "", /^ERR exists backend 198.18.0.11/);
  other.close();
});

test("malformed input: unknown commands and garbage get ERR, too many close; long lines close", async () => {
  const env = await setup({ maxErrors: 3 });
  const peer = await Peer.open(env.port);
  await peer.next();
  assert.match((await peer.ask("HELLO?")) ?? "", /^ERR syntax unknown command/);
  assert.match((await peer.ask("\u0000\u00ff garbage \u2603")) ?? "", /^ERR syntax/);
  assert.match((await peer.ask("DROP TABLE")) ?? "", /^ERR syntax/);
  assert.equal(await peer.next(), undefined, "closed after maxErrors");

  const long = await Peer.open(env.port);
  await long.next();
  long.send("A".repeat(5000));
  assert.match((await long.next()) ?? "", /^ERR too-long/);
  assert.equal(await long.next(), undefined);
  // Still serving.
  const ok = await Peer.open(env.port);
  assert.match((await ok.auth()).answer ?? "", /^OK auth/);
  ok.close();
});

test("limits: allow-list, connection cap, register timeout", async () => {
  const denied = await setup({ allow: [parseCidr("10.0.0.0/8")] });
  const p = await Peer.open(denied.port);
  assert.match((await p.next()) ?? "", /^ERR not-allowed/);

  const env = await setup({ maxConnections: 2, registerTimeoutMs: 200 });
  const a = await Peer.open(env.port);
  const b = await Peer.open(env.port);
  await a.next();
  await b.next();
  const c = await Peer.open(env.port);
  assert.match((await c.next()) ?? "", /^ERR busy/);
  assert.match((await a.next(1000)) ?? "", /^ERR timeout not registered within 200 ms/);
  assert.equal(await a.next(), undefined);
  b.close();
});

test("limits: unauthenticated connections per source address; authenticated ones do not count", async () => {
  const events: string[] = [];
  const env = await setup({ maxUnauthenticatedPerPeer: 2, onEvent: (e) => events.push(e) });
  const a = await Peer.open(env.port);
  const b = await Peer.open(env.port);
  await b.next();
  const c = await Peer.open(env.port);
  assert.match(
    (await c.next()) ?? "",
    /^ERR busy 2 connections from this address have not authenticated yet/,
  );
  assert.equal(await c.next(), undefined, "closed after the answer");
  assert.deepEqual(events, ["rejected"], "a refused connection is a rejection too");
  assert.match((await a.auth()).answer ?? "", /^OK auth/);
  const d = await Peer.open(env.port);
  assert.match((await d.next()) ?? "", /^HELLO /, "a's slot freed by its AUTH");
  for (const p of [a, b, d]) p.close();
});

test("read timeout removes a silent backend; HEALTH keeps it; a dropped connection can re-register", async () => {
  const env = await setup({ readTimeoutMs: 400 });
  const peer = await Peer.open(env.port);
  await peer.auth();
  assert.match((await register(env, peer, 40010)) ?? "", /^OK registered/);
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await peer.ask("HEALTH"), "OK health");
  }
  assert.equal(state(env.rec).length, 1, "heartbeats keep it");
  // Drop the connection, re-register on a new one before the timeout: adopted, not duplicated.
  await peer.ask("PAUSE");
  peer.close();
  const again = await Peer.open(env.port);
  await again.auth();
  assert.match((await register(env, again, 40011)) ?? "", /^OK registered/);
  assert.deepEqual(state(env.rec), ["198.18.0.11 b1 w2 active"], "adopted and resumed");
  // Silence: removed after the read timeout, connection told why.
  const t0 = Date.now();
  assert.match((await again.next(2000)) ?? "", /^ERR timeout no line for/);
  const waited = Date.now() - t0;
  assert.deepEqual(state(env.rec), []);
  assert.ok(waited >= 300 && waited < 1200, `removed after ${waited} ms`);
});

test("capacity per VIP and a connection only changes its own backend", async () => {
  const env = await setup({ capacityPerVip: 1 });
  const one = await Peer.open(env.port);
  await one.auth();
  assert.match((await register(env, one, 40020)) ?? "", /^OK registered/);
  const two = await Peer.open(env.port);
  await two.auth();
  env.prober.receivers.set(40021, (n) => {
    two.send(`TUNNEL ${n}`);
  });
  assert.match(
    (await two.ask(`REGISTER vip=${WEB} address=198.18.0.12 probe=40021`)) ?? "",
    /^ERR capacity VIP tcp\/198.18.1.1:80 has 1/,
  );
  // two has no registration: it cannot pause or remove one's backend.
  assert.match((await two.ask("PAUSE")) ?? "", /^ERR not-registered/);
  assert.match((await two.ask("DEREGISTER")) ?? "", /^ERR not-registered/);
  assert.deepEqual(state(env.rec), ["198.18.0.11 b1 w2 active"]);
  one.close();
  two.close();
});

test("after a restart (restored tables): agents re-register their backends; the silent one is removed", async () => {
  const env = await setup();
  for (const [port, addr] of [
    [40040, "198.18.0.11"],
    [40041, "198.18.0.12"],
  ] as const) {
    const p = await Peer.open(env.port);
    await p.auth();
    env.prober.receivers.set(port, (n) => {
      p.send(`TUNNEL ${n}`);
    });
    assert.match(
      (await p.ask(`REGISTER vip=${WEB} address=${addr} weight=2 name=b${addr.slice(-1)} probe=${port}`)) ??
        "",
      /^OK registered/,
    );
    p.close();
  }
  const before = env.rec.listBackends().map((b) => `${b.address} ${b.index} ${b.source}`);
  // A new daemon takes the same maps over (hitless restart) and listens again.
  const rec = new Reconciler(env.maps, new StaticNextHops(), { maglevSize: 251, resolveWaitMs: 50 });
  rec.restore(env.rec.snapshot());
  const prober = new LoopbackProber();
  const server = new RegistrationServer(rec, prober, {
    secret: SECRET,
    tunnelTimeoutMs: 300,
    tunnelResendMs: 50,
    readTimeoutMs: 500,
  });
  servers.push(server);
  const port = await server.listen(0, "127.0.0.1");
  assert.deepEqual(
    rec.listBackends().map((b) => `${b.address} ${b.index} ${b.source}`),
    before,
    "restored as registered",
  );
  const again = await Peer.open(port);
  await again.auth();
  const t0 = Date.now();
  assert.match((await register({ prober }, again, 40042)) ?? "", /^OK registered name=b1/, "not ERR exists");
  assert.deepEqual(
    rec.listBackends().map((b) => `${b.address} ${b.index} ${b.state}`),
    ["198.18.0.11 0 active", "198.18.0.12 1 active"],
    "adopted in place: same indices (its flows stay)",
  );
  // b2's agent never comes back: removed after the read timeout; b1 heartbeats.
  while (Date.now() - t0 < 1500 && rec.listBackends().length > 1) {
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await again.ask("HEALTH"), "OK health");
  }
  assert.deepEqual(
    rec.listBackends().map((b) => b.address),
    ["198.18.0.11"],
  );
  again.close();
});

test("during its tunnel check a REGISTER is listed as registering (pending), then gone", async () => {
  const env = await setup();
  const peer = await Peer.open(env.port);
  await peer.auth();
  peer.send(`REGISTER vip=${WEB} address=198.18.0.15 name=b5 weight=3 probe=40050`); // nobody answers the probe
  await new Promise((r) => setTimeout(r, 100));
  const [pending, ...rest] = env.server.registering();
  assert.deepEqual(rest, []);
  assert.deepEqual(
    { ...pending, since: typeof pending?.since },
    {
      vip: WEB,
      address: "198.18.0.15",
      port: 6080,
      name: "b5",
      weight: 3,
      since: "number",
      reason: "registering: tunnel check in progress (127.0.0.1)",
    },
  );
  assert.match((await peer.next()) ?? "", /^ERR tunnel/);
  assert.deepEqual(env.server.registering(), []);
  assert.deepEqual(state(env.rec), []);
  peer.close();
});
