// Deterministic helpers: every sample the evaluator draws comes from a fixed seed, so a report is
// reproducible and its sampling can be stated exactly.

/** mulberry32: small, fast 32-bit PRNG; uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates permutation of 0..n-1. */
export function permutation(n: number, rand: () => number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** Up to k distinct indices of 0..n-1 in increasing order (all of them when k >= n). */
export function sampleIndices(n: number, k: number, seed: number): Int32Array {
  if (k >= n) return Int32Array.from({ length: n }, (_, i) => i);
  const p = permutation(n, rng(seed)).slice(0, k);
  return p.sort();
}

/** Stratified split of labels into (a, b) with share `fracB` of each class in b. */
export function stratifiedSplit(labels: Int32Array | Uint8Array, fracB: number, seed: number): { a: Int32Array; b: Int32Array } {
  const rand = rng(seed);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    let l = byClass.get(y);
    if (!l) byClass.set(y, (l = []));
    l.push(i);
  }
  const a: number[] = [];
  const b: number[] = [];
  for (const idx of byClass.values()) {
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = idx[i]!;
      idx[i] = idx[j]!;
      idx[j] = t;
    }
    const nb = Math.round(idx.length * fracB);
    for (let i = 0; i < idx.length; i++) (i < nb ? b : a).push(idx[i]!);
  }
  return { a: Int32Array.from(a).sort(), b: Int32Array.from(b).sort() };
}

/** Linear-interpolated quantile of an ascending-sorted array (NaN when empty). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const pos = (n - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Non-missing values, sorted ascending. */
export function sortedFinite(v: Float64Array): Float64Array {
  let m = 0;
  for (let i = 0; i < v.length; i++) if (!Number.isNaN(v[i]!)) m++;
  const out = new Float64Array(m);
  let k = 0;
  for (let i = 0; i < v.length; i++) if (!Number.isNaN(v[i]!)) out[k++] = v[i]!;
  return out.sort();
}
