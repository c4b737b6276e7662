import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultModelConfig } from '../../shared/model/config';
import { createModel } from '../../shared/model/model';
import { createTrainer } from '../../shared/model/trainer';
import { selectBackend } from '../../shared/tensor/backend';
import { condToy, mean, oneDim, std } from './helpers';

const tiny = { noiseDim: 8, generatorDims: [32], discriminatorDims: [32], dropout: 0, seed: 1 };

describe('the GAN learns toy distributions (wasm, tiny networks)', () => {
  beforeAll(async () => {
    await selectBackend({ force: 'wasm', log: () => {} });
  });

  it('matches a 1-D N(0.5, 0.1) within 300 steps', () => {
    const { spans, data } = oneDim(2000, 0.5, 0.1);
    const m = createModel(defaultModelConfig(tiny), spans);
    const before = m.generate(2000, { seed: 5 });
    const t = createTrainer(m, { lrG: 2e-3, lrD: 2e-3 });
    t.trainSteps(data, 2000, { steps: 300, batchSize: 64 });
    const after = m.generate(2000, { seed: 5 });
    // untrained: far from the target
    expect(Math.abs(mean(before) - 0.5) + Math.abs(std(before) - 0.1)).toBeGreaterThan(0.3);
    expect(Math.abs(mean(after) - 0.5)).toBeLessThan(0.1);
    expect(std(after)).toBeLessThan(0.2);
    expect(after.every((v) => v >= -1 && v <= 1)).toBe(true);
    t.dispose();
    m.dispose();
  });

  it('conditional generation: a fixed cond yields mostly that category, with the matching x', () => {
    const centres = [-0.6, 0, 0.6];
    const { spans, data } = condToy(2000, [0.6, 0.3, 0.1], centres);
    const m = createModel(defaultModelConfig(tiny), spans);
    const t = createTrainer(m, { lrG: 2e-3, lrD: 2e-3, categoryFrequencies: [[1200, 600, 200]] });
    t.trainSteps(data, 2000, { steps: 250, batchSize: 64 });
    const leakBase = tf.memory().numTensors;
    for (const cat of [0, 2]) {
      const g = m.generate(400, { cond: { column: 'c', category: cat }, seed: 7, batchSize: 150 });
      const xs: number[] = [];
      for (let i = 0; i < 400; i++) {
        const onehot = Array.from(g.subarray(i * 4 + 1, i * 4 + 4));
        // discrete spans are exactly one-hot
        expect(onehot.filter((v) => v === 1)).toHaveLength(1);
        expect(onehot.filter((v) => v === 0)).toHaveLength(2);
        if (onehot[cat] === 1) xs.push(g[i * 4]!);
      }
      expect(xs.length / 400).toBeGreaterThan(0.8);
      expect(Math.abs(mean(xs) - centres[cat]!)).toBeLessThan(0.2);
    }
    expect(tf.memory().numTensors).toBe(leakBase);
    t.dispose();
    m.dispose();
  });

  it('conditional generation also learns with DP-friendly uniform row sampling', () => {
    const centres = [-0.6, 0, 0.6];
    const { spans, data } = condToy(2000, [0.6, 0.3, 0.1], centres);
    const m = createModel(defaultModelConfig(tiny), spans);
    const t = createTrainer(m, { lrG: 2e-3, lrD: 2e-3, sampling: 'uniform', categoryFrequencies: [[1200, 600, 200]] });
    t.trainSteps(data, 2000, { steps: 250, batchSize: 64 });
    for (const cat of [0, 2]) {
      const g = m.generate(400, { cond: { column: 'c', category: cat }, seed: 7 });
      const xs: number[] = [];
      for (let i = 0; i < 400; i++) if (g[i * 4 + 1 + cat] === 1) xs.push(g[i * 4]!);
      expect(xs.length / 400).toBeGreaterThan(0.8);
      // the rarest category (10%) is seen less often than under training-by-sampling
      expect(Math.abs(mean(xs) - centres[cat]!)).toBeLessThan(0.3);
    }
    t.dispose();
    m.dispose();
  });

  it('unconditional sampling draws cond vectors from the given category weights', () => {
    const { spans, data } = condToy(2000, [0.6, 0.3, 0.1], [-0.6, 0, 0.6]);
    const m = createModel(defaultModelConfig(tiny), spans);
    const t = createTrainer(m, { lrG: 2e-3, lrD: 2e-3, categoryFrequencies: [[1200, 600, 200]] });
    t.trainSteps(data, 2000, { steps: 250, batchSize: 64 });
    const g = m.generate(3000, { categoryFrequencies: [[0.6, 0.3, 0.1]], seed: 11 });
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[Array.from(g.subarray(i * 4 + 1, i * 4 + 4)).indexOf(1)]!++;
    expect(counts[0]! / 3000).toBeGreaterThan(0.45);
    expect(counts[2]! / 3000).toBeLessThan(0.2);
    expect(() => m.generate(5)).toThrow(/this model is conditional; pass cond or categoryFrequencies/);
    expect(() => m.generate(5, { cond: { column: 'c', category: 3 } })).toThrow(/category 3 out of range for 'c' \(3 categories\)/);
    expect(() => m.generate(5, { cond: new Float32Array(4) })).toThrow(/cond has 4 values; expected 3 .* or 15/);
    t.dispose();
    m.dispose();
  });
});
