// The control socket's server (src/api/control-server.ts) with a fake handler on a temp socket
// path: JSON lines, id echo, error replies, oversized lines, concurrency, socketIsLive, and
// listen()'s rules (refuse a live socket, replace a stale one). No root, no daemon.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import pino from "pino";

import { ControlServer, socketIsLive, type Handler } from "../../src/api/control-server.js";
import { MAX_REQUEST_BYTES, type Request } from "../../src/api/protocol.js";
import { LbError } from "../../src/lib/errors.js";

const tmp = mkdtempSync(join(tmpdir(), "control-server-test-"));
const log = pino({ level: "silent" });
const WAIT_MS = 5000;

after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  warnings?: string[];
  error?: { code: string; message: string; hint?: string };
}

/** Rejects after ms, so no wait in this file is unbounded. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`timed out after ${ms} ms: ${what}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
  });
}

/** A raw client: writes what it is given, collects reply lines, notices the server closing. */
class RawClient {
  private buffered = "";
  private readonly replies: Reply[] = [];
  private readonly waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf("\n")) >= 0) {
        this.replies.push(JSON.parse(this.buffered.slice(0, nl)) as Reply);
        this.buffered = this.buffered.slice(nl + 1);
      }
      this.wake();
    });
    socket.on("error", () => undefined); // EPIPE when the server closed first
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(path: string): Promise<RawClient> {
    const socket = connect(path);
    await within(once(socket, "connect"), WAIT_MS, `connect ${path}`);
    return new RawClient(socket);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** The next n replies (in arrival order). */
  async next(n = 1): Promise<Reply[]> {
    await within(
      (async () => {
        while (this.replies.length < n) {
          if (this.closed) throw new Error(`connection closed after ${this.replies.length} of ${n} replies`);
          await new Promise<void>((r) => this.waiters.push(r));
        }
      })(),
      WAIT_MS,
      `${n} replies`,
    );
    return this.replies.splice(0, n);
  }

  async one(): Promise<Reply> {
    const [reply] = await this.next(1);
    assert.ok(reply);
    return reply;
  }

  async untilClosed(): Promise<void> {
    await within(
      (async () => {
        while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
      })(),
      WAIT_MS,
      "server closes the connection",
    );
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A handler that behaves per cmd; "slow" waits until release() is called. */
function fakeHandler(): { handle: Handler; release: () => void; calls: string[] } {
  const calls: string[] = [];
  let release = (): void => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const handle: Handler = async (request: Request) => {
    const cmd = (request as { cmd: string }).cmd;
    calls.push(cmd);
    switch (cmd) {
      case "echo":
        return { result: request };
      case "warn":
        return { result: null, warnings: ["careful"] };
      case "slow":
        await gate;
        return { result: "slow done" };
      case "missing":
        throw new LbError("LB_ERR_NOT_FOUND", "VIP tcp/198.18.1.9:80 does not exist", {
          hint: "list VIPs with lbctl vip list",
        });
      case "bug":
        throw new Error("handler bug");
      default:
        throw new LbError("LB_ERR_REQUEST", `unknown command ${JSON.stringify(cmd)}`);
    }
  };
  return {
    handle,
    release: () => {
      release();
    },
    calls,
  };
}

describe("serving JSON lines", () => {
  const path = join(tmp, "serve.sock");
  const fake = fakeHandler();
  let server: ControlServer;
  const clients: RawClient[] = [];
  const client = async (): Promise<RawClient> => {
    const c = await RawClient.open(path);
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await ControlServer.listen(path, fake.handle, log);
  });

  after(async () => {
    fake.release();
    for (const c of clients) c.close();
    await server.close();
  });

  test("the socket is created mode 0600", () => {
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  test("one reply line per request, id echoed, several requests per connection", async () => {
    const c = await client();
    c.send('{"id":7,"cmd":"echo","x":1}\n{"id":8,"cmd":"warn"}\n');
    const replies = await c.next(2);
    const byId = new Map(replies.map((r) => [r.id, r]));
    assert.deepEqual(byId.get(7), { id: 7, ok: true, result: { id: 7, cmd: "echo", x: 1 } });
    assert.deepEqual(byId.get(8), { id: 8, ok: true, result: null, warnings: ["careful"] });
    c.send('{"id":9,"cmd":"echo"}\n');
    assert.equal((await c.one()).id, 9);
  });

  test("a request split over several writes, and blank lines, are fine", async () => {
    const c = await client();
    c.send('\n  \n{"id":3,');
    await new Promise((r) => setTimeout(r, 20));
    c.send('"cmd":"ec');
    await new Promise((r) => setTimeout(r, 20));
    c.send('ho"}\r\n');
    const reply = await c.one();
    assert.equal(reply.id, 3);
    assert.equal(reply.ok, true);
  });

  test("bad requests get ok:false with an LB_ERR_* code; the connection stays usable", async () => {
    const c = await client();
    const cases: [string, number, string, RegExp][] = [
      ["not json\n", 0, "LB_ERR_REQUEST", /not JSON/],
      ['{"id":4}\n', 0, "LB_ERR_REQUEST", /string cmd/],
      ['{"id":5,"cmd":42}\n', 0, "LB_ERR_REQUEST", /string cmd/],
      ["[1,2]\n", 0, "LB_ERR_REQUEST", /string cmd/],
      ["null\n", 0, "LB_ERR_REQUEST", /string cmd/],
      ['{"id":6,"cmd":"frobnicate"}\n', 6, "LB_ERR_REQUEST", /unknown command "frobnicate"/],
      ['{"id":7,"cmd":"missing"}\n', 7, "LB_ERR_NOT_FOUND", /tcp\/198\.18\.1\.9:80/],
      ['{"id":8,"cmd":"bug"}\n', 8, "LB_ERR_INTERNAL", /handler bug/],
      ['{"id":"nine","cmd":"frobnicate"}\n', 0, "LB_ERR_REQUEST", /unknown command/],
    ];
    for (const [line, id, code, message] of cases) {
      c.send(line);
      const reply = await c.one();
      assert.equal(reply.ok, false, `${line.trim()}: ${JSON.stringify(reply)}`);
      assert.equal(reply.id, id, `${line.trim()}: id`);
      assert.equal(reply.error?.code, code, `${line.trim()}: code`);
      assert.match(reply.error.message, message, `${line.trim()}: message`);
    }
    c.send('{"id":7,"cmd":"missing"}\n');
    assert.equal((await c.one()).error?.hint, "list VIPs with lbctl vip list");
    c.send('{"id":10,"cmd":"echo"}\n');
    assert.deepEqual(await c.one(), { id: 10, ok: true, result: { id: 10, cmd: "echo" } });
  });

  test("a line longer than 64 KiB without a newline: LB_ERR_REQUEST, then the connection closes", async () => {
    const c = await client();
    c.send("x".repeat(MAX_REQUEST_BYTES + 100));
    const reply = await c.one();
    assert.equal(reply.ok, false);
    assert.equal(reply.id, 0);
    assert.equal(reply.error?.code, "LB_ERR_REQUEST");
    assert.match(reply.error.message, /longer than 65536 bytes/);
    await c.untilClosed();
  });

  test("a valid request longer than 64 KiB is refused even when its newline arrives with it", async () => {
    const c = await client();
    const before = fake.calls.length;
    // One write: the kernel may hand it over in one read, newline included.
    c.send(`${JSON.stringify({ id: 11, cmd: "echo", pad: "p".repeat(MAX_REQUEST_BYTES + 1000) })}\n`);
    const reply = await c.one();
    assert.equal(reply.ok, false, "an oversized request must not be handled");
    assert.equal(reply.error?.code, "LB_ERR_REQUEST");
    assert.match(reply.error.message, /longer than/);
    await c.untilClosed();
    assert.equal(fake.calls.length, before, "the handler never saw the oversized request");
  });

  test("a request of exactly 64 KiB is still served", async () => {
    const c = await client();
    const skeleton = JSON.stringify({ id: 12, cmd: "echo", pad: "" });
    const line = JSON.stringify({
      id: 12,
      cmd: "echo",
      pad: "p".repeat(MAX_REQUEST_BYTES - skeleton.length),
    });
    assert.equal(line.length, MAX_REQUEST_BYTES);
    c.send(`${line}\n`);
    const reply = await c.one();
    assert.equal(reply.ok, true, JSON.stringify(reply.error));
    assert.equal(reply.id, 12);
  });

  test("a slow handler blocks neither other connections nor later requests on its own", async () => {
    const a = await client();
    const b = await client();
    a.send('{"id":1,"cmd":"slow"}\n');
    await new Promise((r) => setTimeout(r, 20));
    a.send('{"id":2,"cmd":"echo"}\n');
    b.send('{"id":3,"cmd":"echo"}\n');
    assert.equal((await b.one()).id, 3, "other connection answered while slow is pending");
    assert.equal((await a.one()).id, 2, "same connection: the later request answered first");
    fake.release();
    assert.deepEqual(await a.one(), { id: 1, ok: true, result: "slow done" });
  });

  test("a client that hangs up before its answer does not hurt the server", async () => {
    const gone = await client();
    gone.send('{"id":1,"cmd":"slow"}\n{"id":2,"cmd":"missing"}\n');
    gone.close();
    await new Promise((r) => setTimeout(r, 20));
    const c = await client();
    c.send('{"id":3,"cmd":"echo"}\n');
    assert.equal((await c.one()).ok, true);
  });
});

/** A socket file nobody listens on: a process that listened on it and was SIGKILLed. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(
    process.execPath,
    ["-e", "require('node:net').createServer().listen(process.argv[1], () => console.log('ready'))", path],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    await within(once(child.stdout, "data"), WAIT_MS, "helper listens");
    assert.equal(await socketIsLive(path), true);
  } finally {
    child.kill("SIGKILL");
    await within(once(child, "exit"), WAIT_MS, "helper exits");
  }
  assert.ok(existsSync(path), "SIGKILL leaves the socket file behind");
}

describe("socketIsLive", () => {
  test("true while a server listens, false for a missing path, a stale socket, a plain file", async () => {
    const live = join(tmp, "live.sock");
    const server = createServer();
    await new Promise<void>((r) => server.listen(live, r));
    try {
      assert.equal(await socketIsLive(live), true);
    } finally {
      await new Promise<void>((r) =>
        server.close(() => {
          r();
        }),
      );
    }
    assert.equal(await socketIsLive(join(tmp, "nothing-here.sock")), false);
    const stale = join(tmp, "stale-probe.sock");
    await staleSocket(stale);
    assert.equal(await socketIsLive(stale), false);
    const plain = join(tmp, "plain-file");
    writeFileSync(plain, "not a socket");
    assert.equal(await socketIsLive(plain), false);
  });
});

describe("ControlServer.listen", () => {
  test("refuses a path a live process listens on, and leaves that socket alone", async () => {
    const path = join(tmp, "taken.sock");
    const first = await ControlServer.listen(path, fakeHandler().handle, log);
    try {
      await assert.rejects(ControlServer.listen(path, fakeHandler().handle, log), (err: unknown) => {
        assert.ok(err instanceof LbError);
        assert.equal(err.code, "LB_ERR_EXISTS");
        assert.ok(err.message.includes(path), err.message);
        assert.ok(err.hint);
        return true;
      });
      assert.ok(existsSync(path), "the live socket is still there");
      const c = await RawClient.open(path);
      c.send('{"id":1,"cmd":"echo"}\n');
      assert.equal((await c.one()).ok, true, "the first server still answers");
      c.close();
    } finally {
      await first.close();
    }
  });

  test("replaces a stale socket file left by a killed process", async () => {
    const path = join(tmp, "stale.sock");
    await staleSocket(path);
    const server = await ControlServer.listen(path, fakeHandler().handle, log);
    try {
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const c = await RawClient.open(path);
      c.send('{"id":1,"cmd":"echo"}\n');
      assert.equal((await c.one()).ok, true);
      c.close();
    } finally {
      await server.close();
    }
  });

  test("creates missing parent directories; close() removes the socket file", async () => {
    const path = join(tmp, "a", "b", "lbd.sock");
    const server = await ControlServer.listen(path, fakeHandler().handle, log);
    assert.equal(await socketIsLive(path), true);
    await server.close();
    assert.equal(existsSync(path), false);
    assert.equal(await socketIsLive(path), false);
  });
});
