// The registration server (docs/registration.md): agents authenticate with the shared secret,
// prove their tunnel works, then join VIPs as backends through the reconciler; PAUSE/RESUME
// drain and restore them, DEREGISTER and silence (the read timeout) remove them. Nothing a peer
// sends changes state before AUTH, and nothing it sends can take the daemon down.
import { createServer, type Server, type Socket } from "node:net";
import type { Logger } from "pino";

import type { Reconciler } from "../core/reconciler.js";
import type { VipRef } from "../core/types.js";
import { formatVip, parseVip, parseVipResult } from "../core/vip-syntax.js";
import { addressToString, parseAddress, tryParseAddress, type IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import { allowed, peerAddress, type Cidr } from "./cidr.js";
import {
  authMac,
  errLine,
  LineSplitter,
  macMatches,
  newNonce,
  okLine,
  parseLine,
  PROTOCOL,
  type ParsedLine,
  encapOverhead,
  type RegErrorCode,
} from "./wire.js";

/** Sends one tunnel probe: an encapsulated UDP packet to the backend's encap port whose inner
 * packet goes to the VIP address, probe port, carrying the nonce (tunnel-probe.ts). */
export interface TunnelProber {
  send(probe: TunnelProbe): Promise<void>;
}

export interface TunnelProbe {
  readonly backend: IpAddress;
  readonly encapPort: number;
  readonly vip: IpAddress;
  readonly probePort: number;
  readonly nonce: string;
  /** Pad the probe so its outer IP packet has this many bytes (DF set); undefined: small. */
  readonly outerBytes?: number;
}

export interface RegistryOptions {
  readonly secret: Uint8Array;
  /** Source CIDRs allowed to connect; empty = everyone. */
  readonly allow?: readonly Cidr[];
  /** A registered backend silent this long is removed (default 30 s). */
  readonly readTimeoutMs?: number;
  /** From connect until REGISTER succeeds, AUTH included (default 10 s). */
  readonly registerTimeoutMs?: number;
  /** A reply the peer does not read within this closes the connection (default 10 s). */
  readonly writeTimeoutMs?: number;
  /** How long the agent has to report the tunnel probe's nonce (default 3 s). */
  readonly tunnelTimeoutMs?: number;
  /** Interval between probe resends during the check (default 250 ms). */
  readonly tunnelResendMs?: number;
  /** Outer size of the full-size tunnel probe, in bytes: the largest packet the data plane will
   * send to a backend (the balancer interface's MTU). 0 or undefined: small probes only. */
  readonly probeMtu?: number;
  /** Registered backends per VIP (default 64). */
  readonly capacityPerVip?: number;
  readonly maxConnections?: number;
  /** Connections one source address may hold before AUTH succeeds (default 16): one flooding
   * peer cannot take every slot from the agents. */
  readonly maxUnauthenticatedPerPeer?: number;
  /** ERR answers after which a connection is closed (default 10). */
  readonly maxErrors?: number;
  readonly log?: Logger;
  /** Told of every registration event once (metrics). */
  readonly onEvent?: (event: RegistrationEvent) => void;
}

/** What caplance_registration_events_total counts. */
export type RegistrationEvent =
  "registered" | "paused" | "resumed" | "deregistered" | "timed_out" | "rejected";

const DEFAULTS = {
  readTimeoutMs: 30_000,
  registerTimeoutMs: 10_000,
  writeTimeoutMs: 10_000,
  tunnelTimeoutMs: 3_000,
  tunnelResendMs: 250,
  probeMtu: 0,
  capacityPerVip: 64,
  maxConnections: 256,
  maxUnauthenticatedPerPeer: 16,
  maxErrors: 10,
};

const TUNNEL_HINT =
  "likely causes: decap not attached on the backend's interface (lbctl agent does it), rp_filter 1 " +
  "on the backend (needs 0 or 2 on all and the interface), the VIP not on the backend's lo, a " +
  "firewall dropping UDP to the encap port, or with --decap tun a TUN device without an IPv4 " +
  "address (the kernel drops IPv4 on an unnumbered device unless its rp_filter is 0)";

/** A registered backend: one address, one or more VIPs. Outlives its connection until the read
 * timeout, so an agent whose connection dropped can re-register without losing its flows. */
interface Registration {
  readonly key: string;
  readonly address: IpAddress;
  encapPort: number;
  weight: number;
  name: string;
  vips: VipRef[];
  paused: boolean;
  owner: Connection | undefined;
  lastSeen: number;
}

class RegError extends Error {
  constructor(
    readonly code: RegErrorCode,
    reason: string,
  ) {
    super(reason);
  }
}

/** A REGISTER in its tunnel check, per VIP: `backend list` shows it as pending. */
export interface PendingRegistration {
  vip: string;
  address: string;
  port: number;
  name: string;
  weight: number;
  /** Epoch ms the check started, and what it waits for. */
  since: number;
  reason: string;
}

export interface RegistrationView {
  name: string;
  address: string;
  port: number;
  weight: number;
  vips: string[];
  paused: boolean;
  connected: boolean;
  lastSeenMsAgo: number;
}

export class RegistrationServer {
  private readonly opts: Required<Omit<RegistryOptions, "log" | "allow" | "onEvent">> & {
    allow: readonly Cidr[];
  };
  private readonly onEvent: ((event: RegistrationEvent) => void) | undefined;
  private readonly registrations = new Map<string, Registration>();
  private readonly connections = new Set<Connection>();
  private readonly inCheck = new Map<Connection, Omit<PendingRegistration, "vip"> & { vips: VipRef[] }>();
  private server: Server | undefined;
  private sweep: NodeJS.Timeout | undefined;

  constructor(
    private readonly reconciler: Reconciler,
    private readonly prober: TunnelProber,
    options: RegistryOptions,
    readonly log?: Logger,
  ) {
    this.onEvent = options.onEvent;
    this.opts = {
      secret: options.secret,
      allow: options.allow ?? [],
      readTimeoutMs: options.readTimeoutMs ?? DEFAULTS.readTimeoutMs,
      registerTimeoutMs: options.registerTimeoutMs ?? DEFAULTS.registerTimeoutMs,
      writeTimeoutMs: options.writeTimeoutMs ?? DEFAULTS.writeTimeoutMs,
      tunnelTimeoutMs: options.tunnelTimeoutMs ?? DEFAULTS.tunnelTimeoutMs,
      tunnelResendMs: options.tunnelResendMs ?? DEFAULTS.tunnelResendMs,
      probeMtu: options.probeMtu ?? DEFAULTS.probeMtu,
      capacityPerVip: options.capacityPerVip ?? DEFAULTS.capacityPerVip,
      maxConnections: options.maxConnections ?? DEFAULTS.maxConnections,
      maxUnauthenticatedPerPeer: options.maxUnauthenticatedPerPeer ?? DEFAULTS.maxUnauthenticatedPerPeer,
      maxErrors: options.maxErrors ?? DEFAULTS.maxErrors,
    };
  }

  get options(): typeof this.opts {
    return this.opts;
  }

  /** Listens on every address of the namespace (dual-stack) unless host is given. */
  async listen(port: number, host?: string): Promise<number> {
    const server = createServer((socket) => {
      this.accept(socket);
    });
    // Room to answer "busy" (and close at once) before the kernel-level drop below.
    server.maxConnections = this.opts.maxConnections + Math.max(64, this.opts.maxConnections >> 2);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => {
        reject(
          new LbError("LB_ERR_CONFIG", `registration listener on port ${port}: ${err.message}`, {
            hint: err.code === "EADDRINUSE" ? "give another --registration-port" : undefined,
            cause: err,
          }),
        );
      });
      server.listen({ port, ...(host === undefined ? {} : { host }) }, () => {
        resolve();
      });
    });
    server.on("error", (err) => this.log?.warn({ err }, "registration listener error"));
    this.adoptRegistered();
    // Past maxConnections the kernel-accepted socket is closed at once, before accept() sees it.
    server.on("drop", (data) => {
      const peer = peerAddress(data?.remoteAddress);
      this.log?.warn(
        {
          peer: peer ? addressToString(peer) : (data?.remoteAddress ?? "?"),
          code: "busy",
          reason: "connection limit reached",
        },
        "registration connection dropped",
      );
      this.event("rejected");
    });
    this.server = server;
    const tick = Math.max(50, Math.min(1000, Math.floor(this.opts.readTimeoutMs / 4)));
    this.sweep = setInterval(() => {
      void this.expire();
    }, tick);
    const address = server.address();
    return typeof address === "object" && address !== null ? address.port : port;
  }

  /**
   * Backends agents registered with a previous daemon (adopted tables, hitless restart): tracked
   * again as registrations without a connection, so their agents' next REGISTER adopts them
   * (flows kept) and, if no agent comes back, the read timeout removes them.
   */
  private adoptRegistered(): void {
    const now = Date.now();
    for (const b of this.reconciler.listBackends()) {
      if (b.source !== "registered") continue;
      let reg = this.registrations.get(b.address);
      if (!reg) {
        reg = {
          key: b.address,
          address: parseAddress(b.address),
          encapPort: b.port,
          weight: b.weight,
          name: b.name,
          vips: [],
          paused: b.state === "draining",
          owner: undefined,
          lastSeen: now,
        };
        this.registrations.set(b.address, reg);
      }
      reg.vips.push(parseVip(b.vip));
    }
    if (this.registrations.size > 0)
      this.log?.info(
        { backends: [...this.registrations.keys()] },
        "registered backends adopted: they stay until their agents register again or the read timeout",
      );
  }

  /** Stops listening and closes every connection; registered backends stay in the tables. */
  async close(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    for (const c of this.connections) c.destroy();
    const server = this.server;
    this.server = undefined;
    if (server)
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
  }

  /** Open connections by what they achieved (metrics): a flood shows up as unauthenticated. */
  connectionStates(): Record<"unauthenticated" | "authenticated" | "registered", number> {
    const out = { unauthenticated: 0, authenticated: 0, registered: 0 };
    for (const c of this.connections) out[c.stage]++;
    return out;
  }

  list(): RegistrationView[] {
    const now = Date.now();
    return [...this.registrations.values()].map((r) => ({
      name: r.name,
      address: r.key,
      port: r.encapPort,
      weight: r.weight,
      vips: r.vips.map(formatVip),
      paused: r.paused,
      connected: r.owner !== undefined,
      lastSeenMsAgo: now - r.lastSeen,
    }));
  }

  /** REGISTERs waiting for their tunnel check, per VIP, for backends not in the tables yet. */
  registering(): PendingRegistration[] {
    const out: PendingRegistration[] = [];
    for (const { vips, ...r } of this.inCheck.values()) {
      for (const vip of vips) {
        const key = formatVip(vip);
        const listed = this.reconciler.listVips().some((v) => v.vip === key);
        if (!listed || this.reconciler.listBackends(vip).some((b) => b.address === r.address)) continue;
        out.push({ vip: key, ...r });
      }
    }
    return out;
  }

  /** Whether a backend of a VIP came from registration (for `backend list` sources). */
  isRegistered(vip: string, address: string): boolean {
    const r = this.registrations.get(address);
    return r !== undefined && r.vips.some((v) => formatVip(v) === vip);
  }

  // ---- connections

  /** Also the unit tests' entry point: any duplex socket. */
  accept(socket: Socket): void {
    const peer = peerAddress(socket.remoteAddress);
    const peerText = peer ? addressToString(peer) : (socket.remoteAddress ?? "?");
    if (!allowed(this.opts.allow, peer)) {
      this.reject(socket, peerText, "not-allowed", "source address not in the allow-list");
      return;
    }
    if (this.connections.size >= this.opts.maxConnections) {
      this.reject(socket, peerText, "busy", `${this.opts.maxConnections} connections already`);
      return;
    }
    let unauthenticated = 0;
    for (const c of this.connections)
      if (c.peer === peerText && c.stage === "unauthenticated") unauthenticated++;
    if (unauthenticated >= this.opts.maxUnauthenticatedPerPeer) {
      this.reject(
        socket,
        peerText,
        "busy",
        `${unauthenticated} connections from this address have not authenticated yet`,
      );
      return;
    }
    const conn = new Connection(this, socket, peerText);
    this.connections.add(conn);
    socket.once("close", () => {
      this.connections.delete(conn);
      conn.closed();
    });
  }

  private reject(socket: Socket, peer: string, code: RegErrorCode, reason: string): void {
    this.log?.warn({ peer, code, reason }, "registration connection refused");
    this.event("rejected");
    socket.on("error", () => undefined);
    // Closed as soon as the answer is with the kernel (which still delivers it): under a flood,
    // sockets waiting for their peers to close would fill the listener's limit.
    socket.end(`${errLine(code, reason)}\n`, () => socket.destroy());
  }

  // ---- what connections ask for (each throws RegError)

  /** REGISTER: validates, checks capacity and ownership, runs the tunnel check, applies. */
  async register(conn: Connection, p: ParsedLine): Promise<Registration> {
    const spec = this.parseRegister(p);
    const existing = this.registrations.get(spec.key);
    for (const vip of spec.vips) {
      const key = formatVip(vip);
      if (!this.reconciler.listVips().some((v) => v.vip === key))
        throw new RegError("unknown-vip", `no VIP ${key} on this daemon`);
      const mine = existing?.vips.some((v) => formatVip(v) === key) === true;
      if (!mine && this.reconciler.listBackends(vip).some((b) => b.address === spec.key))
        throw new RegError(
          "exists",
          `backend ${spec.key} of ${key} exists and was not registered by an agent`,
        );
      const count = [...this.registrations.values()].filter(
        (r) => r.key !== spec.key && r.vips.some((v) => formatVip(v) === key),
      ).length;
      if (count >= this.opts.capacityPerVip)
        throw new RegError("capacity", `VIP ${key} has ${count} registered backends, its capacity`);
    }
    this.inCheck.set(conn, {
      vips: spec.vips,
      address: spec.key,
      port: spec.encapPort,
      name: spec.name,
      weight: spec.weight,
      since: Date.now(),
      reason: `registering: tunnel check in progress (${conn.peer})`,
    });
    try {
      await conn.tunnelCheck(spec, this.prober, this.opts);
    } finally {
      this.inCheck.delete(conn);
    }

    const current = this.registrations.get(spec.key);
    if (current?.owner && current.owner !== conn) {
      this.log?.info({ backend: spec.key, peer: conn.peer }, "registration taken over by a new connection");
      current.owner.abandon("taken over by a new registration of the same backend");
    }
    const reg: Registration = current ?? {
      key: spec.key,
      address: spec.address,
      encapPort: spec.encapPort,
      weight: spec.weight,
      name: spec.name,
      vips: [],
      paused: false,
      owner: conn,
      lastSeen: Date.now(),
    };
    // A changed encap port or weight needs a fresh entry: drop the VIPs it is in, add again.
    const changed =
      current !== undefined && (current.encapPort !== spec.encapPort || current.weight !== spec.weight);
    const wanted = new Set(spec.vips.map(formatVip));
    for (const vip of [...reg.vips]) {
      if (changed || !wanted.has(formatVip(vip))) await this.removeFrom(reg, vip);
    }
    reg.encapPort = spec.encapPort;
    reg.weight = spec.weight;
    reg.name = spec.name;
    reg.owner = conn;
    reg.lastSeen = Date.now();
    this.registrations.set(reg.key, reg);
    const added: VipRef[] = [];
    try {
      for (const vip of spec.vips) {
        if (reg.vips.some((v) => formatVip(v) === formatVip(vip))) continue;
        await this.reconciler.addBackend(
          vip,
          {
            address: spec.address,
            encapPort: spec.encapPort,
            weight: spec.weight,
            name: spec.name,
            source: "registered",
          },
          "runtime",
          `registered by its agent (${conn.peer})`,
        );
        reg.vips.push(vip);
        added.push(vip);
      }
      if (reg.paused) {
        for (const vip of reg.vips)
          await this.reconciler.setDrained(vip, reg.address, false, "resumed: its agent registered again");
        reg.paused = false;
      }
    } catch (err) {
      for (const vip of added) await this.removeFrom(reg, vip);
      if (reg.vips.length === 0) this.registrations.delete(reg.key);
      throw new RegError("internal", err instanceof Error ? err.message : String(err));
    }
    this.log?.info(
      { backend: reg.key, name: reg.name, vips: reg.vips.map(formatVip), peer: conn.peer },
      "backend registered",
    );
    this.event("registered");
    return reg;
  }

  async setPaused(reg: Registration, paused: boolean): Promise<void> {
    for (const vip of reg.vips) {
      try {
        await this.reconciler.setDrained(
          vip,
          reg.address,
          paused,
          paused ? "paused by its agent" : "resumed by its agent",
        );
      } catch (err) {
        this.log?.warn({ err, backend: reg.key, vip: formatVip(vip) }, "pause/resume: backend gone");
      }
    }
    reg.paused = paused;
    this.log?.info({ backend: reg.key, name: reg.name }, paused ? "backend paused" : "backend resumed");
    this.event(paused ? "paused" : "resumed");
  }

  async deregister(reg: Registration, why: string): Promise<void> {
    if (this.registrations.get(reg.key) !== reg) return;
    this.registrations.delete(reg.key);
    for (const vip of [...reg.vips]) await this.removeFrom(reg, vip);
    this.log?.info({ backend: reg.key, name: reg.name, why }, "backend deregistered");
    this.event(why === "read timeout" ? "timed_out" : "deregistered");
  }

  event(event: RegistrationEvent): void {
    this.onEvent?.(event);
  }

  touch(reg: Registration): void {
    reg.lastSeen = Date.now();
  }

  ownerOf(key: string): Registration | undefined {
    return this.registrations.get(key);
  }

  private async removeFrom(reg: Registration, vip: VipRef): Promise<void> {
    reg.vips = reg.vips.filter((v) => formatVip(v) !== formatVip(vip));
    try {
      await this.reconciler.removeBackend(vip, reg.address);
    } catch (err) {
      // The operator removed it (or its VIP) already: nothing left to do.
      if (!(err instanceof LbError && err.code === "LB_ERR_NOT_FOUND")) throw err;
    }
  }

  /** Removes registrations not heard from within the read timeout. */
  async expire(now = Date.now()): Promise<void> {
    for (const reg of [...this.registrations.values()]) {
      if (now - reg.lastSeen <= this.opts.readTimeoutMs) continue;
      const silent = now - reg.lastSeen;
      this.log?.warn(
        { backend: reg.key, name: reg.name, silentMs: silent },
        "registered backend silent past the read timeout: removing it",
      );
      reg.owner?.abandon(`no line for ${silent} ms (read timeout ${this.opts.readTimeoutMs} ms)`, "timeout");
      try {
        await this.deregister(reg, "read timeout");
      } catch (err) {
        this.log?.error({ err, backend: reg.key }, "removing a silent backend failed");
      }
    }
  }

  private parseRegister(p: ParsedLine): {
    key: string;
    address: IpAddress;
    encapPort: number;
    weight: number;
    name: string;
    vips: VipRef[];
    probePort: number;
  } {
    const one = (k: string): string | undefined => {
      const v = p.kv.get(k);
      if (v && v.length > 1) throw new RegError("syntax", `${k}= given ${v.length} times`);
      return v?.[0];
    };
    const known = new Set(["vip", "address", "port", "weight", "name", "probe"]);
    for (const k of p.kv.keys()) if (!known.has(k)) throw new RegError("syntax", `unknown key ${k}=`);
    if (p.args.length > 0) throw new RegError("syntax", `unexpected "${p.args[0] ?? ""}": use key=value`);
    const vipTexts = p.kv.get("vip") ?? [];
    if (vipTexts.length === 0)
      throw new RegError("syntax", "REGISTER needs at least one vip=PROTO/ADDR:PORT");
    if (vipTexts.length > 16) throw new RegError("syntax", "at most 16 vip= per REGISTER");
    const vips = vipTexts.map((t) => {
      const r = parseVipResult(t);
      if (!r.ok) throw new RegError("syntax", r.message);
      return r.value;
    });
    const addrText = one("address");
    const address = addrText === undefined ? undefined : tryParseAddress(addrText);
    if (address === undefined) throw new RegError("syntax", "address=IP is required (IPv4 or IPv6)");
    const int = (k: string, min: number, max: number, fallback?: number): number => {
      const t = one(k);
      if (t === undefined) {
        if (fallback === undefined) throw new RegError("syntax", `${k}= is required`);
        return fallback;
      }
      if (!/^\d{1,5}$/.test(t) || Number(t) < min || Number(t) > max)
        throw new RegError("syntax", `${k}=${t}: expected an integer ${min}..${max}`);
      return Number(t);
    };
    const name = one("name") ?? addressToString(address);
    if (!/^[\x21-\x7e]{1,64}$/.test(name)) throw new RegError("syntax", "name=: 1..64 printable characters");
    return {
      key: addressToString(address),
      address,
      encapPort: int("port", 1, 65535, 6080),
      weight: int("weight", 0, 65535, 1),
      name,
      vips,
      probePort: int("probe", 1, 65535),
    };
  }
}

