// Weighted Maglev lookup tables (Eisenbud et al., NSDI 2016): backends → Uint32Array(M) of
// data-plane backend indices, plus the slot-diff helpers the reconciler uses. Pure: no I/O.

import { jhash2 } from "../lib/jhash.js";
import { LB_MAGLEV_SIZE_DEFAULT, LB_MAGLEV_SIZE_MAX, LB_NO_BACKEND } from "../maps/abi.js";

/** One backend of a VIP as Maglev sees it. */
export interface MaglevBackend {
  /** 16 bytes, network order; IPv4 in the first 4 bytes, the rest zero. */
  readonly address: Uint8Array;
  /** UDP destination port of the IP-in-UDP encapsulation, host order. */
  readonly encapPort: number;
  /** Relative share of slots, integer >= 0; 0 drains the backend (no slots). */
  readonly weight: number;
  /** Data-plane backend index written into the slots; < LB_NO_BACKEND. */
  readonly index: number;
}

// Part of the cross-node contract: every node and every release must use the same two seeds,
// or tables differ between nodes and an upgrade reshuffles every flow. Never change them.
export const MAGLEV_SEED_OFFSET = 0x6d61676c; // "magl"
export const MAGLEV_SEED_SKIP = 0x736b6970; // "skip"

// Weights are u32 so that M * weight (< 2^20 * 2^32) stays an exact double.
const MAX_WEIGHT = 0xffffffff;

export function isPrime(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  if (n % 3 === 0) return n === 3;
  for (let d = 5; d * d <= n; d += 6) {
    if (n % d === 0 || n % (d + 2) === 0) return false;
  }
  return true;
}

