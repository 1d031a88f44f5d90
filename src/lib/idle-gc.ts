// A full garbage collection once a burst of control-plane changes settles (and at least every
// maxDelayMs while one goes on). V8 lets the old generation fill with garbage (table rebuilds,
// state-file JSON) up to its own, generous limit: at 4000 backends that garbage was most of the
// daemon's RSS, with 19 MB live (docs/benchmarks.md). Needs node's --expose-gc, which
// bin/lbctl's #! line gives; without it this does nothing.
export class IdleGc {
  private timer: NodeJS.Timeout | undefined;
  private lastChange = 0;
  private lastGc = performance.now();
  runs = 0;

  constructor(
    private readonly quietMs = 1000,
    private readonly maxDelayMs = 3000,
    private readonly gc: (() => void) | undefined = (globalThis as { gc?: () => void }).gc,
  ) {}

  /** A change happened: collect once things are quiet for quietMs (or maxDelayMs passed). */
  touch(): void {
    if (!this.gc) return;
    this.lastChange = performance.now();
    this.timer ??= this.schedule(this.quietMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timer = undefined;
      const now = performance.now();
      const quietFor = now - this.lastChange;
      if (quietFor < this.quietMs && now - this.lastGc < this.maxDelayMs) {
        this.timer = this.schedule(this.quietMs - quietFor);
        return;
      }
      this.lastGc = now;
      this.runs++;
      this.gc?.();
    }, ms);
    t.unref();
    return t;
  }
}
