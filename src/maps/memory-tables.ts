// In-memory TableStore: vip_id -> a private copy of the table, the same checks as lb_tables.
import { LbError } from "../lib/errors.js";
import type { TableStore } from "./map-backend.js";

export class MemoryTables implements TableStore {
  private readonly tables = new Map<number, Uint32Array>();

  constructor(
    readonly name: string,
    readonly maxEntries: number,
  ) {}

  replace(vipId: number, table: Uint32Array): void {
    this.checkVipId(vipId);
    if (table.length === 0) throw new LbError("LB_ERR_MAP", `map ${this.name}: empty table for VIP ${vipId}`);
    this.tables.set(vipId, table.slice());
  }

  replaceMany(tables: ReadonlyMap<number, Uint32Array>): void {
    for (const [vipId, table] of tables) this.replace(vipId, table);
  }

  clear(vipId: number): void {
    this.checkVipId(vipId);
    this.tables.delete(vipId);
  }

  read(vipId: number): Uint32Array | undefined {
    this.checkVipId(vipId);
    return this.tables.get(vipId)?.slice();
  }

  /** VIP ids that have a table, ascending. */
  vipIds(): number[] {
    return [...this.tables.keys()].sort((a, b) => a - b);
  }

  private checkVipId(vipId: number): void {
    if (!Number.isInteger(vipId) || vipId < 0 || vipId >= this.maxEntries) {
      throw new LbError(
        "LB_ERR_MAP",
        `map ${this.name}: VIP id ${vipId} out of range (max_entries ${this.maxEntries})`,
      );
    }
  }
}
