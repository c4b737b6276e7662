import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultModelConfig, type ModelConfig } from '../../shared/model/config';
import { createModel } from '../../shared/model/model';
import { createTrainer } from '../../shared/model/trainer';
import { selectBackend } from '../../shared/tensor/backend';
import { allFinite, flatten, type NamedTensor } from '../../shared/tensor/named';
import { condToy } from './helpers';

const tiny: Partial<ModelConfig> = { noiseDim: 6, generatorDims: [16, 16], discriminatorDims: [16, 16] };
const toy = condToy(400, [0.5, 0.3, 0.2], [-0.5, 0, 0.5]);
const freqs = [[200, 120, 80]];

function diffNorm(a: NamedTensor[], b: NamedTensor[], prefix: string): number {
  let s = 0;
  a.forEach((t, i) => {
    if (!t.name.startsWith(prefix)) return;
    for (let j = 0; j < t.data.length; j++) s += (t.data[j]! - b[i]!.data[j]!) ** 2;
  });
  return Math.sqrt(s);
}

describe('local training step', () => {
  beforeAll(async () => {
    await selectBackend({ force: 'wasm', log: () => {} });
  });

  const variants: [string, Partial<ModelConfig>][] = [
    ['mlp / ns', { architecture: 'mlp', loss: 'ns' }],
    ['mlp / wgan-gp', { architecture: 'mlp', loss: 'wgan-gp' }],
    ['ctgan / wgan-gp / pac 10', { architecture: 'ctgan' }],
    ['ctgan / ns / pac 1', { architecture: 'ctgan', loss: 'ns', pac: 1 }],
  ];
  for (const [label, over] of variants) {
    it(`${label}: steps change G and D, keep everything finite and leak no tensors`, () => {
      const m = createModel(defaultModelConfig({ ...tiny, ...over, seed: 4 }), toy.spans);
      const t = createTrainer(m, { categoryFrequencies: freqs });
      const w0 = m.getWeights();
      const progress: number[] = [];
      t.trainSteps(toy.data, 400, { steps: 2, batchSize: 40 });
      const tensorsAfterWarmup = tf.memory().numTensors;
      const losses = t.trainSteps(toy.data, 400, { steps: 3, batchSize: 40, dSteps: 2 }, (p) => progress.push(p.step));
      expect(tf.memory().numTensors).toBe(tensorsAfterWarmup);
      expect(progress).toEqual([3, 4, 5]);
      expect(losses).toHaveLength(3);
      for (const l of losses) {
        expect(Number.isFinite(l.dLoss) && Number.isFinite(l.gLoss) && Number.isFinite(l.condLoss)).toBe(true);
        expect(l.condLoss).toBeGreaterThan(0);
        if (m.config.loss === 'wgan-gp') expect(l.gradientPenalty).toBeGreaterThan(0);
        else expect(l.gradientPenalty).toBeUndefined();
      }
      const w1 = m.getWeights();
      expect(allFinite(w1)).toBe(true);
      expect(diffNorm(w0, w1, 'G/')).toBeGreaterThan(0);
      expect(diffNorm(w0, w1, 'D/')).toBeGreaterThan(0);
      if (m.config.architecture === 'ctgan') {
        // running statistics moved away from their initial 0 / 1
        const mv = w1.find((x) => x.name === 'G/0/bn/movingMean')!;
        expect(mv.data.some((v) => v !== 0)).toBe(true);
      }
      t.dispose();
      m.dispose();
    });
  }

  it('the split D step: gradients match D parameters and applying them moves only D', () => {
    const m = createModel(defaultModelConfig({ ...tiny, seed: 5 }), toy.spans);
    const t = createTrainer(m, { categoryFrequencies: freqs });
    const inputs = t.discriminatorInputs(toy.data, 400, 40);
    expect(inputs.real.shape).toEqual([40, m.dims.discInputDim]);
    expect(inputs.fake.shape).toEqual(inputs.real.shape);
    const w0 = m.getWeights();
    const d = t.discriminatorGradients(inputs);
    expect(d.grads.map((g) => g.shape)).toEqual(m.spec.filter((p) => p.name.startsWith('D/')).map((p) => p.shape));
    expect(d.grads.some((g) => g.abs().max().dataSync()[0]! > 0)).toBe(true);
    t.applyDiscriminatorGradients(d.grads);
    expect(d.grads.every((g) => g.isDisposed)).toBe(true);
    const w1 = m.getWeights();
    expect(diffNorm(w0, w1, 'G/')).toBe(0);
    expect(diffNorm(w0, w1, 'D/')).toBeGreaterThan(0);
    tf.dispose([inputs.real, inputs.fake]);
    t.dispose();
    m.dispose();
  });

  it('the D forward exposes each layer input a and pre-activation z (for per-example DP gradients)', () => {
    const m = createModel(defaultModelConfig({ ...tiny, seed: 5 }), toy.spans);
    const t = createTrainer(m, { categoryFrequencies: freqs });
    const inputs = t.discriminatorInputs(toy.data, 400, 8);
    tf.tidy(() => {
      const { logits, layers } = m.discriminatorForward(inputs.real, false);
      expect(layers.map((l) => l.name)).toEqual(['D/0', 'D/1', 'D/out']);
      // z = a·W + b recomputed from the trace equals the recorded z
      layers.forEach((l) => {
        const z = tf.add(tf.matMul(l.a, m.variable(`${l.name}/kernel`)), m.variable(`${l.name}/bias`));
        expect(tf.max(tf.abs(tf.sub(z, l.z))).dataSync()[0]).toBeLessThan(1e-5);
      });
      expect(layers[2]!.z).toBe(logits);
      expect(layers[0]!.a).toBe(inputs.real);
    });
    tf.dispose([inputs.real, inputs.fake]);
    t.dispose();
    m.dispose();
  });

  it('is reproducible: same seeds give the same losses and weights', () => {
    const run = () => {
      const m = createModel(defaultModelConfig({ ...tiny, seed: 8 }), toy.spans);
      const t = createTrainer(m, { categoryFrequencies: freqs, seed: 3 });
      const l = t.trainSteps(toy.data, 400, { steps: 3, batchSize: 20 });
      const w = flatten(m.getWeights());
      t.dispose();
      m.dispose();
      return { l, w };
    };
    const a = run();
    const b = run();
    expect(b.l).toEqual(a.l);
    expect(Array.from(b.w)).toEqual(Array.from(a.w));
  });

  it('gSteps: each step runs its D update, then gSteps generator updates (the same as one step and gSteps − 1 more generator updates)', () => {
    const run = (manual: boolean) => {
      const m = createModel(defaultModelConfig({ ...tiny, seed: 8 }), toy.spans);
      const t = createTrainer(m, { categoryFrequencies: freqs, seed: 3 });
      if (manual) {
        t.trainSteps(toy.data, 400, { steps: 1, batchSize: 20 });
        t.generatorStep(20, toy.data, 400);
        t.generatorStep(20, toy.data, 400);
      } else {
        t.trainSteps(toy.data, 400, { steps: 1, batchSize: 20, gSteps: 3 });
      }
      const w = m.getWeights();
      expect(() => t.trainSteps(toy.data, 400, { steps: 1, batchSize: 20, gSteps: 0 })).toThrow(/gSteps must be a positive integer, got 0/);
      t.dispose();
      m.dispose();
      return w;
    };
    const one = (() => {
      const m = createModel(defaultModelConfig({ ...tiny, seed: 8 }), toy.spans);
      const t = createTrainer(m, { categoryFrequencies: freqs, seed: 3 });
      t.trainSteps(toy.data, 400, { steps: 1, batchSize: 20 });
      const w = m.getWeights();
      t.dispose();
      m.dispose();
      return w;
    })();
    const a = run(false);
    const b = run(true);
    expect(Array.from(flatten(a))).toEqual(Array.from(flatten(b)));
    // The extra updates move G only: D is where one step left it.
    expect(diffNorm(a, one, 'G/')).toBeGreaterThan(0);
    expect(diffNorm(a, one, 'D/')).toBe(0);
  });

  it('rejects bad training input with specific errors', () => {
    const m = createModel(defaultModelConfig({ ...tiny, architecture: 'ctgan' }), toy.spans);
    expect(() => createTrainer(m, { categoryFrequencies: [[1, 2]] })).toThrow(/categoryFrequencies\[0\] \('c'\) must have 3 entries, got 2/);
    expect(() => createTrainer(m, { categoryFrequencies: [[1, -2, 3]] })).toThrow(/categoryFrequencies\[0\]\[1\] \('c'\) must be a finite non-negative number, got -2/);
    expect(() => createTrainer(m, { categoryFrequencies: [[0, 0, 0]] })).toThrow(/zero total category weight/);
    expect(() => createTrainer(m, { categoryFrequencies: [] })).toThrow(/one array per conditional column \(1: c\)/);
    const t = createTrainer(m, { categoryFrequencies: freqs });
    expect(() => t.trainSteps(toy.data, 400, { steps: 1, batchSize: 25 })).toThrow(/batchSize must be a positive multiple of pac=10, got 25/);
    expect(() => t.trainSteps(toy.data, 399, { steps: 1, batchSize: 20 })).toThrow(/expected n × outputDim = 399 × 4 = 1596/);
    expect(() => t.trainSteps(toy.data, 400, { steps: 1.5 })).toThrow(/steps must be a non-negative integer/);
    t.dispose();
    m.dispose();
  });

  it('draws real rows by training-by-sampling: a category with zero weight never appears in D batches', () => {
    const m = createModel(defaultModelConfig({ ...tiny, seed: 1 }), toy.spans);
    const t = createTrainer(m, { categoryFrequencies: [[0, 10, 10]] });
    const inputs = t.discriminatorInputs(toy.data, 400, 200);
    const real = inputs.real.arraySync();
    const counts = [0, 0, 0];
    // row layout: x, c one-hot (3), then the cond vector (3)
    for (const r of real) {
      const c = r.slice(1, 4).indexOf(1);
      counts[c]!++;
      expect(r.slice(4, 7)).toEqual(r.slice(1, 4)); // cond vector equals the row's category
    }
    expect(counts[0]).toBe(0);
    expect(counts[1]! + counts[2]!).toBe(200);
    expect(Math.min(counts[1]!, counts[2]!)).toBeGreaterThan(60);
    tf.dispose([inputs.real, inputs.fake]);
    t.dispose();
    m.dispose();
  });
});

