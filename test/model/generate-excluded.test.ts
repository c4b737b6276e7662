// Sampling never draws a category the encoding never produces (a rare category merged into
// another's slot): the draw is from the generator's softmax renormalised over the rest.
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultModelConfig, type OutputSpan } from '../../shared/model/config';
import { createModel } from '../../shared/model/model';
import { selectBackend } from '../../shared/tensor/backend';

const spans: OutputSpan[] = [
  { column: 'x', kind: 'tanh', dim: 1, offset: 0 },
  { column: 'c', kind: 'softmax', dim: 5, offset: 1 },
];

beforeAll(async () => {
  await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
});

const counts = (data: Float32Array, n: number): number[] => {
  const c = [0, 0, 0, 0, 0];
  for (let r = 0; r < n; r++) for (let j = 0; j < 5; j++) if (data[r * 6 + 1 + j] === 1) c[j]!++;
  return c;
};

describe('generate: excluded categories', () => {
  it('never draws an excluded category, keeps the others in proportion, and leaves the stream alone when nothing is excluded', () => {
    const m = createModel(defaultModelConfig({ noiseDim: 4, generatorDims: [8], discriminatorDims: [8], conditionalColumns: [], seed: 3 }), spans);
    try {
      const n = 20_000;
      const all = counts(m.generate(n, { seed: 5 }), n);
      expect(all.every((v) => v > 0)).toBe(true);
      expect(m.generate(300, { seed: 5, excluded: [] })).toEqual(m.generate(300, { seed: 5 }));
      const kept = counts(m.generate(n, { seed: 5, excluded: [{ offset: 1, categories: [2, 4] }] }), n);
      expect(kept[2]).toBe(0);
      expect(kept[4]).toBe(0);
      expect(kept.reduce((a, b) => a + b, 0)).toBe(n);
      // Renormalised over {0, 1, 3}: their ratios stay those of the full draw (within sampling noise).
      const ratio = (c: number[]): number => c[0]! / (c[0]! + c[1]! + c[3]!);
      expect(Math.abs(ratio(kept) - ratio(all))).toBeLessThan(0.03);
      expect(() => m.generate(10, { excluded: [{ offset: 0, categories: [0] }] })).toThrow(/no softmax span at offset 0/);
      expect(() => m.generate(10, { excluded: [{ offset: 1, categories: [5] }] })).toThrow(/must be integers in \[0, 5\)/);
      expect(() => m.generate(10, { excluded: [{ offset: 1, categories: [0, 1, 2, 3, 4] }] })).toThrow(/every category of 'c' is excluded/);
    } finally {
      m.dispose();
    }
  });
});
