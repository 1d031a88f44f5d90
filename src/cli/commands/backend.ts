// `lbctl backend add | remove | drain | resume | list`: a VIP's backends, identified by address.
import type { Command } from "commander";

import type { BackendInfo } from "../../api/protocol.js";
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
    ]);
    const cols = [
      { title: "VIP" },
      { title: "ADDRESS" },
      { title: "PORT", align: "right" },
      { title: "NAME" },
      { title: "WEIGHT", align: "right" },
      { title: "STATE" },
    ] as const;
    out(formatTable(cols, rows));
  });
}