describe('uniform (DP-friendly) sampling', () => {
  beforeAll(async () => {
    await selectBackend({ force: 'wasm', log: () => {} });
  });

  it('uses the caller\'s row indices and conditions each row on its own category', () => {
    const m = createModel(defaultModelConfig({ ...tiny, seed: 2, pac: 2 }), toy.spans);
    const t = createTrainer(m, { sampling: 'uniform', categoryFrequencies: [[0, 0, 5]] });
    const idx = Int32Array.from([3, 3, 10, 250, 399, 0]);
    const inputs = t.discriminatorInputs(toy.data, 400, 0, idx);
    expect(inputs.real.shape).toEqual([3, 2 * 7]);
    const real = (inputs.real.arraySync() as number[][]).flatMap((r) => [r.slice(0, 7), r.slice(7)]);
    real.forEach((row, r) => {
      const i = idx[r]!;
      expect(row.slice(0, 4)).toEqual(Array.from(toy.data.subarray(i * 4, i * 4 + 4)));
      expect(row.slice(4)).toEqual(row.slice(1, 4));
    });
    // generated rows are conditioned ∝ the given frequencies (here: always category 2)
    const fake = (inputs.fake.arraySync() as number[][]).flatMap((r) => [r.slice(0, 7), r.slice(7)]);
    for (const row of fake) expect(row.slice(4)).toEqual([0, 0, 1]);
    expect(() => t.discriminatorInputs(toy.data, 400, 0, Int32Array.from([1, 2, 3]))).toThrow(/multiple of pac=2, got 3/);
    expect(() => t.discriminatorInputs(toy.data, 400, 0, Int32Array.from([1, 400]))).toThrow(/rowIndices: 400 is not a row index in \[0, 400\)/);
    tf.dispose([inputs.real, inputs.fake]);
    const losses = t.trainSteps(toy.data, 400, { steps: 2, batchSize: 20 });
    expect(losses.every((l) => Number.isFinite(l.dLoss + l.gLoss + l.condLoss))).toBe(true);
    expect(() => createTrainer(m, { sampling: 'poisson' as never })).toThrow(/sampling must be 'by-category' or 'uniform'/);
    t.dispose();
    m.dispose();
  });
});

