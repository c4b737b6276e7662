// DP-SGD on the discriminator: exact vectorised per-example clipping (against naive per-example
// autodiff), noise scale, no learning under huge noise, and the ledger wiring of the bank agent.
import { releaseCalibrationCounts } from '../../client-node/dp-calibration';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultModelConfig, type ModelConfig } from '../../shared/model/config';
import { createModel, type GanModel } from '../../shared/model/model';
import { createTrainer, discriminatorLoss } from '../../shared/model/trainer';
import { leakyRelu, linear, softplus } from '../../shared/model/layers';
import {
  clipFactors,
  discriminatorDeltas,
  dpDropoutMasks,
  dpDiscriminatorGradients,
  nsLogitGradients,
  packSample,
  perExampleSquaredNorms,
  poissonSample,
  recordSensitivity,
  weightedGradientSum,
} from '../../shared/model/dp-sgd';
import { CryptoRandom } from '../../shared/privacy/secure-noise';
import { epsilonFor, ImpossibleBudgetError, noiseMultiplierFor } from '../../shared/privacy/calibrate';
import { selectBackend } from '../../shared/tensor/backend';
import { Rng } from '../../shared/tensor/random';
import { BudgetExceededError, PrivacyLedger } from '../../client-node/ledger';
import { GanLocalTrainer, type ConsortiumModelConfig } from '../../client-node/local-trainer';
import type { TrainingPlan } from '../../client-node/wire';
import { condToy, flat, norm, relErr } from './helpers';

const toy = condToy(400, [0.5, 0.3, 0.2], [-0.5, 0, 0.5]);

function model(over: Partial<ModelConfig>): GanModel {
  return createModel(defaultModelConfig({ noiseDim: 6, generatorDims: [16, 16], discriminatorDims: [12, 10], loss: 'ns', dropout: 0.5, seed: 3, ...over }), toy.spans);
}

/** D forward with given dropout masks (rows of the batch's masks), for naive per-example autodiff. */
function forwardWithMasks(m: GanModel, x: tf.Tensor2D, masks: (tf.Tensor2D | undefined)[]): tf.Tensor2D {
  let a = x;
  m.config.discriminatorDims.forEach((_, i) => {
    let out = leakyRelu(linear(a, m.variable(`D/${i}/kernel`), m.variable(`D/${i}/bias`)), m.config.leakySlope) as tf.Tensor2D;
    if (masks[i]) out = tf.mul(out, masks[i]!) as tf.Tensor2D;
    a = out;
  });
  return linear(a, m.variable('D/out/kernel'), m.variable('D/out/bias'));
}


function packedBatch(m: GanModel, rows: number, seed: number): tf.Tensor2D {
  const r = new Rng(seed);
  return tf.tensor2d(r.normal(rows * m.dims.discInputDim, 0, 1), [rows, m.dims.discInputDim]);
}

