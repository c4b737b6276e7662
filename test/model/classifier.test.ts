// The auxiliary classifier (CTAB-GAN): its layout, its training and generator term, and its DP-SGD
// path — C's per-example gradient is clipped per group with D's (‖(∇D_r, ∇C_r)‖ ≤ C per record) and noised.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultModelConfig, parseModelConfig, type ModelConfig } from '../../shared/model/config';
import { createModel, type GanModel } from '../../shared/model/model';
import { modelSpec } from '../../shared/model/spec';
import { createTrainer, meanPairKl, type ModeShares } from '../../shared/model/trainer';
import { dpDiscriminatorGradients } from '../../shared/model/dp-sgd';
import { labelCrossEntropy, leakyRelu, linear, softplus } from '../../shared/model/layers';
import { selectBackend } from '../../shared/tensor/backend';
import { Rng } from '../../shared/tensor/random';
import { condToy, flat, norm, relErr } from './helpers';

const toy = condToy(400, [0.5, 0.3, 0.2], [-0.5, 0, 0.5]);
const K = 3;

function model(over: Partial<ModelConfig>): GanModel {
  return createModel(
    defaultModelConfig({ noiseDim: 6, generatorDims: [16, 16], discriminatorDims: [12, 10], classifierDims: [8, 6], loss: 'ns', dropout: 0, seed: 3, classifierColumn: 'c', ...over }),
    toy.spans,
  );
}


/** D's logits by plain autodiff-able ops (dropout 0), for the naive per-example reference. */
function dLogits(m: GanModel, x: tf.Tensor2D): tf.Tensor2D {
  let a = x;
  m.config.discriminatorDims.forEach((_, i) => {
    a = leakyRelu(linear(a, m.variable(`D/${i}/kernel`), m.variable(`D/${i}/bias`)), m.config.leakySlope) as tf.Tensor2D;
  });
  return linear(a, m.variable('D/out/kernel'), m.variable('D/out/bias'));
}

/** Real rows of the toy data with cond vectors naming their own category (as the trainer packs them, pac 1). */
function realBatch(m: GanModel, idx: number[]): { rows: tf.Tensor2D; packed: tf.Tensor2D } {
  const d = m.outputDim;
  const rows = new Float32Array(idx.length * d);
  idx.forEach((i, r) => rows.set(toy.data.subarray(i * d, (i + 1) * d), r * d));
  const rowsT = tf.tensor2d(rows, [idx.length, d]);
  const cond = tf.slice(rowsT, [0, 1], [-1, K]);
  return { rows: rowsT, packed: m.packInput(rowsT, cond as tf.Tensor2D) };
}

