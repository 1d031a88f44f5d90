// Plumbing shared by lbctl's command modules: the control socket's path (--socket, else
// $LBCTL_SOCKET, else the default), one request per invocation, stdout/stderr output and the
// exit status a command asks for without throwing.
import type { Command as CommanderCommand } from "commander";

import { ControlClient, type Reply } from "../api/client.js";
import { DEFAULT_SOCKET, type Command } from "../api/protocol.js";

export const SOCKET_ENV = "LBCTL_SOCKET";

let exitStatus = 0;

/** For commands whose outcome is a status rather than an error (load, unload). */
export function setExitStatus(code: number): void {
  exitStatus = code;
}

export function getExitStatus(): number {
  return exitStatus;
}

/** --socket, else $LBCTL_SOCKET (when non-empty), else DEFAULT_SOCKET. */
export function resolveSocket(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined) return flag;
  const fromEnv = env[SOCKET_ENV];
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : DEFAULT_SOCKET;
}

export function addSocketOption(cmd: CommanderCommand): CommanderCommand {
  return cmd.option(
    "--socket <path>",
    `daemon control socket (default: $${SOCKET_ENV}, else ${DEFAULT_SOCKET})`,
  );
}

export interface SocketOpts {
  socket?: string;
}

/** Connects, runs fn, always closes. */
export async function withClient<T>(opts: SocketOpts, fn: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(resolveSocket(opts.socket));
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** One request; its warnings go to stderr. */
export async function requestOnce(opts: SocketOpts, command: Command): Promise<unknown> {
  const reply: Reply = await withClient(opts, (client) => client.request(command));
  printWarnings(reply.warnings);
  return reply.result;
}

export function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** `--json`: exactly the protocol result, one line. */
export function printJson(value: unknown): void {
  out(JSON.stringify(value));
}

export function printWarnings(warnings: readonly string[]): void {
  for (const w of warnings) process.stderr.write(`lbctl: warning: ${w}\n`);
}