type State = "hello" | "authed" | "checking" | "registered";

/** One agent connection: its authentication state, timers and at most one registration. */
class Connection {
  private state: State = "hello";
  private readonly nonce = newNonce();
  private readonly splitter: LineSplitter;
  private queue: Promise<void> = Promise.resolve();
  private errors = 0;
  private registration: Registration | undefined;
  private registerTimer: NodeJS.Timeout | undefined;
  private writeTimer: NodeJS.Timeout | undefined;
  private tunnel: { pending: Set<string>; done: () => void } | undefined;
  private gone = false;
  /** Being closed by us: nothing more it sent is handled (or logged). */
  private closing = false;

  constructor(
    private readonly server: RegistrationServer,
    private readonly socket: Socket,
    readonly peer: string,
  ) {
    const o = server.options;
    socket.setEncoding("utf8");
    socket.setNoDelay(true);
    socket.on("error", (err) => server.log?.debug({ err, peer }, "registration connection error"));
    this.splitter = new LineSplitter(
      (line) => {
        this.onLine(line);
      },
      () => {
        this.fail("too-long", "line too long", true);
      },
    );
    socket.on("data", (chunk: string) => {
      this.splitter.push(chunk);
    });
    this.armRegisterTimer(o.registerTimeoutMs);
    this.send(`HELLO ${PROTOCOL} nonce=${this.nonce}`);
  }

