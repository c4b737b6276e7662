import { describe, expect, it } from 'vitest';
import { validateSchema, type Row } from '../../shared/data/schema';
import { simulateBankRows, transactionSchema } from '../../shared/data/simulate';
import { Rng } from '../../shared/tensor/random';
import { encodeRows } from '../../client-node/bank-data';
import { binOf, fitMixture, GmmTransformer, histogramEdges, occupiedBins, pooledCategoryWeights, summaryColumns, summaryCounts } from '../../shared/transformer/gmm';

const schema = transactionSchema();
const rowsOf = (bank: number, n: number, seed: number): Row[] =>
  simulateBankRows(bank, n, seed).map((r) => {
    const row = r.slice() as Row;
    row[0] = null;
    return row;
  });

function normal(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(rng.nextOpen())) * Math.cos(2 * Math.PI * rng.next());
}

describe('GMM transformer', () => {
  it('EM on a histogram recovers a well-separated bimodal mixture and prunes the extra modes', () => {
    const col = validateSchema({ version: 1, columns: [{ name: 'x', type: 'continuous', min: -10, max: 10 }] }).columns[0]!;
    const edges = histogramEdges(col, 128);
    const counts = new Array<number>(128).fill(0);
    const rng = new Rng(3);
    for (let i = 0; i < 20000; i++) {
      const x = rng.next() < 0.3 ? -4 + 0.5 * normal(rng) : 3 + 1.0 * normal(rng);
      counts[binOf(edges, x)]! += 1;
    }
    const m = fitMixture(edges, counts, 10);
    // The mixture explains the data: the two dominant modes sit at the true means with the true weights.
    const dominant = m.weights.map((w, j) => ({ w, mu: m.means[j]!, sd: m.stds[j]! })).sort((a, b) => b.w - a.w);
    const near = (mu: number) => m.weights.reduce((s, w, j) => s + (Math.abs(m.means[j]! - mu) < 1.5 ? w : 0), 0);
    expect(near(-4)).toBeGreaterThan(0.27);
    expect(near(-4)).toBeLessThan(0.33);
    expect(near(3)).toBeGreaterThan(0.67);
    expect(Math.min(...dominant.slice(0, 2).map((d) => Math.min(Math.abs(d.mu + 4), Math.abs(d.mu - 3))))).toBeLessThan(0.5);
    expect(m.weights.every((w) => w >= 0.005)).toBe(true);
    expect(m.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    // Deterministic: the same counts give the same fit at every bank and at the coordinator.
    expect(fitMixture(edges, counts, 10)).toEqual(m);
  });

  it('layout depends on the schema only; summary columns cover every modelled column', () => {
    const a = GmmTransformer.layout(schema);
    expect(a.fitted).toBe(false);
    expect(() => a.transform([])).toThrow(/not fitted yet/);
    const sc = summaryColumns(schema);
    expect(sc.map((s) => s.column)).toEqual(schema.columns.filter((c) => c.role !== 'id').map((c) => c.name));
    expect(sc.find((s) => s.column === 'hour')).toEqual({ column: 'hour', kind: 'histogram', dim: 24 }); // one bin per hour
    expect(sc.find((s) => s.column === 'channel')).toEqual({ column: 'channel', kind: 'categories', dim: 3 });
    const counts = summaryCounts(schema, rowsOf(0, 3000, 1));
    const fitted = GmmTransformer.fit(schema, sc.map((s, k) => ({ column: s.column, values: counts[k]! })));
    expect(fitted.spans).toEqual(a.spans);
    expect(fitted.outputDim).toBe(a.outputDim);
  });

  it('round-trips: discrete values exactly, numeric values to float precision within the clip range', () => {
    const rows = rowsOf(0, 5000, 2);
    const sc = summaryColumns(schema);
    const counts = summaryCounts(schema, rows);
    const t = GmmTransformer.fit(schema, sc.map((s, k) => ({ column: s.column, values: counts[k]! })));
    const enc = t.transform(rows, 7);
    const back = t.inverse(enc, rows.length);
    let exact = 0;
    let total = 0;
    back.forEach((r, i) =>
      r.forEach((v, j) => {
        const c = schema.columns[j]!;
        const want = rows[i]![j];
        if (c.type === 'continuous') {
          total++;
          if (Math.abs((v as number) - (want as number)) <= 1e-3 * Math.max(1, Math.abs(want as number))) exact++;
        } else expect(v).toEqual(want);
      }),
    );
    // Only values beyond ±3.96σ of their sampled mode are clipped (CTGAN's 0.99); almost none.
    expect(exact / total).toBeGreaterThan(0.995);
    // Scalars in (-1, 1) and exactly one mode per numeric value.
    for (const s of t.spans.filter((x) => x.kind === 'tanh')) for (let r = 0; r < 100; r++) expect(Math.abs(enc[r * t.outputDim + s.offset]!)).toBeLessThanOrEqual(0.99);
  });

  it('inverse of arbitrary generator output gives valid values of the right type within bounds', () => {
    const rows = rowsOf(1, 3000, 3);
    const sc = summaryColumns(schema);
    const counts = summaryCounts(schema, rows);
    const t = GmmTransformer.fit(schema, sc.map((s, k) => ({ column: s.column, values: counts[k]! })));
    const n = 300;
    const junk = new Float32Array(n * t.outputDim).map((_, i) => Math.sin(i * 78.233) * 2);
    for (const r of t.inverse(junk, n)) {
      schema.columns.forEach((c, j) => {
        const v = r[j];
        if (c.role === 'id') return expect(v).toBeNull();
        if (c.type === 'categorical') return expect(c.categories).toContain(v);
        if (c.type === 'boolean') return expect([0, 1]).toContain(v);
        expect(v as number).toBeGreaterThanOrEqual(c.min!);
        expect(v as number).toBeLessThanOrEqual(c.max!);
        if (c.type === 'integer') expect(Number.isInteger(v)).toBe(true);
        // amount's declared step is 0.01: every sampled amount is a whole number of cents, as written.
        if (c.step !== undefined) expect(Number(((v as number) / c.step).toFixed(6)) % 1).toBe(0);
        if (c.step === 0.01) expect(String(v)).toMatch(/^\d+(\.\d{1,2})?$/);
      });
    }
  });

  it("samples a column with a coarse step only on its multiples (credit limits set in tens of thousands)", () => {
    const s = validateSchema({ version: 1, columns: [
      { name: 'limit', type: 'integer', min: 10_000, max: 1_000_000, step: 10_000 },
      { name: 'c', type: 'categorical', categories: ['a', 'b'] },
    ] });
    const rng = new Rng(4);
    const rows: Row[] = Array.from({ length: 4000 }, () => [10_000 * Math.round(1 + 40 * rng.next() ** 2), rng.next() < 0.3 ? 'a' : 'b']);
    const sc = summaryColumns(s);
    const counts = summaryCounts(s, rows);
    const t = GmmTransformer.fit(s, sc.map((c, k) => ({ column: c.column, values: counts[k]! })));
    const out = t.inverse(t.transform(rows, 1), rows.length);
    const junk = t.inverse(new Float32Array(500 * t.outputDim).map((_, i) => Math.sin(i * 78.233) * 2), 500);
    for (const r of [...out, ...junk]) {
      expect((r[0] as number) % 10_000).toBe(0);
      expect(r[0] as number).toBeGreaterThanOrEqual(10_000);
      expect(r[0] as number).toBeLessThanOrEqual(1_000_000);
    }
    // Encoding and decoding a real row gives it back: the snap moves a value by at most half a step.
    expect(out.map((r) => r[0])).toEqual(rows.map((r) => r[0]));
  });

  it('fits from noisy summaries: noise-level bins are ignored, rare categories are merged, the state holds no rows', () => {
    const rows = rowsOf(0, 8000, 4);
    const sc = summaryColumns(schema);
    const raw = summaryCounts(schema, rows);
    const rng = new Rng(9);
    const sigma = 40;
    const noisy = raw.map((v) => v.map((x) => x + sigma * normal(rng)));
    const t = GmmTransformer.fit(schema, sc.map((s, k) => ({ column: s.column, values: noisy[k]! })), { noiseStd: sigma });
    const state = t.toJSON();
    const cols = state.columns as { column: string; kind: string; merged?: { categories: number[] }; mixture?: { means: number[] } }[];
    // Rare merchant categories (gaming, travel, utilities are rare at this size/noise) share a slot.
    const merchant = cols.find((c) => c.column === 'merchant_category')!;
    expect(merchant.merged?.categories.length ?? 0).toBeGreaterThanOrEqual(0);
    // The target is never merged, even though fraud is rare.
    expect(cols.find((c) => c.column === 'is_fraud')!.merged).toBeUndefined();
    // No value of any row appears in the state: only mixture parameters and the public schema.
    const json = JSON.stringify(state);
    expect(json).not.toMatch(/b1-0000/);
    const amount = cols.find((c) => c.column === 'amount')!;
    expect(amount.mixture!.means.length).toBeGreaterThanOrEqual(1);
    expect(amount.mixture!.means.length).toBeLessThanOrEqual(10);
    // The noisy fit still encodes and decodes this bank's rows.
    const back = t.inverse(t.transform(rows.slice(0, 500)), 500);
    const hour = schema.columns.findIndex((c) => c.name === 'hour');
    // Values the noisy mixture covers come back exactly; values beyond ±3.96σ of every mode (rare
    // night hours whose bins drowned in the noise) are clipped to the nearest mode's edge.
    const same = back.filter((r, i) => r[hour] === rows[i]![hour]).length;
    expect(same / 500).toBeGreaterThan(0.97);
    back.forEach((r, i) => expect(Math.abs((r[hour] as number) - (rows[i]![hour] as number))).toBeLessThanOrEqual(4));
    // Serialisation is exact.
    const again = GmmTransformer.fromJSON(JSON.parse(json));
    expect(Array.from(again.transform(rows.slice(0, 50), 5))).toEqual(Array.from(t.transform(rows.slice(0, 50), 5)));
  });

  it('merges categories whose noisy counts are below the threshold into one slot, decoding to all of them', () => {
    const s = validateSchema({
      version: 1,
      columns: [
        { name: 'c', type: 'categorical', categories: ['a', 'b', 'r1', 'r2', 'r3'] },
        { name: 'x', type: 'continuous', min: 0, max: 1 },
      ],
    });
    const sc = summaryColumns(s);
    const t = GmmTransformer.fit(s, [{ column: 'c', values: [5000, 3000, 3, 0, 8] }, { column: 'x', values: new Array(sc[1]!.dim).fill(100) }], { noiseStd: 10 });
    const enc = t.transform([['r2', 0.5]]);
    const slotOfR1 = t.spans[0]!.offset + 2;
    expect(enc[slotOfR1]).toBe(1); // r2 shares r1's slot
    const back = t.inverse(
      new Float32Array(300 * t.outputDim).map((_, i) => (i % t.outputDim === slotOfR1 ? 1 : 0)),
      300,
    );
    expect(new Set(back.map((r) => r[0]))).toEqual(new Set(['r1', 'r2', 'r3']));
    // The merged categories other than the slot are never produced by the encoding: the sampler excludes them.
    expect(t.unusedCategories()).toEqual([{ offset: t.spans[0]!.offset, categories: [3, 4], slot: 2 }]);
    // A bank's encoded rows carry the list to its trainer, which then conditions on none of them.
    expect(encodeRows(t, [['r2', 0.5]]).unusedCategories).toEqual(t.unusedCategories());
    const plain = GmmTransformer.fit(s, [{ column: 'c', values: [5000, 3000, 300, 400, 800] }, { column: 'x', values: new Array(sc[1]!.dim).fill(100) }], { noiseStd: 10 });
    expect(plain.unusedCategories()).toEqual([]);
    expect(encodeRows(plain, [['r2', 0.5]]).unusedCategories).toBeUndefined();
    expect(() => GmmTransformer.fromJSON({ kind: 'simple' })).toThrow(/not a gmm transformer/);
  });

  it("pools the merged rare categories' weight from the unclamped noisy sums: unbiased, not the sum of clamped noise", () => {
    const s = validateSchema({
      version: 1,
      columns: [
        { name: 'c', type: 'categorical', categories: ['a', 'b', 'r1', 'r2', 'r3', 'r4'] },
        { name: 'k', type: 'categorical', categories: ['p', 'q'] },
        { name: 'x', type: 'continuous', min: 0, max: 1 },
      ],
    });
    const sc = summaryColumns(s);
    const hist = { column: 'x', values: new Array(sc[2]!.dim).fill(100) };
    // True rare counts 0, 2, 0, 1 under noise sd 10: the noisy sums scatter around 0.
    const raw = [{ column: 'c', values: [5000, 3000, 12, -9, 14, -15] }, { column: 'k', values: [4000, -3] }, hist];
    const clamped = raw.map((c) => ({ column: c.column, values: c.values.map((v) => Math.max(0, v)) }));
    const t = GmmTransformer.fit(s, clamped, { noiseStd: 10 });
    const w = pooledCategoryWeights(t.toJSON(), raw);
    // The slot (r1) carries max(0, 12 − 9 + 14 − 15) = 2; the other merged categories 0. Clamping
    // each first would have given the slot's categories 12 + 14 = 26 between them.
    expect(w[0]!.values).toEqual([5000, 3000, 2, 0, 0, 0]);
    expect(clamped[0]!.values.slice(2).reduce((a, b) => a + b, 0)).toBe(26);
    // A column without a merged slot (two categories: nothing to pool) is only clamped; so is a histogram.
    expect(w[1]!.values).toEqual([4000, 0]);
    expect(w[2]!.values).toEqual(hist.values);
    // A negative pooled sum is clamped once, at the slot.
    expect(pooledCategoryWeights(t.toJSON(), [{ ...raw[0]!, values: [5000, 3000, -12, -9, 14, -15] }, raw[1]!, hist])[0]!.values).toEqual([5000, 3000, 0, 0, 0, 0]);
  });

  it('keeps bins of a noisy histogram that stand out as a run or alone above 3σ, and drops isolated noise', () => {
    expect(occupiedBins([0, 25, 0, 0, 35, 0, 25, 25, 0, -40, 19, 100], 10)).toEqual([0, 0, 0, 0, 35, 0, 25, 25, 0, 0, 0, 100]);
    expect(occupiedBins([3, -1, 0.5], 0)).toEqual([3, 0, 0.5]);
    // Pure noise: the 2σ rule alone would keep ≈ 2.3% of empty bins; the run rule keeps ≈ 0.23%.
    const rng = new Rng(21);
    const sigma = 50;
    const noise = Array.from({ length: 40_000 }, () => sigma * normal(rng));
    const kept = occupiedBins(noise, sigma).filter((v) => v > 0).length / noise.length;
    expect(noise.filter((v) => v >= 2 * sigma).length / noise.length).toBeGreaterThan(0.019);
    expect(kept).toBeLessThan(0.0045);
    expect(kept).toBeGreaterThan(0.0008);
  });

  it("reads each column's own noise sd: the same counts merge under a large sd and stay apart under a small one", () => {
    const s = validateSchema({
      version: 1,
      columns: [
        { name: 'c', type: 'categorical', categories: ['a', 'b', 'r1', 'r2', 'r3'] },
        { name: 'd', type: 'categorical', categories: ['a', 'b', 'r1', 'r2', 'r3'] },
        { name: 'x', type: 'continuous', min: 0, max: 1 },
      ],
    });
    const sc = summaryColumns(s);
    const counts = [5000, 3000, 40, 25, 30];
    const merged = [{ column: 'c', values: counts }, { column: 'd', values: counts }, { column: 'x', values: new Array(sc[2]!.dim).fill(100) }];
    const t = GmmTransformer.fit(s, merged, { noiseStd: [20, 5, 5] });
    const cols = t.toJSON().columns as { column: string; merged?: { categories: number[] } }[];
    expect(cols.find((c) => c.column === 'c')!.merged?.categories).toEqual([2, 3, 4]);
    expect(cols.find((c) => c.column === 'd')!.merged).toBeUndefined();
    expect(() => GmmTransformer.fit(s, merged, { noiseStd: [20, 5] })).toThrow(/noiseStd has 2 entries, the schema summarises 3 columns/);
  });
});
