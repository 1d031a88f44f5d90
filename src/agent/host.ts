// What a DSR backend needs from its host (docs/backend-setup.md), done by `lbctl agent` and
// undone on stop: lb_decap on the interface (native, else generic), each VIP on lo, ARP sysctls
// so the VIP is never answered for, rp_filter 0/2, and advmss on the routes back to clients so
// encapsulated segments fit the path MTU. Only what this run changed is recorded and restored.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import type { Logger } from "pino";

import { DecapLoader } from "../dataplane/decap-loader.js";
import { addressToString, AF_INET, type IpAddress } from "../lib/addr.js";
import { LbError } from "../lib/errors.js";
import type { XdpMode } from "../dataplane/xdp.js";

/** Outer IPv4/IPv6 + UDP bytes the balancer adds (DESIGN.md wire format). */
const ENCAP_OVERHEAD = { 4: 28, 6: 48 } as const;

export interface HostPlan {
  readonly iface: string;
  readonly ifindex: number;
  readonly mtu: number;
  /** The backend's own address (outer destination of encapsulated traffic). */
  readonly address: IpAddress;
  readonly encapPort: number;
  readonly vipAddresses: readonly IpAddress[];
  /** auto: native, else generic; none: the operator attached decap already. */
  readonly decap: "auto" | "native" | "generic" | "none";
}

export type Runner = (cmd: string, args: readonly string[]) => Promise<string>;

export const execRunner: Runner = (cmd, args) =>
  new Promise((resolve, reject) => {
    execFile(cmd, [...args], { encoding: "utf8", timeout: 5000 }, (err, stdout, stderr) => {
      if (err) {
        reject(
          new LbError(
            "LB_ERR_NETLINK",
            `\`${cmd} ${args.join(" ")}\` failed: ${stderr.trim() || err.message}`,
          ),
        );
      } else resolve(stdout);
    });
  });

/** sysctl paths under /proc/sys (the caller's network namespace). */
function sysctlPath(name: string): string {
  return `/proc/sys/${name.replace(/\./g, "/")}`;
}

export class HostSetup {
  /** Undo steps, most recent last. */
  private readonly undo: { what: string; run: () => Promise<void> | void }[] = [];
  private decap: DecapLoader | undefined;
  decapMode: XdpMode | "none" = "none";

  constructor(
    private readonly plan: HostPlan,
    private readonly log: Logger,
    private readonly run: Runner = execRunner,
  ) {}

  /** Everything, in order; on failure what was done is undone before the error propagates. */
  async prepare(): Promise<void> {
    try {
      this.attachDecap();
      await this.vipsOnLo();
      this.sysctls();
      await this.advmss();
    } catch (err) {
      await this.restore();
      throw err;
    }
  }

  /** Reverse order; every step is tried, failures are logged. */
  async restore(): Promise<void> {
    while (this.undo.length > 0) {
      const step = this.undo.pop();
      if (!step) break;
      try {
        await step.run();
        this.log.info({ step: step.what }, "host setting restored");
      } catch (err) {
        this.log.warn({ err, step: step.what }, "restoring a host setting failed");
      }
    }
  }

  /** What was changed, for `lbctl agent status`. */
  changes(): string[] {
    return this.undo.map((u) => u.what);
  }

  private attachDecap(): void {
    const p = this.plan;
    if (p.decap === "none") return;
    const modes: XdpMode[] = p.decap === "auto" ? ["native", "generic"] : [p.decap];
    let last: unknown;
    for (const mode of modes) {
      try {
        this.decap = DecapLoader.attach({
          ifname: p.iface,
          ifindex: p.ifindex,
          addresses: [p.address],
          encapPort: p.encapPort,
          mode,
        });
        this.decapMode = mode;
        this.log.info({ iface: p.iface, mode, encapPort: p.encapPort }, "decap attached");
        const loader = this.decap;
        this.undo.push({
          what: `decap (${mode}) on ${p.iface}`,
          run: () => {
            loader.detach();
          },
        });
        return;
      } catch (err) {
        last = err;
        this.log.warn({ err, mode }, "decap attach failed");
      }
    }
    throw last instanceof Error ? last : new LbError("LB_ERR_ATTACH", `decap on ${p.iface} failed`);
  }

  private async vipsOnLo(): Promise<void> {
    const present = await this.run("ip", ["-o", "addr", "show", "dev", "lo"]);
    for (const vip of this.plan.vipAddresses) {
      const text = addressToString(vip);
      const prefix = vip.family === AF_INET ? 32 : 128;
      if (new RegExp(`\\sinet6? ${text.replace(/\./g, "\\.")}/`).test(present)) continue;
      const extra = vip.family === AF_INET ? [] : ["nodad"];
      await this.run("ip", ["addr", "add", `${text}/${prefix}`, "dev", "lo", ...extra]);
      this.log.info({ vip: text }, "VIP added on lo");
      this.undo.push({
        what: `VIP ${text} on lo`,
        run: async () => {
          await this.run("ip", ["addr", "del", `${text}/${prefix}`, "dev", "lo"]);
        },
      });
    }
  }

  private setSysctl(name: string, want: (current: number) => number | undefined): void {
    const path = sysctlPath(name);
    const current = Number(readFileSync(path, "utf8").trim());
    const next = want(current);
    if (next === undefined || next === current) return;
    writeFileSync(path, `${next}\n`);
    this.log.info({ sysctl: name, from: current, to: next }, "sysctl set");
    this.undo.push({
      what: `${name}=${next} (was ${current})`,
      run: () => {
        writeFileSync(path, `${current}\n`);
      },
    });
  }

  private sysctls(): void {
    const confs = ["all", this.plan.iface];
    for (const c of confs) {
      // Never answer ARP for the VIP (it is on lo), never source ARP from it.
      this.setSysctl(`net.ipv4.conf.${c}.arp_ignore`, (v) => (v === 1 || v === 2 ? undefined : 1));
      this.setSysctl(`net.ipv4.conf.${c}.arp_announce`, () => 2);
      // Strict reverse-path filtering drops decapsulated packets; the kernel uses max(all, IF).
      this.setSysctl(`net.ipv4.conf.${c}.rp_filter`, (v) => (v === 1 ? 2 : undefined));
    }
  }

  /** advmss on every unicast route of the interface (where the SYN-ACK's MSS comes from). */
  private async advmss(): Promise<void> {
    const p = this.plan;
    const overhead = ENCAP_OVERHEAD[p.address.family === AF_INET ? 4 : 6];
    for (const fam of [4, 6] as const) {
      const mss = p.mtu - overhead - (fam === 4 ? 20 : 40) - 20;
      if (mss < 536) continue;
      const out = await this.run("ip", [`-${fam}`, "route", "show", "dev", p.iface]);
      for (const line of out.split("\n").map((l) => l.trim())) {
        if (line === "" || /\b(expires|linkdown)\b/.test(line) || line.startsWith("fe80:")) continue;
        if (/^(local|broadcast|multicast|unreachable|prohibit|blackhole|anycast)\b/.test(line)) continue;
        if (/\badvmss\b/.test(line)) continue; // set by the operator: theirs
        const route = line.split(/\s+/);
        await this.run("ip", [
          `-${fam}`,
          "route",
          "replace",
          ...route,
          "dev",
          p.iface,
          "advmss",
          String(mss),
        ]);
        this.log.info({ route: line, advmss: mss }, "advmss set");
        this.undo.push({
          what: `advmss ${mss} on route ${line}`,
          run: async () => {
            await this.run("ip", [`-${fam}`, "route", "replace", ...route, "dev", p.iface]);
          },
        });
      }
    }
  }
}
