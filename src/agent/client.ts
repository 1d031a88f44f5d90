// The agent's side of the registration protocol (docs/registration.md): connect, prove the
// secret (and check the daemon's proof), REGISTER, answer the tunnel probe that arrives on a
// UDP socket, heartbeat with HEALTH; reconnect with backoff when the connection drops or the
// daemon restarts. PAUSE/RESUME/DEREGISTER are sent on the current connection.
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, type Socket } from "node:net";
import type { Logger } from "pino";

import {
  authMac,
  LineSplitter,
  macMatches,
  newNonce,
  parseAnswer,
  parseLine,
  probeNonce,
  PROTOCOL,
} from "../registry/wire.js";

export interface ClientOptions {
  readonly host: string;
  readonly port: number;
  readonly secret: Uint8Array;
  readonly vips: readonly string[];
  readonly address: string;
  readonly encapPort: number;
  readonly weight: number;
  readonly name: string;
  readonly healthIntervalMs: number;
  /** Per answer (the daemon's write timeout is the other side of this). */
  readonly answerTimeoutMs?: number;
  readonly backoffMaxMs?: number;
  readonly log: Logger;
}

export type ClientState = "connecting" | "authenticating" | "registering" | "registered" | "stopped";

export interface ClientStatus {
  state: ClientState;
  paused: boolean;
  registrations: number;
  lastError: string | null;
  lastHeartbeatAt: string | null;
}

class ProtocolError extends Error {}

export class RegistrationClient {
  private socket: Socket | undefined;
  private readonly answers: ((line: string | undefined) => void)[] = [];
  private probe: UdpSocket | undefined;
  private probePort = 0;
  private state: ClientState = "connecting";
  private paused = false;
  private stopped = false;
  private lastError: string | null = null;
  private lastHeartbeat: Date | undefined;
  private registrations = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private registeredWaiters: (() => void)[] = [];

  constructor(private readonly opts: ClientOptions) {}

  /** Opens the probe socket and starts the connect/register loop (returns at once). */
  async start(): Promise<void> {
    this.probePort = await this.openProbeSocket();
    this.loop = this.run();
  }

  status(): ClientStatus {
    return {
      state: this.state,
      paused: this.paused,
      registrations: this.registrations,
      lastError: this.lastError,
      lastHeartbeatAt: this.lastHeartbeat?.toISOString() ?? null,
    };
  }

