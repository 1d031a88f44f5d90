// One health probe against one backend's own address: a TCP connect, or an HTTP(S) GET whose
// status must match. Every probe ends within its timeout and leaves no socket behind.
import { request } from "node:http";
import { request as tlsRequest } from "node:https";
import { connect } from "node:net";

import type { HealthCheckSpec } from "./spec.js";

/** Stable result names (metrics label `result`). */
export const PROBE_RESULTS = ["success", "timeout", "refused", "bad_status", "error"] as const;
export type ProbeResultName = (typeof PROBE_RESULTS)[number];

export interface ProbeResult {
  readonly result: ProbeResultName;
  /** Why, for logs: "connection refused", "status 503", "no answer within 1000 ms". */
  readonly detail: string;
}

/** What the checker calls; tests inject a fake. `address` is the backend's, in text form. */
export type Probe = (address: string, spec: HealthCheckSpec) => Promise<ProbeResult>;

const OK: ProbeResult = { result: "success", detail: "ok" };

function failure(err: unknown): ProbeResult {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ECONNREFUSED") return { result: "refused", detail: "connection refused" };
  return { result: "error", detail: code ?? (err instanceof Error ? err.message : String(err)) };
}

const timedOut = (spec: HealthCheckSpec): ProbeResult => ({
  result: "timeout",
  detail: `no answer within ${spec.timeoutMs} ms`,
});

export function probeTcp(address: string, spec: HealthCheckSpec): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port: spec.port });
    const done = (r: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => {
      done(timedOut(spec));
    }, spec.timeoutMs);
    socket.once("connect", () => {
      done(OK);
    });
    socket.once("error", (err) => {
      done(failure(err));
    });
  });
}

/** HTTP, or HTTPS for spec.type "https": TLS without certificate verification (the check asks
 * whether the service answers; the backend's address is rarely the name on its certificate). */
export function probeHttp(address: string, spec: HealthCheckSpec): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const host = address.includes(":") ? `[${address}]` : address;
    let settled = false;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const tls = spec.type === "https";
    const options = {
      hostname: address,
      port: spec.port,
      path: spec.path,
      method: "GET",
      agent: false as const, // one connection per probe, closed after it
      headers: {
        host: spec.port === (tls ? 443 : 80) ? host : `${host}:${spec.port}`,
        "user-agent": "caplance-health-check",
        connection: "close",
      },
    };
    const req = tls
      ? tlsRequest({ ...options, rejectUnauthorized: false, servername: "" })
      : request(options);
    const timer = setTimeout(() => {
      done(timedOut(spec));
    }, spec.timeoutMs);
    req.once("response", (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      done(status === spec.expectStatus ? OK : { result: "bad_status", detail: `status ${status}` });
    });
    req.once("error", (err) => {
      done(failure(err));
    });
    req.end();
  });
}

/** The real probe for a check's type ("none" is never probed: the checker skips it). */
export const probeBackend: Probe = (address, spec) =>
  spec.type === "tcp" ? probeTcp(address, spec) : probeHttp(address, spec);
