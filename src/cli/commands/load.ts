// `lbctl load --iface IF …`: runs the daemon in the foreground (src/daemon.ts) until
// SIGINT/SIGTERM; its return value is the exit status.
import { Option, type Command } from "commander";

import { DEFAULT_SOCKET } from "../../api/protocol.js";
import { setExitStatus, SOCKET_ENV } from "../context.js";
import { DAEMON_MODES, type DaemonMode, type DaemonOptions } from "../daemon-options.js";
import { collectSource, parseListenAddress, parsePortNumber } from "../parse.js";

interface LoadOpts {
  iface: string;
  config?: string;
  mode: DaemonMode;
  source: string[];
  socket?: string;
  secretFile?: string;
  registrationPort?: number;
  api?: string;
  apiTokenFile?: string;
  keep?: boolean;
  once?: boolean;
  logLevel?: string;
  logFile?: string;
}

export function toDaemonOptions(o: LoadOpts): DaemonOptions {
  return {
    iface: o.iface,
    mode: o.mode,
    sources: o.source,
    keep: o.keep === true,
    ...(o.once === true ? { once: true } : {}),
    ...(o.config === undefined ? {} : { config: o.config }),
    ...(o.socket === undefined ? {} : { socket: o.socket }),
    ...(o.secretFile === undefined ? {} : { secretFile: o.secretFile }),
    ...(o.registrationPort === undefined ? {} : { registrationPort: o.registrationPort }),
    ...(o.api === undefined ? {} : { api: o.api }),
    ...(o.apiTokenFile === undefined ? {} : { apiTokenFile: o.apiTokenFile }),
    ...(o.logLevel === undefined ? {} : { logLevel: o.logLevel }),
    ...(o.logFile === undefined ? {} : { logFile: o.logFile }),
  };
}

export function register(program: Command): void {
  program
    .command("load")
    .description("load the data plane on an interface and run the daemon in the foreground")
    .requiredOption("--iface <if>", "interface to balance on")
    .option("--config <file>", "YAML config (VIPs, backends, settings)")
    .addOption(
      new Option("--mode <mode>", "XDP native, generic, the NFQUEUE fallback, or auto-detect")
        .choices(DAEMON_MODES)
        .default("auto"),
    )
    .option("--source <ip>", "outer source address, one per family (repeatable)", collectSource, [])
    .option(
      "--socket <path>",
      `control socket to listen on (default: $${SOCKET_ENV}, else ${DEFAULT_SOCKET})`,
    )
    .option("--secret-file <f>", "shared secret for agent registration (turns the listener on)")
    .option("--registration-port <n>", "registration listener port (default 7070)", parsePortNumber)
    .option(
      "--api <addr:port>",
      "REST + Prometheus /metrics listener (default 127.0.0.1:7071)",
      parseListenAddress,
    )
    .option("--api-token-file <f>", "bearer token (mode 0600 file) that turns REST API changes on")
    .option("--keep", "on SIGINT/SIGTERM leave the data plane forwarding; the next load adopts it")
    .option("--once", "apply the config, leave the data plane pinned and forwarding, and exit 0")
    // Checked by the daemon (LB_ERR_USAGE): the list lives in config/schema.ts, which pulls in zod,
    // too slow to load for every lbctl invocation.
    .option("--log-level <level>", "fatal, error, warn, info, debug or trace (default info)")
    .option("--log-file <f>", "log to this file instead of stderr")
    .action(async (opts: LoadOpts) => {
      // Loaded on demand: the client commands never pull in libbpf, pino or the data plane.
      const { runDaemon } = await import("../../daemon.js");
      setExitStatus(await runDaemon(toDaemonOptions(opts)));
    });
}
