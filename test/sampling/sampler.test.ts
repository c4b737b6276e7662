// Sampling a model: the target's labels drawn from the classifier C given the generated features
// (or the generator's own), stratified by the target (each class's share from the consortium's
// DP-noised category weights), reproducible by seed, with the CTGAN-style fallback when a class
// cannot be reached (generator labels); apportioning and quota labelling are exact.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Row } from '../../shared/data/schema';
import { simulateBankRows, transactionSchema } from '../../shared/data/simulate';
import { createModel } from '../../shared/model/model';
import { consortiumModelConfig } from '../../coordinator/model-config';
import { apportion, labelsByDraw, labelsForQuotas, rowsForClassMinimum, sampleRows, scaleLogits, transformerFromState, type SamplableModel } from '../../shared/sampling/sampler';
import { Rng } from '../../shared/tensor/random';
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

  it('draws labels from class probabilities: independently, or with exact class counts weighted by the probabilities', () => {
    const rng = new Rng(3);
    // Independent draws follow the probabilities.
    const n = 20000;
    const probs = new Float32Array(n * 3);
    for (let r = 0; r < n; r++) probs.set(r % 2 ? [0.7, 0.2, 0.1] : [0.1, 0.1, 0.8], r * 3);
    const drawn = labelsByDraw(probs, 3, rng);
    const share = (parity: number, c: number): number => drawn.filter((l, r) => r % 2 === parity && l === c).length / (n / 2);
    expect(share(1, 0)).toBeCloseTo(0.7, 1);
    expect(share(1, 2)).toBeCloseTo(0.1, 1);
    expect(share(0, 2)).toBeCloseTo(0.8, 1);
    // Quotas: exact counts; the rare class goes to the rows most likely to carry it.
    const m = 1000;
    const p2 = new Float32Array(m * 2);
    for (let r = 0; r < m; r++) p2.set(r < 20 ? [0.05, 0.95] : [0.999, 0.001], r * 2);
    const q = labelsForQuotas(p2, 2, [980, 20], rng);
    expect(q.filter((l) => l === 1).length).toBe(20);
    expect(q.slice(0, 20).filter((l) => l === 1).length).toBeGreaterThanOrEqual(15);
    // A quota larger than the likely rows takes the rest by weight, still exactly.
    const q2 = labelsForQuotas(p2, 2, [900, 100], rng);
    expect(q2.filter((l) => l === 1).length).toBe(100);
    expect(q2.slice(0, 20).every((l) => l === 1)).toBe(true);
    expect(() => labelsForQuotas(p2, 2, [10, 20], rng)).toThrow(/quotas sum to 30, not the 1000 rows/);
  });

  it("quota labels shift C's prior: a calibrated C at its own class share gives plain draws, the weighted draw flattens them", () => {
    // A tenth of the rows have p(1) = 0.9, the rest 0.02; the quota is Σ p = 108 of 1000. Prior
    // shift: λ = 0, so each row is labelled 1 with its own p. The weighted draw (Efraimidis–Spirakis)
    // takes each row with 1 − t^p instead (t ≈ 0.19 here): ≈ 0.78 of the likely rows, ≈ 0.033 of the others.
    const m = 1000;
    const probs = new Float32Array(m * 2);
    const likely = (r: number): boolean => r % 10 === 0;
    for (let r = 0; r < m; r++) probs.set(likely(r) ? [0.1, 0.9] : [0.98, 0.02], r * 2);
    const reps = 300;
    const rate = (draw: 'prior-shift' | 'weighted'): [number, number] => {
      const rng = new Rng(draw === 'weighted' ? 11 : 12);
      let hi = 0;
      let lo = 0;
      for (let i = 0; i < reps; i++) {
        const l = labelsForQuotas(probs, 2, [892, 108], rng, draw);
        expect(l.filter((x) => x === 1).length).toBe(108);
        l.forEach((x, r) => (likely(r) ? (hi += x) : (lo += x)));
      }
      return [lo / (reps * 900), hi / (reps * 100)];
    };
    const [low, high] = rate('prior-shift');
    expect(high).toBeCloseTo(0.9, 2);
    expect(low).toBeCloseTo(0.02, 2);
    const [wLow, wHigh] = rate('weighted');
    expect(wHigh).toBeLessThan(0.82);
    expect(wLow).toBeGreaterThan(0.028);
    // A smaller quota shifts the prior down: both groups lose, the likelier group keeps more.
    const rng = new Rng(5);
    const l = labelsForQuotas(probs, 2, [900, 100], rng);
    const h = l.filter((x, r) => likely(r) && x === 1).length;
    expect(l.filter((x) => x === 1).length).toBe(100);
    expect(h).toBeGreaterThan(80);
    // Three classes, rarest first: exact counts, and each class goes mostly to the rows likeliest to carry it.
    const p3 = new Float32Array(m * 3);
    for (let r = 0; r < m; r++) p3.set(r < 50 ? [0.1, 0.1, 0.8] : r < 250 ? [0.19, 0.8, 0.01] : [0.975, 0.01, 0.015], r * 3);
    const l3 = labelsForQuotas(p3, 3, [750, 200, 50], new Rng(6));
    expect([0, 1, 2].map((c) => l3.filter((x) => x === c).length)).toEqual([750, 200, 50]);
    expect(l3.slice(0, 50).filter((x) => x === 2).length).toBeGreaterThan(30);
    expect(l3.slice(50, 250).filter((x) => x === 1).length).toBeGreaterThan(150);
  });

  it("labels come from the classifier C: stratified counts exact, the rows C deems likelier carry the rare class; --where on the target takes the class's rows as C labels them", () => {
    const a = sampleRows(ckpt, 1000, { seed: 4 });
    expect(fraudOf(a.rows)).toBe(300);
    expect(a.stratifiedBy).toBe('is_fraud');
    expect(a.labelledBy).toBe('is_fraud');
    expect(sampleRows(ckpt, 1000, { seed: 4 }).rows).toEqual(a.rows);
    // A classifier that says "fraud" exactly for online transactions: labels follow it.
    const t = transformerFromState(ckpt.transformer);
    const channel = t.spans.find((s) => s.column === 'channel')!;
    const label = t.spans.find((s) => s.column === 'is_fraud')!;
    const online = t.discreteSpans().find((d) => d.column === 'channel')!.categories.indexOf('online');
    const hidden = ckpt.tensors.find((x) => x.name === 'C/0/kernel')!.shape[1]!;
    const at = (channel.offset < label.offset ? channel.offset : channel.offset - label.dim) + online; // C's input skips the label span
    const tensors = ckpt.tensors.map((x) => {
      if (!x.name.startsWith('C/')) return x;
      const data = new Float32Array(x.data.length);
      if (x.name === 'C/0/kernel') data[at * hidden] = 1; // unit 0 = "channel is online"
      if (x.name === 'C/out/kernel') data.set([-20, 20], 0); // logit(fraud) − logit(legit) = 40 · unit 0 − 4
      if (x.name === 'C/out/bias') data.set([0, -4]);
      return { ...x, data };
    });
    expect(online).toBeGreaterThanOrEqual(0);
    const sharp = { ...ckpt, tensors };
    const plain = sampleRows(sharp, 2000, { seed: 5, stratify: false });
    expect(plain.labelledBy).toBe('is_fraud');
    const ci = plain.columns.indexOf('channel');
    const j = plain.columns.indexOf('is_fraud');
    const fraudRate = (rows: Row[]): number => rows.filter((r) => Number(r[j]) === 1).length / rows.length;
    expect(fraudRate(plain.rows.filter((r) => r[ci] === 'online'))).toBeGreaterThan(0.95);
    expect(fraudRate(plain.rows.filter((r) => r[ci] !== 'online'))).toBeLessThan(0.05);
    // Stratified at 30% fraud: the fraud quota goes to online rows first.
    const strat = sampleRows(sharp, 2000, { seed: 5 });
    expect(fraudOf(strat.rows)).toBe(600);
    const onlineShare = strat.rows.filter((r) => r[ci] === 'online').length / 2000;
    expect(fraudRate(strat.rows.filter((r) => r[ci] === 'online'))).toBeGreaterThan(Math.min(0.9, 0.3 / onlineShare - 0.05));
    const gen = sampleRows(sharp, 2000, { seed: 5, stratify: false, labels: 'generator' });
    expect(gen.labelledBy).toBeUndefined();
    expect(gen.rows).not.toEqual(plain.rows);
    // --where on the target: the class's rows of a stratified sample, i.e. the rows C labels fraud
    // (online ones); with the generator's labels, rows generated for the class, whatever C says.
    const fraudOnly = sampleRows(sharp, 300, { seed: 6, where: { column: 'is_fraud', value: '1' } });
    expect(fraudOf(fraudOnly.rows)).toBe(300);
    expect(fraudOnly.labelledBy).toBe('is_fraud');
    expect(fraudOnly.rows.filter((r) => r[ci] === 'online').length / 300).toBeGreaterThan(Math.min(0.9, 0.3 / onlineShare - 0.05));
    expect(sampleRows(sharp, 300, { seed: 6, where: { column: 'is_fraud', value: '1' } }).rows).toEqual(fraudOnly.rows);
    const legitOnly = sampleRows(sharp, 300, { seed: 6, where: { column: 'is_fraud', value: '0' } });
    expect(fraudOf(legitOnly.rows)).toBe(0);
    const fraudByG = sampleRows(sharp, 300, { seed: 6, where: { column: 'is_fraud', value: '1' }, labels: 'generator' });
    expect(fraudOf(fraudByG.rows)).toBe(300);
    expect(fraudByG.labelledBy).toBeUndefined();
    expect(fraudByG.rows.filter((r) => r[ci] === 'online').length / 300).toBeLessThan(0.8);
    // A limit on the rows generated (the coordinator's endpoint sets one): 300 fraud rows at a 30%
    // share need ~1000; 400 need ~1333, refused up front with the most that fit.
    expect(fraudOf(sampleRows(sharp, 300, { seed: 6, where: { column: 'is_fraud', value: '1' }, maxGeneratedRows: 1000 }).rows)).toBe(300);
    expect(() => sampleRows(sharp, 400, { where: { column: 'is_fraud', value: '1' }, maxGeneratedRows: 1000 })).toThrow(/400 rows of is_fraud=1 \(30% of the rows\) need about 1334 generated rows, over this request's limit of 1000: ask for at most 300 rows/);
    const noFraud = { ...sharp, meta: { categoryWeights: sharp.meta.categoryWeights!.map((w) => (w.column === 'is_fraud' ? { ...w, values: [100, 0] } : w)) } };
    // A class the noisy counts give no share, or less than one row in a chunk: C's labels cannot
    // pick it, so its rows are generated for it (and say so: no labelledBy).
    const tinyFraud = { ...sharp, meta: { categoryWeights: sharp.meta.categoryWeights!.map((w) => (w.column === 'is_fraud' ? { ...w, values: [1e6, 1] } : w)) } };
    for (const m of [noFraud, tinyFraud]) {
      const r = sampleRows(m, 30, { seed: 6, where: { column: 'is_fraud', value: '1' }, maxGeneratedRows: 1000 });
      expect(fraudOf(r.rows)).toBe(30);
      expect(r.labelledBy).toBeUndefined();
    }
    const onlineOnly = sampleRows(sharp, 300, { seed: 6, where: { column: 'channel', value: 'online' } });
    expect(onlineOnly.labelledBy).toBe('is_fraud');
    expect(onlineOnly.rows.every((r) => r[ci] === 'online')).toBe(true);
    expect(fraudRate(onlineOnly.rows)).toBeGreaterThan(0.95);
    // labelLogitScale 0.05: C's logit gap of 36 (online) / −4 (other) becomes 1.8 / −0.2, P(fraud) 0.86 / 0.45.
    const flat = sampleRows(sharp, 2000, { seed: 5, stratify: false, labelLogitScale: 0.05 });
    expect(fraudRate(flat.rows.filter((r) => r[ci] === 'online'))).toBeGreaterThan(0.78);
    expect(fraudRate(flat.rows.filter((r) => r[ci] === 'online'))).toBeLessThan(0.93);
    expect(fraudRate(flat.rows.filter((r) => r[ci] !== 'online'))).toBeGreaterThan(0.35);
    expect(fraudRate(flat.rows.filter((r) => r[ci] !== 'online'))).toBeLessThan(0.55);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => sampleRows(sharp, 10, { labelLogitScale: bad })).toThrow(/labelLogitScale must be a finite number > 0/);
    // The checkpoint's label calibration (meta.labelCalibration, fitted from the banks' noisy counts):
    // C's fraud logit, at most 36 (online) / about −4 (other), maps to P(fraud) up to 0.7 / about 0.2 before the labels are drawn.
    const logit = (p: number): number => Math.log(p / (1 - p));
    const calibrated = { ...sharp, meta: { ...sharp.meta, labelCalibration: { classIndex: 1, knots: [-4, 36], logits: [logit(0.2), logit(0.7)] } } };
    const cal = sampleRows(calibrated, 3000, { seed: 5, stratify: false });
    expect(fraudRate(cal.rows.filter((r) => r[ci] === 'online'))).toBeGreaterThan(0.45);
    expect(fraudRate(cal.rows.filter((r) => r[ci] === 'online'))).toBeLessThan(0.75);
    expect(fraudRate(cal.rows.filter((r) => r[ci] !== 'online'))).toBeGreaterThan(0.1);
    expect(fraudRate(cal.rows.filter((r) => r[ci] !== 'online'))).toBeLessThan(0.26);
    // labelCalibration null: C as trained, as without the map.
    expect(sampleRows(calibrated, 2000, { seed: 5, stratify: false, labelCalibration: null }).rows).toEqual(plain.rows);
    // The generator's labels ignore it; a malformed map is refused with a clear error.
    expect(sampleRows(calibrated, 200, { seed: 5, stratify: false, labels: 'generator' }).rows).toEqual(sampleRows(sharp, 200, { seed: 5, stratify: false, labels: 'generator' }).rows);
    expect(() => sampleRows({ ...sharp, meta: { ...sharp.meta, labelCalibration: { classIndex: 1, knots: [0, 1], logits: [2, 1] } } }, 10, { seed: 1 })).toThrow(/label calibration: logits must be non-decreasing/);
  });

  it('scaleLogits turns class probabilities into softmax(a · logits), rows still summing to 1', () => {
    const rng = new Rng(9);
    const k = 3;
    const logits = Array.from(rng.normal(4 * k, 0, 4));
    const softmax = (l: number[]): number[] => {
      const m = Math.max(...l);
      const e = l.map((v) => Math.exp(v - m));
      const z = e.reduce((x, y) => x + y, 0);
      return e.map((v) => v / z);
    };
    const probs = Float32Array.from(Array.from({ length: 4 }, (_, r) => softmax(logits.slice(r * k, r * k + k))).flat());
    for (const a of [0.5, 1, 2.5]) {
      const p = probs.slice();
      scaleLogits(p, k, a);
      for (let r = 0; r < 4; r++) {
        const want = softmax(logits.slice(r * k, r * k + k).map((v) => a * v));
        for (let c = 0; c < k; c++) expect(p[r * k + c]).toBeCloseTo(want[c]!, 5);
      }
    }
    const z = Float32Array.from([0, 1, 0.5, 0.5]);
    scaleLogits(z, 2, 3);
    expect(Array.from(z)).toEqual([0, 1, 0.5, 0.5]);
  });

  it("with the generator's labels, unconditional samples are stratified by the target: each class's share from the category weights, reproducible", () => {
    const a = sampleRows(ckpt, 1000, { seed: 9, labels: 'generator' });
    expect(a.rows).toHaveLength(1000);
    expect(fraudOf(a.rows)).toBe(300);
    expect(a.stratifiedBy).toBe('is_fraud');
    // Classes are interleaved, not in blocks.
    const j = a.columns.indexOf('is_fraud');
    expect(a.rows.slice(0, 100).some((r) => Number(r[j]) === 1) && a.rows.slice(0, 100).some((r) => Number(r[j]) === 0)).toBe(true);
    expect(sampleRows(ckpt, 1000, { seed: 9, labels: 'generator' }).rows).toEqual(a.rows);
    // Without stratification the untrained generator's own fraud rate shows through.
    const plain = sampleRows(ckpt, 1000, { seed: 9, stratify: false, labels: 'generator' });
    expect(plain.stratifiedBy).toBeUndefined();
    expect(fraudOf(plain.rows)).not.toBe(300);
  });

  it("rowsForClassMinimum sizes a stratified sample so that the target's rarest class gets at least k rows, from the noisy class counts", () => {
    const weightsWith = (values: number[]) => ({ ...ckpt, meta: { categoryWeights: (ckpt.meta.categoryWeights as { column: string; values: number[] }[]).map((w) => (w.column === 'is_fraud' ? { ...w, values } : w)) } });
    // 30% fraud: 1000 rows hold 300; 500 fraud rows need 1667 (1666.7 rounded up).
    expect(rowsForClassMinimum(ckpt, 1000, 200)).toEqual({ rows: 1000, column: 'is_fraud', label: '1', share: 0.3 });
    const r = rowsForClassMinimum(ckpt, 1000, 500);
    expect(r.rows).toBe(1667);
    expect(fraudOf(sampleRows(ckpt, r.rows, { seed: 3 }).rows)).toBeGreaterThanOrEqual(500);
    // A share with no exact multiple: ⌈k / share⌉ rows, which apportioning gives k or more of the class.
    const odd = weightsWith([993, 7]);
    const k = 101;
    const n = rowsForClassMinimum(odd, 10, k).rows;
    expect(n).toBe(14429);
    expect(apportion(n, [993, 7])![1]).toBeGreaterThanOrEqual(k);
    expect(rowsForClassMinimum(odd, 10, k).label).toBe('1');
    // The rarer class may be either; a class whose noisy count fell to 0 or below is left out.
    expect(rowsForClassMinimum(weightsWith([20, 80]), 10, 100)).toMatchObject({ rows: 500, label: '0' });
    expect(rowsForClassMinimum(weightsWith([-3, 80]), 10, 100)).toMatchObject({ rows: 100, label: '1', share: 1 });
    expect(() => rowsForClassMinimum(weightsWith([-3, 0]), 10, 100)).toThrow(/class counts of 'is_fraud' are all 0 or below/);
    expect(() => rowsForClassMinimum({ ...ckpt, meta: {} }, 10, 100)).toThrow(/needs the consortium's class counts of 'is_fraud'/);
    expect(() => rowsForClassMinimum(ckpt, 10, 0)).toThrow(/rows per class must be a positive integer/);
    expect(() => rowsForClassMinimum(ckpt, 1.5, 10)).toThrow(/number of rows must be a positive integer/);
  });

  it('generator labels: tops up a class the generator under-produces; falls back to CTGAN-style sampling when it never produces it', () => {
    const weightsWith = (values: number[]) => (ckpt.meta.categoryWeights as { column: string; values: number[] }[]).map((w) => (w.column === 'is_fraud' ? { ...w, values } : w));
    // All fraud: more than the CTGAN-style phase yields, so the rest is generated for the class.
    const allFraud = sampleRows({ ...ckpt, meta: { categoryWeights: weightsWith([0, 1]) } }, 3000, { seed: 1, labels: 'generator' });
    expect(fraudOf(allFraud.rows)).toBe(3000);
    expect(allFraud.stratifiedBy).toBe('is_fraud');
    // A generator that never outputs fraud (its logit pushed to -30): stratifying is impossible.
    const t = transformerFromState(ckpt.transformer);
    const span = t.spans.find((s) => s.column === 'is_fraud')!;
    const tensors = ckpt.tensors.map((x) => (x.name === 'G/out/bias' ? { ...x, data: x.data.map((v, j) => (j === span.offset + 1 ? -30 : v)) } : x));
    const never = sampleRows({ ...ckpt, tensors }, 500, { seed: 1, maxTries: 2, labels: 'generator' });
    expect(never.rows).toHaveLength(500);
    expect(never.stratifiedBy).toBeUndefined();
    expect(fraudOf(never.rows)).toBe(0);
  });
});
