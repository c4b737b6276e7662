// Fidelity metrics in the style of SDMetrics: each is a small pure function returning a score in
// [0, 1] (1 = synthetic matches real), composed by report.ts into column-shape and column-pair scores.
import type { CategoricalColumn, Column, Table } from './table';
import { quantileSorted, sampleIndices, sortedFinite } from './random';

// ---------- single-column shapes ----------

/**
 * Kolmogorov-Smirnov complement 1 - D, D = sup |F_real - F_syn| over the non-missing values
 * (two-sample KS statistic; SDMetrics KSComplement).
 */
export function ksComplement(real: Float64Array, syn: Float64Array): number {
  const a = sortedFinite(real);
  const b = sortedFinite(syn);
  if (a.length === 0 && b.length === 0) return 1;
  if (a.length === 0 || b.length === 0) return 0;
  return 1 - ksStatisticSorted(a, b);
}

/** Two-sample KS statistic of two ascending-sorted arrays, ties handled by stepping past equal values. */
export function ksStatisticSorted(a: Float64Array, b: Float64Array): number {
  let i = 0;
  let j = 0;
  let d = 0;
  const na = a.length;
  const nb = b.length;
  while (i < na && j < nb) {
    const x = Math.min(a[i]!, b[j]!);
    while (i < na && a[i]! === x) i++;
    while (j < nb && b[j]! === x) j++;
    const diff = Math.abs(i / na - j / nb);
    if (diff > d) d = diff;
  }
  return d;
}

/** Category frequencies (probabilities) over `k` codes. */
export function frequencies(codes: Int32Array, k: number): Float64Array {
  const f = new Float64Array(k);
  for (let i = 0; i < codes.length; i++) f[codes[i]!]!++;
  const n = codes.length || 1;
  for (let c = 0; c < k; c++) f[c]! /= n;
  return f;
}

/** Total-variation complement 1 - 0.5 * sum |p - q| over categories (SDMetrics TVComplement). */
export function tvComplement(real: Int32Array, syn: Int32Array, nCategories: number): number {
  if (real.length === 0 && syn.length === 0) return 1;
  if (real.length === 0 || syn.length === 0) return 0;
  const p = frequencies(real, nCategories);
  const q = frequencies(syn, nCategories);
  let tv = 0;
  for (let c = 0; c < nCategories; c++) tv += Math.abs(p[c]! - q[c]!);
  return 1 - tv / 2;
}

/** Jensen-Shannon distance (square root of the base-2 JS divergence, so in [0, 1]) of two distributions. */
export function jsDistance(p: Float64Array, q: Float64Array): number {
  let js = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i]!;
    const b = q[i]!;
    const m = (a + b) / 2;
    if (a > 0) js += 0.5 * a * Math.log2(a / m);
    if (b > 0) js += 0.5 * b * Math.log2(b / m);
  }
  return Math.sqrt(Math.max(0, Math.min(1, js)));
}

/** Bin edges from real-data quantiles (deduplicated), used to discretise a numeric column. */
export function quantileEdges(real: Float64Array, bins: number): Float64Array {
  const s = sortedFinite(real);
  const edges: number[] = [];
  for (let b = 1; b < bins; b++) {
    const e = quantileSorted(s, b / bins);
    if (Number.isFinite(e) && (edges.length === 0 || e > edges[edges.length - 1]!)) edges.push(e);
  }
  return Float64Array.from(edges);
}

/** Bin index of each value for `edges` (values <= edges[k] go to bin k); NaN gets the last bin. */
export function discretise(v: Float64Array, edges: Float64Array): { codes: Int32Array; k: number } {
  const k = edges.length + 2; // + top bin + missing bin
  const codes = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (Number.isNaN(x)) {
      codes[i] = k - 1;
      continue;
    }
    let lo = 0;
    let hi = edges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (x <= edges[mid]!) hi = mid;
      else lo = mid + 1;
    }
    codes[i] = lo;
  }
  return { codes, k };
}

/** Per-column Jensen-Shannon distance: numeric columns on 20 real-quantile bins, categorical on categories. */
export function columnJsDistance(real: Column, syn: Column): number {
  if (real.kind === 'numeric' && syn.kind === 'numeric') {
    const edges = quantileEdges(real.values, 20);
    const a = discretise(real.values, edges);
    const b = discretise(syn.values, edges);
    return jsDistance(frequencies(a.codes, a.k), frequencies(b.codes, b.k));
  }
  const r = real as CategoricalColumn;
  const s = syn as CategoricalColumn;
  const k = r.categories.length;
  return jsDistance(frequencies(r.codes, k), frequencies(s.codes, k));
}

