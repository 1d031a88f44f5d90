// `lbctl vip add VIP [--hash MODE] | vip remove VIP | vip list [--json]`.
import { Option, type Command } from "commander";

import { HASH_MODES } from "../../core/vip-syntax.js";
import type { HashMode } from "../../core/types.js";
import { addSocketOption, out, printJson, requestOnce, type SocketOpts } from "../context.js";
import { canonicalVip } from "../parse.js";
import { asVipList } from "../results.js";
import { formatTable } from "../table.js";

interface AddOpts extends SocketOpts {
  hash?: HashMode;
}

interface ListOpts extends SocketOpts {
  json?: boolean;
}

export function register(program: Command): void {
  const vip = program.command("vip").description("add, remove and list virtual services");

  addSocketOption(
    vip
      .command("add")
      .description("add a virtual service (PROTO/ADDR:PORT, port 0 = all ports)")
      .argument("<VIP>", "e.g. tcp/198.18.1.1:80 or udp/[2001:db8:1::1]:53")
      .addOption(new Option("--hash <mode>", "flow hash (default 5tuple)").choices(HASH_MODES)),
  ).action(async (text: string, opts: AddOpts) => {
    const v = canonicalVip(text);
    await requestOnce(opts, {
      cmd: "vip.add",
      vip: v,
      ...(opts.hash === undefined ? {} : { hash: opts.hash }),
    });
    out(`vip ${v} added`);
  });

  addSocketOption(
    vip.command("remove").description("remove a virtual service and its backends").argument("<VIP>"),
  ).action(async (text: string, opts: SocketOpts) => {
    const v = canonicalVip(text);
    await requestOnce(opts, { cmd: "vip.remove", vip: v });
    out(`vip ${v} removed`);
  });

  addSocketOption(
    vip.command("list").description("list virtual services").option("--json", "print the result as JSON"),
  ).action(async (opts: ListOpts) => {
    const result = await requestOnce(opts, { cmd: "vip.list" });
    if (opts.json === true) {
      printJson(result);
      return;
    }
    const rows = asVipList(result).map((v) => [v.vip, v.hash, String(v.backends)]);
    out(formatTable([{ title: "VIP" }, { title: "HASH" }, { title: "BACKENDS", align: "right" }], rows));
  });
}