function formatBackend(b: MaglevBackend): string {
  const a = b.address;
  if (a.subarray(4).every((x) => x === 0)) return `${a.subarray(0, 4).join(".")}:${b.encapPort}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((a[i] ?? 0) << 8) | (a[i + 1] ?? 0)).toString(16));
  return `[${groups.join(":")}]:${b.encapPort}`;
}

/**
 * The backend's probe sequence is slot_j = (offset + j * skip) mod M. Since M is prime and
 * 1 <= skip < M, it visits every slot exactly once.
 */
export function permutation(
  address: Uint8Array,
  encapPort: number,
  m: number,
): { offset: number; skip: number } {
  const words = new Uint32Array(5);
  // Little-endian whatever the host's byte order, so every node computes the same permutation.
  const view = new DataView(address.buffer, address.byteOffset, 16);
  for (let k = 0; k < 4; k++) words[k] = view.getUint32(4 * k, true);
  words[4] = encapPort;
  return {
    offset: jhash2(words, MAGLEV_SEED_OFFSET) % m,
    skip: (jhash2(words, MAGLEV_SEED_SKIP) % (m - 1)) + 1,
  };
}

function compareKey(x: MaglevBackend, y: MaglevBackend): number {
  for (let i = 0; i < 16; i++) {
    const d = (x.address[i] ?? 0) - (y.address[i] ?? 0);
    if (d !== 0) return d;
  }
  return x.encapPort - y.encapPort;
}

function isIntIn(x: number, lo: number, hi: number): boolean {
  return Number.isInteger(x) && x >= lo && x <= hi;
}

function validate(backends: readonly MaglevBackend[], m: number): void {
  if (!isPrime(m)) throw new Error(`maglev: table size M=${m} is not a prime`);
  if (m > LB_MAGLEV_SIZE_MAX) throw new Error(`maglev: table size M=${m} exceeds ${LB_MAGLEV_SIZE_MAX}`);
  if (m <= backends.length) {
    throw new Error(`maglev: table size M=${m} must be greater than the ${backends.length} backends`);
  }
  const indices = new Set<number>();
  for (const b of backends) {
    const bad = (what: string): never => {
      throw new Error(`maglev: backend ${formatBackend(b)} (index ${b.index}): ${what}`);
    };
    if (b.address.length !== 16) bad(`address is ${b.address.length} bytes, not 16`);
    if (!isIntIn(b.encapPort, 0, 0xffff)) bad(`encap port ${b.encapPort} is not in 0..65535`);
    if (!isIntIn(b.weight, 0, MAX_WEIGHT)) bad(`weight ${b.weight} is not an integer in 0..${MAX_WEIGHT}`);
    if (!isIntIn(b.index, 0, LB_NO_BACKEND - 1)) bad(`index is not in 0..${LB_NO_BACKEND - 1}`);
    if (indices.has(b.index)) bad("index is used twice");
    indices.add(b.index);
  }
}

/**
 * Exact slot quotas by largest remainder: quota_i is floor or ceil of M * w_i / W and they sum
 * to M, so every share is within one slot of its weight. Ties go to the earlier (sorted)
 * backend, which makes equal weights reproduce textbook Maglev's round-robin exactly.
 */
function quotas(weights: Float64Array, m: number): Uint32Array {
  const total = weights.reduce((s, w) => s + w, 0);
  const quota = new Uint32Array(weights.length);
  const rem = new Float64Array(weights.length);
  let left = m;
  weights.forEach((w, i) => {
    quota[i] = Math.floor((m * w) / total);
    rem[i] = (m * w) % total;
    left -= quota[i] ?? 0;
  });
  const order = Array.from(weights, (_, i) => i).sort((a, b) => (rem[b] ?? 0) - (rem[a] ?? 0) || a - b);
  for (let k = 0; k < left; k++) {
    const i = order[k] ?? 0;
    quota[i] = (quota[i] ?? 0) + 1;
  }
  return quota;
}

/**
 * Builds the lookup table: slot → backend index, LB_NO_BACKEND everywhere if no backend has
 * weight > 0. The result depends only on the set of (address, encap port, weight), never on
 * input order. Throws on a bad M, a malformed backend or a duplicate (address, encap port).
 */
export function buildMaglevTable(
  backends: readonly MaglevBackend[],
  m: number = LB_MAGLEV_SIZE_DEFAULT,
): Uint32Array {
  validate(backends, m);
  const sorted = [...backends].sort(compareKey);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (prev && cur && compareKey(prev, cur) === 0) {
      throw new Error(
        `maglev: duplicate backend ${formatBackend(cur)} (indices ${prev.index}, ${cur.index})`,
      );
    }
  }
  const live = sorted.filter((b) => b.weight > 0);
  if (live.length === 0) return new Uint32Array(m).fill(LB_NO_BACKEND);
  // Probes test a byte map (64 KiB at the default M, cache-resident) rather than the table;
  // every slot is written once, so the table needs no initial fill.
  const table = new Uint32Array(m);
  const taken = new Uint8Array(m);

  const n = live.length;
  const weight = Float64Array.from(live, (b) => b.weight);
  const index = Uint32Array.from(live, (b) => b.index);
  const next = new Uint32Array(n);
  const skip = new Uint32Array(n);
  const left = quotas(weight, m);
  live.forEach((b, i) => {
    const p = permutation(b.address, b.encapPort, m);
    next[i] = p.offset;
    skip[i] = p.skip;
  });

  // Weighted turns. Each round every backend earns its weight in credit, then spends it in
  // sub-rounds, one turn (its next free preferred slot) per `threshold` of credit, so a weight-4
  // backend's four turns interleave with everyone else's. The threshold is the smallest weight
  // still filling, so every active backend takes a turn each round and the work stays O(M + turns)
  // however skewed the weights. Quotas stop each backend at its exact share.
  const credit = new Float64Array(n);
  const active = new Uint32Array(n);
  const due = new Uint32Array(n);
  let nActive = 0;
  let threshold = Infinity;
  for (let i = 0; i < n; i++) {
    if ((left[i] ?? 0) === 0) continue;
    active[nActive++] = i;
    threshold = Math.min(threshold, weight[i] ?? 0);
  }
  let filled = 0;
  while (filled < m) {
    for (let a = 0; a < nActive; a++) {
      const i = active[a] ?? 0;
      credit[i] = (credit[i] ?? 0) + (weight[i] ?? 0);
      due[a] = i;
    }
    let nDue = nActive;
    while (nDue > 0) {
      let kept = 0;
      for (let d = 0; d < nDue; d++) {
        const i = due[d] ?? 0;
        const s = skip[i] ?? 1;
        let p = next[i] ?? 0;
        while (taken[p] !== 0) {
          p += s;
          if (p >= m) p -= m;
        }
        taken[p] = 1;
        table[p] = index[i] ?? LB_NO_BACKEND;
        p += s;
        next[i] = p >= m ? p - m : p;
        filled++;
        const c = (credit[i] ?? 0) - threshold;
        credit[i] = c;
        const l = (left[i] ?? 1) - 1;
        left[i] = l;
        if (l > 0 && c >= threshold) due[kept++] = i;
      }
      nDue = kept;
    }
    let kept = 0;
    threshold = Infinity;
    for (let a = 0; a < nActive; a++) {
      const i = active[a] ?? 0;
      if ((left[i] ?? 0) === 0) continue;
      active[kept++] = i;
      threshold = Math.min(threshold, weight[i] ?? 0);
    }
    nActive = kept;
  }
  return table;
}

/** Number of slots whose backend differs; both tables must have the same M. */
export function slotDiff(before: Uint32Array, after: Uint32Array): number {
  if (before.length !== after.length) {
    throw new Error(`maglev: cannot diff tables of different sizes (${before.length}, ${after.length})`);
  }
  let changed = 0;
  for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) changed++;
  return changed;
}

/** Slots held by each backend index; LB_NO_BACKEND slots are not counted. */
export function slotCounts(table: Uint32Array): Map<number, number> {
  const counts = new Map<number, number>();
  for (const b of table) if (b !== LB_NO_BACKEND) counts.set(b, (counts.get(b) ?? 0) + 1);
  return counts;
}