/** Column shape score: KS complement for numeric, TV complement for categorical. */
export function columnShape(real: Column, syn: Column): number {
  if (real.kind === 'numeric' && syn.kind === 'numeric') return ksComplement(real.values, syn.values);
  if (real.kind === 'categorical' && syn.kind === 'categorical') return tvComplement(real.codes, syn.codes, real.categories.length);
  throw new Error(`column "${real.name}": real and synthetic kinds differ`);
}

// ---------- column pairs ----------

/** Pearson correlation over rows where both values are present; 0 when either is constant. */
export function pearson(x: Float64Array, y: Float64Array): number {
  let n = 0;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < x.length; i++) {
    const a = x[i]!;
    const b = y[i]!;
    if (Number.isNaN(a) || Number.isNaN(b)) continue;
    n++;
    mx += a;
    my += b;
  }
  if (n < 2) return 0;
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < x.length; i++) {
    const a = x[i]!;
    const b = y[i]!;
    if (Number.isNaN(a) || Number.isNaN(b)) continue;
    const da = a - mx;
    const db = b - my;
    sxy += da * db;
    sxx += da * da;
    syy += db * db;
  }
  if (sxx <= 0 || syy <= 0) return 0;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/** SDMetrics CorrelationSimilarity: 1 - |rho_real - rho_syn| / 2. */
export function correlationSimilarity(rhoReal: number, rhoSyn: number): number {
  return 1 - Math.abs(rhoReal - rhoSyn) / 2;
}

/** Joint frequency table of two code arrays (ka x kb, row-major), normalised. */
export function contingency(a: Int32Array, ka: number, b: Int32Array, kb: number): Float64Array {
  const t = new Float64Array(ka * kb);
  for (let i = 0; i < a.length; i++) t[a[i]! * kb + b[i]!]!++;
  const n = a.length || 1;
  for (let i = 0; i < t.length; i++) t[i]! /= n;
  return t;
}

/** SDMetrics ContingencySimilarity: 1 - TV distance between the real and synthetic joint tables. */
export function contingencySimilarity(real: Float64Array, syn: Float64Array): number {
  let tv = 0;
  for (let i = 0; i < real.length; i++) tv += Math.abs(real[i]! - syn[i]!);
  return 1 - tv / 2;
}

/**
 * Cramér's V of a joint frequency table (Cramér 1946): sqrt(chi2 / n / (min(r, c) - 1)), computed
 * on the rows/columns that occur; 0 when either variable has a single level.
 */
export function cramersV(joint: Float64Array, ka: number, kb: number): number {
  const ra = new Float64Array(ka);
  const cb = new Float64Array(kb);
  for (let i = 0; i < ka; i++) for (let j = 0; j < kb; j++) {
    ra[i]! += joint[i * kb + j]!;
    cb[j]! += joint[i * kb + j]!;
  }
  let phi2 = 0; // chi2 / n with probabilities
  for (let i = 0; i < ka; i++) {
    if (ra[i]! <= 0) continue;
    for (let j = 0; j < kb; j++) {
      if (cb[j]! <= 0) continue;
      const e = ra[i]! * cb[j]!;
      const d = joint[i * kb + j]! - e;
      phi2 += (d * d) / e;
    }
  }
  let r = 0;
  let c = 0;
  for (let i = 0; i < ka; i++) if (ra[i]! > 0) r++;
  for (let j = 0; j < kb; j++) if (cb[j]! > 0) c++;
  const m = Math.min(r, c) - 1;
  if (m <= 0) return 0;
  return Math.min(1, Math.sqrt(phi2 / m));
}

/** Codes for a column for contingency work: categorical codes, or 10 real-quantile bins for numeric. */
export interface Discrete {
  codes: Int32Array;
  k: number;
}
export function discreteCodes(real: Column, other: Column, bins = 10): [Discrete, Discrete] {
  if (real.kind === 'numeric' && other.kind === 'numeric') {
    const edges = quantileEdges(real.values, bins);
    return [discretise(real.values, edges), discretise(other.values, edges)];
  }
  const r = real as CategoricalColumn;
  const o = other as CategoricalColumn;
  const k = r.categories.length; // shared, so it already covers codes of `other`
  return [{ codes: r.codes, k }, { codes: o.codes, k }];
}

