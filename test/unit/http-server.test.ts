// The REST API (src/api/http-server.ts) on 127.0.0.1:0 over an in-memory daemon context (real
// handler and reconciler, no kernel): read routes return exactly the control socket's results,
// changes need the bearer token, errors are {error:{code,message,hint}} with the mapped status,
// and nothing a client sends takes the server down. Also the token file's checks. No root.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { Agent, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import pino from "pino";
import { parse as parseYaml } from "yaml";

import type { Handler } from "../../src/api/control-server.js";
import { API_ROUTES, ApiServer, splitListenAddress } from "../../src/api/http-server.js";
import { CaplanceMetrics } from "../../src/api/metrics.js";
import type { Command } from "../../src/api/protocol.js";
import { LbError } from "../../src/lib/errors.js";
import { packageRoot } from "../../src/lib/paths.js";
import { readTokenFile } from "../../src/lib/private-file.js";
import { testContext, type TestContext } from "../support/api-context.js";

const TOKEN = "s3cr3t-t0ken-for-tests-0123456789";
const WEB = "tcp/198.18.1.1:80";
const V6 = "udp/[2001:db8:1::1]:53";
const log = pino({ level: "silent" });
const tmp = mkdtempSync(join(tmpdir(), "http-server-test-"));

after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

function client(server: ApiServer) {
  const base = `http://127.0.0.1:${server.port}`;
  return async (
    method: string,
    path: string,
    opts: { body?: unknown; raw?: string; token?: string } = {},
  ) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers["Authorization"] = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    const json = res.headers.get("content-type")?.startsWith("application/json")
      ? (JSON.parse(text) as unknown)
      : undefined;
    return { status: res.status, headers: res.headers, body: json, text } satisfies Reply;
  };
}

/** The API on 127.0.0.1:0 over a test context (its handler and metrics). */
function listen(t: TestContext, token: string | undefined): Promise<ApiServer> {
  return ApiServer.listen(
    { host: "127.0.0.1", port: 0 },
    {
      handler: t.handler,
      metrics: new CaplanceMetrics(t.context, { timings: t.timings, processMetrics: false }),
      token,
      log,
    },
  );
}

/** What the control socket would answer for the same command (the shapes must be identical). */
async function viaHandler(t: TestContext, command: Command): Promise<unknown> {
  return JSON.parse(JSON.stringify((await t.handler({ ...command, id: 1 })).result)) as unknown;
}

function assertError(r: Reply, status: number, code: string, message?: RegExp): void {
  assert.equal(r.status, status, `status of ${r.text}`);
  const e = (r.body as { error?: { code?: string; message?: string; hint?: string } }).error;
  assert.equal(e?.code, code, r.text);
  assert.equal(typeof e.message, "string");
  if (message) assert.match(e.message ?? "", message);
}

