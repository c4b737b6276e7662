// Toy data sets for model tests (small, fast to learn).
import type * as tf from '@tensorflow/tfjs';
import type { OutputSpan } from '../../shared/model/config';
import { Rng } from '../../shared/tensor/random';

/** x ~ N(mu, sd) clipped to [-1, 1], one tanh column. */
export function oneDim(n: number, mu: number, sd: number, seed = 1): { spans: OutputSpan[]; data: Float32Array } {
  const r = new Rng(seed);
  const z = r.normal(n);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.max(-1, Math.min(1, mu + sd * z[i]!));
  return { spans: [{ column: 'x', kind: 'tanh', dim: 1, offset: 0 }], data };
}

/**
 * A categorical column 'c' with `k` categories (probabilities `p`) and a continuous 'x' whose
 * centre depends on the category: x ≈ centre[c].
 */
export function condToy(n: number, p: number[], centres: number[], seed = 2): { spans: OutputSpan[]; data: Float32Array } {
  const k = p.length;
  const spans: OutputSpan[] = [
    { column: 'x', kind: 'tanh', dim: 1, offset: 0 },
    { column: 'c', kind: 'softmax', dim: k, offset: 1 },
  ];
  const d = 1 + k;
  const r = new Rng(seed);
  const data = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let u = r.next();
    let c = 0;
    while (c < k - 1 && u >= p[c]!) u -= p[c++]!;
    data[i * d] = centres[c]! + 0.05 * r.normal(1)[0]!;
    data[i * d + 1 + c] = 1;
  }
  return { spans, data };
}

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s / xs.length;
}

export function std(xs: ArrayLike<number>): number {
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i]! - m) ** 2;
  return Math.sqrt(s / xs.length);
}

/** Tensors' values concatenated in order (e.g. a gradient list as one vector). */
export function flat(ts: tf.Tensor[]): Float32Array {
  const parts = ts.map((t) => t.dataSync() as Float32Array);
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const norm = (v: Float32Array): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

/** ‖a − b‖ / ‖b‖. */
export function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(d) / Math.max(norm(b), 1e-12);
}
