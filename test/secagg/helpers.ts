// Shared helpers for the secure-aggregation tests.
import { encodeUpdate, type RingParams } from '../../shared/secagg';

/** Deterministic pseudo-random float update with L2 norm `norm` (xorshift; test data only). */
export function randomUpdate(d: number, norm: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32 - 0.5;
  };
  const x = new Float32Array(d);
  let n2 = 0;
  for (let i = 0; i < d; i++) {
    x[i] = next();
    n2 += x[i] * x[i];
  }
  const f = norm / Math.sqrt(n2);
  for (let i = 0; i < d; i++) x[i] *= f;
  return x;
}

/** Chi-square statistic of the byte histogram of `words` against the uniform distribution (255 dof). */
export function byteChiSquare(words: Uint32Array): number {
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  const counts = new Float64Array(256);
  for (const b of bytes) counts[b]++;
  const e = bytes.length / 256;
  let chi = 0;
  for (const c of counts) chi += ((c - e) * (c - e)) / e;
  return chi;
}
/** χ²(255) critical value at p = 1e-6 (377.1); uniform bytes exceed it once in a million runs. */
export const CHI2_255_P1E6 = 377.1;

export function encodeAll(updates: Float32Array[], p: RingParams): Uint32Array[] {
  return updates.map((u) => encodeUpdate(u, p).ring);
}

/** Σ of float updates after the same clipping the encoder applies (float64). */
export function floatSum(updates: Float32Array[], clipNorm: number): Float64Array {
  const d = updates[0].length;
  const out = new Float64Array(d);
  for (const u of updates) {
    let n2 = 0;
    for (let i = 0; i < d; i++) n2 += u[i] * u[i];
    const n = Math.sqrt(n2);
    const f = n > clipNorm ? (clipNorm / n) * (1 - 1e-6) : 1;
    for (let i = 0; i < d; i++) out[i] += u[i] * f;
  }
  return out;
}