describe("with a token", () => {
  let t: TestContext;
  let server: ApiServer;
  let call: ReturnType<typeof client>;

  before(async () => {
    t = testContext();
    server = await listen(t, TOKEN);
    call = client(server);
  });

  after(async () => {
    await server.close();
  });

  test("GET routes answer without a token, exactly as the control socket does", async () => {
    const status = await call("GET", "/v1/status");
    assert.equal(status.status, 200);
    assert.match(status.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(status.body, await viaHandler(t, { cmd: "status" }));
    for (const [path, command] of [
      ["/v1/vips", { cmd: "vip.list" }],
      ["/v1/backends", { cmd: "backend.list" }],
      ["/v1/stats", { cmd: "stats" }],
    ] as const) {
      const r = await call("GET", path);
      assert.equal(r.status, 200, path);
      assert.deepEqual(r.body, await viaHandler(t, command), path);
    }
  });

  test("changes without the token: 401 with WWW-Authenticate, nothing changed", async () => {
    const none = await call("POST", "/v1/vips", { body: { vip: WEB } });
    assertError(none, 401, "LB_ERR_AUTH", /Authorization: Bearer/);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer /);
    const wrong = await call("POST", "/v1/vips", { body: { vip: WEB }, token: "not-the-token-at-all" });
    assertError(wrong, 401, "LB_ERR_AUTH", /wrong bearer token/);
    const del = await call("DELETE", `/v1/vips/${encodeURIComponent(WEB)}`);
    assertError(del, 401, "LB_ERR_AUTH");
    assert.deepEqual(t.reconciler.listVips(), []);
  });

  test("VIPs: add (201), list, duplicate (409), remove (204), unknown (404)", async () => {
    const added = await call("POST", "/v1/vips", { body: { vip: WEB, hash: "src-ip" }, token: TOKEN });
    assert.equal(added.status, 201, added.text);
    assert.deepEqual(added.body, { vip: WEB, hash: "src-ip", backends: 0 });
    assert.deepEqual((await call("GET", "/v1/vips")).body, [{ vip: WEB, hash: "src-ip", backends: 0 }]);
    assertError(await call("POST", "/v1/vips", { body: { vip: WEB }, token: TOKEN }), 409, "LB_ERR_EXISTS");
    const v6 = await call("POST", "/v1/vips", { body: { vip: V6 }, token: TOKEN });
    assert.equal(v6.status, 201, v6.text);
    const gone = await call("DELETE", `/v1/vips/${encodeURIComponent(V6)}`, { token: TOKEN });
    assert.equal(gone.status, 204, gone.text);
    assert.equal(gone.text, "");
    assertError(
      await call("DELETE", `/v1/vips/${encodeURIComponent(V6)}`, { token: TOKEN }),
      404,
      "LB_ERR_NOT_FOUND",
      /2001:db8:1::1/,
    );
    // Unencoded slashes work too: the rest of the path is the VIP.
    assert.equal((await call("POST", "/v1/vips", { body: { vip: V6 }, token: TOKEN })).status, 201);
    assert.equal((await call("DELETE", `/v1/vips/${V6}`, { token: TOKEN })).status, 204);
  });

  test("backends: add (201), pending (202 + warning), list ?vip=, drain, resume, remove", async () => {
    const add = await call("POST", "/v1/backends", {
      body: { vip: WEB, backend: "198.18.0.11", weight: 3, name: "b1" },
      token: TOKEN,
    });
    assert.equal(add.status, 201, add.text);
    const { changedAt, ...body } = add.body as Record<string, unknown>;
    assert.deepEqual(body, {
      vip: WEB,
      address: "198.18.0.11",
      port: 6080,
      name: "b1",
      weight: 3,
      state: "active",
      source: "static",
      changeReason: "added at run time",
    });
    assert.ok(Math.abs(Date.parse(String(changedAt)) - Date.now()) < 5000, `changedAt ${String(changedAt)}`);
    t.hops.unreachable.add("198.18.0.99");
    const pending = await call("POST", "/v1/backends", {
      body: { vip: WEB, backend: "198.18.0.99:7000" },
      token: TOKEN,
    });
    assert.equal(pending.status, 202, pending.text);
    assert.equal((pending.body as { state: string }).state, "pending");
    assert.match(pending.headers.get("caplance-warning") ?? "", /198\.18\.0\.99.*pending/);

    const list = await call("GET", `/v1/backends?vip=${encodeURIComponent(WEB)}`);
    assert.deepEqual(list.body, await viaHandler(t, { cmd: "backend.list", vip: WEB }));
    assert.equal((list.body as unknown[]).length, 2);
    assertError(await call("GET", "/v1/backends?vip=tcp%2F198.18.1.9%3A80"), 404, "LB_ERR_NOT_FOUND");

    const drained = await call("POST", "/v1/backends/drain", {
      body: { vip: WEB, backend: "198.18.0.11" },
      token: TOKEN,
    });
    assert.equal(drained.status, 200, drained.text);
    assert.equal((drained.body as { state: string }).state, "draining");
    const resumed = await call("POST", "/v1/backends/resume", {
      body: { vip: WEB, backend: "198.18.0.11" },
      token: TOKEN,
    });
    assert.equal((resumed.body as { state: string }).state, "active");

    const q = `vip=${encodeURIComponent(WEB)}&backend=198.18.0.99`;
    assert.equal((await call("DELETE", `/v1/backends?${q}`, { token: TOKEN })).status, 204);
    assertError(
      await call("DELETE", `/v1/backends?${q}`, { token: TOKEN }),
      404,
      "LB_ERR_NOT_FOUND",
      /198\.18\.0\.99/,
    );
    assert.deepEqual(
      t.reconciler.listBackends().map((b) => b.address),
      ["198.18.0.11"],
    );
  });

  test("bad requests: 400 naming the problem or the field; the server keeps serving", async () => {
    assertError(
      await call("POST", "/v1/vips", { raw: "{not json", token: TOKEN }),
      400,
      "LB_ERR_REQUEST",
      /not JSON/,
    );
    assertError(
      await call("POST", "/v1/vips", { raw: "[1,2]", token: TOKEN }),
      400,
      "LB_ERR_REQUEST",
      /JSON object/,
    );
    assertError(await call("POST", "/v1/vips", { body: {}, token: TOKEN }), 400, "LB_ERR_REQUEST", /vip/);
    assertError(
      await call("POST", "/v1/backends", {
        body: { vip: WEB, backend: "198.18.0.12", weight: -1 },
        token: TOKEN,
      }),
      400,
      "LB_ERR_REQUEST",
      /weight/,
    );
    assertError(
      await call("POST", "/v1/vips", { body: { vip: "tcp/198.18.1.1" }, token: TOKEN }),
      400,
      "LB_ERR_USAGE",
      /198\.18\.1\.1/,
    );
    assertError(await call("DELETE", "/v1/backends", { token: TOKEN }), 400, "LB_ERR_REQUEST", /vip/);
    assertError(
      await call("DELETE", "/v1/vips/%E0%A4%A", { token: TOKEN }),
      400,
      "LB_ERR_REQUEST",
      /encoding/,
    );
    // A body cannot pick another command.
    const sneaky = await call("POST", "/v1/vips", {
      body: { cmd: "vip.remove", vip: "tcp/198.18.1.7:80" },
      token: TOKEN,
    });
    assert.equal(sneaky.status, 201, sneaky.text);
    const big = await call("POST", "/v1/vips", {
      raw: JSON.stringify({ vip: "x".repeat(70 * 1024) }),
      token: TOKEN,
    });
    assertError(big, 413, "LB_ERR_REQUEST", /longer than/);
    // Chunked, no Content-Length: cut off while streaming, the 413 still arrives.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port: server.port,
          method: "POST",
          path: "/v1/vips",
          headers: { Authorization: `Bearer ${TOKEN}` },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      for (let i = 0; i < 10; i++) req.write("x".repeat(10 * 1024));
      req.end();
    });
    assert.equal(chunked, 413);
    assert.equal((await call("GET", "/v1/status")).status, 200, "still serving");
  });

  test("unknown route 404, wrong method 405 with Allow", async () => {
    assertError(await call("GET", "/v1/nothing"), 404, "LB_ERR_NOT_FOUND", /no route GET \/v1\/nothing/);
    assertError(await call("GET", "/"), 404, "LB_ERR_NOT_FOUND");
    const r = await call("PUT", "/v1/vips", { token: TOKEN });
    assertError(r, 405, "LB_ERR_REQUEST");
    assert.equal(r.headers.get("allow"), "GET, POST");
    assertError(await call("POST", "/metrics"), 405, "LB_ERR_REQUEST");
  });

  test("GET /metrics: the text format, with the API's changes in it", async () => {
    const r = await call("GET", "/metrics");
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assert.match(r.text, /^# HELP caplance_vip_packets_total /m);
    assert.match(
      r.text,
      new RegExp(
        `^caplance_backend_weight\\{vip="${WEB.replace(/[/.]/g, "\\$&")}",backend="198\\.18\\.0\\.11"\\} 3$`,
        "m",
      ),
    );
    assert.match(r.text, /^caplance_reconcile_duration_seconds_count\{operation="vip\.add"\} [1-9]/m);
  });
});

