// `lbctl reload`: the daemon re-reads its config file (as on SIGHUP). An invalid file changes
// nothing and its errors come back with file:line; run-time additions are kept.
import type { Command } from "commander";

import type { ReloadResult } from "../../api/protocol.js";
import { addSocketOption, out, printJson, requestOnce, type SocketOpts } from "../context.js";

interface ReloadOpts extends SocketOpts {
  json?: boolean;
}

export function register(program: Command): void {
  addSocketOption(
    program
      .command("reload")
      .description("re-read the daemon's config file and apply the difference (also on SIGHUP)")
      .option("--json", "print the result as JSON"),
  ).action(async (opts: ReloadOpts) => {
    const result = (await requestOnce(opts, { cmd: "reload" })) as ReloadResult;
    if (opts.json === true) {
      printJson(result);
      return;
    }
    const list = (items: string[]): string => (items.length ? items.join(", ") : "-");
    out(
      [
        `reloaded ${result.config}`,
        `added: ${list(result.added)}`,
        `removed: ${list(result.removed)}`,
        `changed: ${list(result.changed)}`,
      ].join("\n"),
    );
  });
}
