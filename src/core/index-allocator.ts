// Data-plane backend indices. A freed index is not handed out again until every other index
// has been: flow entries that still name it then point at a removed (or another VIP's)
// backend, which the data plane treats as a miss, never as the new owner's traffic.

export class IndexAllocator {
  private readonly used = new Set<number>();
  private cursor = 0;

  constructor(private readonly size: number) {}

  allocate(): number {
    if (this.used.size >= this.size) throw new Error(`all ${this.size} indices are in use`);
    while (this.used.has(this.cursor)) this.cursor = (this.cursor + 1) % this.size;
    const index = this.cursor;
    this.used.add(index);
    this.cursor = (this.cursor + 1) % this.size;
    return index;
  }

  release(index: number): void {
    this.used.delete(index);
  }

  /** Marks an index taken (restoring adopted state); the cursor moves past it. */
  reserve(index: number): void {
    this.used.add(index);
    if (index >= this.cursor) this.cursor = (index + 1) % this.size;
  }

  get inUse(): number {
    return this.used.size;
  }
}

/** Lowest-free allocation, for VIP ids (their flows are keyed by address, not by id). */
export class LowestFreeAllocator {
  private readonly used = new Set<number>();

  constructor(private readonly size: number) {}

  allocate(): number {
    for (let i = 0; i < this.size; i++) {
      if (!this.used.has(i)) {
        this.used.add(i);
        return i;
      }
    }
    throw new Error(`all ${this.size} ids are in use`);
  }

  release(id: number): void {
    this.used.delete(id);
  }

  reserve(id: number): void {
    this.used.add(id);
  }
}