describe('DP-SGD for the discriminator', () => {
  beforeAll(async () => {
    // Honours FEDSYNTH_BACKEND (e.g. cpu); wasm otherwise, as the other model tests.
    await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
  });

  for (const pac of [1, 2]) {
    it(`pac ${pac}: vectorised per-example norms and clipped sum equal naive per-example autodiff`, () => {
      const m = model({ pac });
      const vars = m.discriminatorVariables();
      const rows = 12;
      const x = packedBatch(m, rows, 11 + pac);
      const out = m.discriminatorForward(x, true, new Rng(5));
      expect(out.layers.some((l) => l.dropoutMask)).toBe(true);
      // All rows real: per-example loss softplus(−logit).
      const deltas = discriminatorDeltas(m, out.layers, nsLogitGradients(out.logits, rows));
      const fast = Array.from(perExampleSquaredNorms(out.layers, deltas).dataSync(), Math.sqrt);

      const naive: Float32Array[] = [];
      for (let i = 0; i < rows; i++) {
        const xi = tf.slice(x, [i, 0], [1, -1]) as tf.Tensor2D;
        const masks = out.layers.map((l) => (l.dropoutMask ? (tf.slice(l.dropoutMask, [i, 0], [1, -1]) as tf.Tensor2D) : undefined));
        const { value, grads } = tf.variableGrads(() => tf.sum(softplus(tf.neg(forwardWithMasks(m, xi, masks)))) as tf.Scalar, vars);
        naive.push(flat(vars.map((v) => grads[v.name]!)));
        value.dispose();
        Object.values(grads).forEach((g) => g.dispose());
      }
      for (let i = 0; i < rows; i++) {
        const ni = norm(naive[i]!);
        expect(ni).toBeGreaterThan(0);
        expect(Math.abs(fast[i]! - ni) / ni).toBeLessThan(1e-4);
      }

      // Clip at the median norm so some rows are clipped and some are not.
      const C = [...fast].sort((a, b) => a - b)[rows >> 1]!;
      const c = clipFactors(tf.tensor1d(fast.map((v) => v * v)), C);
      const cs = c.dataSync();
      expect(Array.from(cs).some((v) => v < 1)).toBe(true);
      expect(Array.from(cs).some((v) => v === 1)).toBe(true);
      const clippedNaive = new Float32Array(naive[0]!.length);
      for (let i = 0; i < rows; i++) {
        const g = naive[i]!;
        const f = Math.min(1, C / norm(g));
        const clipped = g.map((v) => v * f);
        // Every clipped per-example gradient (naive and vectorised factor) is within C.
        expect(norm(clipped)).toBeLessThanOrEqual(C * (1 + 1e-6));
        expect(cs[i]! * fast[i]!).toBeLessThanOrEqual(C * (1 + 1e-6));
        for (let j = 0; j < g.length; j++) clippedNaive[j] += clipped[j]!;
      }
      const sum = weightedGradientSum(m, out.layers, deltas, c);
      expect(relErr(flat(sum), clippedNaive)).toBeLessThan(1e-4);
      tf.dispose([x, out.logits, c, ...sum, ...deltas, ...out.layers.flatMap((l) => [l.a, l.z, ...(l.dropoutMask ? [l.dropoutMask] : [])])]);
      m.dispose();
    });
  }

  it('without noise and clipping, the DP gradient is the autodiff gradient of Σ real loss / E + mean fake loss', () => {
    const m = model({ pac: 2 });
    const vars = m.discriminatorVariables();
    const real = packedBatch(m, 7, 1);
    const fake = packedBatch(m, 5, 2);
    const E = 6.5;
    const r = dpDiscriminatorGradients(m, real, fake, { dp: { noiseMultiplier: 0, maxGradNorm: 1e9, sampleRate: 0.1 }, expectedRealPacks: E, rng: new Rng(9), noNoise: true });
    expect(r.clippedFraction).toBe(0);
    const masks = dpDropoutMasks(m, 7, 5, new Rng(9));
    expect(masks.every((k) => k !== undefined)).toBe(true);
    const { value, grads } = tf.variableGrads(() => {
      const l = forwardWithMasks(m, tf.concat([real, fake], 0), masks);
      const lr = tf.slice(l, [0, 0], [7, 1]);
      const lf = tf.slice(l, [7, 0], [5, 1]);
      return tf.add(tf.div(tf.sum(softplus(tf.neg(lr))), E), tf.mean(softplus(lf))) as tf.Scalar;
    }, vars);
    expect(relErr(flat(r.grads), flat(vars.map((v) => grads[v.name]!)))).toBeLessThan(1e-4);
    // The reported loss is the ordinary ns loss of the batch (means over real and over fake packs).
    const ref = discriminatorLoss('ns', tf.slice(forwardWithMasks(m, real, masks.map((k) => k && tf.slice(k, [0, 0], [7, -1]) as tf.Tensor2D)), [0, 0], [7, 1]), forwardWithMasks(m, fake, masks.map((k) => k && tf.slice(k, [7, 0], [5, -1]) as tf.Tensor2D)));
    expect(r.loss).toBeCloseTo(ref.dataSync()[0]!, 4);
    tf.dispose([value, ref, real, fake, ...Object.values(grads), ...r.grads]);
    m.dispose();
  });

  it('fake packs are clipped to the same norm as real ones (no noise): Σ clip(∇ℓ_r)/E + mean clip(∇ℓ_f), as naive autodiff', () => {
    // Only the real term needs clipping for privacy; the fake term is clipped too so that it cannot
    // outweigh the clipped real term and drag every logit down (see dp-sgd.ts).
    const m = model({ pac: 2 });
    const vars = m.discriminatorVariables();
    const real = packedBatch(m, 6, 21);
    const fake = tf.mul(packedBatch(m, 5, 22), 3) as tf.Tensor2D; // larger inputs, larger gradients
    const masks = dpDropoutMasks(m, 6, 5, new Rng(4));
    const perRow = (x: tf.Tensor2D, rowMasks: (tf.Tensor2D | undefined)[], sign: number): Float32Array => {
      const { value, grads } = tf.variableGrads(() => tf.sum(softplus(tf.mul(forwardWithMasks(m, x, rowMasks), sign))) as tf.Scalar, vars);
      const g = flat(vars.map((v) => grads[v.name]!));
      tf.dispose([value, ...Object.values(grads)]);
      return g;
    };
    const rowOf = (t: tf.Tensor2D, i: number): tf.Tensor2D => tf.slice(t, [i, 0], [1, -1]) as tf.Tensor2D;
    const realG = Array.from({ length: 6 }, (_, i) => perRow(rowOf(real, i), masks.map((k) => k && rowOf(k, i)), -1));
    const fakeG = Array.from({ length: 5 }, (_, i) => perRow(rowOf(fake, i), masks.map((k) => k && rowOf(k, 6 + i)), 1));
    const C = [...realG, ...fakeG].map(norm).sort((a, b) => a - b)[5]!; // the median: some of each side clipped, some not
    expect(fakeG.some((g) => norm(g) > C)).toBe(true);
    const E = 4.5;
    const want = new Float32Array(realG[0]!.length);
    for (const g of realG) g.forEach((v, j) => (want[j] += (Math.min(1, C / norm(g)) * v) / E));
    for (const g of fakeG) g.forEach((v, j) => (want[j] += (Math.min(1, C / norm(g)) * v) / 5));
    const unclippedFake = new Float32Array(want.length);
    for (const g of realG) g.forEach((v, j) => (unclippedFake[j] += (Math.min(1, C / norm(g)) * v) / E));
    for (const g of fakeG) g.forEach((v, j) => (unclippedFake[j] += v / 5));
    const r1 = dpDiscriminatorGradients(m, real, fake, { dp: { noiseMultiplier: 1, maxGradNorm: C, sampleRate: 0.1 }, expectedRealPacks: E, rng: new Rng(4), noNoise: true });
    expect(relErr(flat(r1.grads), want)).toBeLessThan(1e-4);
    expect(relErr(flat(r1.grads), unclippedFake)).toBeGreaterThan(1e-2); // the old, unclipped fake term differs
    tf.dispose([real, fake, ...masks.filter((k): k is tf.Tensor2D => k !== undefined), ...r1.grads]);
    m.dispose();
  });

  for (const pac of [1, 2]) {
    it(`pac ${pac}: the added noise is N(0, (σ·Δ)²) with Δ = ${pac === 1 ? 'C' : '2C'}, scaled by 1/E`, () => {
      const m = model({ pac, discriminatorDims: [64, 64] });
      const real = packedBatch(m, 10, 3);
      const fake = packedBatch(m, 10, 4);
      const dp = { noiseMultiplier: 1.5, maxGradNorm: 0.7, sampleRate: 0.05 };
      const E = 4;
      const clean = dpDiscriminatorGradients(m, real, fake, { dp, expectedRealPacks: E, rng: new Rng(2), noNoise: true });
      const noisy = dpDiscriminatorGradients(m, real, fake, { dp, expectedRealPacks: E, rng: new Rng(2) });
      const a = flat(clean.grads);
      const b = flat(noisy.grads);
      expect(a.length).toBeGreaterThan(4000);
      const want = dp.noiseMultiplier * recordSensitivity(pac, dp.maxGradNorm);
      expect(want).toBeCloseTo(pac === 1 ? 1.05 : 2.1, 10);
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < a.length; i++) {
        const d = (b[i]! - a[i]!) * E;
        s += d;
        s2 += d * d;
      }
      const mean = s / a.length;
      const std = Math.sqrt(s2 / a.length - mean * mean);
      expect(Math.abs(std / want - 1)).toBeLessThan(0.05);
      expect(Math.abs(mean)).toBeLessThan(0.05 * want);
      tf.dispose([real, fake, ...clean.grads, ...noisy.grads]);
      m.dispose();
    });
  }

  it('Poisson sampling includes rows at rate q; packing keeps a multiple of pac', () => {
    const rng = new CryptoRandom();
    const s = poissonSample(20000, 0.1, rng);
    expect(Math.abs(s.length - 2000)).toBeLessThan(5 * Math.sqrt(2000 * 0.9));
    expect(new Set(s).size).toBe(s.length);
    const p = packSample(s, 10, rng);
    expect(p.length % 10).toBe(0);
    expect(s.length - p.length).toBeLessThan(10);
    expect(poissonSample(50, 1, rng)).toHaveLength(50);
  });

  it('refuses WGAN-GP and by-category sampling with clear errors', () => {
    const w = model({ loss: 'wgan-gp' });
    expect(() => createTrainer(w, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 } })).toThrow(/'ns' loss only.*gradient penalty/);
    w.dispose();
    const m = model({});
    expect(() => createTrainer(m, { sampling: 'by-category', dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 } })).toThrow(/sampling 'uniform'/);
    expect(() => createTrainer(m, { dp: { noiseMultiplier: 1, maxGradNorm: 0, sampleRate: 0.1 } })).toThrow(/maxGradNorm/);
    expect(createTrainer(m, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 } }).sampling).toBe('uniform');
    m.dispose();
  });

  it('with σ = 1e3 the discriminator learns nothing measurable; without noise it does', () => {
    // D-only training (G fixed) on real vs. generated rows; held-out ns loss in inference mode.
    // Both runs are private (σ = 0 and 1e3) at D's plain rate 5e-3 (discriminatorLrDpScale 1): at
    // the default 10× a pure-noise Adam walk of 40 steps moves each weight by ~0.3, which changes
    // the loss at random, and the comparison is about the noise, not the rate.
    const improvement = (sigma: number): number => {
      const m = model({ dropout: 0, discriminatorDims: [16, 16], discriminatorLrDpScale: 1 });
      const t = createTrainer(m, { lrD: 5e-3, seed: 1, dp: { noiseMultiplier: sigma, maxGradNorm: 1, sampleRate: 0.2 } });
      const evalIn = t.discriminatorInputs(toy.data, 400, 200);
      const evalLoss = (): number =>
        tf.tidy(() => discriminatorLoss('ns', m.discriminatorForward(evalIn.real, false).logits, m.discriminatorForward(evalIn.fake, false).logits).dataSync()[0]!);
      const before = evalLoss();
      for (let s = 0; s < 40; s++) {
        const inputs = t.discriminatorInputs(toy.data, 400, 80, t.samplePrivateRows(400), 80);
        const g = t.discriminatorGradients(inputs);
        tf.dispose([inputs.real, inputs.fake]);
        t.applyDiscriminatorGradients(g.grads);
      }
      const after = evalLoss();
      tf.dispose([evalIn.real, evalIn.fake]);
      t.dispose();
      m.dispose();
      return before - after;
    };
    const clean = improvement(0);
    const noisy = improvement(1e3);
    expect(clean).toBeGreaterThan(0.3);
    expect(Math.abs(noisy)).toBeLessThan(0.25 * clean);
  });

  it("with DP-noised category weights, D's generated rows follow them while the generator's step draws ∝ log(1 + max(w, 1)), so a class whose count came out 0 is still trained", () => {
    const m = model({});
    const freqs = [[1000, 0, 3]]; // one conditional column ('c'); its middle category's noisy count clamped to 0
    const t = createTrainer(m, { seed: 5, categoryFrequencies: freqs, dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 } });
    const share = (cond: Float32Array): number[] => {
      const c = [0, 0, 0];
      for (let r = 0; r < cond.length / 3; r++) for (let j = 0; j < 3; j++) c[j] += cond[r * 3 + j]!;
      const total = c.reduce((a, b) => a + b, 0);
      return c.map((v) => v / total);
    };
    const rows = 6000;
    const g = share(t.generatorConds(rows));
    const w = [Math.log1p(1000), Math.log1p(1), Math.log1p(3)];
    const sw = w.reduce((a, b) => a + b, 0);
    g.forEach((v, j) => expect(Math.abs(v - w[j]! / sw)).toBeLessThan(0.03));
    expect(g[1]!).toBeGreaterThan(0.05);
    // D's generated rows: the cond part of the (pac 1) D input, ∝ the weights themselves.
    const inputs = t.discriminatorInputs(toy.data, 400, rows, t.samplePrivateRows(400), rows);
    const fake = inputs.fake.arraySync() as number[][];
    const d = share(Float32Array.from(fake.flatMap((r) => r.slice(-3))));
    expect(d[1]).toBe(0);
    expect(d[0]!).toBeGreaterThan(0.99);
    tf.dispose([inputs.real, inputs.fake]);
    t.dispose();
    m.dispose();
  });

  it("never conditions the generator on a category the encoding never produces (merged into another's slot)", () => {
    const m = model({});
    const span = m.condSpans[0]!;
    // Category 1 merged into category 2's slot: the pooled weights give it 0, and the floor of the G step's draw would still give it log 2.
    const freqs = [[1000, 0, 3]];
    const counts = (excluded?: { offset: number; categories: number[] }[]) => {
      const t = createTrainer(m, { seed: 5, categoryFrequencies: freqs, ...(excluded ? { excludedCategories: excluded } : {}), dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 } });
      const cond = t.generatorConds(6000);
      t.dispose();
      const c = [0, 0, 0];
      for (let r = 0; r < 6000; r++) for (let j = 0; j < 3; j++) c[j] += cond[r * 3 + j]!;
      return c;
    };
    expect(counts()[1]).toBeGreaterThan(300);
    const merged = counts([{ offset: span.offset, categories: [1] }]);
    expect(merged[1]).toBe(0);
    expect(merged[0]! + merged[2]!).toBe(6000);
    expect(merged[2]).toBeGreaterThan(600); // the slot itself keeps its (floored) share
    // Bad exclusions are refused before any training.
    expect(() => createTrainer(m, { categoryFrequencies: freqs, excludedCategories: [{ offset: span.offset, categories: [3] }] })).toThrow(/excluded categories of 'c' must be integers in \[0, 3\)/);
    expect(() => createTrainer(m, { categoryFrequencies: freqs, excludedCategories: [{ offset: span.offset, categories: [0, 1, 2] }] })).toThrow(/every category of 'c' is excluded/);
    m.dispose();
  });

  it('trainSteps with DP leaks no tensors and changes D', () => {
    const m = model({ pac: 2 });
    const t = createTrainer(m, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 } });
    t.trainSteps(toy.data, 400, { steps: 1, batchSize: 40 });
    const w0 = m.getWeights();
    const before = tf.memory().numTensors;
    const losses = t.trainSteps(toy.data, 400, { steps: 2, batchSize: 40, dSteps: 2 });
    expect(tf.memory().numTensors).toBe(before);
    expect(losses.every((l) => Number.isFinite(l.dLoss))).toBe(true);
    const w1 = m.getWeights();
    const moved = w1.some((w, i) => w.name.startsWith('D/') && w.data.some((v, j) => v !== w0[i]!.data[j]));
    expect(moved).toBe(true);
    t.dispose();
    m.dispose();
  });

  it('the fake rows and all dropout masks but the real rows\' own do not depend on the sample size', () => {
    const m = model({ pac: 2 });
    const run = (sample: number[]) => {
      const t = createTrainer(m, { seed: 5, dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 } });
      const inputs = t.discriminatorInputs(toy.data, 400, 40, Int32Array.from(sample), 40);
      const masks = dpDropoutMasks(m, inputs.real.shape[0], inputs.fake.shape[0], new Rng(3));
      const out = { real: inputs.real.arraySync(), fake: inputs.fake.dataSync().slice(), masks: masks.map((k) => k!.arraySync()) };
      tf.dispose([inputs.real, inputs.fake, ...masks.map((k) => k!)]);
      t.dispose();
      return out;
    };
    const small = run([4, 9, 17, 23]);
    const large = run([4, 9, 17, 23, 30, 31, 40, 41]);
    expect(Array.from(large.fake)).toEqual(Array.from(small.fake));
    expect(large.real.slice(0, 2)).toEqual(small.real); // same rows, same cond choices, same positions
    for (let l = 0; l < small.masks.length; l++) {
      expect(large.masks[l]!.slice(0, 2)).toEqual(small.masks[l]!.slice(0, 2)); // real packs by position
      expect(large.masks[l]!.slice(4)).toEqual(small.masks[l]!.slice(2)); // fake packs
    }
    m.dispose();
  });

  it("divides the clipped real sum by q·n̂/pac with n̂ the bank's released row count (publicRows), not the local one", () => {
    const m = model({ pac: 2 });
    // No noise, the same sample and seed: the gradient is (clipped real sum)/(q·n̂/pac) + the fake term.
    const grads = (publicRows?: number): Float32Array => {
      const t = createTrainer(m, { seed: 5, dp: { noiseMultiplier: 0, maxGradNorm: 1, sampleRate: 0.1, ...(publicRows !== undefined ? { publicRows } : {}) } });
      const inputs = t.discriminatorInputs(toy.data, 400, 40, Int32Array.from([4, 9, 17, 23, 30, 31]), 40);
      const g = t.discriminatorGradients(inputs);
      const out = flat(g.grads);
      tf.dispose([inputs.real, inputs.fake, ...g.grads]);
      t.dispose();
      return out;
    };
    const local = grads();
    const [a, b, c] = [grads(400), grads(800), grads(1600)];
    expect(Array.from(a)).toEqual(Array.from(local)); // absent: the local n (in-process runs that release nothing)
    const ab = a.map((v, i) => v - b[i]!); // real/(q·400/2) − real/(q·800/2) = real/(q·800/2)
    const bc = b.map((v, i) => v - c[i]!); // = real/(q·1600/2)
    expect(norm(ab)).toBeGreaterThan(1e-4);
    expect(relErr(ab, bc.map((v) => 2 * v))).toBeLessThan(1e-3);
    expect(() => createTrainer(m, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1, publicRows: 0 } })).toThrow(/publicRows must be an integer ≥ 1/);
    m.dispose();
  });

  it('a step whose Poisson sample is empty is noise plus the fake term only', () => {
    const m = model({ pac: 2 });
    const t = createTrainer(m, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 1e-6 } });
    const rows = t.samplePrivateRows(400);
    expect(rows.length).toBe(0);
    const inputs = t.discriminatorInputs(toy.data, 400, 40, rows, 40);
    expect(inputs.real.shape[0]).toBe(0);
    expect(inputs.fake.shape[0]).toBe(20);
    const g = t.discriminatorGradients(inputs);
    expect(flat(g.grads).every(Number.isFinite)).toBe(true);
    tf.dispose([inputs.real, inputs.fake]);
    t.applyDiscriminatorGradients(g.grads);
    expect(t.trainSteps(toy.data, 400, { steps: 1, batchSize: 40 })).toHaveLength(1);
    t.dispose();
    m.dispose();
  });
});