describe('auxiliary classifier', () => {
  beforeAll(async () => {
    await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
  });

  it('adds C/… parameters that read a row without its label and predict the label', () => {
    const cfg = defaultModelConfig({ classifierColumn: 'c', classifierDims: [8, 6] });
    const spec = modelSpec(cfg, toy.spans);
    const c = spec.filter((p) => p.name.startsWith('C/'));
    expect(c.map((p) => `${p.name}:${p.shape.join('x')}`)).toEqual(['C/0/kernel:1x8', 'C/0/bias:8', 'C/1/kernel:8x6', 'C/1/bias:6', 'C/out/kernel:6x3', 'C/out/bias:3']);
    // Without a classifier the layout is unchanged (no C/ tensors travel).
    expect(modelSpec(defaultModelConfig({}), toy.spans).some((p) => p.name.startsWith('C/'))).toBe(false);
    // A linear classifier: C/out straight on the row without its label.
    expect(modelSpec(defaultModelConfig({ classifierColumn: 'c', classifierDims: [] }), toy.spans).filter((p) => p.name.startsWith('C/')).map((p) => p.shape)).toEqual([[1, 3], [3]]);
    expect(() => modelSpec(defaultModelConfig({ classifierColumn: 'x' }), toy.spans)).toThrow(/classifier column 'x' must be a discrete column/);
    expect(() => modelSpec(defaultModelConfig({ classifierColumn: 'nope' }), toy.spans)).toThrow(/classifier column 'nope'/);
    expect(() => parseModelConfig({ classifierColumn: 3 })).toThrow(/classifierColumn/);
    expect(() => parseModelConfig({ classifierWeight: -1 })).toThrow(/classifierWeight/);
    expect(() => parseModelConfig({ classifierLr: 0 })).toThrow(/'classifierLr' must be a number in \(0, 1\]/);
    expect(parseModelConfig({}).classifierLr).toBe(1e-2);
    expect(() => parseModelConfig({ classifierLrDp: 2 })).toThrow(/'classifierLrDp' must be a number in \(0, 1\]/);
  });

  it('classifierScalarScale multiplies the numeric scalars C reads (and what DP-SGD clips), nothing else', () => {
    expect(parseModelConfig({}).classifierScalarScale).toBe(1);
    expect(() => parseModelConfig({ classifierScalarScale: 0 })).toThrow(/'classifierScalarScale' must be a number in \(0, 100\]/);
    const m1 = model({ classifierDims: [] });
    const m4 = model({ classifierDims: [], classifierScalarScale: 4 });
    try {
      const { rows } = realBatch(m1, [0, 1, 2, 3, 4, 5]);
      const x = tf.slice(rows, [0, 0], [-1, 1]);
      const c4 = m4.classifierForward(rows);
      // The layer's recorded input is the scaled scalar: per-example clipping sees what the weights see.
      expect(relErr(flat([c4.layers[0]!.a]), flat([tf.mul(x, 4)]))).toBeLessThan(1e-6);
      // Same seed, same weights: C at scale 4 is C at scale 1 with its scalar weights times 4.
      const k = m1.variable('C/out/kernel');
      k.assign(tf.mul(k, 4));
      expect(relErr(flat([c4.logits]), flat([m1.classifierForward(rows).logits]))).toBeLessThan(1e-5);
    } finally {
      m1.dispose();
      m4.dispose();
    }
  });

  it("C learns at classifierLr (classifierLrDp under DP-SGD), D at lrD (discriminatorLrDpScale × lrD under DP-SGD): Adam's first step moves each weight by about lr", () => {
    expect(parseModelConfig({}).discriminatorLrDpScale).toBe(10);
    expect(() => parseModelConfig({ discriminatorLrDpScale: 0 })).toThrow(/'discriminatorLrDpScale' must be a number in \(0, 100\]/);
    for (const dp of [undefined, { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 }]) {
      const m = model({ classifierLr: 1e-4, classifierLrDp: 1e-2, discriminatorLrDpScale: 5 });
      const t = createTrainer(m, { seed: 2, lrD: 1e-3, weightDecayD: 0, ...(dp ? { dp } : {}) });
      const c0 = flat(m.classifierVariables());
      const d0 = flat(m.discriminatorVariables());
      t.trainSteps(toy.data, 400, { steps: 1, batchSize: 40 });
      const largestMove = (now: Float32Array, before: Float32Array): number => now.reduce((mx, v, j) => Math.max(mx, Math.abs(v - before[j]!)), 0);
      for (const [moved, lr] of [
        [largestMove(flat(m.classifierVariables()), c0), dp ? 1e-2 : 1e-4],
        [largestMove(flat(m.discriminatorVariables()), d0), dp ? 5e-3 : 1e-3],
      ] as const) {
        expect(moved).toBeGreaterThan(0.9 * lr);
        expect(moved).toBeLessThan(1.01 * lr);
      }
      t.dispose();
      m.dispose();
    }
  });

  it('C learns the label from the features; the generator carries the classifier term; no tensor leaks', () => {
    const m = model({ classifierLr: 2e-3 });
    const t = createTrainer(m, { lrG: 2e-3, lrD: 2e-3, seed: 4 });
    t.trainSteps(toy.data, 400, { steps: 1, batchSize: 40 });
    const before = tf.memory().numTensors;
    const c0 = flat(m.classifierVariables());
    const losses = t.trainSteps(toy.data, 400, { steps: 150, batchSize: 40 });
    expect(tf.memory().numTensors).toBe(before);
    expect(relErr(flat(m.classifierVariables()), c0)).toBeGreaterThan(0.01);
    const first = losses[0]!;
    const last = losses.slice(-20).reduce((s, l) => s + l.classifierLoss!, 0) / 20;
    // x ≈ centre[c] separates the three categories: C goes well below chance (ln 3 ≈ 1.10).
    expect(first.classifierLoss!).toBeGreaterThan(0.7);
    expect(last).toBeLessThan(0.35);
    expect(losses.every((l) => Number.isFinite(l.gClassifierLoss!))).toBe(true);
    t.dispose();
    m.dispose();
  });

  for (const classifierDims of [[8, 6], []]) {
    it(`C ${classifierDims.length ? classifierDims.join('-') : 'linear'}: DP-SGD clips ∇D_r to C√(1−s), and ∇C_r to R then scales it by C√s/R (so ‖(∇D_r, ∇C_r)‖ ≤ C), and noises both, as naive per-example autodiff`, () => {
      const m = model({ classifierDims });
      const dVars = m.discriminatorVariables();
      const cVars = m.classifierVariables();
      const idx = [0, 5, 17, 33, 48, 61, 77, 90, 102, 150];
      const real = realBatch(m, idx);
      const fake = realBatch(m, [200, 201, 202, 203]); // any fixed rows serve as the fake term (clipped to D's norm, not noised)
      const E = 8;
      // Naive per-example joint gradients.
      const per: { d: Float32Array; c: Float32Array }[] = idx.map((_, r) => {
        const xr = tf.slice(real.packed, [r, 0], [1, -1]) as tf.Tensor2D;
        const rr = tf.slice(real.rows, [r, 0], [1, -1]) as tf.Tensor2D;
        const gd = tf.variableGrads(() => tf.sum(softplus(tf.neg(dLogits(m, xr)))) as tf.Scalar, dVars);
        const gc = tf.variableGrads(() => labelCrossEntropy(m.classifierForward(rr).logits, m.labelOf(rr)), cVars);
        const out = { d: flat(dVars.map((v) => gd.grads[v.name]!)), c: flat(cVars.map((v) => gc.grads[v.name]!)) };
        tf.dispose([gd.value, gc.value, ...Object.values(gd.grads), ...Object.values(gc.grads)]);
        return out;
      });
      // Per-group clipping: D to C·√(1−s); C to R, then scaled by C·√s/R. C and s put D's median at
      // its clipping norm and R is C's median, so some rows are clipped in each group and some are not.
      const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
      const mD = median(per.map((p) => norm(p.d)));
      const R = median(per.map((p) => norm(p.c)));
      const C = mD / Math.sqrt(0.7);
      const share = 0.3;
      const scaleC = (C * Math.sqrt(share)) / R;
      const wantD = new Float32Array(per[0]!.d.length);
      const wantC = new Float32Array(per[0]!.c.length);
      let clippedC = 0;
      per.forEach((p) => {
        const fD = Math.min(1, (C * Math.sqrt(1 - share)) / norm(p.d));
        const fC = Math.min(1, R / norm(p.c)) * scaleC;
        if (norm(p.c) > R) clippedC++;
        expect(Math.sqrt((fD * norm(p.d)) ** 2 + (fC * norm(p.c)) ** 2)).toBeLessThanOrEqual(C * (1 + 1e-6));
        p.d.forEach((v, j) => (wantD[j] += (fD * v) / E));
        p.c.forEach((v, j) => (wantC[j] += (fC * v) / E));
      });
      expect(clippedC).toBeGreaterThan(0);
      expect(clippedC).toBeLessThan(per.length);
      // Fake packs: each one's D gradient clipped to the same C·√(1−s), then averaged.
      const nFake = fake.packed.shape[0];
      let clippedFake = 0;
      for (let f = 0; f < nFake; f++) {
        const xf = tf.slice(fake.packed, [f, 0], [1, -1]) as tf.Tensor2D;
        const gf = tf.variableGrads(() => tf.sum(softplus(dLogits(m, xf))) as tf.Scalar, dVars);
        const g = flat(dVars.map((v) => gf.grads[v.name]!));
        const fF = Math.min(1, (C * Math.sqrt(1 - share)) / norm(g));
        if (fF < 1) clippedFake++;
        g.forEach((v, j) => (wantD[j] += (fF * v) / nFake));
        tf.dispose([xf, gf.value, ...Object.values(gf.grads)]);
      }
      expect(clippedFake).toBeGreaterThan(0);
      const dp = { noiseMultiplier: 2, maxGradNorm: C, sampleRate: 0.05, classifierClipShare: share, classifierClipNorm: R };
      const opts = { dp, expectedRealPacks: E, rng: new Rng(1), realRows: real.rows };
      const clean = dpDiscriminatorGradients(m, real.packed, fake.packed, { ...opts, noNoise: true });
      expect(clean.clippedFraction).toBeGreaterThan(0);
      expect(relErr(flat(clean.grads), wantD)).toBeLessThan(1e-4);
      expect(relErr(flat(clean.classifierGrads!), wantC)).toBeLessThan(1e-4);
      // Noise on C too: N(0, (σC)²)/E per coordinate (pac 1: Δ = C). At least 5000 draws, so the
      // estimated std is within 1% (one standard error) and the 10% bound holds at 10 s.e.
      const reps = Math.ceil(5000 / wantC.length);
      let s2 = 0;
      let n = 0;
      for (let k = 0; k < reps; k++) {
        const noisy = dpDiscriminatorGradients(m, real.packed, fake.packed, opts);
        const g = flat(noisy.classifierGrads!);
        g.forEach((v, j) => {
          s2 += ((v - wantC[j]!) * E) ** 2;
          n++;
        });
        tf.dispose([...noisy.grads, ...noisy.classifierGrads!]);
      }
      expect(Math.abs(Math.sqrt(s2 / n) / (dp.noiseMultiplier * C) - 1)).toBeLessThan(0.1);
      tf.dispose([real.rows, real.packed, fake.rows, fake.packed, ...clean.grads, ...clean.classifierGrads!]);
      m.dispose();
    });
  }

  it("DP-SGD's default clipping of C (R = C√s, most rows of a rare class clipped) drives that class's probability far below its share; a large classifierClipNorm R keeps it near", () => {
    // x carries no information about the label, so the best C predicts the class share (10%)
    // everywhere. No noise: what is left is the clipping's own bias.
    const rare = condToy(2000, [0.9, 0.1], [0, 0]);
    const meanRare = (classifierClipNorm: number | undefined): number => {
      const m = createModel(defaultModelConfig({ noiseDim: 6, generatorDims: [16, 16], discriminatorDims: [12, 10], classifierDims: [8, 6], loss: 'ns', dropout: 0, seed: 3, classifierColumn: 'c' }), rare.spans);
      const dp = { noiseMultiplier: 0, maxGradNorm: 0.1, sampleRate: 0.05, ...(classifierClipNorm !== undefined ? { classifierClipNorm } : {}) };
      const t = createTrainer(m, { seed: 2, dp });
      t.trainSteps(rare.data, 2000, { steps: 200, batchSize: 100 });
      const p = m.classifierProbabilities(rare.data, 2000);
      let s = 0;
      for (let r = 0; r < 2000; r++) s += p[2 * r + 1]!;
      t.dispose();
      m.dispose();
      return s / 2000;
    };
    // Default R = C√s = 0.1·√0.5: every misclassified rare row is clipped, the many majority rows mostly not.
    expect(meanRare(undefined)).toBeLessThan(0.02);
    expect(meanRare(5)).toBeGreaterThan(0.06);
  });

  it('DP training with a classifier moves C, leaks no tensors, and refuses pac > 1 or a bad clipping share or norm', () => {
    const m = model({});
    const t = createTrainer(m, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 } });
    t.trainSteps(toy.data, 400, { steps: 1, batchSize: 40 });
    const before = tf.memory().numTensors;
    const c0 = flat(m.classifierVariables());
    const losses = t.trainSteps(toy.data, 400, { steps: 3, batchSize: 40 });
    expect(tf.memory().numTensors).toBe(before);
    expect(losses.every((l) => Number.isFinite(l.classifierLoss!))).toBe(true);
    expect(relErr(flat(m.classifierVariables()), c0)).toBeGreaterThan(0);
    for (const bad of [0, 1, -0.5, Number.NaN]) {
      expect(() => createTrainer(m, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1, classifierClipShare: bad } })).toThrow(/classifierClipShare must be a number in \(0, 1\)/);
    }
    for (const bad of [0, -1, Number.POSITIVE_INFINITY, Number.NaN]) {
      expect(() => createTrainer(m, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1, classifierClipNorm: bad } })).toThrow(/classifierClipNorm must be a finite number > 0/);
    }
    t.dispose();
    m.dispose();
    const packed = model({ pac: 2 });
    expect(() => createTrainer(packed, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 } })).toThrow(/DP-SGD with a classifier needs pac = 1/);
    // dp-sgd itself refuses too (a caller that skips the trainer).
    const real = realBatch(packed, [0, 1]);
    expect(() =>
      dpDiscriminatorGradients(packed, real.packed, real.packed, { dp: { noiseMultiplier: 1, maxGradNorm: 1, sampleRate: 0.1 }, expectedRealPacks: 1, rng: new Rng(1), realRows: real.rows }),
    ).toThrow(/dp-sgd: DP-SGD with a classifier needs pac = 1/);
    tf.dispose([real.rows, real.packed]);
    packed.dispose();
  });
});