export interface PairResult {
  a: string;
  b: string;
  /** 'pearson' for numeric-numeric, 'contingency' for categorical or mixed pairs. */
  method: 'pearson' | 'contingency';
  score: number;
  /** Association in the real and synthetic data: Pearson rho, or Cramér's V. */
  real: number;
  synthetic: number;
}

/**
 * Every column pair: Pearson correlation similarity for two numeric columns; contingency
 * similarity for categorical or mixed pairs (numeric side on 10 real-quantile bins), with Cramér's
 * V reported as the association. Rows are subsampled to `maxRows` (fixed seed) for speed.
 */
export function columnPairs(real: Table, syn: Table, maxRows = 50_000, seed = 7): PairResult[] {
  const ri = sampleIndices(real.nRows, maxRows, seed);
  const si = sampleIndices(syn.nRows, maxRows, seed + 1);
  const pick = (c: Column, idx: Int32Array): Column => {
    if (idx.length === (c.kind === 'numeric' ? c.values.length : c.codes.length)) return c;
    if (c.kind === 'numeric') return { ...c, values: Float64Array.from(idx, (i) => c.values[i]!) };
    return { ...c, codes: Int32Array.from(idx, (i) => c.codes[i]!) };
  };
  const rc = real.columns.map((c) => pick(c, ri));
  const sc = syn.columns.map((c) => pick(c, si));
  const disc = rc.map((c, k) => discreteCodes(c, sc[k]!));
  const out: PairResult[] = [];
  for (let i = 0; i < rc.length; i++) {
    for (let j = i + 1; j < rc.length; j++) {
      const a = rc[i]!;
      const b = rc[j]!;
      if (a.kind === 'numeric' && b.kind === 'numeric') {
        const pr = pearson(a.values, b.values);
        const ps = pearson((sc[i] as typeof a).values, (sc[j] as typeof b).values);
        out.push({ a: a.name, b: b.name, method: 'pearson', score: correlationSimilarity(pr, ps), real: pr, synthetic: ps });
      } else {
        const [ar, as] = disc[i]!;
        const [br, bs] = disc[j]!;
        const jr = contingency(ar.codes, ar.k, br.codes, br.k);
        const js = contingency(as.codes, as.k, bs.codes, bs.k);
        out.push({
          a: a.name,
          b: b.name,
          method: 'contingency',
          score: contingencySimilarity(jr, js),
          real: cramersV(jr, ar.k, br.k),
          synthetic: cramersV(js, as.k, bs.k),
        });
      }
    }
  }
  return out;
}

// ---------- multivariate ----------

/**
 * Squared maximum mean discrepancy with an RBF kernel (Gretton et al. 2012, biased V-statistic) on
 * row-major encoded data; bandwidth by the median heuristic on the pooled sample.
 * Returns { mmd2, gamma } with k(x, y) = exp(-gamma ||x - y||^2).
 */
export function mmdRbf(x: Float32Array, nx: number, y: Float32Array, ny: number, d: number): { mmd2: number; gamma: number } {
  const dist2 = (a: Float32Array, i: number, b: Float32Array, j: number): number => {
    let s = 0;
    const oi = i * d;
    const oj = j * d;
    for (let k = 0; k < d; k++) {
      const t = a[oi + k]! - b[oj + k]!;
      s += t * t;
    }
    return s;
  };
  // Median heuristic on up to 500 pooled pairs.
  const m = Math.min(500, nx, ny);
  const ds: number[] = [];
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j += 7) ds.push(dist2(x, i, y, j));
  ds.sort((p, q) => p - q);
  const med = ds[ds.length >> 1] ?? 1;
  const gamma = 1 / Math.max(med, 1e-12);
  const meanK = (a: Float32Array, na: number, b: Float32Array, nb: number): number => {
    let s = 0;
    for (let i = 0; i < na; i++) for (let j = 0; j < nb; j++) s += Math.exp(-gamma * dist2(a, i, b, j));
    return s / (na * nb);
  };
  const mmd2 = meanK(x, nx, x, nx) + meanK(y, ny, y, ny) - 2 * meanK(x, nx, y, ny);
  return { mmd2: Math.max(0, mmd2), gamma };
}
