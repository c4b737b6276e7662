import { describe, expect, it } from 'vitest';
import { validateSchema, type Row } from '../../shared/data/schema';
import { simulateBankRows, transactionSchema } from '../../shared/data/simulate';
import { Rng } from '../../shared/tensor/random';
import { encodeRows } from '../../client-node/bank-data';
import { binOf, fitMixture, foldInto, GmmTransformer, histogramEdges, occupiedBins, pooledCategoryWeights, reflectedBounds, spikeValuesOf, summaryColumns, summaryCounts } from '../../shared/transformer/gmm';

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

  it('counts rows exactly at 0 and at the declared bounds apart, and keeps the ones that stand out as spikes: own slot, decoded exactly', () => {
    const s = validateSchema({ version: 1, columns: [
      { name: 'paid', type: 'integer', min: 0, max: 100_000, scale: 'log' },
      { name: 'days', type: 'integer', min: -1, max: 900 },
      { name: 'age', type: 'integer', min: 18, max: 95 },
    ] });
    const rng = new Rng(9);
    const rows: Row[] = Array.from({ length: 6000 }, (_, i) => [
      i % 10 < 3 ? 0 : Math.round(Math.exp(7 + rng.next() * 2)), // 30% no payment
      i % 10 >= 8 ? -1 : 1 + Math.floor(899 * rng.next()), // 20% never contacted (-1), never 0
      18 + Math.floor(60 * rng.next()),
    ]);
    // Candidates: paid 0 (= its min) and 100,000; days 0, -1 and 900; age none (one bin per value already).
    expect(spikeValuesOf(s.columns[0]!)).toEqual([0, 100_000]);
    expect(spikeValuesOf(s.columns[1]!)).toEqual([0, -1, 900]);
    expect(spikeValuesOf(s.columns[2]!)).toEqual([]);
    const sc = summaryColumns(s);
    expect(sc.map((c) => c.dim)).toEqual([66, 67, 78]);
    const counts = summaryCounts(s, rows);
    expect(counts[0]![64]).toBe(1800);
    expect(counts[1]![64]).toBe(0);
    expect(counts[1]![65]).toBe(1200);
    expect(counts.every((c) => c.reduce((a, b) => a + b, 0) === 6000)).toBe(true); // one count per row and column
    // Noisy counts, as the coordinator merges them.
    const sigma = 20;
    const noisy = counts.map((c) => c.map((v) => v + sigma * normal(rng)));
    const t = GmmTransformer.fit(s, sc.map((c, k) => ({ column: c.column, values: noisy[k]! })), { noiseStd: sigma, pointMasses: true });
    const state = t.toJSON().columns as { spikes?: { value: number; weight: number }[]; mixture: { means: number[] } }[];
    expect(state[0]!.spikes!.map((x) => x.value)).toEqual([0]);
    expect(state[0]!.spikes![0]!.weight).toBeCloseTo(0.3, 1);
    // days: -1 kept; its count of zeros and of 900 is noise, no spike.
    expect(state[1]!.spikes!.map((x) => x.value)).toEqual([-1]);
    expect(state[1]!.spikes![0]!.weight).toBeCloseTo(0.2, 1);
    expect(state[0]!.mixture.means.length).toBeLessThanOrEqual(8); // two slots reserved
    expect(state[1]!.mixture.means.length).toBeLessThanOrEqual(7); // three
    // The shares the generator's marginal term aims at: each spike's in its slot, all summing to 1.
    const shares = t.modeShares();
    expect(shares.map((m) => m.offset)).toEqual([t.spans[1]!.offset, t.spans[3]!.offset, t.spans[5]!.offset]);
    expect(shares[0]!.shares[9]).toBeCloseTo(state[0]!.spikes![0]!.weight, 12);
    expect(shares[1]!.shares[8]).toBeCloseTo(state[1]!.spikes![0]!.weight, 12); // -1 is days' second candidate
    expect(shares[1]!.shares[9]).toBe(0); // 0: reserved, not kept
    for (const m of shares) expect(m.shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    expect(encodeRows(t, rows.slice(0, 5), 5).modeShares).toEqual(shares); // what a bank's trainer gets
    // The point masses alone: each spike's slot, then the rest together.
    const spiked = t.spikeShares();
    expect(spiked.map((x) => x.offset)).toEqual([t.spans[1]!.offset, t.spans[3]!.offset]); // age has none
    expect(spiked[1]!.groups).toEqual([[8], [0, 1, 2, 3, 4, 5, 6, 7, 9]]);
    expect(spiked[1]!.shares[0]).toBeCloseTo(state[1]!.spikes![0]!.weight, 12);
    expect(spiked[1]!.shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    const enc = t.transform(rows, 2);
    for (let r = 0; r < 10; r++) {
      const at = (k: number) => enc[r * t.outputDim + k]!;
      expect(at(t.spans[1]!.offset + 9)).toBe(rows[r]![0] === 0 ? 1 : 0);
      if (rows[r]![0] === 0) expect(at(t.spans[0]!.offset)).toBe(0);
      expect(at(t.spans[3]!.offset + 8)).toBe(rows[r]![1] === -1 ? 1 : 0);
    }
    const back = t.inverse(enc, rows.length);
    expect(back.filter((r) => r[0] === 0).length).toBe(1800);
    expect(back.filter((r) => r[1] === -1).length).toBe(1200);
    back.forEach((r, i) => rows[i]![0] !== 0 && expect(Math.abs((r[0] as number) - (rows[i]![0] as number))).toBeLessThanOrEqual(Math.max(1, 1e-3 * (rows[i]![0] as number))));
    // A mixture tail past a bound folds back inside: only the spike's slot gives exactly -1.
    const tail = new Float32Array(200 * t.outputDim);
    for (let r = 0; r < 200; r++) {
      tail[r * t.outputDim + t.spans[2]!.offset] = -1; // days' scalar at the far low end ...
      tail[r * t.outputDim + t.spans[3]!.offset] = 1; // ... of its lowest mode
      tail[r * t.outputDim + t.spans[1]!.offset] = 1;
    }
    const lowest = (t.toJSON().columns as { mixture: { means: number[]; stds: number[] } }[])[1]!.mixture;
    expect(lowest.means[0]! - 4 * lowest.stds[0]!).toBeLessThan(-1); // past the bound, where the clamp used to pile rows
    const folded = t.inverse(tail, 200).map((r) => r[1] as number);
    expect(folded.every((v) => v > -1 && v <= 900)).toBe(true);
    // The state round-trips through JSON; a spike the schema does not count apart is refused.
    expect(GmmTransformer.fromJSON(JSON.parse(JSON.stringify(t.toJSON()))).toJSON()).toEqual(t.toJSON());
    const forged = (col: number, spikes: unknown) => {
      const f = JSON.parse(JSON.stringify(t.toJSON()));
      f.columns[col].spikes = spikes;
      return () => GmmTransformer.fromJSON(f);
    };
    expect(forged(2, [{ value: 18, weight: 0.5 }])).toThrow(/'age' has a spike at 18, which its schema column does not count apart/);
    expect(forged(0, [{ value: 5, weight: 0.5 }])).toThrow(/'paid' has a spike at 5/);
    expect(forged(0, [{ value: 0, weight: 0.7 }, { value: 100_000, weight: 0.7 }])).toThrow(/invalid spikes for 'paid'/);
    // Fitted without point masses (the default; FitOptions.pointMasses): the candidates' rows rejoin their bins, and no mode share is held.
    const plain = GmmTransformer.fit(s, sc.map((c, k) => ({ column: c.column, values: noisy[k]! })), { noiseStd: sigma });
    expect(plain.toJSON().pointMasses).toBeUndefined();
    expect(plain.modeShares()).toEqual([]);
    expect(encodeRows(plain, rows.slice(0, 5), 5).modeShares).toBeUndefined();
    expect((plain.toJSON().columns as { spikes?: unknown }[]).every((c) => c.spikes === undefined)).toBe(true);
    expect(plain.inverse(enc, rows.length).filter((r) => r[1] === -1).length).toBeLessThan(600);
    // A checkpoint's state from before point masses (no pointMasses flag) loads as fitted then:
    // no candidates, all ten slots the mixture's; spikes in it would be refused.
    const old = JSON.parse(JSON.stringify(t.toJSON()));
    expect(old.pointMasses).toBe(true);
    delete old.pointMasses;
    for (const c of old.columns) delete c.spikes;
    old.columns[1].mixture = { weights: new Array(10).fill(0.1), means: Array.from({ length: 10 }, (_, k) => 90 * k), stds: new Array(10).fill(30) };
    const legacy = GmmTransformer.fromJSON(old);
    expect(legacy.toJSON().pointMasses).toBeUndefined();
    expect(legacy.inverse(enc.subarray(0, 10 * t.outputDim), 10).every((r) => typeof r[1] === 'number')).toBe(true);
    expect(() => GmmTransformer.fromJSON({ ...old, columns: [{ ...old.columns[0], spikes: [{ value: 0, weight: 0.3 }] }, ...old.columns.slice(1)] })).toThrow(/'paid' has a spike at 0/);
  });

  it('without point masses, reflects a mixture tail at a bound the real rows do not pile on and clamps it onto one they do', () => {
    // A bound's count must clear 3σ and a mode's share (0.5%) to count as a pile, as a point mass must.
    const col = validateSchema({ version: 1, columns: [{ name: 'x', type: 'continuous', min: 0, max: 10 }] }).columns[0]!;
    expect(reflectedBounds(col, [{ value: 0, count: 0 }, { value: 10, count: 0 }], 20, 10_000)).toEqual([0, 10]);
    expect(reflectedBounds(col, [{ value: 0, count: 59 }, { value: 10, count: 61 }], 20, 10_000)).toEqual([0]); // 3σ = 60
    expect(reflectedBounds(col, [{ value: 0, count: 61 }, { value: 10, count: 400 }], 20, 20_000)).toEqual([0]); // 0.5% of 20,000 = 100
    expect(reflectedBounds(col, [{ value: 10, count: -30 }], 20, 10_000)).toEqual([10]); // a count the noise took below 0
    expect(reflectedBounds(col, [], 20, 10_000)).toEqual([]); // no count at the bounds (one bin per integer): clamp
    // Through the fit: tenure from 400 to 599 months, never 0 or 600; days at -1 in 20% of the rows, never 900.
    const s = validateSchema({ version: 1, columns: [
      { name: 'tenure', type: 'integer', min: 0, max: 600 },
      { name: 'days', type: 'integer', min: -1, max: 900 },
    ] });
    const rng = new Rng(4);
    const rows: Row[] = Array.from({ length: 6000 }, (_, i) => [400 + Math.floor(200 * rng.next()), i % 10 >= 8 ? -1 : 1 + Math.floor(899 * rng.next())]);
    const sc = summaryColumns(s);
    const counts = summaryCounts(s, rows);
    const t = GmmTransformer.fit(s, sc.map((c, k) => ({ column: c.column, values: counts[k]!.map((v) => v + 20 * normal(rng)) })), { noiseStd: 20 });
    const states = t.toJSON().columns as { reflect?: number[]; mixture: { means: number[]; stds: number[] } }[];
    expect(states[0]!.reflect).toEqual([0, 600]);
    expect(states[1]!.reflect).toEqual([900]); // not -1, where 20% of the rows are (nor 0, not a bound)
    // Generator output at the top of tenure's highest mode: folded inside, none exactly at 600;
    // the same state without `reflect` (as written before it) clamps them all onto 600.
    const top = states[0]!.mixture.means.reduce((b, m, k, a) => (m > a[b]! ? k : b), 0);
    expect(states[0]!.mixture.means[top]! + 4 * states[0]!.mixture.stds[top]!).toBeGreaterThan(600);
    const out = new Float32Array(100 * t.outputDim);
    for (let r = 0; r < 100; r++) {
      out[r * t.outputDim + t.spans[0]!.offset] = 1;
      out[r * t.outputDim + t.spans[1]!.offset + top] = 1;
      out[r * t.outputDim + t.spans[3]!.offset] = 1;
    }
    const values = t.inverse(out, 100).map((r) => r[0] as number);
    expect(values.every((v) => v < 600 && v >= 0)).toBe(true);
    const old = JSON.parse(JSON.stringify(t.toJSON()));
    delete old.columns[0].reflect;
    expect(GmmTransformer.fromJSON(old).inverse(out, 100).every((r) => r[0] === 600)).toBe(true);
    // The state round-trips; a reflect value that is not a declared bound is refused.
    expect(GmmTransformer.fromJSON(JSON.parse(JSON.stringify(t.toJSON()))).toJSON()).toEqual(t.toJSON());
    old.columns[0].reflect = [599];
    expect(() => GmmTransformer.fromJSON(old)).toThrow(/reflect of 'tenure' must list the column's declared bounds only/);
  });

  it('folds a value more than a range past a reflecting bound back inside again, instead of onto the far bound', () => {
    expect(foldInto(-700, 0, 600)).toBe(500); // 700 below: once to 700 (past 600), again to 500
    expect(foldInto(1900, 0, 600)).toBe(500); // period 1200: 1900 ≡ 700, which folds to 500
    expect(foldInto(-50, 0, 600)).toBe(50);
    expect(foldInto(650, 0, 600)).toBe(550);
    expect(foldInto(300, 0, 600)).toBe(300);
    expect(foldInto(-1200, 0, 600)).toBe(0);
    for (const x of [-5e6, -1234.5, -600, 0, 599.9, 600, 601, 1e7]) {
      const y = foldInto(x, -70, 750);
      expect(y).toBeGreaterThanOrEqual(-70);
      expect(y).toBeLessThanOrEqual(750);
    }
    // Through the decoder: a mode whose lower tail reaches more than a range below the minimum.
    const s = validateSchema({ version: 1, columns: [{ name: 'tenure', type: 'integer', min: 0, max: 600 }] });
    const rng = new Rng(9);
    const rows: Row[] = Array.from({ length: 4000 }, () => [50 + Math.floor(400 * rng.next())]);
    const counts = summaryCounts(s, rows);
    const t = GmmTransformer.fit(s, summaryColumns(s).map((c, k) => ({ column: c.column, values: counts[k]! })), { noiseStd: 0 });
    const state = JSON.parse(JSON.stringify(t.toJSON()));
    expect(state.columns[0].reflect).toEqual([0, 600]);
    state.columns[0].mixture.means[0] = 100;
    state.columns[0].mixture.stds[0] = 200; // α = −1: 100 − 800 = −700, which one fold takes to 700
    const wide = GmmTransformer.fromJSON(state);
    const out = new Float32Array(wide.outputDim);
    out[wide.spans[0]!.offset] = -1;
    out[wide.spans[1]!.offset] = 1;
    expect(wide.inverse(out, 1)[0]![0]).toBe(500); // not 600, where no real row is
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
    expect(encodeRows(t, [['r2', 0.5]], 1).unusedCategories).toEqual(t.unusedCategories());
    const plain = GmmTransformer.fit(s, [{ column: 'c', values: [5000, 3000, 300, 400, 800] }, { column: 'x', values: new Array(sc[1]!.dim).fill(100) }], { noiseStd: 10 });
    expect(plain.unusedCategories()).toEqual([]);
    expect(encodeRows(plain, [['r2', 0.5]], 1).unusedCategories).toBeUndefined();
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
