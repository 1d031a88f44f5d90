// Control-socket commands → reconciler calls. Arguments are validated here (the CLI validates
// too, but the socket is an interface of its own).
import { z } from "zod";
import { DEFAULT_ENCAP_PORT, DEFAULT_WEIGHT } from "../core/types.js";
import type { Reconciler, BackendView } from "../core/reconciler.js";
import { formatVip, HASH_MODES, parseBackendAddress, parseVip } from "../core/vip-syntax.js";
import { LbError } from "../lib/errors.js";
import type { HealthDetail } from "../health/checker.js";
import type { PendingRegistration } from "../registry/server.js";
import type {
  BackendHealth,
  BackendInfo,
  ReloadResult,
  Request,
  StatsResult,
  StatusResult,
  VipInfo,
} from "./protocol.js";
import type { Handler } from "./control-server.js";

export interface DaemonContext {
  readonly reconciler: Reconciler;
  status(): StatusResult;
  stats(): StatsResult;
  /** Re-reads and applies the config file; throws (nothing applied) when it is invalid. */
  reload(): Promise<ReloadResult>;
  /** A backend's health checks (the checker's view); absent: none shown. */
  health?(vip: string, address: string): HealthDetail;
  /** Agents' REGISTERs still in their tunnel check (src/registry): listed as pending. */
  registering?(): readonly PendingRegistration[];
}

const vipArg = z.object({ vip: z.string() });
const backendArg = z.object({ vip: z.string(), backend: z.string() });
const schemas = {
  status: z.object({}),
  stats: z.object({}),
  reload: z.object({}),
  "vip.list": z.object({}),
  "vip.add": z.object({ vip: z.string(), hash: z.enum(HASH_MODES).optional() }),
  "vip.remove": vipArg,
  "backend.add": z.object({
    vip: z.string(),
    backend: z.string(),
    weight: z.number().int().min(0).max(65535).optional(),
    name: z.string().min(1).max(64).optional(),
  }),
  "backend.remove": backendArg,
  "backend.drain": backendArg,
  "backend.resume": backendArg,
  "backend.list": z.object({ vip: z.string().optional() }),
} as const;

function args<K extends keyof typeof schemas>(cmd: K, request: Request): z.output<(typeof schemas)[K]> {
  const parsed = schemas[cmd].safeParse(request);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LbError(
      "LB_ERR_REQUEST",
      `${cmd}: ${issue ? `${issue.path.join(".") || "request"}: ${issue.message}` : "bad arguments"}`,
    );
  }
  return parsed.data as z.output<(typeof schemas)[K]>;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

const healthInfo = (h: HealthDetail): BackendHealth => ({
  kind: h.kind,
  check: h.check,
  result: h.result,
  detail: h.detail,
  passes: h.passes,
  fails: h.fails,
  lastCheckAt: iso(h.lastCheckAt),
});

export function makeHandler(ctx: DaemonContext): Handler {
  const r = ctx.reconciler;
  // The contract's fields first, in their order (DESIGN.md), then the details.
  const info = (b: BackendView): BackendInfo => ({
    vip: b.vip,
    address: b.address,
    port: b.port,
    name: b.name,
    weight: b.weight,
    state: b.state,
    source: b.source,
    ...(ctx.health ? { health: healthInfo(ctx.health(b.vip, b.address)) } : {}),
    changedAt: new Date(b.changedAt).toISOString(),
    changeReason: b.changeReason,
  });
  return async (request) => {
    switch (request.cmd) {
      case "status":
        return { result: ctx.status() };
      case "stats":
        return { result: ctx.stats() };
      case "reload": {
        const result = await ctx.reload();
        return { result, ...(result.warnings.length ? { warnings: result.warnings } : {}) };
      }
      case "vip.list":
        return {
          result: r.listVips().map((v): VipInfo => ({ vip: v.vip, hash: v.hash, backends: v.backends })),
        };
      case "vip.add": {
        const a = args("vip.add", request);
        const v = await r.addVip(parseVip(a.vip), a.hash ?? "5tuple");
        return { result: { vip: v.vip, hash: v.hash, backends: v.backends } satisfies VipInfo };
      }
      case "vip.remove":
        await r.removeVip(parseVip(args("vip.remove", request).vip));
        return { result: null };
      case "backend.add": {
        const a = args("backend.add", request);
        const target = parseBackendAddress(a.backend);
        const added = await r.addBackend(parseVip(a.vip), {
          address: target.address,
          encapPort: target.encapPort ?? DEFAULT_ENCAP_PORT,
          weight: a.weight ?? DEFAULT_WEIGHT,
          ...(a.name !== undefined ? { name: a.name } : {}),
        });
        return { result: info(added.backend), ...(added.warning ? { warnings: [added.warning] } : {}) };
      }
      case "backend.remove": {
        const a = args("backend.remove", request);
        await r.removeBackend(parseVip(a.vip), parseBackendAddress(a.backend).address);
        return { result: null };
      }
      case "backend.drain":
      case "backend.resume": {
        const a = args(request.cmd, request);
        const view = await r.setDrained(
          parseVip(a.vip),
          parseBackendAddress(a.backend).address,
          request.cmd === "backend.drain",
        );
        return { result: info(view) };
      }
      case "backend.list": {
        const a = args("backend.list", request);
        const listed = r.listBackends(a.vip === undefined ? undefined : parseVip(a.vip)).map(info);
        const vip = a.vip === undefined ? undefined : formatVip(parseVip(a.vip));
        const registering = (ctx.registering?.() ?? [])
          .filter((p) => vip === undefined || p.vip === vip)
          .map((p): BackendInfo => ({
            vip: p.vip,
            address: p.address,
            port: p.port,
            name: p.name,
            weight: p.weight,
            state: "pending",
            source: "registered",
            ...(ctx.health ? { health: healthInfo(ctx.health(p.vip, p.address)) } : {}),
            changedAt: new Date(p.since).toISOString(),
            changeReason: p.reason,
          }));
        return { result: [...listed, ...registering] };
      }
      default:
        throw new LbError(
          "LB_ERR_REQUEST",
          `unknown command ${JSON.stringify((request as { cmd: unknown }).cmd)}`,
        );
    }
  };
}
