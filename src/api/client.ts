// The client side of the control socket (docs/control-socket.md): one unix-socket connection,
// JSON-lines requests with increasing ids, responses matched by id. Used by lbctl.
import { createConnection, type Socket } from "node:net";

import { LB_ERROR_CODES, LbError, type LbErrorCode } from "../lib/errors.js";
import type { Command } from "./protocol.js";

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

const DAEMON_HINT =
  "is the daemon running? start it with: lbctl load --iface IF (or set --socket / LBCTL_SOCKET)";

export interface Reply {
  result: unknown;
  warnings: string[];
}

interface Pending {
  readonly cmd: string;
  readonly resolve: (reply: Reply) => void;
  readonly reject: (err: LbError) => void;
  readonly timer: NodeJS.Timeout;
}

function isLbErrorCode(code: string): code is LbErrorCode {
  return (LB_ERROR_CODES as readonly string[]).includes(code);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The daemon's `ok: false` body as an LbError; codes this build does not know become LB_ERR_DAEMON. */
function remoteError(body: unknown, cmd: string): LbError {
  if (!isRecord(body) || typeof body["message"] !== "string") {
    return new LbError("LB_ERR_DAEMON", `the daemon answered "${cmd}" with a malformed error`);
  }
  const code = typeof body["code"] === "string" ? body["code"] : "";
  const hint = typeof body["hint"] === "string" ? body["hint"] : undefined;
  if (isLbErrorCode(code)) return new LbError(code, body["message"], { hint });
  // A code this lbctl does not know (LB_ERR_INTERNAL, a newer daemon): keep it in the message.
  return new LbError("LB_ERR_DAEMON", `${body["message"]} (${code || "no error code"})`, { hint });
}

export class ControlClient {
  readonly socketPath: string;
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #buffer = "";
  #closed = false;

  private constructor(socketPath: string, socket: Socket) {
    this.socketPath = socketPath;
    this.#socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.#onData(chunk);
    });
    socket.on("error", (err) => {
      this.#failAll(
        new LbError("LB_ERR_DAEMON", `control socket ${socketPath}: ${err.message}`, { cause: err }),
      );
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#failAll(
        new LbError("LB_ERR_DAEMON", `the daemon at ${socketPath} closed the connection`, {
          hint: DAEMON_HINT,
        }),
      );
    });
  }

  /** Connects to the daemon's socket; LB_ERR_DAEMON (with a hint) when nobody listens there. */
  static async connect(socketPath: string): Promise<ControlClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ path: socketPath });
      const onError = (err: NodeJS.ErrnoException): void => {
        s.destroy();
        const why = err.code ?? err.message;
        reject(
          new LbError("LB_ERR_DAEMON", `cannot reach the daemon at ${socketPath}: ${why}`, {
            hint:
              err.code === "EACCES" ? `permission denied: run as root or as the socket's owner` : DAEMON_HINT,
            cause: err,
          }),
        );
      };
      s.once("error", onError);
      s.once("connect", () => {
        s.off("error", onError);
        resolve(s);
      });
    });
    return new ControlClient(socketPath, socket);
  }

  /** Sends one command; resolves with its result and warnings, rejects with the daemon's LbError. */
  request(cmd: Command, timeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS): Promise<Reply> {
    if (this.#closed) {
      return Promise.reject(
        new LbError("LB_ERR_DAEMON", `the daemon at ${this.socketPath} closed the connection`, {
          hint: DAEMON_HINT,
        }),
      );
    }
    const id = this.#nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new LbError(
            "LB_ERR_DAEMON",
            `the daemon at ${this.socketPath} did not answer "${cmd.cmd}" within ${timeoutMs / 1000} s`,
          ),
        );
      }, timeoutMs);
      this.#pending.set(id, { cmd: cmd.cmd, resolve, reject, timer });
      this.#socket.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  }

  close(): void {
    this.#closed = true;
    this.#socket.end();
    this.#socket.destroy();
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    for (let nl = this.#buffer.indexOf("\n"); nl >= 0; nl = this.#buffer.indexOf("\n")) {
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line !== "") this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.#failAll(
        new LbError("LB_ERR_DAEMON", `the daemon at ${this.socketPath} sent a line that is not JSON`),
      );
      return;
    }
    if (!isRecord(msg) || typeof msg["id"] !== "number") {
      this.#failAll(
        new LbError("LB_ERR_DAEMON", `the daemon at ${this.socketPath} sent a response without an id`),
      );
      return;
    }
    const pending = this.#pending.get(msg["id"]);
    if (pending === undefined) return; // timed out already
    this.#pending.delete(msg["id"]);
    clearTimeout(pending.timer);
    if (msg["ok"] === true) {
      const w = msg["warnings"];
      const warnings = Array.isArray(w) ? w.filter((x): x is string => typeof x === "string") : [];
      pending.resolve({ result: msg["result"], warnings });
    } else {
      pending.reject(remoteError(msg["error"], pending.cmd));
    }
  }

  #failAll(err: LbError): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(err);
    }
  }
}
