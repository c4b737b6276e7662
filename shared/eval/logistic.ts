// L2-regularised logistic regression by Newton's method (IRLS) with backtracking, on a design
// matrix built from a table: numeric columns median-imputed and standardised with training
// statistics, categorical columns one-hot over their most frequent training categories.
import type { Table } from './table';
import { sortedFinite, quantileSorted } from './random';

/** Maximum one-hot width per categorical column; rarer categories encode as all-zero. */
export const MAX_ONE_HOT = 30;

interface NumEnc {
  kind: 'numeric';
  name: string;
  median: number;
  mean: number;
  sd: number;
}
interface CatEnc {
  kind: 'categorical';
  name: string;
  /** code -> one-hot slot, -1 when not kept. */
  slot: Int32Array;
  width: number;
}
export type DesignEncoder = { columns: (NumEnc | CatEnc)[]; dim: number };

/** A numeric column's training statistics: its finite values sorted, their median, mean and sd (1 when constant or empty). */
export function numericStats(values: Float64Array): { sorted: Float64Array; median: number; mean: number; sd: number } {
  const s = sortedFinite(values);
  let m = 0;
  for (let i = 0; i < s.length; i++) m += s[i]!;
  m = s.length ? m / s.length : 0;
  let v = 0;
  for (let i = 0; i < s.length; i++) v += (s[i]! - m) ** 2;
  const sd = s.length > 1 ? Math.sqrt(v / s.length) : 0;
  return { sorted: s, median: s.length ? quantileSorted(s, 0.5) : 0, mean: m, sd: sd > 0 ? sd : 1 };
}

/** One-hot slots for the categories `kept` (codes, in slot order) of a column with `categories` codes; -1 for the rest. */
export function oneHotSlots(categories: number, kept: readonly number[]): Int32Array {
  const slot = new Int32Array(categories).fill(-1);
  kept.forEach((code, k) => (slot[code] = k));
  return slot;
}

/** Sets X[i·d + off + slot[code_i]] = 1 for each row i whose code has a slot (row-major X, d columns). */
export function writeOneHot(X: Float64Array, d: number, off: number, codes: Int32Array, slot: Int32Array): void {
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i]!;
    const s = code < slot.length ? slot[code]! : -1;
    if (s >= 0) X[i * d + off + s] = 1;
  }
}

/** A categorical column's codes that occur in training, most frequent first. */
export function codesByFrequency(codes: Int32Array, categories: number): number[] {
  const cnt = new Float64Array(categories);
  for (let i = 0; i < codes.length; i++) cnt[codes[i]!]!++;
  return Array.from(cnt.keys()).filter((k) => cnt[k]! > 0).sort((a, b) => cnt[b]! - cnt[a]!);
}

/** Fits the design-matrix encoding on training data. */
export function fitDesign(table: Table): DesignEncoder {
  let dim = 0;
  const columns = table.columns.map((c): NumEnc | CatEnc => {
    if (c.kind === 'numeric') {
      const { median, mean, sd } = numericStats(c.values);
      dim++;
      return { kind: 'numeric', name: c.name, median, mean, sd };
    }
    const order = codesByFrequency(c.codes, c.categories.length);
    // Drop the most frequent level as reference when all levels are kept (avoids collinearity).
    const kept = order.length <= MAX_ONE_HOT ? order.slice(1) : order.slice(0, MAX_ONE_HOT);
    dim += kept.length;
    return { kind: 'categorical', name: c.name, slot: oneHotSlots(c.categories.length, kept), width: kept.length };
  });
  return { columns, dim };
}

/** Dense row-major design matrix (n x dim) for a table with the training columns. */
export function applyDesign(enc: DesignEncoder, table: Table): Float64Array {
  const n = table.nRows;
  const d = enc.dim;
  const X = new Float64Array(n * d);
  let off = 0;
  enc.columns.forEach((e, k) => {
    const c = table.columns[k]!;
    if (c.name !== e.name) throw new Error(`logistic: column ${k} is "${c.name}", expected "${e.name}"`);
    if (e.kind === 'numeric' && c.kind === 'numeric') {
      for (let i = 0; i < n; i++) {
        const x = c.values[i]!;
        X[i * d + off] = ((Number.isNaN(x) ? e.median : x) - e.mean) / e.sd;
      }
      off++;
    } else if (e.kind === 'categorical' && c.kind === 'categorical') {
      writeOneHot(X, d, off, c.codes, e.slot);
      off += e.width;
    } else throw new Error(`logistic: column "${c.name}" kind changed`);
  });
  return X;
}

export interface LogisticOptions {
  /** L2 penalty on weights (not the intercept): loss = sum logloss + l2/2 ||w||^2. Default 1. */
  l2?: number;
  maxIter?: number;
  tol?: number;
}

export interface LogisticModel {
  encoder: DesignEncoder;
  weights: Float64Array;
  intercept: number;
  iterations: number;
  predictProba(table: Table): Float64Array;
}

const log1pexp = (z: number): number => (z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z)));