describe('bank agent: DP-SGD charged to the privacy ledger', () => {
  let dir: string;
  beforeAll(async () => {
    await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
    dir = mkdtempSync(join(tmpdir(), 'dp-sgd-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const cfg = {
    model: defaultModelConfig({ noiseDim: 6, generatorDims: [16, 16], discriminatorDims: [16, 16], loss: 'ns', pac: 2, seed: 8 }),
    spans: toy.spans,
  };
  const data = { encoded: toy.data, rows: 400, publicRows: 400, dim: 4 };
  const plan: TrainingPlan = {
    localSteps: 3,
    batchSize: 40,
    lrGenerator: 2e-4,
    lrDiscriminator: 2e-4,
    dSteps: 2,
    loss: 'ns',
    seed: 1,
    dp: { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 },
    updateClipNorm: 0,
  };

  it('charges (q, σ, steps) before each round, reports the ledger ε, and refuses past the budget', async () => {
    const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'));
    const budget = { epsilonMax: 3, delta: 1e-5 };
    const lt = new GanLocalTrainer(cfg, 4, { ledger, budget, noiseMultiplier: 1.1, maxGradNorm: 1 });
    expect(lt.epsilonSpent()).toBe(Number.POSITIVE_INFINITY); // no DP round yet
    const metrics = await lt.train(data, plan, {}, () => false);
    expect(metrics.dLoss).toBeUndefined(); // un-noised statistic of real rows: never reported
    expect(ledger.entries()).toHaveLength(1);
    const e = ledger.entries()[0]!;
    expect(e.kind).toBe('dp-sgd');
    expect(e.params).toEqual({ q: 0.1, sigma: 1.1, steps: 6 });
    const eps = epsilonFor({ sampleRate: 0.1, noiseMultiplier: 1.1, steps: 6, delta: 1e-5 });
    expect(lt.epsilonSpent()).toBeCloseTo(eps, 8);
    expect(Number.isFinite(lt.epsilonSpent())).toBe(true);
    expect(lt.delta()).toBe(1e-5);
    expect(metrics.epsilon).toBeCloseTo(eps, 8);

    // A budget that the next round would exceed: refused before any step, weights untouched.
    const tight = new GanLocalTrainer(cfg, 4, { ledger, budget: { epsilonMax: eps * 1.01, delta: 1e-5 }, noiseMultiplier: 1.1 });
    const w0 = tight.getWeights();
    await expect(tight.train(data, plan, {}, () => false)).rejects.toThrow(BudgetExceededError);
    await expect(tight.train(data, plan, {}, () => false)).rejects.toThrow(/--epsilon-max/);
    expect(ledger.entries()).toHaveLength(1);
    expect(tight.getWeights().every((w, i) => w.data.every((v, j) => v === w0[i]!.data[j]))).toBe(true);
    lt.dispose();
    tight.dispose();
  });

  it("rejects a classifier clipping share outside (0, 1) when the agent starts, before any data is read", () => {
    const ledger = PrivacyLedger.open(join(dir, 'ledger-share.jsonl'));
    const budget = { epsilonMax: 3, delta: 1e-5 };
    for (const bad of [0, 1, 1.5, -0.2, Number.NaN]) {
      expect(() => new GanLocalTrainer(cfg, 4, { ledger, budget, noiseMultiplier: 1.1, classifierClipShare: bad })).toThrow(/clipping share must be a number in \(0, 1\)/);
    }
    const ok = new GanLocalTrainer(cfg, 4, { ledger, budget, noiseMultiplier: 1.1, classifierClipShare: 0.5 });
    expect(ledger.entries()).toHaveLength(0);
    ok.dispose();
  });

  it('calibrates σ from a target ε over the planned rounds', async () => {
    const ledger = PrivacyLedger.open(join(dir, 'ledger2.jsonl'));
    const budget = { epsilonMax: 10, delta: 1e-5 };
    const lt = new GanLocalTrainer(cfg, 4, { ledger, budget, targetEpsilon: 2, plannedRounds: 4, sampleRate: 0.05 });
    await lt.train(data, plan, {}, () => false);
    await lt.train(data, plan, {}, () => false);
    const [a, b] = ledger.entries();
    expect(a!.params).toEqual(b!.params);
    const { q, sigma, steps } = a!.params as { q: number; sigma: number; steps: number };
    expect(q).toBe(0.05);
    const full = epsilonFor({ sampleRate: q, noiseMultiplier: sigma, steps: steps * 4, delta: 1e-5 });
    expect(full).toBeLessThanOrEqual(2);
    expect(full).toBeGreaterThan(1.9);
    lt.dispose();
  });

  it("calibrates σ to a total ε composed with the ledger's earlier charges (the agent's default)", async () => {
    const ledger = PrivacyLedger.open(join(dir, 'ledger4.jsonl'));
    const budget = { epsilonMax: 2, delta: 1e-5 };
    // The DP summary, charged before training starts: ε ≈ 0.5 on its own.
    const z = noiseMultiplierFor({ targetEpsilon: 0.5, delta: 1e-5, sampleRate: 1, steps: 1 });
    ledger.charge({ kind: 'counts', params: { sigma: z, sensitivity: 1 }, note: 'summary' }, budget);
    const lt = new GanLocalTrainer(cfg, 4, { ledger, budget, totalEpsilon: 2, plannedRounds: 3, sampleRate: 0.05 });
    for (let r = 0; r < 3; r++) await lt.train(data, plan, {}, () => false);
    // After the planned rounds the ledger is at the total, not at 0.5 + (2 − 0.5) split apart.
    expect(ledger.spent(1e-5)).toBeLessThanOrEqual(2);
    expect(ledger.spent(1e-5)).toBeGreaterThan(1.97);
    const sgd = ledger.entries().filter((e) => e.kind === 'dp-sgd');
    expect(sgd).toHaveLength(3);
    const { sigma, steps } = sgd[0]!.params as { sigma: number; steps: number };
    expect(epsilonFor({ sampleRate: 0.05, noiseMultiplier: sigma, steps: 3 * steps, delta: 1e-5 })).toBeGreaterThan(1.5 + 0.05);
    // A fourth round would pass the budget: refused.
    await expect(lt.train(data, plan, {}, () => false)).rejects.toThrow(BudgetExceededError);
    lt.dispose();
    // A new session (a restarted agent) calibrates against what is left: far more noise, and its
    // planned rounds still end within the total.
    const again = new GanLocalTrainer(cfg, 4, { ledger, budget, totalEpsilon: 2, plannedRounds: 3, sampleRate: 0.05 });
    for (let r = 0; r < 3; r++) await again.train(data, plan, {}, () => false);
    const later = ledger.entries().filter((e) => e.kind === 'dp-sgd').slice(3);
    expect(later).toHaveLength(3);
    expect((later[0]!.params as { sigma: number }).sigma).toBeGreaterThan(3 * sigma);
    expect(ledger.spent(1e-5)).toBeLessThanOrEqual(2);
    again.dispose();
    // Where the ledger already holds the whole total, calibration refuses before any step.
    const spent = new GanLocalTrainer(cfg, 4, { ledger, budget, totalEpsilon: 1.5, plannedRounds: 3, sampleRate: 0.05 });
    await expect(spent.train(data, plan, {}, () => false)).rejects.toThrow(/privacy budget exhausted: this bank's ledger has spent ε = \d\.\d{3} at δ = 1\.00e-5, which leaves nothing for DP-SGD under the bank's total ε = 1\.5/);
    expect(ledger.entries().filter((e) => e.kind === 'dp-sgd')).toHaveLength(6);
    spent.dispose();
  });

  it('refuses to train with a sliver of budget left: the σ it would take is above the cap (--max-noise-multiplier)', async () => {
    const budget = { epsilonMax: 2, delta: 1e-5 };
    const sliver = PrivacyLedger.open(join(dir, 'ledger-sliver.jsonl'));
    // A release that leaves about 0.02 of the total, for 1000 rounds of 6 steps (σ ≈ 64).
    let z = 1;
    while (sliver.epsilonAfter({ kind: 'counts', params: { sigma: z, sensitivity: 1 }, note: 'summary' }, 1e-5) > 1.99) z *= 1.01;
    sliver.charge({ kind: 'counts', params: { sigma: z, sensitivity: 1 }, note: 'summary' }, budget);
    const capped = new GanLocalTrainer(cfg, 4, { ledger: sliver, budget, totalEpsilon: 2, plannedRounds: 1000, sampleRate: 0.05 });
    await expect(capped.train(data, plan, {}, () => false)).rejects.toThrow(
      /privacy budget too small to train: what this bank's total ε = 2 at δ = 1\.00e-5 leaves after its ledger's ε = 1\.9\d+ calls for noise σ = \d+\.\d over \d+ steps, above --max-noise-multiplier 20: its updates would be mostly noise/,
    );
    await expect(capped.train(data, plan, {}, () => false)).rejects.toThrow(ImpossibleBudgetError);
    expect(sliver.entries()).toHaveLength(1); // nothing charged, nothing trained
    capped.dispose();
    // A bank may raise the cap (its choice): the same budget then trains, at that σ.
    const raised = new GanLocalTrainer(cfg, 4, { ledger: sliver, budget, totalEpsilon: 2, plannedRounds: 1000, sampleRate: 0.05, maxNoiseMultiplier: 1e4 });
    await raised.train(data, plan, {}, () => false);
    expect((sliver.entries()[1]!.params as { sigma: number }).sigma).toBeGreaterThan(20);
    raised.dispose();
  });

  it('plans the label calibration release into σ, counts the rows per bin, and the release lands the ledger on the total', async () => {
    const budget = { epsilonMax: 2, delta: 1e-5 };
    const model = defaultModelConfig({ noiseDim: 6, generatorDims: [16], discriminatorDims: [16], classifierColumn: 'c', classifierDims: [], loss: 'ns', pac: 1, seed: 8 });
    const withCal = { model, spans: toy.spans, labelCalibration: { noiseMultiplier: 3 } };
    const sigmaOf = async (c: typeof withCal | { model: typeof model; spans: typeof toy.spans }, file: string): Promise<{ sigma: number; ledger: PrivacyLedger; lt: GanLocalTrainer }> => {
      const ledger = PrivacyLedger.open(join(dir, file));
      const lt = new GanLocalTrainer(c, 4, { ledger, budget, totalEpsilon: 2, plannedRounds: 2, sampleRate: 0.05 });
      for (let r = 0; r < 2; r++) await lt.train(data, plan, {}, () => false);
      return { sigma: (ledger.entries()[0]!.params as { sigma: number }).sigma, ledger, lt };
    };
    const plain = await sigmaOf({ model, spans: toy.spans }, 'ledger-nocal.jsonl');
    const cal = await sigmaOf(withCal, 'ledger-cal.jsonl');
    // The planned release takes part of the total: more DP-SGD noise, and room left for it.
    expect(cal.sigma).toBeGreaterThan(plain.sigma);
    expect(plain.ledger.spent(1e-5)).toBeGreaterThan(1.97);
    expect(cal.ledger.spent(1e-5)).toBeLessThan(1.97);
    expect(() => plain.lt.calibrationCounts(data, { classIndex: 1, edges: [0], classifier: [] })).toThrow(/plans no label calibration/);

    const classifier = cal.lt.getWeights().filter((t) => t.name.startsWith('C/'));
    const { counts, noiseMultiplier } = cal.lt.calibrationCounts(data, { classIndex: 1, edges: [-1, 0, 1], classifier });
    expect(noiseMultiplier).toBe(3);
    expect(counts.rows.reduce((a, b) => a + b, 0)).toBe(400);
    let ofClass = 0;
    for (let r = 0; r < 400; r++) if (toy.data[r * 4 + 1 + 1] === 1) ofClass++;
    expect(counts.positives.reduce((a, b) => a + b, 0)).toBe(ofClass);
    // Charged, then noised: the ledger lands on the total (within the accountant's rounding).
    const released = releaseCalibrationCounts(counts, { noiseMultiplier, ledger: cal.ledger, budget });
    expect(cal.ledger.spent(1e-5)).toBeLessThanOrEqual(2);
    expect(cal.ledger.spent(1e-5)).toBeGreaterThan(1.97);
    expect(released.noiseStd).toBeCloseTo(3 * Math.SQRT2, 10);
    expect(released.rows).not.toEqual(counts.rows);
    // A second release was not planned: refused, nothing charged.
    const entries = cal.ledger.entries().length;
    expect(() => releaseCalibrationCounts(counts, { noiseMultiplier, ledger: cal.ledger, budget })).toThrow(BudgetExceededError);
    expect(cal.ledger.entries()).toHaveLength(entries);
    // C's tensors must be exactly the model's: a wrong shape is refused before anything is counted.
    expect(() => cal.lt.calibrationCounts(data, { classIndex: 1, edges: [0], classifier: [{ ...classifier[0]!, shape: [1, 1], data: new Float32Array(1) }, classifier[1]!] })).toThrow(/should have shape/);
    expect(() => cal.lt.calibrationCounts(data, { classIndex: 3, edges: [0], classifier })).toThrow(/not one of the 3 classes/);
    plain.lt.dispose();
    cal.lt.dispose();
    // A ledger with room left, but not once the planned release is counted: the refusal names both figures.
    const tightLedger = PrivacyLedger.open(join(dir, 'ledger-tight.jsonl'));
    tightLedger.charge({ kind: 'counts', params: { sigma: 2.6, sensitivity: 1 }, note: 'summary' }, budget);
    const before = tightLedger.spent(1e-5);
    expect(before).toBeLessThan(2);
    const tight = new GanLocalTrainer(withCal, 4, { ledger: tightLedger, budget, totalEpsilon: 2, plannedRounds: 2, sampleRate: 0.05 });
    await expect(tight.train(data, plan, {}, () => false)).rejects.toThrow(
      new RegExp(`spent ε = ${before.toPrecision(4).replace('.', '\\.')} at δ = 1\\.00e-5, ε = 2\\.\\d+ with the label calibration release the consortium plans after the last round \\(noise multiplier 3\\)`),
    );
    expect(tightLedger.entries()).toHaveLength(1);
    tight.dispose();
  });

  it('plans no calibration release when the round says the coordinator cancelled it: σ as without one, and a request is refused', async () => {
    const budget = { epsilonMax: 2, delta: 1e-5 };
    const model = defaultModelConfig({ noiseDim: 6, generatorDims: [16], discriminatorDims: [16], classifierColumn: 'c', classifierDims: [], loss: 'ns', pac: 1, seed: 8 });
    const run = async (cfg: ConsortiumModelConfig, p: TrainingPlan, file: string) => {
      const ledger = PrivacyLedger.open(join(dir, file));
      const lt = new GanLocalTrainer(cfg, 4, { ledger, budget, totalEpsilon: 2, plannedRounds: 2, sampleRate: 0.05 });
      for (let r = 0; r < 2; r++) await lt.train(data, p, {}, () => false);
      return { sigma: (ledger.entries()[0]!.params as { sigma: number }).sigma, ledger, lt };
    };
    const withCal = { model, spans: toy.spans, labelCalibration: { noiseMultiplier: 3 } };
    const planned = await run(withCal, plan, 'ledger-skip-planned.jsonl');
    const plain = await run({ model, spans: toy.spans }, plan, 'ledger-skip-plain.jsonl');
    const skipped = await run(withCal, { ...plan, labelCalibrationSkipped: true }, 'ledger-skip.jsonl');
    // The cancelled release's ε goes to DP-SGD: the σ of a consortium with no calibration, and the whole total spent.
    expect(skipped.sigma).toBe(plain.sigma);
    expect(skipped.sigma).toBeLessThan(planned.sigma);
    expect(skipped.ledger.spent(1e-5)).toBeGreaterThan(1.97);
    expect(skipped.lt.plannedCalibration()).toBeUndefined();
    const classifier = skipped.lt.getWeights().filter((t) => t.name.startsWith('C/'));
    expect(() => skipped.lt.calibrationCounts(data, { classIndex: 1, edges: [0], classifier })).toThrow(/announced before training that it would not ask for the label calibration release/);
    for (const r of [planned, plain, skipped]) r.lt.dispose();
  });

  it('refuses a WGAN-GP consortium model when DP-SGD is required', () => {
    const ledger = PrivacyLedger.open(join(dir, 'ledger3.jsonl'));
    const wgan = { model: { ...cfg.model, loss: 'wgan-gp' }, spans: toy.spans };
    expect(() => new GanLocalTrainer(wgan, 4, { ledger, budget: { epsilonMax: 1, delta: 1e-5 }, targetEpsilon: 1 })).toThrow(/'ns' loss only/);
  });
});
