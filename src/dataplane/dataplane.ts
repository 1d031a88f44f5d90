// Picks and brings up the balancer's data plane for `lbctl load --mode`: XDP (native, generic)
// or the NFQUEUE fallback, behind one BalancerMaps so the reconciler and stats do not care.
// auto tries native XDP, then generic, then NFQUEUE, and says why each step was skipped.
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import type { BpfObject } from "./bpf-object.js";
import { hasPinnedLink, openPinnedXdp } from "./pinned-xdp.js";
import type { NfqueueStats } from "../api/protocol.js";
import { NfqWorker } from "./nfq-worker.js";
import { nfqueueStats, parseNfnetlinkQueue, readNfnetlinkQueue } from "./nfq-queue-stats.js";
import { installNfqRules, removeNfqRules, type NfqTarget } from "./nfq-rules.js";
import { LbError } from "../lib/errors.js";
import { formatAddress } from "../lib/addr.js";
import { BalancerMaps } from "../maps/balancer-maps.js";
import { decodeVipAddrKey } from "../maps/codec.js";

export type DataplaneMode = "native" | "generic" | "nfqueue";
export type RequestedDataplaneMode = "auto" | DataplaneMode;

export interface Dataplane {
  readonly maps: BalancerMaps;
  readonly mode: DataplaneMode;
  readonly reason: string;
  /** The NFQUEUE worker, in nfqueue mode. */
  readonly worker?: NfqWorker;
  /** nfqueue mode: kernel queue drops and the worker's own counters, for `lbctl stats`. */
  queueStats?(): NfqueueStats;
  /** Once the maps hold the configuration: nfqueue waits for the worker and installs its rules. */
  activate(): Promise<void>;
  /** keep (XDP only): leave it pinned and forwarding for the next load to adopt. */
  stop(keep?: boolean): Promise<void>;
  /** XDP: adopted from pins a previous daemon left (pinned-xdp.ts), and whether its program was swapped. */
  readonly adopted?: boolean;
  readonly upgraded?: boolean;
}

export interface DataplaneOptions {
  readonly requested: RequestedDataplaneMode;
  readonly link: { ifindex: number; name: string };
  /** The balancer object, opened (not loaded) by the daemon, which closes it. */
  readonly obj: BpfObject;
  readonly flowTableSize: number;
  readonly log: Logger;
}

/**
 * XDP modes attach before the maps are filled: with no VIP in the maps the program passes
 * everything, so attaching early is harmless and tells auto at once whether XDP works here.
 */
export async function openDataplane(opts: DataplaneOptions): Promise<Dataplane> {
  const { link, log } = opts;
  if (opts.requested !== "nfqueue") {
    try {
      // Pinned and attached through a BPF link, so it can outlive the daemon (pinned-xdp.ts).
      const xdp = await openPinnedXdp({ requested: opts.requested, link, obj: opts.obj, log });
      return {
        maps: xdp.maps,
        mode: xdp.mode,
        reason: xdp.reason,
        adopted: xdp.adopted,
        upgraded: xdp.upgraded,
        activate: () => Promise.resolve(),
        stop: (keep = false) => {
          xdp.stop(keep);
          return Promise.resolve();
        },
      };
    } catch (err) {
      if (opts.requested !== "auto" || hasPinnedLink(link.ifindex)) throw err; // never fall back over pinned state
      const why = err instanceof LbError ? err.message : String(err);
      const reason = `auto: nfqueue because XDP could not be loaded or attached (${why})`;
      log.warn({ iface: link.name, mode: "nfqueue", reason }, "XDP unavailable: falling back to NFQUEUE");
      return openNfqueue(opts, reason);
    }
  }
  return openNfqueue(opts, "requested");
}

async function openNfqueue(opts: DataplaneOptions, reason: string): Promise<Dataplane> {
  const { link, log } = opts;
  const queues = Math.min(availableParallelism(), 64);
  const firstQueue = 0;
  const statsPath = join(tmpdir(), `caplance-nfq-${process.pid}-${link.name}.stats`);
  let rulesWanted = false;
  let syncing: Promise<void> = Promise.resolve();
  // The rules follow lb_vip_addrs: one rule per VIP address and protocol, resynced on change.
  const syncRules = (): void => {
    if (!rulesWanted) return;
    syncing = syncing
      .then(() => installNfqRules(link.name, targets(worker.maps), firstQueue, queues))
      .catch((err: unknown) => {
        log.error({ err }, "NFQUEUE rules could not be updated");
      });
  };
  await removeNfqRules(link.name); // a crashed daemon's leftovers
  const worker = await NfqWorker.start({
    firstQueue,
    queues,
    statsPath,
    flowTableSize: opts.flowTableSize,
    log: log.child({ module: "nfq-worker" }),
    onVipAddrsChanged: syncRules,
  });
  log.info({ iface: link.name, mode: "nfqueue", reason, queues }, "NFQUEUE data plane chosen");
  return {
    maps: worker.maps,
    mode: "nfqueue",
    reason,
    worker,
    queueStats: () =>
      nfqueueStats(
        parseNfnetlinkQueue(readNfnetlinkQueue()),
        firstQueue,
        queues,
        worker.workerCounters(),
        worker.restarts,
      ),
    activate: async () => {
      await worker.sync();
      rulesWanted = true;
      await installNfqRules(link.name, targets(worker.maps), firstQueue, queues);
    },
    stop: async () => {
      rulesWanted = false;
      await syncing;
      await removeNfqRules(link.name);
      await worker.stop();
    },
  };
}

function targets(maps: BalancerMaps): NfqTarget[] {
  return maps.maps.vipAddrs.keys().map((raw) => {
    const k = decodeVipAddrKey(raw);
    return {
      address: formatAddress(k.address, k.family),
      family: k.family === 2 ? 4 : 6,
      proto: k.proto === 6 ? "tcp" : "udp",
    };
  });
}
