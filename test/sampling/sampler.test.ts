// Sampling a model: stratified by the schema's target (each class's share from the consortium's
// DP-noised category weights, every row generated for its own label), reproducible by seed, with the
// CTGAN-style fallback when a class cannot be reached; apportioning is exact.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Row } from '../../shared/data/schema';
import { simulateBankRows, transactionSchema } from '../../shared/data/simulate';
import { createModel } from '../../shared/model/model';
import { consortiumModelConfig } from '../../coordinator/model-config';
import { apportion, sampleRows, transformerFromState, type SamplableModel } from '../../shared/sampling/sampler';
import { selectBackend } from '../../shared/tensor/backend';
import { GmmTransformer, summaryColumns, summaryCounts } from '../../shared/transformer/gmm';

const schema = transactionSchema();
let ckpt: SamplableModel;

beforeAll(async () => {
  await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
  const rows = simulateBankRows(0, 2000, 5).map((r) => r.map((v, j) => (schema.columns[j]!.type === 'categorical' ? String(v) : Number(v)))) as Row[];
  const counts = summaryCounts(schema, rows);
  const merged = summaryColumns(schema).map((s, k) => ({ column: s.column, values: counts[k]! }));
  const transformer = GmmTransformer.fit(schema, merged);
  const model = createModel(consortiumModelConfig(schema, { noiseDim: 8, generatorDims: [16], discriminatorDims: [16], classifierDims: [8], seed: 2 }), transformer.spans);
  // An untrained generator: it follows a condition only by chance, so rejection has work to do.
  const categoryWeights = merged.map((m) => (m.column === 'is_fraud' ? { column: m.column, values: [70, 30] } : m));
  ckpt = { modelConfig: model.config, transformer: transformer.toJSON(), tensors: model.getWeights(), meta: { categoryWeights } };
  model.dispose();
});

const fraudOf = (rows: Row[]): number => {
  const j = schema.columns.findIndex((c) => c.name === 'is_fraud');
  return rows.filter((r) => Number(r[j]) === 1).length;
};

describe('sampling', () => {
  it('apportions n exactly, by largest remainder', () => {
    expect(apportion(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportion(7, [0, 5, 2])).toEqual([0, 5, 2]);
    expect(apportion(100, [0.5, 99.5])).toEqual([1, 99]);
    expect(apportion(3, [0, 0])).toBeNull();
    for (const n of [1, 17, 1000]) expect(apportion(n, [3, 0.2, 7, 1e-3])!.reduce((a, b) => a + b, 0)).toBe(n);
  });

  it("unconditional samples are stratified by the target: each class's share from the category weights, reproducible", () => {
    const a = sampleRows(ckpt, 1000, { seed: 9 });
    expect(a.rows).toHaveLength(1000);
    expect(fraudOf(a.rows)).toBe(300);
    expect(a.stratifiedBy).toBe('is_fraud');
    // Classes are interleaved, not in blocks.
    const j = a.columns.indexOf('is_fraud');
    expect(a.rows.slice(0, 100).some((r) => Number(r[j]) === 1) && a.rows.slice(0, 100).some((r) => Number(r[j]) === 0)).toBe(true);
    expect(sampleRows(ckpt, 1000, { seed: 9 }).rows).toEqual(a.rows);
    // Without stratification the untrained generator's own fraud rate shows through.
    const plain = sampleRows(ckpt, 1000, { seed: 9, stratify: false });
    expect(plain.stratifiedBy).toBeUndefined();
    expect(fraudOf(plain.rows)).not.toBe(300);
  });

  it('tops up a class the generator under-produces; falls back to CTGAN-style sampling when it never produces it', () => {
    const weightsWith = (values: number[]) => (ckpt.meta.categoryWeights as { column: string; values: number[] }[]).map((w) => (w.column === 'is_fraud' ? { ...w, values } : w));
    // All fraud: more than the CTGAN-style phase yields, so the rest is generated for the class.
    const allFraud = sampleRows({ ...ckpt, meta: { categoryWeights: weightsWith([0, 1]) } }, 3000, { seed: 1 });
    expect(fraudOf(allFraud.rows)).toBe(3000);
    expect(allFraud.stratifiedBy).toBe('is_fraud');
    // A generator that never outputs fraud (its logit pushed to -30): stratifying is impossible.
    const t = transformerFromState(ckpt.transformer);
    const span = t.spans.find((s) => s.column === 'is_fraud')!;
    const tensors = ckpt.tensors.map((x) => (x.name === 'G/out/bias' ? { ...x, data: x.data.map((v, j) => (j === span.offset + 1 ? -30 : v)) } : x));
    const never = sampleRows({ ...ckpt, tensors }, 500, { seed: 1, maxTries: 2 });
    expect(never.rows).toHaveLength(500);
    expect(never.stratifiedBy).toBeUndefined();
    expect(fraudOf(never.rows)).toBe(0);
  });
});