  /** Unregistered connections (new, or after DEREGISTER) get registerTimeoutMs to REGISTER. */
  private armRegisterTimer(ms: number): void {
    clearTimeout(this.registerTimer);
    this.registerTimer = setTimeout(() => {
      this.fail("timeout", `not registered within ${ms} ms`, true);
    }, ms);
  }

  destroy(): void {
    this.splitter.stop();
    this.socket.destroy();
  }

  /** The socket closed: the registration stays until the read timeout (or a re-REGISTER). */
  closed(): void {
    this.gone = true;
    this.splitter.stop();
    clearTimeout(this.registerTimer);
    clearTimeout(this.writeTimer);
    this.tunnel?.done();
    if (this.registration?.owner === this) {
      this.registration.owner = undefined;
      this.server.log?.info(
        { backend: this.registration.key, peer: this.peer },
        "agent connection closed; backend stays until the read timeout unless it registers again",
      );
    }
    this.registration = undefined;
  }

  get stage(): "unauthenticated" | "authenticated" | "registered" {
    if (this.state === "hello") return "unauthenticated";
    return this.state === "registered" ? "registered" : "authenticated";
  }

  /** Another connection took the registration over, or it expired: say why and close. */
  abandon(reason: string, code: RegErrorCode = "exists"): void {
    this.registration = undefined;
    this.fail(code, reason, true);
  }

