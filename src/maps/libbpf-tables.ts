// TableStore over lb_tables (BPF_MAP_TYPE_ARRAY_OF_MAPS). A table change builds a new inner
// array, fills it through mapped memory (BPF_F_MMAPABLE) and swaps it in with one update of the outer slot, so
// the data plane sees the old table or the new one, never a mix; the kernel frees the old
// inner map when its last reference (the slot, or a running program) goes. Each syscall on the
// outer map waits for an RCU grace period (~13 ms measured), so replaceMany() swaps many
// slots with one batch update.
import { LbError } from "../lib/errors.js";
import { Errno, Native, nativeError } from "../dataplane/native.js";
import type { LibbpfMap } from "./libbpf-map.js";
import type { TableStore } from "./map-backend.js";

function u32Key(n: number): Uint8Array {
  const key = new Uint8Array(4);
  new DataView(key.buffer).setUint32(0, n, true);
  return key;
}

export class LibbpfTables implements TableStore {
  private readonly native = Native.get();

  /** outer: the array of maps (key 4 bytes = vip_id, value 4 bytes = inner map fd / id). */
  constructor(private readonly outer: LibbpfMap) {}

  replace(vipId: number, table: Uint32Array): void {
    this.replaceMany(new Map([[vipId, table]]));
  }

  replaceMany(tables: ReadonlyMap<number, Uint32Array>): void {
    if (tables.size === 0) return;
    for (const [vipId, table] of tables) {
      this.checkVipId(vipId);
      if (table.length === 0)
        throw new LbError("LB_ERR_MAP", `map ${this.outer.name}: empty table for VIP ${vipId}`);
    }
    const fds: number[] = [];
    try {
      const slots = new Uint8Array(tables.size * 4);
      const values = new Uint8Array(tables.size * 4);
      const slotView = new DataView(slots.buffer);
      const valueView = new DataView(values.buffer);
      let i = 0;
      for (const [vipId, table] of tables) {
        const fd = this.createTable(vipId, table);
        fds.push(fd);
        slotView.setUint32(i * 4, vipId, true);
        valueView.setUint32(i * 4, fd, true);
        i++;
      }
      const ret =
        tables.size === 1
          ? this.native.mapUpdate(this.outer.fd, slots, values)
          : this.native.mapUpdateBatch(this.outer.fd, slots, values, tables.size);
      if (ret < 0) {
        const hint =
          ret === -Errno.EINVAL
            ? "the inner table does not match the template of lb_tables (type, sizes, flags)"
            : undefined;
        const vips = [...tables.keys()].join(", ");
        throw nativeError(
          "LB_ERR_MAP",
          `map ${this.outer.name}: swapping in the tables of VIP ${vips} failed`,
          ret,
          {
            hint,
          },
        );
      }
    } finally {
      // The outer map holds its own references to the inner maps.
      for (const fd of fds) this.native.close(fd);
    }
  }

  /** A new inner array holding `table` (host-order __u32 values), filled with one memcpy. */
  private createTable(vipId: number, table: Uint32Array): number {
    const name = `lb_tbl_${vipId}`;
    const fd = this.native.arrayMapCreate(name, 4, table.length);
    if (fd < 0) {
      throw nativeError(
        "LB_ERR_MAP",
        `map ${this.outer.name}: cannot create a table of ${table.length} for VIP ${vipId}`,
        fd,
        { withLog: true },
      );
    }
    const values = new Uint8Array(table.buffer, table.byteOffset, table.byteLength);
    const ret = this.native.arrayMapWrite(fd, values, 4);
    if (ret < 0) {
      this.native.close(fd);
      throw nativeError("LB_ERR_MAP", `map ${name}: filling the table of VIP ${vipId} failed`, ret);
    }
    return fd;
  }

  clear(vipId: number): void {
    this.checkVipId(vipId);
    const ret = this.native.mapDelete(this.outer.fd, u32Key(vipId));
    if (ret < 0 && ret !== -Errno.ENOENT) {
      throw nativeError(
        "LB_ERR_MAP",
        `map ${this.outer.name}: clearing the table of VIP ${vipId} failed`,
        ret,
      );
    }
  }

  read(vipId: number): Uint32Array | undefined {
    this.checkVipId(vipId);
    const idBuf = new Uint8Array(4);
    let ret = this.native.mapLookup(this.outer.fd, u32Key(vipId), idBuf);
    if (ret === -Errno.ENOENT) return undefined;
    if (ret < 0)
      throw nativeError("LB_ERR_MAP", `map ${this.outer.name}: lookup of VIP ${vipId} failed`, ret);
    // A user-space lookup of a map-in-map slot yields the inner map's id, not an fd.
    const id = new DataView(idBuf.buffer).getUint32(0, true);
    const fd = this.native.mapFdById(id);
    if (fd === -Errno.ENOENT) return undefined; // swapped out and freed meanwhile
    if (fd < 0)
      throw nativeError("LB_ERR_MAP", `map ${this.outer.name}: table of VIP ${vipId} (map id ${id})`, fd);
    try {
      const n = this.native.mapInfo(fd, `table of VIP ${vipId}`).maxEntries;
      const table = new Uint32Array(n);
      ret = this.native.arrayMapRead(fd, new Uint8Array(table.buffer), 4);
      if (ret < 0)
        throw nativeError("LB_ERR_MAP", `map ${this.outer.name}: reading the table of VIP ${vipId}`, ret);
      return table;
    } finally {
      this.native.close(fd);
    }
  }

  private checkVipId(vipId: number): void {
    if (!Number.isInteger(vipId) || vipId < 0 || vipId >= this.outer.maxEntries) {
      throw new LbError(
        "LB_ERR_MAP",
        `map ${this.outer.name}: VIP id ${vipId} out of range (max_entries ${this.outer.maxEntries})`,
      );
    }
  }
}
