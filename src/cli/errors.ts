// lbctl's single error boundary: every failure ends here and becomes a message on stderr and an
// exit status — 2 for usage errors (commander's and LB_ERR_USAGE), 1 for everything else.
import { CommanderError } from "commander";

import { LbError } from "../lib/errors.js";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Prefixes every line, so multi-line messages (config errors, one per line) stay attributable. */
function prefixed(message: string): string {
  return message
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => `lbctl: ${l}\n`)
    .join("");
}

export interface ErrorContext {
  /** "vip add": the command that was running, for the usage hint. */
  readonly command?: string | undefined;
  readonly write?: (text: string) => void;
}

/**
 * Reports `err` and returns the exit status. Commander has printed its own errors already
 * (through configureOutput); only their status is decided here.
 */
export function handleError(err: unknown, ctx: ErrorContext = {}): number {
  const write =
    ctx.write ??
    ((text: string): void => {
      process.stderr.write(text);
    });
  if (err instanceof CommanderError) {
    // --help, --version and `help CMD` come through here too, with exit code 0.
    return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (err instanceof LbError) {
    let text = prefixed(err.message);
    const usage = err.code === "LB_ERR_USAGE";
    const hint =
      err.hint ?? (usage ? `see 'lbctl ${ctx.command ? `${ctx.command} ` : ""}--help'` : undefined);
    if (hint !== undefined) text += `hint: ${hint}\n`;
    if (err.detail !== undefined && process.env["LBCTL_DEBUG"] === "1") text += `${err.detail}\n`;
    write(text);
    return usage ? EXIT_USAGE : EXIT_FAILURE;
  }
  // A bug, not an operator mistake: the stack goes along for the report.
  const message = err instanceof Error ? err.message : String(err);
  const frames = err instanceof Error ? (err.stack ?? "").split("\n").filter((l) => /^\s+at /.test(l)) : [];
  write(`lbctl: internal error: ${message}\n${frames.map((f) => `${f}\n`).join("")}`);
  return EXIT_FAILURE;
}