  private send(line: string): void {
    if (this.gone || this.socket.destroyed) return;
    const flushed = this.socket.write(`${line}\n`);
    if (!flushed && this.writeTimer === undefined) {
      this.writeTimer = setTimeout(() => {
        this.server.log?.warn({ peer: this.peer }, "registration peer does not read: closing");
        this.destroy();
      }, this.server.options.writeTimeoutMs);
      this.socket.once("drain", () => {
        clearTimeout(this.writeTimer);
        this.writeTimer = undefined;
      });
    }
  }

  private fail(code: RegErrorCode, reason: string, close = false): void {
    if (this.closing) return;
    this.server.log?.warn({ peer: this.peer, code, reason }, "registration request rejected");
    this.server.event("rejected");
    this.send(errLine(code, reason));
    this.errors++;
    if (close || this.errors >= this.server.options.maxErrors) {
      if (!close) this.server.log?.warn({ peer: this.peer }, "too many errors: closing the connection");
      this.closing = true;
      clearTimeout(this.registerTimer);
      this.splitter.stop();
      // An agent gets a second to read why; an unauthenticated peer's socket goes at once.
      if (this.state === "hello") this.socket.end(() => this.socket.destroy());
      else {
        this.socket.end();
        setTimeout(() => this.socket.destroy(), 1000).unref();
      }
    }
  }

