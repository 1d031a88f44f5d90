// `lbctl unload --iface IF`: remove everything Caplance put on IF (src/unload.ts); idempotent.
import type { Command } from "commander";

import { addSocketOption, setExitStatus, type SocketOpts } from "../context.js";

interface UnloadOpts extends SocketOpts {
  iface: string;
}

export function register(program: Command): void {
  addSocketOption(
    program
      .command("unload")
      .description("remove everything Caplance put on an interface (exit 0 when nothing is loaded)")
      .requiredOption("--iface <if>", "interface to clean up"),
  ).action(async (opts: UnloadOpts) => {
    const { runUnload } = await import("../../unload.js");
    setExitStatus(
      await runUnload({ iface: opts.iface, ...(opts.socket === undefined ? {} : { socket: opts.socket }) }),
    );
  });
}
