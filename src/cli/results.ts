// Checks on the daemon's results before lbctl renders them as text (`--json` passes them through
// untouched): a daemon of another version gets a clear error instead of "undefined" in a table.
import type { BackendInfo, NfqueueStats, StatsResult, StatusResult, VipInfo } from "../api/protocol.js";
import { LbError } from "../lib/errors.js";

type Rec = Record<string, unknown>;

function isRecord(v: unknown): v is Rec {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function unexpected(cmd: string, why: string): LbError {
  return new LbError("LB_ERR_DAEMON", `unexpected reply from the daemon to "${cmd}": ${why}`, {
    hint: "are lbctl and the running daemon the same version?",
  });
}

function hasFields(v: unknown, fields: Readonly<Record<string, "string" | "number">>): v is Rec {
  return isRecord(v) && Object.entries(fields).every(([k, t]) => typeof v[k] === t);
}

const VIP_FIELDS = { vip: "string", hash: "string", backends: "number" } as const;
const BACKEND_FIELDS = {
  vip: "string",
  address: "string",
  port: "number",
  name: "string",
  weight: "number",
  state: "string",
} as const;

export function asVipList(v: unknown): VipInfo[] {
  if (!Array.isArray(v)) throw unexpected("vip.list", "not an array");
  for (const x of v) if (!hasFields(x, VIP_FIELDS)) throw unexpected("vip.list", JSON.stringify(x));
  return v as VipInfo[];
}

export function asBackendInfo(v: unknown, cmd: string): BackendInfo {
  if (!hasFields(v, BACKEND_FIELDS)) throw unexpected(cmd, JSON.stringify(v));
  return v as unknown as BackendInfo;
}

export function asBackendList(v: unknown): BackendInfo[] {
  if (!Array.isArray(v)) throw unexpected("backend.list", "not an array");
  return v.map((x) => asBackendInfo(x, "backend.list"));
}

export type Counts = Record<string, { packets: number; bytes: number }>;

function isCounts(v: unknown): v is Counts {
  return isRecord(v) && Object.values(v).every((c) => hasFields(c, { packets: "number", bytes: "number" }));
}

function isNumbers(v: unknown): v is Record<string, number> {
  return isRecord(v) && Object.values(v).every((n) => typeof n === "number");
}

export function asStats(v: unknown): StatsResult {
  if (!isRecord(v) || !isCounts(v["vips"]) || !isCounts(v["backends"]) || !isNumbers(v["drops"])) {
    throw unexpected("stats", "expected {vips, backends, drops}");
  }
  // counters arrived after the contract's minimum: tolerate a daemon without them.
  const counters = isNumbers(v["counters"]) ? v["counters"] : {};
  const result: StatsResult = { vips: v["vips"], backends: v["backends"], drops: v["drops"], counters };
  const nfqueue = v["nfqueue"];
  if (isNumbers(nfqueue)) result.nfqueue = nfqueue as unknown as NfqueueStats;
  return result;
}

export function asStatus(v: unknown): Partial<StatusResult> & Rec {
  if (!hasFields(v, { iface: "string", mode: "string" }))
    throw unexpected("status", "expected {iface, mode, …}");
  return v;
}