  private onLine(line: string): void {
    if (this.closing || line.trim() === "") return;
    const p = parseLine(line);
    if (this.registration) this.server.touch(this.registration);
    // TUNNEL reports arrive while REGISTER is still being answered: never queued behind it.
    if (p.verb === "TUNNEL") {
      this.onTunnel(p);
      return;
    }
    this.queue = this.queue.then(
      () => this.handle(p),
      () => this.handle(p),
    );
  }

  private async handle(p: ParsedLine): Promise<void> {
    // Lines that arrived in one chunk are queued before the first is handled: once an answer
    // closed the connection, the rest are dropped unanswered (and unlogged).
    if (this.gone || this.closing) return;
    try {
      await this.dispatch(p);
    } catch (err) {
      if (err instanceof RegError) this.fail(err.code, err.message);
      else {
        this.server.log?.error({ err, peer: this.peer }, "registration request failed unexpectedly");
        this.fail("internal", err instanceof Error ? err.message : String(err));
      }
    }
  }

  private async dispatch(p: ParsedLine): Promise<void> {
    if (p.verb === "AUTH") {
      this.auth(p);
      return;
    }
    if (!["REGISTER", "PAUSE", "RESUME", "DEREGISTER", "HEALTH"].includes(p.verb)) {
      throw new RegError("syntax", `unknown command "${p.verb.slice(0, 32)}"`);
    }
    if (this.state === "hello") throw new RegError("not-authenticated", "AUTH first");
    if (p.verb === "REGISTER") {
      if (this.registration) throw new RegError("already-registered", "this connection registered already");
      this.state = "checking";
      try {
        this.registration = await this.server.register(this, p);
      } catch (err) {
        if (!this.gone) this.state = "authed";
        throw err;
      }
      if (this.gone) return;
      this.state = "registered";
      clearTimeout(this.registerTimer);
      this.registerTimer = undefined;
      const r = this.registration;
      this.send(okLine("registered", `name=${r.name}`, `address=${r.key}`, `vips=${r.vips.length}`));
      return;
    }
    const reg = this.registration;
    if (!reg || this.server.ownerOf(reg.key) !== reg || reg.owner !== this)
      throw new RegError("not-registered", `${p.verb} before REGISTER on this connection`);
    switch (p.verb) {
      case "HEALTH":
        this.send(okLine("health"));
        return;
      case "PAUSE":
        await this.server.setPaused(reg, true);
        this.send(okLine("paused"));
        return;
      case "RESUME":
        await this.server.setPaused(reg, false);
        this.send(okLine("resumed"));
        return;
      case "DEREGISTER":
        await this.server.deregister(reg, "agent asked");
        this.registration = undefined;
        this.state = "authed";
        this.armRegisterTimer(this.server.options.registerTimeoutMs);
        this.send(okLine("deregistered"));
        return;
    }
  }

