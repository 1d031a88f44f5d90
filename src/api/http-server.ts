// The REST API and Prometheus /metrics on --api ADDR:PORT (docs/api.md, docs/api.openapi.yaml).
// Every route is a control-socket command run through the same handler (handlers.ts), so the API
// makes exactly the changes lbctl makes. Changes need a bearer token; reads do not.
//
// node:http, no framework: a dozen fixed routes, JSON in and out, one body-size limit and one
// auth check are a page of code, and a framework would add a dependency tree to a root daemon
// for routing we can read at a glance.
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";

import { LbError, type LbErrorCode } from "../lib/errors.js";
import type { Handler } from "./control-server.js";
import { MAX_REQUEST_BYTES, type Command, type ErrorBody } from "./protocol.js";

export const DEFAULT_API = "127.0.0.1:7071";
/** A request must arrive whole within this; a stuck client cannot hold a socket for long. */
const REQUEST_TIMEOUT_MS = 10_000;

/** An HTTP status (405, 413) and headers of its own beside the LB_ERR_* code. */
class HttpError extends LbError {
  constructor(
    readonly status: number,
    code: LbErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(code, message);
  }
}

const STATUS_OF: Partial<Record<LbErrorCode, number>> = {
  LB_ERR_REQUEST: 400,
  LB_ERR_USAGE: 400,
  LB_ERR_CONFIG: 400,
  LB_ERR_ROUTE: 400,
  LB_ERR_AUTH: 401,
  LB_ERR_FORBIDDEN: 403,
  LB_ERR_NOT_FOUND: 404,
  LB_ERR_EXISTS: 409,
};

/** The HTTP status for an error: its own, by its LB_ERR_* code, else 500. */
export function httpStatus(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof LbError) return STATUS_OF[err.code] ?? 500;
  return 500;
}

type Params = Record<string, unknown>;

interface Route {
  readonly method: "GET" | "POST" | "DELETE";
  /** Exact path, or a prefix ending in "/" whose remainder (decoded) is the VIP. */
  readonly path: string;
  readonly change?: boolean;
  /** The command; params are the query (GET, DELETE) or the JSON body (POST). */
  readonly command: (params: Params, rest: string) => Command;
  /** Success status from the result (default 200; 204 for a null result). */
  readonly status?: (result: unknown) => number;
}

const isPending = (result: unknown): boolean =>
  typeof result === "object" && result !== null && (result as { state?: unknown }).state === "pending";

// Spread the params first: a body cannot choose another command by carrying `cmd`.
const ROUTES: readonly Route[] = [
  { method: "GET", path: "/v1/status", command: () => ({ cmd: "status" }) },
  { method: "GET", path: "/v1/stats", command: () => ({ cmd: "stats" }) },
  { method: "GET", path: "/v1/vips", command: () => ({ cmd: "vip.list" }) },
  {
    method: "POST",
    path: "/v1/vips",
    change: true,
    command: (p) => ({ ...p, cmd: "vip.add" }) as Command,
    status: () => 201,
  },
  { method: "DELETE", path: "/v1/vips/", change: true, command: (_, vip) => ({ cmd: "vip.remove", vip }) },
  {
    method: "GET",
    path: "/v1/backends",
    command: (p) => ({ ...p, cmd: "backend.list" }),
  },
  {
    method: "POST",
    path: "/v1/backends",
    change: true,
    command: (p) => ({ ...p, cmd: "backend.add" }) as Command,
    // 202: recorded, but not in the data plane until its next hop resolves (the warning says so).
    status: (r) => (isPending(r) ? 202 : 201),
  },
  {
    method: "DELETE",
    path: "/v1/backends",
    change: true,
    command: (p) => ({ ...p, cmd: "backend.remove" }) as Command,
  },
  {
    method: "POST",
    path: "/v1/backends/drain",
    change: true,
    command: (p) => ({ ...p, cmd: "backend.drain" }) as Command,
  },
  {
    method: "POST",
    path: "/v1/backends/resume",
    change: true,
    command: (p) => ({ ...p, cmd: "backend.resume" }) as Command,
  },
];

/** Every route as METHOD and path ("/v1/vips/{vip}" for the prefix route): docs and tests. */
export const API_ROUTES: readonly { method: string; path: string }[] = [
  { method: "GET", path: "/metrics" },
  ...ROUTES.map((r) => ({ method: r.method, path: r.path.endsWith("/") ? `${r.path}{vip}` : r.path })),
];

export interface Metrics {
  readonly contentType: string;
  scrape(): Promise<string>;
}

