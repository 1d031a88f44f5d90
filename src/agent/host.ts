// What a DSR backend needs from its host (docs/backend-setup.md), done by `lbctl agent` and
// undone on stop: decapsulation (lb_decap on the interface, native else generic, or the TUN
// decapsulator), each VIP on lo, ARP sysctls so the VIP is never answered for, rp_filter 0/2,
// and advmss on the routes back to clients so encapsulated segments fit the path MTU. Only what
// this run changed is recorded and restored.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import type { Logger } from "pino";

import { DecapLoader } from "../dataplane/decap-loader.js";
import { TunDecap, type TunCounters } from "../dataplane/tun-decap.js";
import { createTunDevice, deleteTunDevice, tunDeviceName } from "../dataplane/tun-device.js";
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
  /** See decapSteps(); none: the operator set decapsulation up already. */
  readonly decap: DecapRequest;
}

export type DecapRequest = "auto" | "xdp" | "native" | "generic" | "tun" | "none";
export type DecapStep = XdpMode | "tun";
export type DecapMode = DecapStep | "none";

/** What to try, in order (DESIGN.md: auto = XDP native, else generic, else TUN). */
export function decapSteps(request: DecapRequest): DecapStep[] {
  switch (request) {
    case "auto":
      return ["native", "generic", "tun"];
    case "xdp":
      return ["native", "generic"];
    case "none":
      return [];
    default:
      return [request];
  }
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
  private tun: TunDecap | undefined;
  private tunName: string | undefined;
  decapMode: DecapMode = "none";

  constructor(
    private readonly plan: HostPlan,
    private readonly log: Logger,
    private readonly run: Runner = execRunner,
  ) {}

  /** Everything, in order; on failure what was done is undone before the error propagates. */
  async prepare(): Promise<void> {
    try {
      await this.attachDecap();
      await this.vipsOnLo();
      this.sysctls();
      this.tunSysctls();
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

  /** The decapsulator's counters: lb_decap's (XDP) or caplance-tun's; undefined with none. */
  async decapCounters(): Promise<Record<string, unknown> | undefined> {
    if (this.tun) {
      const c: TunCounters = await this.tun.counters();
      return { ...c, restarts: this.tun.restarts };
    }
    if (this.decap?.isAttached) {
      const c = this.decap.counters();
      return {
        rx: Number(c.rx),
        decap: Number(c.decap),
        pass: Number(c.pass),
        malformed: Number(c.malformed),
      };
    }
    return undefined;
  }

  private async attachDecap(): Promise<void> {
    const p = this.plan;
    const steps = decapSteps(p.decap);
    if (steps.length === 0) return;
    let last: unknown;
    for (const [i, mode] of steps.entries()) {
      const next = steps[i + 1];
      if (mode === "tun") {
        await this.startTun();
        return;
      }
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
        const why = err instanceof Error ? err.message : String(err);
        if (next === undefined) this.log.warn({ mode, why }, "decap attach failed");
        else this.log.warn({ mode, why, next }, `decap: ${mode} XDP skipped, trying ${next}`);
      }
    }
    throw last instanceof Error ? last : new LbError("LB_ERR_ATTACH", `decap on ${p.iface} failed`);
  }

  /** A persistent TUN device (deleted on restore) and caplance-tun writing into it. */
  private async startTun(): Promise<void> {
    const p = this.plan;
    const name = tunDeviceName(p.encapPort);
    await createTunDevice(
      name,
      p.vipAddresses.find((v) => v.family === AF_INET),
    );
    this.undo.push({
      what: `TUN device ${name}`,
      run: () => deleteTunDevice(name),
    });
    this.tunName = name;
    const tun = await TunDecap.start({
      tun: name,
      encapPort: p.encapPort,
      listen: [p.address],
      vips: p.vipAddresses,
      log: this.log.child({ part: "tun" }),
    });
    this.tun = tun;
    this.decapMode = "tun";
    this.log.info(
      { tun: name, address: addressToString(p.address), encapPort: p.encapPort },
      "TUN decap running",
    );
    this.undo.push({
      what: `TUN decap (caplance-tun) on ${name}`,
      run: async () => {
        const c = await tun.stop();
        this.tun = undefined;
        this.log.info({ counters: c }, "TUN decap stopped");
      },
    });
  }

  /** The kernel takes decapsulated packets in on the TUN device: reverse-path filtering and
   * IPv6 must let them in there too (a new device inherits conf.default). */
  private tunSysctls(): void {
    if (this.tunName === undefined) return;
    this.setSysctl(`net.ipv4.conf.${this.tunName}.rp_filter`, (v) => (v === 1 ? 2 : undefined));
    this.setSysctl(`net.ipv6.conf.${this.tunName}.disable_ipv6`, (v) => (v === 1 ? 0 : undefined));
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
