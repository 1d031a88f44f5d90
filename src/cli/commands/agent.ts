// `lbctl agent --lb IP[:PORT] --vip VIP --iface IF …`: run a self-registering backend in the
// foreground (src/agent/agent.ts); `lbctl agent pause|resume|deregister|status` talk to a
// running one over its socket (--socket, else $LBCTL_AGENT_SOCKET, else /run/caplance/agent.sock).
import { Command, InvalidArgumentError, type Command as CommanderCommand } from "commander";

import { ControlClient } from "../../api/client.js";
import { DEFAULT_AGENT_SOCKET, type Command as ApiCommand } from "../../api/protocol.js";
import { out, printJson, printWarnings, setExitStatus } from "../context.js";
import { integerIn, parseBackendName, parseWeight } from "../parse.js";
import type { AgentFlags } from "../../agent/options.js";

const AGENT_SOCKET_ENV = "LBCTL_AGENT_SOCKET";

/** The flags, as resolveAgentOptions takes them; commander's collect() gives vip [] by default. */
type RunOpts = AgentFlags & { vip: string[] };

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n <= 0) {
    throw new InvalidArgumentError("expected a positive number of seconds.");
  }
  return n;
}

function agentSocket(flag: string | undefined): string {
  if (flag !== undefined) return flag;
  const env = process.env[AGENT_SOCKET_ENV];
  return env !== undefined && env !== "" ? env : DEFAULT_AGENT_SOCKET;
}

async function agentRequest(socketFlag: string | undefined, cmd: ApiCommand): Promise<unknown> {
  const client = await ControlClient.connect(agentSocket(socketFlag));
  try {
    const reply = await client.request(cmd, 60_000);
    printWarnings(reply.warnings);
    return reply.result;
  } finally {
    client.close();
  }
}

function describe(result: unknown): string {
  if (typeof result !== "object" || result === null) return String(result);
  const r = result as Record<string, unknown>;
  const lines = [
    `name: ${String(r["name"])}`,
    `lb: ${String(r["lb"])}`,
    `vips: ${Array.isArray(r["vips"]) ? r["vips"].join(", ") : "-"}`,
    `address: ${String(r["address"])} (iface ${String(r["iface"])}, decap ${String(r["decap"])})`,
    `state: ${String(r["state"])}${r["paused"] === true ? " (paused)" : ""}${r["draining"] === true ? " (stopping)" : ""}`,
    `established connections: ${String(r["establishedConnections"])}`,
    `last heartbeat: ${typeof r["lastHeartbeatAt"] === "string" ? r["lastHeartbeatAt"] : "-"}`,
  ];
  const counters = r["decapCounters"];
  if (typeof counters === "object" && counters !== null) {
    const c = counters as Record<string, unknown>;
    const drops =
      typeof c["drops"] === "object" && c["drops"] !== null ? c["drops"] : { malformed: c["malformed"] };
    const dropText = Object.entries(drops as Record<string, unknown>)
      .filter(([, n]) => typeof n === "number" && n > 0)
      .map(([k, n]) => `${k} ${String(n)}`)
      .join(", ");
    lines.push(
      `decap: rx ${String(c["rx"])}, decapsulated ${String(c["decap"])}, dropped: ${dropText || "none"}`,
    );
  }
  if (typeof r["lastError"] === "string") lines.push(`last error: ${r["lastError"]}`);
  return lines.join("\n");
}

function subcommand(
  agent: CommanderCommand,
  verb: "pause" | "resume" | "deregister" | "status",
  description: string,
): void {
  const cmd = new Command(verb).description(description).option("--socket <path>", "agent socket");
  if (verb === "status") cmd.option("--json", "print the result as JSON");
  cmd.action(async (opts: { socket?: string; json?: boolean }, self: CommanderCommand) => {
    const all = self.optsWithGlobals<{ socket?: string; json?: boolean }>();
    const result = await agentRequest(opts.socket ?? all.socket, { cmd: `agent.${verb}` });
    if (verb === "status" && (opts.json ?? all.json) === true) printJson(result);
    else if (verb === "status") out(describe(result));
    else out(`agent: ${verb === "deregister" ? "deregistering and stopping" : `${verb}d`}`);
  });
  agent.addCommand(cmd);
}

export function register(program: CommanderCommand): void {
  const agent = program
    .command("agent")
    .description("run a backend that registers itself with the daemon (or control a running one)")
    .option("--lb <ip[:port]>", "the daemon's registration address (port default 7070)")
    .option("--vip <vip>", "VIP to join, e.g. tcp/198.18.1.1:80 (repeatable)", collect, [])
    .option("--iface <if>", "interface the encapsulated traffic arrives on")
    .option("--name <name>", "a label for lists, logs and metrics", parseBackendName)
    .option("--address <ip>", "this backend's address (default: the interface's primary address)")
    .option("--weight <n>", "Maglev weight 0..65535 (default 1)", parseWeight)
    .option("--encap-port <p>", "UDP port of the tunnel (default 6080)", integerIn(1, 65535))
    .option("--secret-file <f>", "the shared registration secret (mode 0600; required)")
    .option("--socket <path>", `agent socket (default: $${AGENT_SOCKET_ENV}, else ${DEFAULT_AGENT_SOCKET})`)
    .option("--drain-timeout <s>", "on SIGTERM, wait this long for connections to end (default 30)", seconds)
    .option("--health-interval <s>", "heartbeat interval (default 20)", seconds)
    .option(
      "--decap <mode>",
      "auto (XDP native, else generic, else TUN), xdp (native, else generic), tun, native, generic, none",
    )
    .option("--config <file>", "YAML file with the same options (snake_case keys); flags win")
    .option("--log-level <level>", "fatal, error, warn, info, debug or trace (default info)")
    .action(async (opts: RunOpts) => {
      const { resolveAgentOptions } = await import("../../agent/options.js");
      const { runAgent } = await import("../../agent/agent.js");
      const { vip, ...rest } = opts;
      setExitStatus(await runAgent(resolveAgentOptions({ ...rest, ...(vip.length > 0 ? { vip } : {}) })));
    });
  subcommand(agent, "pause", "drain: no new connections, existing ones continue");
  subcommand(agent, "resume", "take new connections again");
  subcommand(agent, "deregister", "leave the VIPs now and stop the agent (no drain wait)");
  subcommand(agent, "status", "what the agent is doing");
}