  private auth(p: ParsedLine): void {
    if (this.state !== "hello") throw new RegError("auth", "already authenticated");
    const mac = p.kv.get("mac")?.[0] ?? p.args[0] ?? "";
    const agentNonce = p.kv.get("nonce")?.[0];
    const expected = authMac(this.server.options.secret, "agent", this.nonce);
    if (!macMatches(expected, mac)) {
      // One try per connection (and per server nonce): a wrong or replayed MAC closes it.
      this.fail("auth", "authentication failed", true);
      return;
    }
    this.state = "authed";
    if (agentNonce !== undefined && /^[0-9a-f]{16,64}$/.test(agentNonce)) {
      this.send(okLine("auth", `mac=${authMac(this.server.options.secret, "server", agentNonce)}`));
    } else {
      this.send(okLine("auth"));
    }
    this.server.log?.info({ peer: this.peer }, "agent authenticated");
  }

  private onTunnel(p: ParsedLine): void {
    const nonce = p.args[0] ?? "";
    if (this.tunnel?.pending.delete(nonce) === true) {
      if (this.tunnel.pending.size === 0) this.tunnel.done();
      return;
    }
    // A late duplicate of a nonce already seen is harmless; anything else is a protocol error.
    if (this.state !== "checking" && this.state !== "registered") {
      this.fail("syntax", "TUNNEL outside a tunnel check");
    }
  }

