// The registration protocol's text (docs/registration.md), shared by the daemon's server and the
// agent: line framing, tokenizing, answers, and the challenge–response MACs. Pure: no I/O.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

import { AF_INET } from "../lib/addr.js";

export const PROTOCOL = "caplance-reg/1";
export const DEFAULT_REGISTRATION_PORT = 7070;
/** Longest line either side accepts, in bytes without the newline; longer closes the connection. */
export const MAX_LINE_BYTES = 1024;
/** Nonces: 16 random bytes, 32 lowercase hex digits. */
export const NONCE_BYTES = 16;
/** MACs: HMAC-SHA256, 64 lowercase hex digits. */
export const MAC_HEX_LENGTH = 64;
/** The inner UDP payload of a tunnel probe: this prefix, a space, the probe's nonce, then
 * optionally a space and padding (spaces) up to the probe's size. Receivers take the first
 * token after the prefix. */
export const TUNNEL_PROBE_PREFIX = "CAPLANCE-TUNNEL";

/** Outer IP + UDP header bytes the encapsulation adds (DESIGN.md wire format), by the outer
 * (the backend's) address family: IPv4 28, IPv6 48. */
export function encapOverhead(family: number): number {
  return family === AF_INET ? 20 + 8 : 40 + 8;
}

/** The nonce of a tunnel probe's payload (the agent side), or undefined when it is not one. */
export function probeNonce(payload: string): string | undefined {
  if (!payload.startsWith(`${TUNNEL_PROBE_PREFIX} `)) return undefined;
  const nonce = payload.slice(TUNNEL_PROBE_PREFIX.length + 1).split(" ", 1)[0] ?? "";
  return /^[0-9a-f]{16,64}$/.test(nonce) ? nonce : undefined;
}

/** Stable error codes of `ERR <code> <reason>` answers. */
export const REG_ERRORS = [
  "auth", // missing, malformed or wrong MAC
  "not-authenticated", // a command before AUTH succeeded
  "not-allowed", // peer address outside the allow-list
  "busy", // too many connections
  "syntax", // malformed line, unknown command or bad argument
  "too-long", // line longer than MAX_LINE_BYTES
  "unknown-vip", // REGISTER names a VIP the daemon does not have
  "capacity", // the VIP has as many registered backends as it accepts
  "exists", // the backend exists and this connection does not own it (static or another agent)
  "not-registered", // PAUSE/RESUME/DEREGISTER/HEALTH before REGISTER
  "already-registered", // a second REGISTER on one connection
  "tunnel", // the tunnel check failed
  "timeout", // register or read timeout
  "internal", // the daemon could not apply the change
] as const;
export type RegErrorCode = (typeof REG_ERRORS)[number];

export const COMMANDS = ["AUTH", "REGISTER", "TUNNEL", "PAUSE", "RESUME", "DEREGISTER", "HEALTH"] as const;
export type RegCommand = (typeof COMMANDS)[number];

export interface ParsedLine {
  readonly verb: string;
  /** Positional tokens after the verb (key=value tokens excluded). */
  readonly args: readonly string[];
  /** key=value tokens; a key may repeat (vip=…). */
  readonly kv: ReadonlyMap<string, readonly string[]>;
}

/** Splits a line into verb, positional args and key=value pairs (single spaces or tabs). */
export function parseLine(line: string): ParsedLine {
  const tokens = line
    .trim()
    .split(/[ \t]+/)
    .filter(Boolean);
  const verb = (tokens.shift() ?? "").toUpperCase();
  const args: string[] = [];
  const kv = new Map<string, string[]>();
  for (const t of tokens) {
    const eq = t.indexOf("=");
    if (eq <= 0) {
      args.push(t);
      continue;
    }
    const key = t.slice(0, eq).toLowerCase();
    kv.set(key, [...(kv.get(key) ?? []), t.slice(eq + 1)]);
  }
  return { verb, args, kv };
}

/** Printable ASCII without spaces: what a reason or value may hold on the wire. */
export function oneLine(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, MAX_LINE_BYTES - 64);
}

export function okLine(...words: string[]): string {
  return ["OK", ...words].join(" ");
}

export function errLine(code: RegErrorCode, reason: string): string {
  return `ERR ${code} ${oneLine(reason)}`;
}

/** An answer line: OK words… or ERR code reason. */
export type Answer =
  | { ok: true; words: string[]; kv: ReadonlyMap<string, readonly string[]> }
  | { ok: false; code: string; reason: string };

export function parseAnswer(line: string): Answer | undefined {
  const t = line.trim();
  if (t === "OK" || t.startsWith("OK ")) {
    const p = parseLine(t);
    return { ok: true, words: [...p.args], kv: p.kv };
  }
  const m = /^ERR ([a-z-]+)(?: (.*))?$/.exec(t);
  if (m) return { ok: false, code: m[1] ?? "", reason: m[2] ?? "" };
  return undefined;
}

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString("hex");
}

/**
 * The MAC one side proves the secret with: HMAC-SHA256(secret, "PROTOCOL ROLE NONCE"). The role
 * ("agent" answering the server's nonce, "server" answering the agent's) keeps one side's proof
 * from being reflected as the other's.
 */
export function authMac(secret: Uint8Array, role: "agent" | "server", nonce: string): string {
  return createHmac("sha256", secret).update(`${PROTOCOL} ${role} ${nonce}`).digest("hex");
}

/** Constant-time comparison of a received MAC (any text) with the expected one. */
export function macMatches(expected: string, received: string): boolean {
  if (!/^[0-9a-f]+$/.test(received) || received.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected, "hex"), Buffer.from(received, "hex"));
}

/** Splits a byte stream into lines; calls onLine per complete line, onTooLong once if a line
 * exceeds MAX_LINE_BYTES (after which nothing more is delivered). */
export class LineSplitter {
  private buffered = "";
  private dead = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onTooLong: () => void,
    private readonly maxBytes = MAX_LINE_BYTES,
  ) {}

  push(chunk: string): void {
    if (this.dead) return;
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf("\n")) >= 0) {
      const raw = this.buffered.slice(0, nl).replace(/\r$/, "");
      this.buffered = this.buffered.slice(nl + 1);
      if (Buffer.byteLength(raw) > this.maxBytes) {
        this.kill();
        return;
      }
      this.onLine(raw);
      if (this.stopped) return;
    }
    if (Buffer.byteLength(this.buffered) > this.maxBytes) this.kill();
  }

  /** Stops delivering (the connection is closing). */
  stop(): void {
    this.dead = true;
    this.buffered = "";
  }

  get stopped(): boolean {
    return this.dead;
  }

  private kill(): void {
    this.stop();
    this.onTooLong();
  }
}
