// A reference, not a release: logistic regression trained directly on a table's real rows by
// DP-SGD (Abadi et al. 2016), so that a DP synthesizer's train-on-synthetic figures can be read
// against what a DP model of the task itself reaches with the same ε. bench/privacy-reference.ts
// runs it; nothing in the product calls it, and nothing it computes leaves the evaluation.
//
// The features are the evaluator's kind of design matrix with more room for a linear model: each
// numeric column as one-hot over its training quantile bins plus its standardised value over 3,
// clipped to [-1, 1] (a step function with a slope, as the transformer's modes give the generator), each
// categorical column one-hot over its training categories. The design's statistics come from the
// real rows without noise: generous to the reference, which is the point of a bound.
import type { Table } from './table';
import { quantileSorted } from './random';
import { codesByFrequency, numericStats, oneHotSlots, writeOneHot } from './logistic';
import { Rng } from '../tensor/random';
import { secureGaussian } from '../privacy/secure-noise';
import { noiseMultiplierFor } from '../privacy/calibrate';

/** Maximum one-hot width of a categorical column; rarer categories encode as all-zero. */
const MAX_CATEGORIES = 50;

type NumericEncoding = { kind: 'numeric'; name: string; edges: number[]; median: number; mean: number; sd: number; width: number };
type CategoricalEncoding = { kind: 'categorical'; name: string; slot: Int32Array; width: number };
export interface BinnedDesign {
  columns: (NumericEncoding | CategoricalEncoding)[];
  dim: number;
}

/** Fits the binned design on training rows: `bins` quantile bins per numeric column (fewer where values repeat). */
export function fitBinnedDesign(table: Table, bins = 10): BinnedDesign {
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`fitBinnedDesign: bins must be a positive integer, got ${bins}`);
  let dim = 0;
  const columns = table.columns.map((c): NumericEncoding | CategoricalEncoding => {
    if (c.kind === 'numeric') {
      const { sorted, median, mean, sd } = numericStats(c.values);
      const edges: number[] = [];
      for (let k = 1; k < bins && sorted.length > 0; k++) {
        const e = quantileSorted(sorted, k / bins);
        if (edges.length === 0 || e > edges[edges.length - 1]!) edges.push(e);
      }
      const width = edges.length + 2; // the bins, then the clipped standardised value
      dim += width;
      return { kind: 'numeric', name: c.name, edges, median, mean, sd, width };
    }
    const kept = codesByFrequency(c.codes, c.categories.length).slice(0, MAX_CATEGORIES);
    dim += kept.length;
    return { kind: 'categorical', name: c.name, slot: oneHotSlots(c.categories.length, kept), width: kept.length };
  });
  return { columns, dim };
}

/** Row-major design matrix (n × dim). Every row has norm at most √(2·numeric columns + categorical columns). */
export function applyBinnedDesign(enc: BinnedDesign, table: Table): Float64Array {
  const n = table.nRows;
  const d = enc.dim;
  const X = new Float64Array(n * d);
  let off = 0;
  enc.columns.forEach((e, k) => {
    const c = table.columns[k]!;
    if (c.name !== e.name) throw new Error(`binned design: column ${k} is "${c.name}", expected "${e.name}"`);
    if (e.kind === 'numeric' && c.kind === 'numeric') {
      for (let i = 0; i < n; i++) {
        const raw = c.values[i]!;
        const x = Number.isNaN(raw) ? e.median : raw;
        let b = 0;
        while (b < e.edges.length && x >= e.edges[b]!) b++;
        X[i * d + off + b] = 1;
        X[i * d + off + e.width - 1] = Math.max(-1, Math.min(1, (x - e.mean) / (3 * e.sd)));
      }
    } else if (e.kind === 'categorical' && c.kind === 'categorical') {
      writeOneHot(X, d, off, c.codes, e.slot);
    } else throw new Error(`binned design: column "${c.name}" changed kind`);
    off += e.width;
  });
  return X;
}

export interface DpLogisticOptions {
  /** Poisson sampling rate q of each step's batch. */
  sampleRate: number;
  steps: number;
  /** σ: the noise sd on the summed clipped gradient is σ·clipNorm. 0 = no noise (and then clipping alone). */
  noiseMultiplier: number;
  /** Per-example L2 clipping norm C of the gradient over (intercept, weights). */
  clipNorm: number;
  /** Plain SGD rate on the noisy mean gradient (sum / (q·n)). */
  lr: number;
  /** Seeds the batch sampling; the noise is node:crypto's (shared/privacy/secure-noise). */
  seed: number;
  /** Starting [intercept, w…] (a federation's global model); default zeros. */
  init?: Float64Array;
}

export interface DpLogisticModel {
  /** [intercept, w…] after the last step. */
  last: Float64Array;
  /** The mean of the iterates over the second half of the steps (post-processing). */
  averaged: Float64Array;
}

const sigmoid = (z: number): number => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

/**
 * The sum of the per-example gradients of the log-loss over `rows`, each clipped to L2 norm `clip`:
 * g_i = (σ(β·x_i) − y_i)·(1, x_i), scaled by min(1, clip/‖g_i‖). Adds into `out` (length d + 1).
 */