  /**
   * Sends two probes per VIP address, a small one and (with probeMtu) one padded to the largest
   * packet the data plane sends, resent until answered, and waits for every nonce. Only the big
   * one missing means the path drops full-size packets: an MTU problem, told apart in the answer.
   */
  async tunnelCheck(
    spec: { address: IpAddress; encapPort: number; vips: readonly VipRef[]; probePort: number },
    prober: TunnelProber,
    opts: { tunnelTimeoutMs: number; tunnelResendMs: number; probeMtu: number },
  ): Promise<void> {
    const addrs = new Map<string, IpAddress>();
    for (const v of spec.vips) addrs.set(addressToString(v.address), v.address);
    const base = { backend: spec.address, encapPort: spec.encapPort, probePort: spec.probePort };
    const probes: TunnelProbe[] = [...addrs.values()].flatMap((vip) => [
      { ...base, vip, nonce: newNonce() },
      ...(opts.probeMtu > 0 ? [{ ...base, vip, nonce: newNonce(), outerBytes: opts.probeMtu }] : []),
    ]);
    const pending = new Set(probes.map((p) => p.nonce));
    let sendError: string | undefined;
    const sendAll = (): void => {
      for (const probe of probes) {
        if (!pending.has(probe.nonce)) continue;
        prober.send(probe).catch((err: unknown) => {
          sendError = err instanceof Error ? err.message : String(err);
        });
      }
    };
    let resend: NodeJS.Timeout | undefined;
    let deadline: NodeJS.Timeout | undefined;
    const passed = await new Promise<boolean>((resolve) => {
      this.tunnel = {
        pending,
        done: () => {
          resolve(pending.size === 0);
        },
      };
      deadline = setTimeout(() => {
        resolve(false);
      }, opts.tunnelTimeoutMs);
      resend = setInterval(sendAll, opts.tunnelResendMs);
      sendAll();
    });
    clearInterval(resend);
    clearTimeout(deadline);
    this.tunnel = undefined;
    if (this.gone) throw new RegError("tunnel", "connection closed during the tunnel check");
    if (passed) return;
    const to = `${addressToString(spec.address)}:${spec.encapPort}`;
    const within = `within ${opts.tunnelTimeoutMs} ms`;
    const sent = sendError ? ` (sending failed: ${sendError})` : "";
    const missing = probes.filter((p) => pending.has(p.nonce));
    const small = missing.filter((p) => p.outerBytes === undefined).map((p) => addressToString(p.vip));
    if (small.length > 0) {
      throw new RegError(
        "tunnel",
        `no probe through the tunnel to ${to} came back ${within} for VIP ${small.join(", ")}${sent}; ${TUNNEL_HINT}`,
      );
    }
    const big = missing.map((p) => addressToString(p.vip));
    const overhead = encapOverhead(spec.address.family);
    throw new RegError(
      "tunnel",
      `small probes through the tunnel to ${to} came back but the full-size one (a ${opts.probeMtu}-byte ` +
        `outer packet with DF set, as large as the balancer sends) did not ${within} for VIP ${big.join(", ")}${sent}; ` +
        `likely cause: the path MTU to the backend is below ${opts.probeMtu} (a link or tunnel on the way ` +
        `with a smaller MTU drops full-size packets): raise the path MTU to ${opts.probeMtu}, or lower ` +
        `what clients send to the backend (its interface MTU or the advmss of its routes back to clients, so ` +
        `inner packets stay within the path MTU minus ${overhead} bytes) and set CAPLANCE_REG_PROBE_MTU on the ` +
        `daemon to the path MTU`,
    );
  }
}