describe("without a token", () => {
  let t: TestContext;
  let server: ApiServer;
  let call: ReturnType<typeof client>;

  before(async () => {
    t = testContext();
    server = await listen(t, undefined);
    call = client(server);
  });

  after(async () => {
    await server.close();
  });

  test("changes are refused with 403 and how to turn them on; reads work", async () => {
    for (const [method, path] of [
      ["POST", "/v1/vips"],
      ["DELETE", `/v1/vips/${encodeURIComponent(WEB)}`],
      ["POST", "/v1/backends"],
      ["DELETE", "/v1/backends?vip=x&backend=y"],
      ["POST", "/v1/backends/drain"],
      ["POST", "/v1/backends/resume"],
    ] as const) {
      const r = await call(method, path, { body: { vip: WEB }, token: TOKEN });
      assertError(r, 403, "LB_ERR_FORBIDDEN", /changes over the REST API are off/);
      assert.match((r.body as { error: { hint: string } }).error.hint, /--api-token-file/);
    }
    assert.equal((await call("GET", "/v1/vips")).status, 200);
    assert.equal(t.reconciler.listVips().length, 0);
  });
});

test("a handler that throws a bug: 500 LB_ERR_INTERNAL, and the next request is served", async () => {
  let calls = 0;
  const handler: Handler = (request) => {
    calls++;
    if (request.cmd === "status") return Promise.resolve({ result: { ok: true } });
    return Promise.reject(new TypeError("handler bug"));
  };
  const server = await ApiServer.listen(
    { host: "127.0.0.1", port: 0 },
    {
      handler,
      metrics: { contentType: "text/plain", scrape: () => Promise.reject(new Error("scrape bug")) },
      token: TOKEN,
      log,
    },
  );
  try {
    const call = client(server);
    assertError(await call("GET", "/v1/vips"), 500, "LB_ERR_INTERNAL", /handler bug/);
    assertError(await call("GET", "/metrics"), 500, "LB_ERR_INTERNAL", /scrape bug/);
    const ok = await call("GET", "/v1/status");
    assert.deepEqual(ok.body, { ok: true });
    assert.equal(calls, 2);
  } finally {
    await server.close();
  }
});

