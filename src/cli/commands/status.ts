// `lbctl status [--json]`: the daemon's interface, mode, counts and settings; exit 0 = ready.
import type { Command } from "commander";

import type { SettingOrigin } from "../../api/protocol.js";
import { addSocketOption, out, printJson, requestOnce, type SocketOpts } from "../context.js";
import { asStatus } from "../results.js";

interface StatusOpts extends SocketOpts {
  json?: boolean;
}

function duration(seconds: number): string {
  const s = Math.floor(seconds);
  const parts: string[] = [];
  if (s >= 86400) parts.push(`${Math.floor(s / 86400)}d`);
  if (s >= 3600) parts.push(`${Math.floor((s % 86400) / 3600)}h`);
  if (s >= 60) parts.push(`${Math.floor((s % 3600) / 60)}m`);
  parts.push(`${s % 60}s`);
  return parts.join(" ");
}

function scalar(v: unknown): string {
  if (v === null || v === undefined) return "-";
  return typeof v === "string" ? v : JSON.stringify(v);
}

function isSetting(v: unknown): v is SettingOrigin {
  return typeof v === "object" && v !== null && "value" in v && "from" in v;
}

/** key: value lines; known fields first in a fixed order, then whatever else the daemon reports. */
export function formatStatus(status: Record<string, unknown>): string {
  const lines: string[] = [];
  const done = new Set<string>();
  const line = (label: string, value: string): void => {
    lines.push(`${label}: ${value}`);
  };
  const take = (key: string): unknown => {
    done.add(key);
    return status[key];
  };
  line(
    "iface",
    scalar(take("iface")) +
      (typeof status["ifindex"] === "number" ? ` (ifindex ${scalar(take("ifindex"))})` : ""),
  );
  const reason = status["modeReason"];
  line(
    "mode",
    scalar(take("mode")) +
      (typeof reason === "string" && reason !== "" ? ` (${scalar(take("modeReason"))})` : ""),
  );
  for (const key of ["pid", "socket", "config", "vips", "backends"])
    if (key in status) line(key, scalar(take(key)));
  const up = status["uptimeSeconds"];
  if (typeof up === "number") line("uptime", duration(take("uptimeSeconds") as number));
  const settings = status["settings"];
  done.add("settings");
  for (const [key, value] of Object.entries(status)) if (!done.has(key)) line(key, scalar(value));
  if (typeof settings === "object" && settings !== null) {
    for (const [key, s] of Object.entries(settings)) {
      line(`setting ${key}`, isSetting(s) ? `${scalar(s.value)} (${s.from})` : scalar(s));
    }
  }
  return lines.join("\n") + "\n";
}

export function register(program: Command): void {
  addSocketOption(
    program
      .command("status")
      .description("show the daemon's state; exits 0 once it is ready (attached, config applied)")
      .option("--json", "print the result as JSON"),
  ).action(async (opts: StatusOpts) => {
    const result = await requestOnce(opts, { cmd: "status" });
    if (opts.json === true) {
      printJson(result);
      return;
    }
    out(formatStatus(asStatus(result)));
  });
}
