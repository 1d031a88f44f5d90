// `lbctl config check FILE`: validate a config file without a daemon; every problem is reported
// as FILE:LINE:COL (exit 1).
import type { Command } from "commander";

import { out } from "../context.js";

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

export function register(program: Command): void {
  const config = program.command("config").description("work with config files");
  config
    .command("check")
    .description("validate a config file (YAML); exit 0 when it is valid")
    .argument("<FILE>")
    .action(async (file: string) => {
      const { loadConfigFile } = await import("../../config/load.js");
      const { vips } = loadConfigFile(file).desired;
      const backends = vips.reduce((n, v) => n + v.backends.length, 0);
      out(`${file}: ok (${plural(vips.length, "VIP", "VIPs")}, ${plural(backends, "backend", "backends")})`);
    });
}