describe('consortium model config', () => {
  it("turns the classifier on for the schema's target, off at weight 0 or without a target", async () => {
    const { consortiumModelConfig } = await import('../../coordinator/model-config');
    const { transactionSchema } = await import('../../shared/data/simulate');
    const schema = transactionSchema();
    expect(schema.target).toBe('is_fraud');
    expect(consortiumModelConfig(schema, { seed: 1 })).toMatchObject({ classifierColumn: 'is_fraud', classifierWeight: 1, seed: 1 });
    expect(consortiumModelConfig(schema, { classifierWeight: 2 })).toMatchObject({ classifierColumn: 'is_fraud', classifierWeight: 2 });
    expect(consortiumModelConfig(schema, { classifierWeight: 0 }).classifierColumn).toBeNull();
    const { target: _t, ...noTarget } = schema;
    expect(consortiumModelConfig({ ...noTarget, columns: schema.columns.map((c) => ({ ...c, role: c.role === 'target' ? 'feature' : c.role })) }, {}).classifierColumn).toBeNull();
  });
});

describe("the generator's marginal term (ModelConfig.marginalWeight)", () => {
  beforeAll(async () => {
    await selectBackend();
  });

  // Two discrete columns; the noisy category counts say a = [0.5, 0.5], b = [0.8, 0.15, 0.05].
  const spans = [
    { column: 'x', kind: 'tanh' as const, dim: 1, offset: 0 },
    { column: 'a', kind: 'softmax' as const, dim: 2, offset: 1 },
    { column: 'b', kind: 'softmax' as const, dim: 3, offset: 3 },
  ];
  const freqs = [
    [500, 500],
    [800, 150, 50],
  ];
  /** Column b's shares in rows sampled as the sampler does (cond ∝ counts), after G-only steps. */
  function bShares(weight: number): number[] {
    const m = createModel(parseModelConfig({ ...defaultModelConfig({ noiseDim: 8, generatorDims: [16], discriminatorDims: [16], seed: 3 }), marginalWeight: weight }), spans);
    try {
      const t = createTrainer(m, { lrG: 1e-2, sampling: 'uniform', categoryFrequencies: freqs, seed: 5 });
      for (let i = 0; i < 150; i++) t.generatorStep(200);
      t.dispose();
      const rows = m.generate(4000, { categoryFrequencies: freqs, seed: 9 });
      const share = [0, 0, 0];
      for (let r = 0; r < 4000; r++) for (let j = 0; j < 3; j++) share[j]! += rows[r * m.outputDim + 3 + j]! / 4000;
      return share;
    } finally {
      m.dispose();
    }
  }

  it('pulls every column towards the noisy marginals, including rows conditioned on another column', () => {
    const target = [0.8, 0.15, 0.05];
    const err = (s: number[]): number => s.reduce((e, v, j) => e + Math.abs(v - target[j]!), 0);
    const off = bShares(0);
    const on = bShares(10);
    // Without the term (and without D), the rows conditioned on column a carry whatever b the
    // untrained generator outputs; with it, b's shares land near the counts' (half the rows are
    // conditioned on b itself and follow the cond in both cases).
    expect(err(on)).toBeLessThan(0.08);
    expect(err(on)).toBeLessThan(err(off) / 2);
  });

  it("pulls a numeric column's mode shares towards the fitted transformer's (TrainerOptions.modeShares)", () => {
    // A numeric column (scalar + 4 mode slots): the fit says 60% in slot 0 and a 30% spike in the last slot.
    const numSpans = [
      { column: 'x', kind: 'tanh' as const, dim: 1, offset: 0 },
      { column: 'x', kind: 'softmax' as const, dim: 4, offset: 1 },
      { column: 'a', kind: 'softmax' as const, dim: 2, offset: 5 },
    ];
    const target = [0.6, 0.1, 0, 0.3];
    const modes = (shares: boolean | ModeShares): number[] => {
      const m = createModel(parseModelConfig({ ...defaultModelConfig({ noiseDim: 8, generatorDims: [16], discriminatorDims: [16], seed: 3 }), marginalWeight: 10 }), numSpans);
      try {
        const t = createTrainer(m, { lrG: 1e-2, sampling: 'uniform', categoryFrequencies: [[500, 500]], seed: 5, ...(shares === true ? { modeShares: [{ offset: 1, shares: target }] } : shares ? { modeShares: [shares] } : {}) });
        for (let i = 0; i < 150; i++) t.generatorStep(200);
        t.dispose();
        const rows = m.generate(4000, { categoryFrequencies: [[500, 500]], seed: 9 });
        const share = [0, 0, 0, 0];
        for (let r = 0; r < 4000; r++) for (let j = 0; j < 4; j++) share[j]! += rows[r * m.outputDim + 1 + j]! / 4000;
        return share;
      } finally {
        m.dispose();
      }
    };
    const err = (s: number[]): number => s.reduce((e, v, j) => e + Math.abs(v - target[j]!), 0);
    const on = modes(true);
    expect(err(on)).toBeLessThan(0.1);
    const off = modes(false);
    expect(err(on)).toBeLessThan(err(off) / 2);
    // Grouped (the point mass alone, the mixture's slots together): only the spike's share is held.
    const grouped = modes({ offset: 1, shares: [0.3, 0.7], groups: [[3], [0, 1, 2]] });
    expect(Math.abs(grouped[3]! - 0.3)).toBeLessThan(0.05);
    expect(Math.abs(off[3]! - 0.3)).toBeGreaterThan(0.05);
    // Shares that name no mode span, or carry no mass, are refused before training.
    const m = createModel(parseModelConfig({ ...defaultModelConfig({ noiseDim: 8, generatorDims: [16], discriminatorDims: [16], seed: 3 }), marginalWeight: 10 }), numSpans);
    expect(() => createTrainer(m, { sampling: 'uniform', categoryFrequencies: [[500, 500]], modeShares: [{ offset: 0, shares: target }] })).toThrow(/mode shares at offset 0 name no softmax span of 4 slots/);
    expect(() => createTrainer(m, { sampling: 'uniform', categoryFrequencies: [[500, 500]], modeShares: [{ offset: 1, shares: [0, 0, 0, 0] }] })).toThrow(/mode shares of 'x' must be non-negative with a positive sum/);
    expect(() => createTrainer(m, { sampling: 'uniform', categoryFrequencies: [[500, 500]], modeShares: [{ offset: 1, shares: [0.3, 0.7], groups: [[3], [0, 3]] }] })).toThrow(/mode share groups of 'x' must be 2 disjoint lists of slots in \[0, 4\)/);
    m.dispose();
  });

  it('meanPairKl: all pairs in one S × S matrix give the mean of the per-pair KL divergences', () => {
    // Three spans (2, 3 and 2 slots) and two pairs, (0, 1) and (1, 2), over a batch of 5 weighted rows.
    const rng = new Rng(11);
    const dims = [2, 3, 2];
    const rows = 5;
    const soft = (d: number): number[][] => Array.from({ length: rows }, () => {
      const e = Array.from({ length: d }, () => Math.exp(rng.normal(1)[0]!));
      const t = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / t);
    });
    const p = dims.map(soft);
    const w = [0.1, 0.3, 0.2, 0.25, 0.15];
    const targets = [
      { a: 0, b: 1, t: [0.3, 0.1, 0.1, 0.05, 0.15, 0.3] },
      { a: 1, b: 2, t: [0.2, 0.1, 0.1, 0.2, 0.25, 0.15] },
    ];
    const naive = targets.map(({ a, b, t }) => {
      let kl = 0;
      t.forEach((v, k) => {
        const i = Math.floor(k / dims[b]!);
        const j = k % dims[b]!;
        const joint = w.reduce((s, wr, r) => s + wr * p[a]![r]![i]! * p[b]![r]![j]!, 0);
        kl += v * (Math.log(v) - Math.log(joint + 1e-8));
      });
      return kl;
    });
    const size = 7;
    const offsets = [0, 2, 5];
    const m = new Float32Array(size * size);
    let entropy = 0;
    for (const { a, b, t } of targets) t.forEach((v, k) => {
      m[(offsets[a]! + Math.floor(k / dims[b]!)) * size + offsets[b]! + (k % dims[b]!)] = v;
      entropy += v * Math.log(v);
    });
    const probs = tf.tensor2d(Array.from({ length: rows }, (_, r) => [...p[0]![r]!, ...p[1]![r]!, ...p[2]![r]!]));
    const weights = tf.tensor2d(w, [rows, 1]);
    const targetsT = tf.tensor2d(m, [size, size]);
    const got = meanPairKl(probs, weights, { targets: targetsT, entropy, count: 2 });
    expect(got.dataSync()[0]!).toBeCloseTo((naive[0]! + naive[1]!) / 2, 5);
    tf.dispose([probs, weights, targetsT, got]);
  });

  it('pulls the joint of two columns towards a pair target (TrainerOptions.pairTargets), and refuses a target that fits no pair of spans', () => {
    // a = 0 goes with b = 0, a = 1 with b ∈ {1, 2}; the one-way counts are the target's margins.
    const target = [0.45, 0.03, 0.02, 0.02, 0.28, 0.2];
    const margins = [
      [500, 500],
      [470, 310, 220],
    ];
    const joint = (pairs: boolean): number[] => {
      const m = createModel(parseModelConfig({ ...defaultModelConfig({ noiseDim: 8, generatorDims: [16], discriminatorDims: [16], seed: 3 }), marginalWeight: 10 }), spans);
      try {
        const t = createTrainer(m, { lrG: 1e-2, sampling: 'uniform', categoryFrequencies: margins, seed: 5, ...(pairs ? { pairTargets: [{ a: 1, b: 3, joint: target.map((x) => x * 1000) }] } : {}) });
        t.generatorStep(200); // Adam's state is made on the first step
        const before = tf.memory().numTensors;
        for (let i = 0; i < 199; i++) t.generatorStep(200);
        expect(tf.memory().numTensors).toBe(before);
        t.dispose();
        const rows = m.generate(4000, { categoryFrequencies: margins, seed: 9 });
        const cells = new Array<number>(6).fill(0);
        for (let r = 0; r < 4000; r++) {
          const o = r * m.outputDim;
          const a = rows[o + 1] === 1 ? 0 : 1;
          const b = rows[o + 3] === 1 ? 0 : rows[o + 4] === 1 ? 1 : 2;
          cells[a * 3 + b]! += 1 / 4000;
        }
        return cells;
      } finally {
        m.dispose();
      }
    };
    const err = (c: number[]): number => c.reduce((e, v, j) => e + Math.abs(v - target[j]!), 0);
    const on = joint(true);
    const off = joint(false);
    // Without the pair term the one-way terms hold each column's margin but leave a and b unrelated.
    expect(err(on)).toBeLessThan(0.15);
    expect(err(on)).toBeLessThan(err(off) / 2);
    const m = createModel(parseModelConfig({ ...defaultModelConfig({ noiseDim: 8, generatorDims: [16], discriminatorDims: [16], seed: 3 }), marginalWeight: 10 }), spans);
    const make = (pairTargets: { a: number; b: number; joint: number[] }[], pairWeight?: number) => () => createTrainer(m, { sampling: 'uniform', categoryFrequencies: margins, pairTargets, ...(pairWeight !== undefined ? { pairWeight } : {}) });
    expect(make([{ a: 0, b: 3, joint: target }])).toThrow(/a pair target names no softmax span at offset 0/);
    expect(make([{ a: 1, b: 1, joint: [1, 0, 0, 1] }])).toThrow(/pairs 'a' with itself/);
    expect(make([{ a: 1, b: 3, joint: [1, 2, 3] }])).toThrow(/the pair target of 'a' and 'b' must hold 2×3 non-negative weights/);
    expect(make([{ a: 1, b: 3, joint: [1, -2, 3, 0, 0, 1] }])).toThrow(/must hold 2×3 non-negative weights with a positive sum/);
    expect(make([{ a: 1, b: 3, joint: target }], -1)).toThrow(/pairWeight must be a finite number >= 0/);
    expect(make([{ a: 1, b: 3, joint: target }, { a: 1, b: 3, joint: target }])).toThrow(/two pair targets name the same pair of spans \(offsets 1 and 3\)/);
    // Without the marginal term's conditions the targets would be ignored: refused instead.
    expect(() => createTrainer(m, { categoryFrequencies: margins, pairTargets: [{ a: 1, b: 3, joint: target }] })).toThrow(/pairTargets apply with the marginal term only/);
    m.dispose();
  });

  it('rejects a negative or non-finite weight', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => parseModelConfig({ marginalWeight: bad })).toThrow(/'marginalWeight' must be a number in \[0, 1000\]/);
  });
});
