// The iptables(-nft) rules that feed the NFQUEUE worker: a chain of Caplance's own (CAPLANCE,
// table raw, so queued VIP packets skip conntrack) jumped to from PREROUTING for the balancer's
// interface, one rule per VIP address and protocol. This kernel has no nftables queue
// statement (DESIGN.md), hence iptables. --queue-bypass is the fail-open choice: with no
// worker bound to the queue, VIP packets continue through the stack as if Caplance were not
// there, instead of being dropped; other traffic never enters the queue at all.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { LbError } from "../lib/errors.js";

const run = promisify(execFile);

export const NFQ_CHAIN = "CAPLANCE";
const TABLE = "raw";

export interface NfqTarget {
  /** The VIP address as text (IPv4 or IPv6). */
  readonly address: string;
  readonly family: 4 | 6;
  readonly proto: "tcp" | "udp";
}

type Tool = "iptables" | "ip6tables";

async function ipt(tool: Tool, args: string[]): Promise<{ ok: boolean; stderr: string }> {
  try {
    await run(tool, ["-w", "5", "-t", TABLE, ...args]);
    return { ok: true, stderr: "" };
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string };
    if (e.code === "ENOENT") {
      throw new LbError("LB_ERR_NATIVE", `${tool} is not installed (needed by --mode nfqueue)`, {
        hint: "install it: npm run setup (apt package iptables)",
      });
    }
    return { ok: false, stderr: e.stderr ?? String(err) };
  }
}

async function must(tool: Tool, args: string[]): Promise<void> {
  const r = await ipt(tool, args);
  if (!r.ok) {
    throw new LbError("LB_ERR_NATIVE", `${tool} -t ${TABLE} ${args.join(" ")} failed: ${r.stderr.trim()}`, {
      hint: "NFQUEUE needs the kernel's nfnetlink_queue and xt_NFQUEUE (modprobe nfnetlink_queue)",
    });
  }
}

function queueArgs(first: number, count: number): string[] {
  return count > 1
    ? ["--queue-balance", `${first}:${first + count - 1}`, "--queue-bypass"]
    : ["--queue-num", String(first), "--queue-bypass"];
}

/**
 * Makes the chain hold exactly one rule per target (idempotent: flushed and refilled) and makes
 * sure PREROUTING on iface jumps to it, for both families.
 */
export async function installNfqRules(
  iface: string,
  targets: readonly NfqTarget[],
  firstQueue: number,
  queues: number,
): Promise<void> {
  for (const [tool, family] of [
    ["iptables", 4],
    ["ip6tables", 6],
  ] as const) {
    await ipt(tool, ["-N", NFQ_CHAIN]); // exists already: fine
    await must(tool, ["-F", NFQ_CHAIN]);
    for (const t of targets.filter((x) => x.family === family)) {
      await must(tool, [
        "-A",
        NFQ_CHAIN,
        "-d",
        t.address,
        "-p",
        t.proto,
        "-j",
        "NFQUEUE",
        ...queueArgs(firstQueue, queues),
      ]);
    }
    const jump = ["PREROUTING", "-i", iface, "-j", NFQ_CHAIN];
    if (!(await ipt(tool, ["-C", ...jump])).ok) await must(tool, ["-I", ...jump]);
  }
}

/** Removes the jump from PREROUTING (for iface, or any interface when undefined) and the chain.
 * Idempotent: nothing installed is success. */
export async function removeNfqRules(iface?: string): Promise<void> {
  for (const tool of ["iptables", "ip6tables"] as const) {
    const listed = await ipt(tool, ["-S", "PREROUTING"]).catch(() => ({ ok: false, stderr: "" }));
    if (!listed.ok) continue;
    // Delete every jump to the chain (a crashed daemon may have left one per interface).
    for (let i = 0; i < 64; i++) {
      const args = iface
        ? ["-D", "PREROUTING", "-i", iface, "-j", NFQ_CHAIN]
        : ["-D", "PREROUTING", "-j", NFQ_CHAIN];
      if (!(await ipt(tool, args)).ok) break;
    }
    if (!iface) await deleteJumpsAnyIface(tool);
    await ipt(tool, ["-F", NFQ_CHAIN]);
    await ipt(tool, ["-X", NFQ_CHAIN]);
  }
}

/** Jumps with any -i (iptables -S prints each rule as the arguments that add it). */
async function deleteJumpsAnyIface(tool: Tool): Promise<void> {
  let out = "";
  try {
    out = (await run(tool, ["-w", "5", "-t", TABLE, "-S", "PREROUTING"])).stdout;
  } catch {
    return;
  }
  for (const line of out.split("\n")) {
    if (!line.startsWith("-A PREROUTING") || !line.includes(`-j ${NFQ_CHAIN}`)) continue;
    await ipt(tool, ["-D", ...line.slice(3).trim().split(/\s+/)]);
  }
}
