// A running daemon's balancer maps, opened by id from the bench process: maps are global kernel
// objects, so a daemon in a lab namespace and the bench share them. They are found through the
// XDP program on the daemon's interface, which names this daemon's maps and no other run's.
import { Native } from "../src/dataplane/native.js";
import { formatAddress, type IpAddress } from "../src/lib/addr.js";
import { LibbpfMap } from "../src/maps/libbpf-map.js";
import { LibbpfTables } from "../src/maps/libbpf-tables.js";
import { LB_MAP_BACKENDS, LB_MAP_TABLES, LB_MAP_VIPS } from "../src/maps/abi.js";
import { decodeBackend, decodeVip, encodeU32Key, encodeVipKey } from "../src/maps/codec.js";
import { run } from "../src/lab/lab.js";

/** Blocks the thread for `ms` (sub-millisecond, unlike timers): the poller's sleep. */
const sleepLock = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleepLock, 0, 0, ms);
}

async function json(cmd: string, args: readonly string[]): Promise<unknown> {
  const r = await run(cmd, args, 10_000);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as unknown;
}

/** XDP program id on `iface` inside the namespace at `netns` (a /run/netns path). */
async function xdpProgId(netns: string, iface: string): Promise<number> {
  const links = (await json("nsenter", [`--net=${netns}`, "ip", "-j", "link", "show", "dev", iface])) as {
    xdp?: { prog?: { id?: number }; attached?: { prog?: { id?: number } }[] };
  }[];
  const xdp = links[0]?.xdp;
  const id = xdp?.prog?.id ?? xdp?.attached?.[0]?.prog?.id;
  if (id === undefined) throw new Error(`no XDP program on ${iface} in ${netns}`);
  return id;
}

/** Map name → id of the maps the program on `iface` uses (bpftool: the kernel's own listing). */
export async function daemonMapIds(netns: string, iface: string): Promise<Map<string, number>> {
  const prog = (await json("bpftool", [
    "-j",
    "prog",
    "show",
    "id",
    String(await xdpProgId(netns, iface)),
  ])) as {
    map_ids?: number[];
  };
  const ids = new Map<string, number>();
  for (const id of prog.map_ids ?? []) {
    const map = (await json("bpftool", ["-j", "map", "show", "id", String(id)])) as { name?: string };
    if (map.name !== undefined) ids.set(map.name, id);
  }
  return ids;
}

export class DaemonMaps {
  private readonly native = Native.get();
  private readonly tables: LibbpfMap;
  private readonly vips: LibbpfMap;
  private readonly backends: LibbpfMap;
  private readonly idBuf = new Uint8Array(4);
  private readonly slotBuf = new Uint8Array(4);
  /** The inner table last opened by slotValue(): its map id and fd. */
  private innerId = 0;
  private innerFd = -1;

  constructor(ids: ReadonlyMap<string, number>) {
    const open = (name: string): LibbpfMap => {
      const id = ids.get(name);
      if (id === undefined) throw new Error(`the daemon's program uses no map ${name}`);
      const fd = this.native.mapFdById(id);
      if (fd < 0) throw new Error(`map ${name} (id ${id}): cannot open (${fd})`);
      return LibbpfMap.fromFd(fd, name, { ownsFd: true });
    };
    this.tables = open(LB_MAP_TABLES);
    this.vips = open(LB_MAP_VIPS);
    this.backends = open(LB_MAP_BACKENDS);
  }

  /** The daemon's id for a VIP (lb_vips), or undefined when it has no such VIP. */
  vipId(proto: number, address: IpAddress, port: number): number | undefined {
    const key = encodeVipKey({ address: address.bytes, port, family: address.family, proto });
    const v = this.vips.lookup(key);
    return v === undefined ? undefined : decodeVip(v).vipId;
  }

  /** The address of the backend at a data-plane index, or undefined for an unused slot. */
  backendAddress(index: number): string | undefined {
    const b = this.backends.lookup(encodeU32Key(index));
    const be = b === undefined ? undefined : decodeBackend(b);
    return be === undefined ? undefined : formatAddress(be.address, be.family);
  }

  /**
   * One slot of a VIP's Maglev table as the data plane would read it now: the outer slot's
   * current inner map (re-opened when the daemon swaps in another), then one element. A few
   * tens of µs, unlike reading a whole table (65537 lookups, ~50 ms).
   */
  slotValue(vipId: number, slot: number): number | undefined {
    if (this.native.mapLookup(this.tables.fd, encodeU32Key(vipId), this.idBuf) !== 0) return undefined;
    const id = new DataView(this.idBuf.buffer).getUint32(0, true);
    if (id !== this.innerId || this.innerFd < 0) {
      if (this.innerFd >= 0) this.native.close(this.innerFd);
      this.innerId = id;
      this.innerFd = this.native.mapFdById(id); // < 0: swapped out and freed meanwhile; retried
    }
    if (this.innerFd < 0) return undefined;
    if (this.native.mapLookup(this.innerFd, encodeU32Key(slot), this.slotBuf) !== 0) return undefined;
    return new DataView(this.slotBuf.buffer).getUint32(0, true);
  }

  /** A VIP's whole current table (65537 lookups: ~50 ms, never inside a timed section). */
  readTable(vipId: number): Uint32Array | undefined {
    return new LibbpfTables(this.tables).read(vipId);
  }

  /**
   * Polls a slot every `everyMs` until it holds something other than `before`; returns the
   * new value and when it was seen (performance.now()), or undefined at the deadline. Blocks
   * the thread: whatever makes the change must already be under way (a child process, or a
   * request already written to the socket).
   */
  waitSlotChange(
    vipId: number,
    slot: number,
    before: number,
    deadline: number,
    everyMs = 0.2,
  ): { value: number; at: number } | undefined {
    for (;;) {
      const value = this.slotValue(vipId, slot);
      const at = performance.now();
      if (value !== undefined && value !== before) return { value, at };
      if (at > deadline) return undefined;
      sleepSync(everyMs);
    }
  }

  close(): void {
    if (this.innerFd >= 0) this.native.close(this.innerFd);
    this.innerFd = -1;
    this.tables.close();
    this.vips.close();
    this.backends.close();
  }
}
