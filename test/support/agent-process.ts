// `lbctl agent` as a foreground process in a lab backend's namespace, its output collected and
// its exit code awaited: how the lab tests run self-registering backends.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";

import type { Lab } from "../../src/lab/lab.js";
import { packageRoot } from "../../src/lib/paths.js";

const LBCTL = join(packageRoot(), "bin", "lbctl");

export interface AgentProcess {
  child: ChildProcess;
  /** stdout and stderr as they came. */
  log: string;
  exit: Promise<number>;
  /** Its agent socket (`lbctl agent status --socket`). */
  socket: string;
}

/** Starts `lbctl agent ARGS --socket SOCKET` on backend `host`. */
export function spawnAgent(
  lab: Lab,
  host: `b${number}`,
  socket: string,
  args: readonly string[],
): AgentProcess {
  const child = spawn(
    "nsenter",
    [`--net=${lab.ns(host)}`, process.execPath, LBCTL, "agent", ...args, "--socket", socket],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const agent: AgentProcess = {
    child,
    log: "",
    socket,
    exit: once(child, "exit").then(([code]) => (typeof code === "number" ? code : -1)),
  };
  child.stdout.on("data", (d: Buffer) => (agent.log += d.toString()));
  child.stderr.on("data", (d: Buffer) => (agent.log += d.toString()));
  return agent;
}
