// The reconciler's run-time state on disk, so a daemon adopting pinned maps (hitless restart)
// knows every VIP id, backend index, weight, name, drain flag and origin. Written atomically
// (temporary file + rename) after every change; one file per network namespace and ifindex.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { LbError } from "../lib/errors.js";
import { LB_ABI_VERSION } from "../maps/abi.js";
import type { HashMode } from "./types.js";

export const STATE_VERSION = 1;

export interface BackendSnapshot {
  address: string;
  encapPort: number;
  index: number;
  weight: number;
  name: string;
  drained: boolean;
  origin: "config" | "runtime";
  /** Added later: absent in older files (then "static", changed at adoption). */
  source?: "static" | "registered";
  changedAt?: number;
  changeReason?: string;
}

export interface VipSnapshot {
  vip: string;
  id: number;
  hash: HashMode;
  origin: "config" | "runtime";
  backends: BackendSnapshot[];
}

export interface StateFile {
  version: number;
  /** LB_ABI_VERSION of the build that wrote the pinned maps. */
  abi: number;
  iface: string;
  /** The daemon serving it: a load refuses to adopt while that process lives. */
  pid: number;
  maglevSize: number;
  vips: VipSnapshot[];
}

/** $CAPLANCE_STATE_DIR (tests) else /var/lib/caplance; <netns inode>-<ifindex>.json. */
export function statePath(netnsInode: number, ifindex: number): string {
  const dir = process.env.CAPLANCE_STATE_DIR ?? "/var/lib/caplance";
  return join(dir, `${netnsInode}-${ifindex}.json`);
}

export function writeStateFile(path: string, state: StateFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, path); // readers see the old file or the new one, never half of one
}

/** A live `lbctl load` with that pid (a reused pid running something else does not count). */
export function loadProcessAlive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("load");
  } catch {
    return false;
  }
}

/** The pid of a running daemon that owns this state file, if any (whatever the file's version). */
export function liveOwner(path: string): number | undefined {
  try {
    const pid = (JSON.parse(readFileSync(path, "utf8")) as { pid?: unknown }).pid;
    return typeof pid === "number" && pid !== process.pid && loadProcessAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function removeStateFile(path: string): void {
  rmSync(path, { force: true });
}

/** The state a previous daemon left, checked; undefined when there is none. */
export function readStateFile(path: string, iface: string): StateFile | undefined {
  if (!existsSync(path)) return undefined;
  const hint = `clear the pinned data plane (this drops its flows) with: lbctl unload --iface ${iface}`;
  let state: StateFile;
  try {
    state = JSON.parse(readFileSync(path, "utf8")) as StateFile;
  } catch (err) {
    throw new LbError("LB_ERR_CONFIG", `state file ${path}: unreadable`, { hint, cause: err });
  }
  if (state.version !== STATE_VERSION || !Array.isArray(state.vips)) {
    throw new LbError(
      "LB_ERR_CONFIG",
      `state file ${path}: unknown format version ${String(state.version)}`,
      {
        hint,
      },
    );
  }
  if (state.abi !== LB_ABI_VERSION) {
    throw new LbError(
      "LB_ERR_UNSUPPORTED",
      `interface ${iface}: the pinned data plane uses ABI version ${String(state.abi)}, this build ${LB_ABI_VERSION}`,
      { hint },
    );
  }
  return state;
}