  /** Resolves once registered (or after timeoutMs: false). */
  waitRegistered(timeoutMs: number): Promise<boolean> {
    if (this.state === "registered") return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        resolve(false);
      }, timeoutMs);
      this.registeredWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /** Drain (true) or resume (false); remembered across reconnects. */
  async setPaused(paused: boolean): Promise<void> {
    this.paused = paused;
    if (this.state !== "registered") return; // sent after the next REGISTER
    await this.command(paused ? "PAUSE" : "RESUME");
  }

  /** DEREGISTER (when registered) and stop for good. */
  async deregister(): Promise<void> {
    const wasRegistered = this.state === "registered";
    this.stopped = true;
    if (wasRegistered) {
      try {
        await this.command("DEREGISTER");
      } finally {
        this.stop();
      }
      return;
    }
    this.stop();
  }

  /** Closes everything without DEREGISTER (the daemon's read timeout removes the backend). */
  stop(): void {
    this.stopped = true;
    this.state = "stopped";
    clearInterval(this.heartbeat);
    this.socket?.destroy();
    this.probe?.close();
    this.probe = undefined;
    this.wake?.();
  }

  private isStopped(): boolean {
    return this.stopped;
  }

  /** Resolves when the loop has ended (after stop or deregister). */
  async done(): Promise<void> {
    await this.loop;
  }

  // ---- the loop

  private async run(): Promise<void> {
    let backoff = 1000;
    while (!this.stopped) {
      try {
        await this.session();
        backoff = 1000; // a session that got registered resets the backoff
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        this.opts.log.warn({ err: this.lastError, retryInMs: backoff }, "registration failed");
      }
      clearInterval(this.heartbeat);
      if (this.isStopped()) break;
      this.state = "connecting";
      const jitter = Math.floor(Math.random() * (backoff / 4));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, backoff + jitter);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      backoff = Math.min(backoff * 2, this.opts.backoffMaxMs ?? 30_000);
    }
  }

  /** One connection: returns when it closes after having registered; throws otherwise. */
  private async session(): Promise<void> {
    const o = this.opts;
    this.state = "connecting";
    const socket = await this.connect();
    this.socket = socket;
    const closed = new Promise<void>((resolve) =>
      socket.once("close", () => {
        resolve();
      }),
    );
    try {
      this.state = "authenticating";
      const hello = await this.nextLine();
      const helloLine = parseLine(hello ?? "");
      const nonce = helloLine.kv.get("nonce")?.[0];
      if (helloLine.verb !== "HELLO" || helloLine.args[0] !== PROTOCOL || nonce === undefined) {
        throw new ProtocolError(`unexpected greeting from the daemon: ${hello ?? "(closed)"}`);
      }
      const mine = newNonce();
      const auth = await this.request(`AUTH mac=${authMac(o.secret, "agent", nonce)} nonce=${mine}`);
      const serverMac = auth.kv.get("mac")?.[0] ?? "";
      if (!macMatches(authMac(o.secret, "server", mine), serverMac)) {
        throw new ProtocolError("the daemon did not prove it knows the secret: refusing to register with it");
      }
      this.state = "registering";
      const vips = o.vips.map((v) => `vip=${v}`).join(" ");
      await this.request(
        `REGISTER ${vips} address=${o.address} port=${o.encapPort} weight=${o.weight} name=${o.name} probe=${this.probePort}`,
      );
      if (this.paused) await this.request("PAUSE");
      this.state = "registered";
      this.registrations++;
      this.lastError = null;
      o.log.info({ lb: `${o.host}:${o.port}`, vips: o.vips, paused: this.paused }, "registered");
      for (const w of this.registeredWaiters.splice(0)) w();
      this.heartbeat = setInterval(() => {
        this.command("HEALTH")
          .then(() => {
            this.lastHeartbeat = new Date();
          })
          .catch((err: unknown) => {
            o.log.warn({ err: err instanceof Error ? err.message : String(err) }, "heartbeat failed");
            socket.destroy();
          });
      }, o.healthIntervalMs);
      await closed;
      if (!this.stopped) o.log.warn("connection to the daemon closed: registering again");
    } finally {
      clearInterval(this.heartbeat);
      socket.destroy();
      for (const a of this.answers.splice(0)) a(undefined);
      if (this.socket === socket) this.socket = undefined;
    }
  }

  private connect(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: this.opts.host, port: this.opts.port });
      s.setEncoding("utf8");
      s.setNoDelay(true);
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${this.opts.host}:${this.opts.port} timed out`));
      }, 10_000);
      s.once("connect", () => {
        clearTimeout(t);
        s.off("error", reject);
        s.on("error", (err) => {
          this.opts.log.debug({ err }, "registration connection error");
        });
        const splitter = new LineSplitter(
          (line) => {
            this.onLine(line);
          },
          () => s.destroy(),
        );
        s.on("data", (c: string) => {
          splitter.push(c);
        });
        s.once("close", () => {
          for (const a of this.answers.splice(0)) a(undefined);
        });
        resolve(s);
      });
      s.once("error", (err) => {
        clearTimeout(t);
        reject(err);
      });
    });
  }

  private pendingLines: string[] = [];

  private onLine(line: string): void {
    const waiter = this.answers.shift();
    if (waiter) waiter(line);
    else {
      const a = parseAnswer(line);
      if (a && !a.ok) {
        // Unsolicited: the daemon is closing this connection (timeout, takeover).
        this.lastError = `${a.code}: ${a.reason}`;
        this.opts.log.warn({ code: a.code, reason: a.reason }, "daemon closed the registration");
        return;
      }
      this.pendingLines.push(line);
    }
  }

  private nextLine(): Promise<string | undefined> {
    const queued = this.pendingLines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    const timeout = this.opts.answerTimeoutMs ?? 15_000;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        resolve(undefined);
      }, timeout);
      this.answers.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
    });
  }

  /** Sends a line and waits for its answer: the OK words, or throws with the ERR. */
  private async request(
    line: string,
  ): Promise<{ words: string[]; kv: ReadonlyMap<string, readonly string[]> }> {
    const s = this.socket;
    if (!s || s.destroyed) throw new Error("not connected to the daemon");
    const answer = this.nextLine();
    s.write(`${line}\n`);
    const got = await answer;
    if (got === undefined)
      throw new Error(`no answer to ${line.split(" ")[0] ?? ""} (connection closed or timed out)`);
    const a = parseAnswer(got);
    if (!a) throw new ProtocolError(`unexpected line from the daemon: ${got}`);
    if (!a.ok) throw new Error(`daemon refused ${line.split(" ")[0] ?? ""}: ERR ${a.code} ${a.reason}`);
    return a;
  }

  private async command(verb: string): Promise<void> {
    await this.request(verb);
  }

  /** A UDP socket on every address (dual-stack when possible) and a kernel-chosen port: the
   * tunnel probe's inner packet is addressed to VIP:port. */
  private async openProbeSocket(): Promise<number> {
    const bind = (type: "udp4" | "udp6"): Promise<UdpSocket> =>
      new Promise((resolve, reject) => {
        const s = createSocket(type === "udp6" ? { type, ipv6Only: false } : { type });
        s.once("error", reject);
        s.bind(0, type === "udp6" ? "::" : "0.0.0.0", () => {
          s.off("error", reject);
          resolve(s);
        });
      });
    let s: UdpSocket;
    try {
      s = await bind("udp6");
    } catch {
      s = await bind("udp4");
    }
    s.on("error", (err) => {
      this.opts.log.warn({ err }, "tunnel probe socket error");
    });
    s.on("message", (msg) => {
      // Full-size probes are padded after the nonce (wire.ts): only the nonce is reported.
      const nonce = probeNonce(msg.toString("latin1"));
      if (nonce === undefined) return;
      this.opts.log.debug({ nonce, bytes: msg.length }, "tunnel probe received");
      if (this.socket && !this.socket.destroyed) this.socket.write(`TUNNEL ${nonce}\n`);
    });
    this.probe = s;
    return s.address().port;
  }
}