export function clippedGradientSum(X: Float64Array, d: number, y: Uint8Array, beta: Float64Array, rows: ArrayLike<number>, clip: number, out: Float64Array): void {
  for (let r = 0; r < rows.length; r++) {
    const i = rows[r]!;
    const o = i * d;
    let z = beta[0]!;
    let sq = 1;
    for (let k = 0; k < d; k++) {
      const x = X[o + k]!;
      z += x * beta[k + 1]!;
      sq += x * x;
    }
    const res = sigmoid(z) - y[i]!;
    const norm = Math.abs(res) * Math.sqrt(sq);
    const g = norm > clip ? (res * clip) / norm : res;
    out[0]! += g;
    for (let k = 0; k < d; k++) out[k + 1]! += g * X[o + k]!;
  }
}

/** DP-SGD for logistic regression on rows X (n × d), labels y: Poisson batches, per-example clipping, Gaussian noise. */
export function trainDpLogistic(X: Float64Array, n: number, d: number, y: Uint8Array, o: DpLogisticOptions): DpLogisticModel {
  if (!(o.sampleRate > 0 && o.sampleRate <= 1)) throw new Error(`trainDpLogistic: sampleRate must be in (0, 1], got ${o.sampleRate}`);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`trainDpLogistic: steps must be a positive integer, got ${o.steps}`);
  if (!(o.noiseMultiplier >= 0) || !(o.clipNorm > 0) || !(o.lr > 0)) throw new Error('trainDpLogistic: noiseMultiplier ≥ 0, clipNorm > 0 and lr > 0 required');
  if (X.length !== n * d || y.length !== n) throw new Error(`trainDpLogistic: X has ${X.length} values and y ${y.length} labels for ${n} rows of ${d}`);
  const D = d + 1;
  if (o.init && o.init.length !== D) throw new Error(`trainDpLogistic: init has ${o.init.length} values for ${D}`);
  const beta = o.init ? Float64Array.from(o.init) : new Float64Array(D);
  const averaged = new Float64Array(D);
  const from = Math.floor(o.steps / 2);
  const rng = new Rng(o.seed);
  const grad = new Float64Array(D);
  const batch: number[] = [];
  const expected = o.sampleRate * n;
  for (let t = 0; t < o.steps; t++) {
    batch.length = 0;
    for (let i = 0; i < n; i++) if (rng.next() < o.sampleRate) batch.push(i);
    grad.fill(0);
    clippedGradientSum(X, d, y, beta, batch, o.clipNorm, grad);
    const noise = o.noiseMultiplier > 0 ? secureGaussian(D, o.noiseMultiplier * o.clipNorm) : null;
    for (let k = 0; k < D; k++) beta[k]! -= (o.lr * (grad[k]! + (noise ? noise[k]! : 0))) / expected;
    if (t >= from) for (let k = 0; k < D; k++) averaged[k]! += beta[k]! / (o.steps - from);
  }
  return { last: beta, averaged };
}

/** σ(β·x) for each row of X (n × d). */
export function predictLogistic(beta: Float64Array, X: Float64Array, n: number, d: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let z = beta[0]!;
    for (let k = 0; k < d; k++) z += X[i * d + k]! * beta[k + 1]!;
    out[i] = sigmoid(z);
  }
  return out;
}

export interface FederatedDpLogisticOptions {
  rounds: number;
  localSteps: number;
  /** Each bank's expected batch: q = min(1, batch / its rows). */
  batch: number;
  /** Each bank's (ε, δ) over all its rounds' steps: its σ by noiseMultiplierFor at its own q. */
  epsilon: number;
  delta: number;
  lr: number;
  seed: number;
}

/**
 * The same model trained as a federation trains it: each bank `localSteps` of DP-SGD on its own rows
 * from the global model, the banks' models averaged by rows after each round. Returns the last
 * round's global model and the mean of the second half's.
 */
export function trainFederatedDpLogistic(banks: readonly { X: Float64Array; y: Uint8Array; n: number }[], d: number, o: FederatedDpLogisticOptions): DpLogisticModel {
  const total = banks.reduce((s, b) => s + b.n, 0);
  let global = new Float64Array(d + 1);
  const averaged = new Float64Array(d + 1);
  const half = Math.floor(o.rounds / 2);
  for (let round = 0; round < o.rounds; round++) {
    const next = new Float64Array(d + 1);
    banks.forEach((bk, bi) => {
      const q = Math.min(1, o.batch / bk.n);
      const sigma = noiseMultiplierFor({ targetEpsilon: o.epsilon, delta: o.delta, sampleRate: q, steps: o.rounds * o.localSteps });
      const m = trainDpLogistic(bk.X, bk.n, d, bk.y, { sampleRate: q, steps: o.localSteps, noiseMultiplier: sigma, clipNorm: 1, lr: o.lr, seed: o.seed + 100 * round + bi, init: global });
      for (let k = 0; k <= d; k++) next[k]! += (m.last[k]! * bk.n) / total;
    });
    global = next;
    if (round >= half) for (let k = 0; k <= d; k++) averaged[k]! += global[k]! / (o.rounds - half);
  }
  return { last: global, averaged };
}
