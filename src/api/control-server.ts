// The daemon's control socket: a unix socket (mode 0600) speaking JSON lines (protocol.ts).
// A bad request gets an error reply and the connection stays usable; an oversized line closes
// it. Nothing a client sends can take the daemon down.
import { chmodSync, existsSync, mkdirSync, unlinkSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { LbError } from "../lib/errors.js";
import { MAX_REQUEST_BYTES, type Request, type Response } from "./protocol.js";

export type Handler = (request: Request) => Promise<{ result: unknown; warnings?: string[] }>;

/** True when a process accepts connections on the socket path (within timeoutMs: a wedged
 * listener whose backlog is full counts as live, so its socket is never unlinked). */
export function socketIsLive(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    const timer = setTimeout(() => {
      probe.destroy();
      resolve(true);
    }, timeoutMs);
    probe.once("connect", () => {
      clearTimeout(timer);
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

function errorBody(err: unknown): { code: string; message: string; hint?: string } {
  if (err instanceof LbError)
    return { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  return { code: "LB_ERR_INTERNAL", message: err instanceof Error ? err.message : String(err) };
}

export class ControlServer {
  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  /** Listens on path; refuses when a live process already does (never unlinks its socket). */
  static async listen(path: string, handle: Handler, log: Logger): Promise<ControlServer> {
    if (existsSync(path)) {
      if (await socketIsLive(path)) {
        throw new LbError("LB_ERR_EXISTS", `a daemon already listens on ${path}`, {
          hint: "stop it first, or give this one another --socket",
        });
      }
      unlinkSync(path); // stale: left by a crashed daemon
    }
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    const server = createServer((socket) => {
      serveConnection(socket, handle, log);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    return new ControlServer(server, path);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) =>
      this.server.close(() => {
        resolve();
      }),
    );
    if (existsSync(this.path)) unlinkSync(this.path);
  }
}

function serveConnection(socket: Socket, handle: Handler, log: Logger): void {
  let buffered = "";
  const reply = (response: Response): void => {
    if (!socket.destroyed) socket.write(`${JSON.stringify(response)}\n`);
  };
  socket.setEncoding("utf8");
  socket.on("error", (err) => {
    log.debug({ err }, "control connection error");
  });
  let refused = false;
  const tooLong = (): void => {
    reply({
      id: 0,
      ok: false,
      error: { code: "LB_ERR_REQUEST", message: `request longer than ${MAX_REQUEST_BYTES} bytes` },
    });
    refused = true; // whatever else arrives is dropped, not buffered
    buffered = "";
    socket.end();
  };
  socket.on("data", (chunk: string) => {
    if (refused) return;
    buffered += chunk;
    // Complete lines are measured too: a long line's newline can arrive in the same read.
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const raw = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (Buffer.byteLength(raw) > MAX_REQUEST_BYTES) {
        tooLong();
        return;
      }
      const line = raw.trim();
      if (line) void answer(line, handle, reply, log);
    }
    if (Buffer.byteLength(buffered) > MAX_REQUEST_BYTES) tooLong();
  });
}

async function answer(
  line: string,
  handle: Handler,
  reply: (r: Response) => void,
  log: Logger,
): Promise<void> {
  let id = 0;
  try {
    const parsed: unknown = JSON.parse(line);
    if (
      typeof parsed !== "object" ||
      parsed === null ||
      typeof (parsed as { cmd?: unknown }).cmd !== "string"
    ) {
      throw new LbError("LB_ERR_REQUEST", "a request is a JSON object with a string cmd");
    }
    const request = parsed as Request;
    id = typeof request.id === "number" ? request.id : 0;
    const { result, warnings } = await handle(request);
    reply({ id, ok: true, result, ...(warnings?.length ? { warnings } : {}) });
  } catch (err) {
    if (err instanceof SyntaxError) {
      reply({
        id,
        ok: false,
        error: { code: "LB_ERR_REQUEST", message: `request is not JSON: ${err.message}` },
      });
      return;
    }
    if (!(err instanceof LbError)) log.error({ err }, "control request failed unexpectedly");
    reply({ id, ok: false, error: errorBody(err) });
  }
}
