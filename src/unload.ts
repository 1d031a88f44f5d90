// `lbctl unload --iface IF`: removes what Caplance put on IF — its XDP program (native or
// generic; pinned link and maps under bpffs, state file), the NFQUEUE fallback's iptables chain and a stale control socket — e.g. after a crashed daemon. Idempotent: nothing
// loaded is success. Refuses to touch another program's XDP, and a live daemon's socket.
import { execFileSync } from "node:child_process";
import { existsSync, unlinkSync } from "node:fs";
import { socketIsLive } from "./api/control-server.js";
import { DEFAULT_SOCKET } from "./api/protocol.js";
import type { UnloadOptions } from "./cli/daemon-options.js";
import { removeNfqRules } from "./dataplane/nfq-rules.js";
import { detachXdp, queryXdp } from "./dataplane/xdp.js";
import { netnsInode, pinDir, unpinAll } from "./dataplane/pinned-xdp.js";
import { liveOwner, removeStateFile, statePath } from "./core/state-file.js";
import { LbError } from "./lib/errors.js";
import { getLink } from "./net/links.js";

const OUR_PROGRAMS = new Set(["lb_balancer"]);

/** The name the kernel holds for a program id (bpftool, which setup installs). */
function programName(id: number): string | undefined {
  try {
    const out = execFileSync("bpftool", ["-j", "prog", "show", "id", String(id)], { encoding: "utf8" });
    return (JSON.parse(out) as { name?: string }).name;
  } catch {
    return undefined;
  }
}

export async function runUnload(opts: UnloadOptions): Promise<number> {
  const socket = opts.socket ?? process.env.LBCTL_SOCKET ?? DEFAULT_SOCKET;
  if (await socketIsLive(socket)) {
    throw new LbError("LB_ERR_EXISTS", `a daemon is running (it listens on ${socket})`, {
      hint: "stop it with SIGINT/SIGTERM (Ctrl-C in its terminal); it removes its data plane itself",
    });
  }
  const link = await getLink(opts.iface);
  // A daemon serving IF through another socket: removing its data plane under it would leave it
  // writing maps nobody reads (or rules that no longer exist).
  const owner = liveOwner(statePath(netnsInode(), link.ifindex));
  if (owner !== undefined) {
    throw new LbError("LB_ERR_EXISTS", `a daemon serves ${link.name} (lbctl load, pid ${owner})`, {
      hint: "stop it with SIGINT/SIGTERM; it removes its data plane itself",
    });
  }
  if (existsSync(socket)) unlinkSync(socket);
  await removeNfqRules(link.name); // the NFQUEUE fallback's iptables chain, if any
  // Pinned maps and link (hitless restart): unpinning the link detaches the program.
  unpinAll(pinDir(link.ifindex));
  removeStateFile(statePath(netnsInode(), link.ifindex));
  const target = { ifindex: link.ifindex, ifname: link.name };
  const state = queryXdp(target);
  for (const [mode, id] of [
    ["native", state.nativeProgId],
    ["generic", state.genericProgId],
  ] as const) {
    if (id === 0) continue;
    const name = programName(id);
    if (name === undefined || !OUR_PROGRAMS.has(name)) {
      throw new LbError(
        "LB_ERR_EXISTS",
        `interface ${link.name} runs XDP program ${name ?? "?"} (id ${id}), not Caplance's`,
        {
          hint: `leave it, or remove it yourself: ip link set dev ${link.name} ${mode === "native" ? "xdpdrv" : "xdpgeneric"} off`,
        },
      );
    }
    detachXdp(target, mode);
  }
  return 0;
}