describe('discriminator traces support exact per-example gradients (for DP-SGD)', () => {
  beforeAll(async () => {
    await selectBackend({ force: 'wasm', log: () => {} });
  });

  it('manual backward from (a, z) gives each row\'s gradient norm Σ(‖a‖²+1)‖δ‖² and the autodiff sum', () => {
    const m = createModel(defaultModelConfig({ ...tiny, seed: 6, pac: 2 }), toy.spans);
    const t = createTrainer(m, { categoryFrequencies: freqs });
    const inputs = t.discriminatorInputs(toy.data, 400, 8);
    const x = inputs.real; // 4 packed rows
    const slope = m.config.leakySlope;
    tf.tidy(() => {
      const { layers } = m.discriminatorForward(x, false);
      // loss = Σ_rows logit, so δ_out = 1 per row
      let delta: tf.Tensor2D = tf.ones([x.shape[0], 1]);
      const perRowNorm2 = tf.zeros([x.shape[0]]) as tf.Tensor1D;
      let acc: tf.Tensor = perRowNorm2;
      const manual = new Map<string, tf.Tensor>();
      for (let i = layers.length - 1; i >= 0; i--) {
        const l = layers[i]!;
        if (i < layers.length - 1) {
          const next = layers[i + 1]!;
          const back = tf.matMul(delta, m.variable(`${next.name}/kernel`), false, true);
          const dleaky = tf.where(tf.greater(l.z, 0), tf.onesLike(l.z), tf.fill(l.z.shape, slope));
          delta = tf.mul(back, dleaky) as tf.Tensor2D;
        }
        manual.set(`${l.name}/kernel`, tf.matMul(l.a, delta, true, false));
        acc = tf.add(acc, tf.mul(tf.add(tf.sum(tf.square(l.a), 1), 1), tf.sum(tf.square(delta), 1)));
      }
      const auto = tf.variableGrads(() => tf.sum(m.discriminatorForward(x, false).logits), m.discriminatorVariables());
      for (const name of ['D/0/kernel', 'D/1/kernel', 'D/out/kernel']) {
        const a = auto.grads[m.variable(name).name]!;
        expect(tf.max(tf.abs(tf.sub(a, manual.get(name)!))).dataSync()[0]).toBeLessThan(1e-4);
      }
      // per-row: autodiff on each row alone
      const norms = acc.dataSync();
      for (let r = 0; r < x.shape[0]; r++) {
        const row = tf.slice(x, [r, 0], [1, -1]);
        const g = tf.variableGrads(() => tf.sum(m.discriminatorForward(row as tf.Tensor2D, false).logits), m.discriminatorVariables());
        const n2 = Object.values(g.grads).reduce((s, v) => s + tf.sum(tf.square(v)).dataSync()[0]!, 0);
        expect(Math.abs(norms[r]! - n2) / n2).toBeLessThan(1e-3);
        expect(n2).toBeGreaterThan(0);
      }
    });
    tf.dispose([inputs.real, inputs.fake]);
    t.dispose();
    m.dispose();
  });
});