export interface ApiServerOptions {
  /** The control socket's handler (makeHandler). */
  readonly handler: Handler;
  readonly metrics: Metrics;
  /** Bearer token required for changes; undefined: changes are refused (403). */
  readonly token: string | undefined;
  readonly log: Logger;
}

/** "127.0.0.1:7071" or "[::1]:7071" (as --api checked it) → host and port. */
export function splitListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  if (!m || host === undefined) {
    throw new LbError("LB_ERR_USAGE", `--api ${text}: expected ADDR:PORT, e.g. 127.0.0.1:7071 or [::1]:7071`);
  }
  return { host, port: Number(m[3]) };
}

const hostPort = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;

const digest = (text: string): Buffer => createHash("sha256").update(text).digest();

export class ApiServer {
  private constructor(
    private readonly server: Server,
    /** Where it listens: host and (with port 0) the port the kernel chose. */
    readonly host: string,
    readonly port: number,
  ) {}

  /** Listens on host:port; an address in use fails with LB_ERR_EXISTS and a hint. */
  static async listen(where: { host: string; port: number }, opts: ApiServerOptions): Promise<ApiServer> {
    const tokenDigest = opts.token === undefined ? undefined : digest(opts.token);
    const server = createServer((req, res) => {
      const started = performance.now();
      serve(req, res, opts, tokenDigest)
        .catch((err: unknown) => {
          opts.log.error({ err }, "REST request failed unexpectedly");
          if (!res.headersSent) sendError(res, err);
          else res.destroy();
        })
        .finally(() => {
          opts.log.debug(
            { method: req.method, url: req.url, status: res.statusCode, ms: performance.now() - started },
            "REST request",
          );
        });
    });
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = REQUEST_TIMEOUT_MS;
    server.on("clientError", (err, socket) => {
      opts.log.debug({ err }, "REST client error");
      socket.destroy();
    });
    const display = hostPort(where.host, where.port);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => {
        reject(listenError(err, display));
      });
      server.listen({ host: where.host, port: where.port }, () => {
        server.removeAllListeners("error");
        server.on("error", (err) => {
          opts.log.error({ err }, "REST server error");
        });
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    opts.log.info(
      {
        api: hostPort(where.host, address.port),
        changes: opts.token === undefined ? "off (no --api-token-file)" : "on (bearer token)",
      },
      "REST API and /metrics listening",
    );
    return new ApiServer(server, where.host, address.port);
  }

  /** Stops listening and cuts open connections (Prometheus keeps its connection alive). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) =>
      this.server.close(() => {
        resolve();
      }),
    );
    this.server.closeAllConnections();
    await closed;
  }
}

function listenError(err: NodeJS.ErrnoException, display: string): LbError {
  const what = `cannot listen on ${display} for the REST API and /metrics`;
  switch (err.code) {
    case "EADDRINUSE":
      return new LbError("LB_ERR_EXISTS", `${what}: the address is in use`, {
        hint: "another daemon or program listens there: give this one another --api ADDR:PORT",
        cause: err,
      });
    case "EADDRNOTAVAIL":
      return new LbError("LB_ERR_CONFIG", `${what}: not an address of this host (or network namespace)`, {
        hint: "give --api an address of this host, e.g. 127.0.0.1:7071",
        cause: err,
      });
    case "EACCES":
      return new LbError("LB_ERR_CONFIG", `${what}: permission denied`, {
        hint: "ports below 1024 need root or CAP_NET_BIND_SERVICE",
        cause: err,
      });
    default:
      return new LbError("LB_ERR_CONFIG", `${what}: ${err.message}`, { cause: err });
  }
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (status === 204) {
    res.writeHead(status, headers).end();
    return;
  }
  const text = `${JSON.stringify(body)}\n`;
  res
    .writeHead(status, {
      "Content-Type": "application/json; charset=utf-8",
      "Content-Length": String(Buffer.byteLength(text)),
      ...headers,
    })
    .end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  const error: ErrorBody =
    err instanceof LbError
      ? { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) }
      : { code: "LB_ERR_INTERNAL", message: err instanceof Error ? err.message : String(err) };
  const status = httpStatus(err);
  const headers: Record<string, string> = {};
  if (status === 401) headers["WWW-Authenticate"] = 'Bearer realm="caplance"';
  send(res, status, { error }, { ...headers, ...(err instanceof HttpError ? err.headers : {}) });
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  opts: ApiServerOptions,
  tokenDigest: Buffer | undefined,
): Promise<void> {
  try {
    const url = new URL(req.url ?? "/", "http://api.invalid");
    if (url.pathname === "/metrics") {
      if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed(req, url.pathname, "GET, HEAD");
      const text = await opts.metrics.scrape();
      res.writeHead(200, {
        "Content-Type": opts.metrics.contentType,
        "Content-Length": String(Buffer.byteLength(text)),
      });
      res.end(req.method === "HEAD" ? undefined : text);
      return;
    }
    const { route, rest } = match(req, url);
    if (route.change) authorize(req, tokenDigest, opts.log);
    const params = route.method === "POST" ? await readJsonBody(req) : Object.fromEntries(url.searchParams);
    const request = { ...route.command(params, rest), id: 0 };
    const { result, warnings } = await opts.handler(request);
    const status = route.status?.(result) ?? (result === null ? 204 : 200);
    // Warnings (a backend left pending) ride beside the result, which keeps protocol.ts's shape.
    const headers: Record<string, string> = warnings?.length
      ? { "Caplance-Warning": warnings.join("; ").replace(/[^\x20-\x7e]/g, "?") } // header-safe ASCII
      : {};
    send(res, status, result, headers);
  } catch (err) {
    if (httpStatus(err) >= 500) opts.log.error({ err }, "REST request failed");
    sendError(res, err);
  }
}

function notAllowed(req: IncomingMessage, path: string, allow: string): HttpError {
  return new HttpError(
    405,
    "LB_ERR_REQUEST",
    `${req.method ?? "?"} ${path}: method not allowed (allowed: ${allow})`,
    {
      Allow: allow,
    },
  );
}

function match(req: IncomingMessage, url: URL): { route: Route; rest: string } {
  const candidates: { route: Route; rest: string }[] = [];
  for (const route of ROUTES) {
    if (route.path.endsWith("/")) {
      if (url.pathname.startsWith(route.path) && url.pathname.length > route.path.length) {
        let rest: string;
        try {
          rest = decodeURIComponent(url.pathname.slice(route.path.length));
        } catch {
          throw new LbError("LB_ERR_REQUEST", `${url.pathname}: bad percent-encoding`);
        }
        candidates.push({ route, rest });
      }
    } else if (url.pathname === route.path) {
      candidates.push({ route, rest: "" });
    }
  }
  const found = candidates.find((c) => c.route.method === req.method);
  if (found) return found;
  if (candidates.length > 0) {
    throw notAllowed(req, url.pathname, [...new Set(candidates.map((c) => c.route.method))].join(", "));
  }
  throw new LbError("LB_ERR_NOT_FOUND", `no route ${req.method ?? "?"} ${url.pathname}`, {
    hint: "routes: GET /metrics, /v1/status, /v1/stats, /v1/vips, /v1/backends; see docs/api.md",
  });
}

function authorize(req: IncomingMessage, tokenDigest: Buffer | undefined, log: Logger): void {
  if (tokenDigest === undefined) {
    throw new LbError("LB_ERR_FORBIDDEN", "changes over the REST API are off: the daemon has no API token", {
      hint: "start it with --api-token-file F (a mode 0600 file holding a token of 16+ characters) and send Authorization: Bearer <token>",
    });
  }
  const header = req.headers.authorization;
  const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
  if (!m?.[1]) {
    throw new LbError("LB_ERR_AUTH", "a change needs an Authorization: Bearer <token> header", {
      hint: "the token is in the file given to lbctl load --api-token-file",
    });
  }
  // Digests have equal lengths, so the comparison takes the same time whatever was sent.
  if (!timingSafeEqual(digest(m[1]), tokenDigest)) {
    log.warn(
      { remote: req.socket.remoteAddress, method: req.method, url: req.url },
      "REST change with a wrong token",
    );
    throw new LbError("LB_ERR_AUTH", "wrong bearer token", {
      hint: "the token is in the file given to lbctl load --api-token-file",
    });
  }
}

/** The body as a JSON object (empty → {}), at most MAX_REQUEST_BYTES. */
async function readJsonBody(req: IncomingMessage): Promise<Params> {
  const tooLarge = (): HttpError =>
    new HttpError(413, "LB_ERR_REQUEST", `request body longer than ${MAX_REQUEST_BYTES} bytes`, {
      Connection: "close",
    });
  if (Number(req.headers["content-length"] ?? 0) > MAX_REQUEST_BYTES) throw tooLarge();
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Past the limit the rest is read and dropped (not buffered) while the 413 goes out: a
    // reset connection could lose the answer.
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        chunks.length = 0;
        reject(tooLarge());
      } else chunks.push(chunk);
    });
    req.on("end", () => {
      resolve(Buffer.concat(chunks));
    });
    req.on("error", reject);
  });
  const text = body.toString("utf8").trim();
  if (text === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new LbError("LB_ERR_REQUEST", `request body is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new LbError("LB_ERR_REQUEST", "request body must be a JSON object");
  return parsed as Params;
}
