// A handle on a namespace lab (scripts/lab.sh): bring it up and down, run the daemon
// in the balancer's namespace, drive bin/lbctl, and run clients in the client's namespace.
// Every wait is bounded; down() is safe to call twice and after a failed up().
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface, type Interface } from "node:readline";
import { join } from "node:path";
import { packageRoot } from "../lib/paths.js";

const root = packageRoot();
const LBCTL = join(root, "bin", "lbctl");

export interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<Exec> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { timeout: timeoutMs, encoding: "utf8", maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

export function uniquePrefix(): string {
  return `cpl${(process.pid % 46656).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

export interface LoadOptions {
  mode?: "auto" | "native" | "generic" | "nfqueue";
  config?: string;
  extra?: string[];
}

/** lab.sh up --decap: lb_decap (XDP) native or generic, the TUN decapsulator, or nothing. */
export type LabDecap = "native" | "generic" | "tun" | "none";

/** A long-lived TCP connection from the client to a VIP (test/support/tcp-session.ts). */
export class Session {
  private readonly lines: Interface;
  private readonly pending: ((line: string) => void)[] = [];

  constructor(private readonly child: ChildProcess) {
    if (!child.stdout) throw new Error("session without stdout");
    this.lines = createInterface({ input: child.stdout });
    this.lines.on("line", (line) => this.pending.shift()?.(line));
  }

  /** Asks once over the connection: the backend's name, or undefined if the connection broke. */
  async ask(): Promise<string | undefined> {
    const answer = new Promise<string>((resolve) => this.pending.push(resolve));
    this.child.stdin?.write("ask\n");
    const line = await Promise.race([
      answer,
      new Promise<string>((r) =>
        setTimeout(() => {
          r("{}");
        }, 5000),
      ),
    ]);
    const parsed = JSON.parse(line) as { ok?: boolean; name?: string };
    return parsed.ok ? parsed.name : undefined;
  }

  close(): void {
    this.child.kill("SIGTERM");
  }
}

export class Lab {
  readonly socket: string;
  private daemon: ChildProcess | undefined;
  private daemonExit: Promise<number> | undefined;
  daemonLog = "";
  private readonly sessions: Session[] = [];

  constructor(
    readonly prefix: string,
    readonly backends = 3,
    /** How the backends decapsulate (lab.sh --decap): lb_decap XDP (default native) or TUN. */
    readonly decap: LabDecap = "native",
  ) {
    this.socket = `/run/caplance-lab/${prefix}/lbd.sock`;
  }

  ns(host: "lb" | "cl" | `b${number}`): string {
    return `/run/netns/${this.prefix}-${host}`;
  }

  async up(extra: string[] = []): Promise<void> {
    const r = await run(
      "bash",
      [
        join(root, "scripts", "lab.sh"),
        "up",
        this.prefix,
        "--backends",
        String(this.backends),
        "--decap",
        this.decap,
        ...extra,
      ],
      120_000,
    );
    if (r.code !== 0) throw new Error(`lab up failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  }

  async down(): Promise<void> {
    for (const s of this.sessions.splice(0)) s.close();
    await this.stopDaemon().catch(() => undefined);
    await run("bash", [join(root, "scripts", "lab.sh"), "down", this.prefix], 60_000);
  }

  /** Runs a command inside a lab host's namespace (host mounts kept: nsenter, not ip netns exec). */
  inNs(
    host: "lb" | "cl" | `b${number}`,
    cmd: string,
    args: readonly string[],
    timeoutMs = 60_000,
  ): Promise<Exec> {
    return run("nsenter", [`--net=${this.ns(host)}`, cmd, ...args], timeoutMs);
  }

  lbctl(args: readonly string[], timeoutMs = 30_000): Promise<Exec> {
    return run(process.execPath, [LBCTL, ...args, "--socket", this.socket], timeoutMs);
  }

  /** Starts `lbctl load` in the balancer's namespace and waits until `lbctl status` answers. */
  async startDaemon(opts: LoadOptions = {}): Promise<void> {
    const args = [
      `--net=${this.ns("lb")}`,
      LBCTL, // as installed: its #! line carries the daemon's node flags
      "load",
      "--iface",
      "eth0",
      "--socket",
      this.socket,
      "--source",
      "198.18.0.1",
      "--source",
      "2001:db8::1",
      "--mode",
      opts.mode ?? "native",
      ...(opts.config ? ["--config", opts.config] : []),
      ...(opts.extra ?? []),
    ];
    const child = spawn("nsenter", args, { stdio: ["ignore", "pipe", "pipe"] });
    this.daemon = child;
    this.daemonLog = "";
    child.stdout.on("data", (d: Buffer) => (this.daemonLog += d.toString()));
    child.stderr.on("data", (d: Buffer) => (this.daemonLog += d.toString()));
    this.daemonExit = once(child, "exit").then(([code]) => (typeof code === "number" ? code : -1));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode}:\n${this.daemonLog}`);
      if ((await this.lbctl(["status"])).code === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`daemon not ready within 30 s:\n${this.daemonLog}`);
  }

  /** SIGTERM and the daemon's exit code (the contract says 0). */
  async stopDaemon(): Promise<number | undefined> {
    const child = this.daemon;
    if (!child || !this.daemonExit) return undefined;
    this.daemon = undefined;
    if (child.exitCode !== null) return child.exitCode;
    child.kill("SIGTERM");
    const code = await Promise.race([
      this.daemonExit,
      new Promise<number>((r) =>
        setTimeout(() => {
          r(-2);
        }, 15_000),
      ),
    ]);
    if (code === -2) child.kill("SIGKILL");
    return code;
  }

  /** Sends the daemon a signal (SIGKILL: a crash) and waits for it to exit; its exit code or signal. */
  async kill(signal: NodeJS.Signals): Promise<number | string | undefined> {
    const child = this.daemon;
    if (!child) return undefined;
    this.daemon = undefined;
    if (child.exitCode !== null || child.signalCode !== null)
      return child.exitCode ?? child.signalCode ?? undefined;
    const exited = once(child, "exit") as Promise<[number | null, string | null]>;
    child.kill(signal);
    const [code, sig] = await exited;
    return code ?? sig ?? undefined;
  }

  async http(
    url: string,
    count: number,
    concurrency = 8,
  ): Promise<{ ok: number; failed: number; byBackend: Record<string, number>; errors: string[] }> {
    const r = await this.inNs(
      "cl",
      process.execPath,
      [join(root, "dist/src/lab/http-load.js"), url, String(count), String(concurrency)],
      120_000,
    );
    if (r.code !== 0) throw new Error(`http-load failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as {
      ok: number;
      failed: number;
      byBackend: Record<string, number>;
      errors: string[];
    };
  }

  async udp(
    address: string,
    port: number,
    count: number,
  ): Promise<{ ok: number; failed: number; byBackend: Record<string, number> }> {
    const r = await this.inNs(
      "cl",
      process.execPath,
      [join(root, "dist/src/lab/udp-load.js"), address, String(port), String(count)],
      120_000,
    );
    if (r.code !== 0) throw new Error(`udp-load failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { ok: number; failed: number; byBackend: Record<string, number> };
  }

  session(address: string, port: number): Session {
    const child = spawn(
      "nsenter",
      [
        `--net=${this.ns("cl")}`,
        process.execPath,
        join(root, "dist/src/lab/tcp-session.js"),
        address,
        String(port),
      ],
      {
        stdio: ["pipe", "pipe", "ignore"],
      },
    );
    const s = new Session(child);
    this.sessions.push(s);
    return s;
  }
}