/** Fits on raw design matrix X (n x d, row-major), labels 0/1. Returns [intercept, w...]. */
export function fitLogisticMatrix(X: Float64Array, n: number, d: number, y: Uint8Array, opts: LogisticOptions = {}): { beta: Float64Array; iterations: number } {
  const l2 = opts.l2 ?? 1;
  const maxIter = opts.maxIter ?? 50;
  const tol = opts.tol ?? 1e-8;
  const D = d + 1;
  const beta = new Float64Array(D);
  let pos = 0;
  for (let i = 0; i < n; i++) pos += y[i]!;
  const p0 = Math.min(1 - 1e-6, Math.max(1e-6, pos / n));
  beta[0] = Math.log(p0 / (1 - p0));
  const z = new Float64Array(n);
  const lossAt = (b: Float64Array): number => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      let zi = b[0]!;
      const o = i * d;
      for (let k = 0; k < d; k++) zi += X[o + k]! * b[k + 1]!;
      z[i] = zi;
      s += log1pexp(zi) - y[i]! * zi;
    }
    for (let k = 1; k < D; k++) s += 0.5 * l2 * b[k]! * b[k]!;
    return s;
  };
  let loss = lossAt(beta);
  let it = 0;
  for (; it < maxIter; it++) {
    const grad = new Float64Array(D);
    const H = new Float64Array(D * D);
    const xi = new Float64Array(D);
    xi[0] = 1;
    for (let i = 0; i < n; i++) {
      const p = 1 / (1 + Math.exp(-z[i]!));
      const r = p - y[i]!;
      const w = Math.max(p * (1 - p), 1e-12);
      const o = i * d;
      for (let k = 0; k < d; k++) xi[k + 1] = X[o + k]!;
      for (let a = 0; a < D; a++) {
        const xa = xi[a]!;
        if (xa === 0) continue;
        grad[a]! += r * xa;
        const wa = w * xa;
        const row = a * D;
        for (let b = a; b < D; b++) H[row + b]! += wa * xi[b]!;
      }
    }
    for (let k = 1; k < D; k++) {
      grad[k]! += l2 * beta[k]!;
      H[k * D + k]! += l2;
    }
    H[0]! += 1e-9;
    for (let a = 0; a < D; a++) for (let b = 0; b < a; b++) H[a * D + b] = H[b * D + a]!;
    const step = choleskySolve(H, grad, D);
    // Backtracking: Newton steps can overshoot on (nearly) separable data.
    let t = 1;
    let next = new Float64Array(D);
    let nl = Infinity;
    for (let ls = 0; ls < 30; ls++) {
      for (let k = 0; k < D; k++) next[k] = beta[k]! - t * step[k]!;
      nl = lossAt(next);
      if (nl <= loss) break;
      t /= 2;
    }
    if (!(nl <= loss)) {
      lossAt(beta);
      break;
    }
    let maxStep = 0;
    for (let k = 0; k < D; k++) maxStep = Math.max(maxStep, Math.abs(t * step[k]!));
    beta.set(next);
    const improved = loss - nl;
    loss = nl;
    if (maxStep < 1e-6 || improved < tol * Math.max(1, Math.abs(loss))) {
      it++;
      break;
    }
    next = new Float64Array(D);
  }
  return { beta, iterations: it };
}

/** Solves A x = b for symmetric positive-definite A (D x D); adds jitter if needed. */
function choleskySolve(A: Float64Array, b: Float64Array, D: number): Float64Array {
  for (let jitter = 0; jitter < 8; jitter++) {
    const L = new Float64Array(D * D);
    let ok = true;
    const eps = jitter === 0 ? 0 : 1e-8 * 10 ** jitter;
    for (let i = 0; i < D && ok; i++) {
      for (let j = 0; j <= i; j++) {
        let s = A[i * D + j]! + (i === j ? eps : 0);
        for (let k = 0; k < j; k++) s -= L[i * D + k]! * L[j * D + k]!;
        if (i === j) {
          if (s <= 0) {
            ok = false;
            break;
          }
          L[i * D + i] = Math.sqrt(s);
        } else L[i * D + j] = s / L[j * D + j]!;
      }
    }
    if (!ok) continue;
    const yv = new Float64Array(D);
    for (let i = 0; i < D; i++) {
      let s = b[i]!;
      for (let k = 0; k < i; k++) s -= L[i * D + k]! * yv[k]!;
      yv[i] = s / L[i * D + i]!;
    }
    const x = new Float64Array(D);
    for (let i = D - 1; i >= 0; i--) {
      let s = yv[i]!;
      for (let k = i + 1; k < D; k++) s -= L[k * D + i]! * x[k]!;
      x[i] = s / L[i * D + i]!;
    }
    return x;
  }
  throw new Error('logistic: Hessian is not positive definite');
}

/** Trains logistic regression on `table` (every column a feature) with 0/1 labels. */
export function trainLogistic(table: Table, y: Uint8Array, opts: LogisticOptions = {}): LogisticModel {
  if (y.length !== table.nRows) throw new Error(`trainLogistic: ${table.nRows} rows but ${y.length} labels`);
  if (table.nRows === 0) throw new Error('trainLogistic: no training rows');
  const encoder = fitDesign(table);
  const X = applyDesign(encoder, table);
  const { beta, iterations } = fitLogisticMatrix(X, table.nRows, encoder.dim, y, opts);
  const weights = beta.slice(1);
  const intercept = beta[0]!;
  return {
    encoder,
    weights,
    intercept,
    iterations,
    predictProba(t: Table): Float64Array {
      const Z = applyDesign(encoder, t);
      const d = encoder.dim;
      const out = new Float64Array(t.nRows);
      for (let i = 0; i < t.nRows; i++) {
        let z = intercept;
        for (let k = 0; k < d; k++) z += Z[i * d + k]! * weights[k]!;
        out[i] = 1 / (1 + Math.exp(-z));
      }
      return out;
    },
  };
}
