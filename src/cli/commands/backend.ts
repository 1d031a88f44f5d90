// `lbctl backend add | remove | drain | resume | list`: a VIP's backends, identified by address.
import type { Command } from "commander";

import type { BackendHealth, BackendInfo } from "../../api/protocol.js";
import { addSocketOption, out, printJson, requestOnce, type SocketOpts } from "../context.js";
import { canonicalBackend, canonicalVip, MAX_WEIGHT, parseBackendName, parseWeight } from "../parse.js";
import { asBackendInfo, asBackendList } from "../results.js";
import { formatTable } from "../table.js";

interface AddOpts extends SocketOpts {
  weight?: number;
  name?: string;
}

interface ListOpts extends SocketOpts {
  json?: boolean;
}

/** "http:80/ ok 12x", "tcp:80 refused 3x" (the latest result, how many in a row), "-" unchecked. */
function healthCell(h: BackendHealth | undefined): string {
  if (!h || h.kind === "none" || h.check === null) return "-";
  if (h.result === null) return `${h.check} (not probed yet)`;
  const inRow = h.result === "success" ? h.passes : h.fails;
  return `${h.check} ${h.result === "success" ? "ok" : h.result} ${inRow}x`;
}

const REASON_WIDTH = 60;

/** "2025-11-23T15:13:02Z": the ISO time to the second. */
const changedCell = (iso: string | undefined): string => iso?.replace(/\.\d+Z$/, "Z") ?? "-";

function reasonCell(reason: string | undefined): string {
  if (reason === undefined) return "-";
  return reason.length <= REASON_WIDTH ? reason : `${reason.slice(0, REASON_WIDTH - 3)}...`;
}

function describe(b: BackendInfo): string {
  const name = b.name === "" ? "" : ` "${b.name}"`;
  const host = b.address.includes(":") ? `[${b.address}]` : b.address;
  return `backend ${host}:${b.port}${name} of ${b.vip} (weight ${b.weight}, ${b.state})`;
}

const ADDR_HELP =
  "IPv4 or IPv6 address, optionally with the encap port: 198.18.0.11:6080, [2001:db8::11]:6080";

/** remove / drain / resume: same arguments, one request, one confirmation line. */
function registerSimple(
  backend: Command,
  verb: "remove" | "drain" | "resume",
  description: string,
  done: string,
): void {
  addSocketOption(
    backend.command(verb).description(description).argument("<VIP>").argument("<ADDR>", ADDR_HELP),
  ).action(async (vipText: string, addrText: string, opts: SocketOpts) => {
    const vip = canonicalVip(vipText);
    const addr = canonicalBackend(addrText);
    await requestOnce(opts, { cmd: `backend.${verb}`, vip, backend: addr });
    out(`backend ${addr} of ${vip} ${done}`);
  });
}

export function register(program: Command): void {
  const backend = program.command("backend").description("add, remove, drain, resume and list backends");

  addSocketOption(
    backend
      .command("add")
      .description(
        "add a backend to a VIP; returns once it is in the data plane (or pending, with a warning)",
      )
      .argument("<VIP>", "e.g. tcp/198.18.1.1:80")
      .argument("<ADDR>", `${ADDR_HELP} (default encap port 6080)`)
      .option(
        "--weight <n>",
        `Maglev weight, integer 0..${MAX_WEIGHT} (0 = no new flows; default 1)`,
        parseWeight,
      )
      .option("--name <name>", "a label for lists, logs and metrics", parseBackendName),
  ).action(async (vipText: string, addrText: string, opts: AddOpts) => {
    const vip = canonicalVip(vipText);
    const addr = canonicalBackend(addrText);
    const result = await requestOnce(opts, {
      cmd: "backend.add",
      vip,
      backend: addr,
      ...(opts.weight === undefined ? {} : { weight: opts.weight }),
      ...(opts.name === undefined ? {} : { name: opts.name }),
    });
    out(`${describe(asBackendInfo(result, "backend.add"))} added`);
  });

  registerSimple(backend, "remove", "remove a backend; its flows move to the others", "removed");
  registerSimple(backend, "drain", "stop sending new flows to a backend; existing flows stay", "draining");
  registerSimple(backend, "resume", "undo drain: the backend takes new flows again", "resumed");

  addSocketOption(
    backend
      .command("list")
      .description("list backends, of one VIP or of all")
      .argument("[VIP]")
      .option("--json", "print the result as JSON"),
  ).action(async (vipText: string | undefined, opts: ListOpts) => {
    const cmd = vipText === undefined ? {} : { vip: canonicalVip(vipText) };
    const result = await requestOnce(opts, { cmd: "backend.list", ...cmd });
    if (opts.json === true) {
      printJson(result);
      return;
    }
    const rows = asBackendList(result).map((b) => [
      b.vip,
      b.address,
      String(b.port),
      b.name === "" ? "-" : b.name,
      String(b.weight),
      b.state,
      b.source ?? "-",
      healthCell(b.health),
      changedCell(b.changedAt),
      reasonCell(b.changeReason),
    ]);
    const cols = [
      { title: "VIP" },
      { title: "ADDRESS" },
      { title: "PORT", align: "right" },
      { title: "NAME" },
      { title: "WEIGHT", align: "right" },
      { title: "STATE" },
      { title: "SOURCE" },
      { title: "HEALTH" },
      { title: "CHANGED" },
      { title: "REASON" },
    ] as const;
    out(formatTable(cols, rows));
  });
}