test("an address in use: LB_ERR_EXISTS naming it, with a hint", async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    await assert.rejects(
      ApiServer.listen(
        { host: "127.0.0.1", port },
        {
          handler: testContext().handler,
          metrics: { contentType: "", scrape: () => Promise.resolve("") },
          token: undefined,
          log,
        },
      ),
      (err: unknown) =>
        err instanceof LbError &&
        err.code === "LB_ERR_EXISTS" &&
        err.message.includes(`127.0.0.1:${port}`) &&
        /in use/.test(err.message) &&
        /--api/.test(err.hint ?? ""),
    );
  } finally {
    blocker.close();
  }
});

test("close() returns promptly with a keep-alive connection open", async () => {
  const t = testContext();
  const server = await listen(t, undefined);
  const agent = new Agent({ keepAlive: true }); // its socket stays open after the response
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port: server.port, path: "/v1/status", agent }, (res) => {
      res.resume();
      res.on("end", resolve);
    });
    req.on("error", reject);
    req.end();
  });
  const started = Date.now();
  await server.close();
  assert.ok(Date.now() - started < 1000, `close took ${Date.now() - started} ms`);
  agent.destroy();
});

test("splitListenAddress: IPv4 and bracketed IPv6", () => {
  assert.deepEqual(splitListenAddress("127.0.0.1:7071"), { host: "127.0.0.1", port: 7071 });
  assert.deepEqual(splitListenAddress("[::1]:9000"), { host: "::1", port: 9000 });
  assert.throws(() => splitListenAddress("localhost"), /ADDR:PORT/);
});

describe("API token file", () => {
  const file = (name: string, text: string, mode: number): string => {
    const path = join(tmp, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  };

  test("mode 0600, 16+ visible characters: the token, trailing newline dropped", () => {
    assert.equal(readTokenFile(file("ok", `${TOKEN}\n`, 0o600)), TOKEN);
    assert.equal(readTokenFile(file("ro", TOKEN, 0o400)), TOKEN);
  });

  test("group or other access is refused with the chmod hint", () => {
    const path = file("open", TOKEN, 0o644);
    assert.throws(
      () => readTokenFile(path),
      (err: unknown) =>
        err instanceof LbError &&
        err.code === "LB_ERR_CONFIG" &&
        /mode 0644/.test(err.message) &&
        err.hint === `chmod 600 ${path}`,
    );
  });

  test("too short, spaces, missing, a directory", () => {
    assert.throws(() => readTokenFile(file("short", "abc\n", 0o600)), /at least 16/);
    assert.throws(() => readTokenFile(file("spaces", "a token with spaces in it\n", 0o600)), /visible ASCII/);
    assert.throws(() => readTokenFile(join(tmp, "missing")), /API token file .*missing.*ENOENT/);
    assert.throws(() => readTokenFile(tmp), /not a regular file/);
  });
});

test("docs/api.openapi.yaml: OpenAPI 3.0, every route and no other, every $ref resolves", () => {
  const text = readFileSync(join(packageRoot(), "docs", "api.openapi.yaml"), "utf8");
  const doc = parseYaml(text) as {
    openapi: string;
    paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
  };
  assert.match(doc.openapi, /^3\.0\.\d+$/);
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
  );
  assert.deepEqual(documented.sort(), API_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const change = method !== "get";
      assert.equal(op.security !== undefined, change, `${method} ${path}: security only on changes`);
      if (change) assert.ok("401" in op.responses && "403" in op.responses, `${method} ${path}: 401 and 403`);
    }
  }
  for (const [, ref] of text.matchAll(/\$ref: "#\/([^"]+)"/g)) {
    let node: unknown = doc;
    for (const part of (ref ?? "").split("/")) node = (node as Record<string, unknown> | undefined)?.[part];
    assert.ok(node !== undefined, `$ref #/${ref ?? ""} resolves`);
  }
});
