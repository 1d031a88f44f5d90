// lbctl: the table of commands (one module each under commands/), commander set up to report
// usage errors with exit 2, and the single error boundary (errors.ts) around the whole run.
import { Command } from "commander";

import { DEFAULT_SOCKET } from "../api/protocol.js";
import { packageVersion } from "../lib/paths.js";
import * as agent from "./commands/agent.js";
import * as backend from "./commands/backend.js";
import * as config from "./commands/config.js";
import * as load from "./commands/load.js";
import * as reload from "./commands/reload.js";
import * as stats from "./commands/stats.js";
import * as status from "./commands/status.js";
import * as unload from "./commands/unload.js";
import * as vip from "./commands/vip.js";
import { getExitStatus, SOCKET_ENV } from "./context.js";
import { handleError } from "./errors.js";

interface CommandModule {
  register(program: Command): void;
}

/** In the order `lbctl --help` lists them. */
const COMMANDS: readonly CommandModule[] = [load, unload, vip, backend, stats, status, reload, config, agent];

const HELP_FOOTER = `
Daemon commands take --socket PATH, else $${SOCKET_ENV}, else ${DEFAULT_SOCKET}.
Exit status: 0 success, 1 failure (message on stderr), 2 usage error.
Details: docs/cli.md`;

/** "vip add" for the `add` under `vip`; "" for the program itself. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command = cmd; c.parent !== null; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** After every error commander reports, name the help that explains the command's usage. */
function addUsageHints(cmd: Command): void {
  const path = commandPath(cmd);
  cmd.showHelpAfterError(`hint: see 'lbctl ${path === "" ? "" : `${path} `}--help'`);
  for (const sub of cmd.commands) addUsageHints(sub);
}

export function buildProgram(): Command {
  const program = new Command("lbctl")
    .description("Caplance: XDP L4 load balancer — daemon and control")
    .version(packageVersion(), "-V, --version")
    // Subcommands inherit both: commander throws instead of exiting with 1, and its messages
    // read "lbctl: …" like every other error.
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => {
        write(`lbctl: ${str.replace(/^error: /, "")}`);
      },
    });
  for (const m of COMMANDS) m.register(program);
  program.addHelpText("after", HELP_FOOTER);
  addUsageHints(program);
  return program;
}

/** Runs lbctl with process.argv-style arguments; resolves to the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  let running: string | undefined;
  try {
    const program = buildProgram();
    program.hook("preAction", (_program, action) => {
      running = commandPath(action);
    });
    await program.parseAsync([...argv]);
    return getExitStatus();
  } catch (err) {
    return handleError(err, { command: running });
  }
}
