import { describe, expect, it } from 'vitest';
import { applyBinnedDesign, clippedGradientSum, fitBinnedDesign, predictLogistic, trainDpLogistic } from '../../shared/eval/dp-logistic';
import { aucRoc } from '../../shared/eval';
import type { Table } from '../../shared/eval';
import { Rng } from '../../shared/tensor/random';

// A two-column problem: the class depends on a numeric x (through a threshold) and a category.
function problem(n: number, seed: number): { table: Table; y: Uint8Array } {
  const r = new Rng(seed);
  const x = new Float64Array(n);
  const codes = new Int32Array(n);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = r.next() * 10;
    codes[i] = Math.floor(r.next() * 3);
    const logit = (x[i]! > 7 ? 2.5 : -1.5) + (codes[i] === 2 ? 1.5 : -0.5);
    y[i] = r.next() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
  }
  return { table: { nRows: n, columns: [{ kind: 'numeric', name: 'x', values: x }, { kind: 'categorical', name: 'c', codes, categories: ['a', 'b', 'z'] }] }, y };
}

describe('binned design', () => {
  it('encodes a numeric column as its quantile bin plus a clipped value, a category as one-hot', () => {
    const { table } = problem(1000, 1);
    const enc = fitBinnedDesign(table, 4);
    // 3 inner edges → 4 bins + the value, then 3 categories.
    expect(enc.dim).toBe(4 + 1 + 3);
    const X = applyBinnedDesign(enc, table);
    for (let i = 0; i < table.nRows; i++) {
      const row = X.subarray(i * enc.dim, (i + 1) * enc.dim);
      expect(row.subarray(0, 4).reduce((a, b) => a + b, 0)).toBe(1);
      expect(Math.abs(row[4]!)).toBeLessThanOrEqual(1);
      expect(row.subarray(5).reduce((a, b) => a + b, 0)).toBe(1);
    }
    // A higher x never falls in a lower bin.
    const binOf = (i: number): number => X.subarray(i * enc.dim, i * enc.dim + 4).indexOf(1);
    const xs = (table.columns[0] as { values: Float64Array }).values;
    const order = Array.from(xs.keys()).sort((a, b) => xs[a]! - xs[b]!);
    for (let k = 1; k < order.length; k++) expect(binOf(order[k]!)).toBeGreaterThanOrEqual(binOf(order[k - 1]!));
  });
});

describe('DP-SGD logistic regression', () => {
  it('clips each example to the norm, as a naive per-example computation does', () => {
    const { table, y } = problem(50, 2);
    const enc = fitBinnedDesign(table, 4);
    const X = applyBinnedDesign(enc, table);
    const d = enc.dim;
    const beta = Float64Array.from({ length: d + 1 }, (_, k) => (k % 3) - 1);
    const clip = 0.3;
    for (let i = 0; i < 50; i++) {
      const got = new Float64Array(d + 1);
      clippedGradientSum(X, d, y, beta, [i], clip, got);
      // Naive: the full gradient, then scaled down to the bound.
      let z = beta[0]!;
      for (let k = 0; k < d; k++) z += X[i * d + k]! * beta[k + 1]!;
      const res = 1 / (1 + Math.exp(-z)) - y[i]!;
      const g = [res, ...Array.from(X.subarray(i * d, (i + 1) * d), (x) => res * x)];
      const norm = Math.hypot(...g);
      const want = g.map((v) => (norm > clip ? (v * clip) / norm : v));
      expect(Math.hypot(...got)).toBeLessThanOrEqual(clip + 1e-12);
      want.forEach((v, k) => expect(got[k]).toBeCloseTo(v, 12));
    }
  });

  it('learns the task without noise, and nothing under overwhelming noise', () => {
    const train = problem(4000, 3);
    const test = problem(4000, 4);
    const enc = fitBinnedDesign(train.table);
    const d = enc.dim;
    const A = applyBinnedDesign(enc, train.table);
    const H = applyBinnedDesign(enc, test.table);
    const fit = (sigma: number, seed: number): number => {
      const m = trainDpLogistic(A, 4000, d, train.y, { sampleRate: 0.1, steps: 100, noiseMultiplier: sigma, clipNorm: 1, lr: 3, seed });
      return aucRoc(predictLogistic(m.averaged, H, 4000, d), test.y);
    };
    // The generating model's own AUC on this data is about 0.83; the threshold on x is in the bins.
    expect(fit(0, 5)).toBeGreaterThan(0.8);
    // σ = 1e5: the noise on the mean gradient (σ/(q·n) = 250 per coordinate against a signal of at
    // most 1) points the weights anywhere, so the AUC is as often below 0.5 as above: its mean over
    // fits is 0.5 (one fit alone can land far from it).
    const noisy = Array.from({ length: 30 }, (_, k) => fit(1e5, k));
    expect(Math.abs(noisy.reduce((a, b) => a + b, 0) / noisy.length - 0.5)).toBeLessThan(0.1);
  });

  it('refuses a malformed call', () => {
    const X = new Float64Array(6);
    const y = new Uint8Array(3);
    expect(() => trainDpLogistic(X, 3, 2, y, { sampleRate: 0, steps: 1, noiseMultiplier: 1, clipNorm: 1, lr: 1, seed: 1 })).toThrow(/sampleRate/);
    expect(() => trainDpLogistic(X, 3, 3, y, { sampleRate: 0.5, steps: 1, noiseMultiplier: 1, clipNorm: 1, lr: 1, seed: 1 })).toThrow(/9 rows|values/);
  });
});
