// Two-way counts of encoded rows, for the generator's pair targets (TrainerOptions.pairTargets).
//
// A pair is two softmax spans of the transformer's output: two categorical columns, a categorical
// column and a numeric column's mode, or two numeric columns' modes. A row adds 1 to one cell of
// each pair's table, so over P pairs one record moves the tables by L2 norm √P: Gaussian noise of
// sd z·√P per cell makes the release the Gaussian mechanism at noise multiplier z (Mironov 2017),
// whatever P. Pure functions; the noise and the charge are the caller's.
import type { OutputSpan } from '../model/config';

export interface SpanPair {
  a: { offset: number; dim: number; column: string };
  b: { offset: number; dim: number; column: string };
}

/** Every pair of softmax spans, in span order, leaving out the spans of `exclude` (e.g. the target, whose relation C carries). */
export function softmaxSpanPairs(spans: readonly OutputSpan[], exclude: readonly string[] = []): SpanPair[] {
  const s = spans.filter((sp) => sp.kind === 'softmax' && !exclude.includes(sp.column)).map((sp) => ({ offset: sp.offset, dim: sp.dim, column: sp.column }));
  const out: SpanPair[] = [];
  for (let i = 0; i < s.length; i++) for (let j = i + 1; j < s.length; j++) out.push({ a: s[i]!, b: s[j]! });
  return out;
}

/**
 * Per pair, the a × b table (row-major) of n encoded rows (row-major n × outputDim, softmax spans
 * one-hot, as the transformer encodes real rows). Throws on a row whose span is not one-hot.
 */
export function pairCounts(encoded: Float32Array, n: number, outputDim: number, pairs: readonly SpanPair[]): number[][] {
  if (encoded.length !== n * outputDim) throw new Error(`pairCounts: expected ${n}×${outputDim} values, got ${encoded.length}`);
  // Each span is in many pairs: find a row's hot slot once per span, then count every pair.
  const spans = [...new Map(pairs.flatMap((p) => [p.a, p.b]).map((s) => [s.offset, s])).values()];
  const slotOf = new Map(spans.map((s, i) => [s.offset, i]));
  const hot = new Int32Array(spans.length);
  const tables = pairs.map((p) => new Array<number>(p.a.dim * p.b.dim).fill(0));
  for (let r = 0; r < n; r++) {
    spans.forEach((s, i) => {
      let k = -1;
      let ones = 0;
      for (let j = 0; j < s.dim; j++) {
        const v = encoded[r * outputDim + s.offset + j]!;
        if (v === 1) {
          k = j;
          ones++;
        } else if (v !== 0) ones = 2;
      }
      if (ones !== 1) throw new Error(`pairCounts: row ${r}'s '${s.column}' span is not one-hot`);
      hot[i] = k;
    });
    pairs.forEach((p, i) => {
      tables[i]![hot[slotOf.get(p.a.offset)!]! * p.b.dim + hot[slotOf.get(p.b.offset)!]!]! += 1;
    });
  }
  return tables;
}

/**
 * A merged noisy a × b table made fit to be a target: the independent table of its own margins
 * plus its deviation from it, shrunk by the share of that deviation the noise cannot explain
 * (a James-Stein-type estimate: with D = table − independent and `noiseVar` the per-cell noise
 * variance of the merged table, λ = max(0, 1 − cells·noiseVar / ΣD²)). A pair whose deviation is
 * no larger than the noise's gets λ = 0, its independent table, which asks nothing of the
 * generator beyond the one-way counts; a strong association keeps λ near 1. Clamped at 0.
 * Post-processing of released counts: no privacy cost.
 */
export function shrinkPairTable(table: readonly number[], aDim: number, bDim: number, noiseVar: number): { table: number[]; lambda: number } {
  if (table.length !== aDim * bDim) throw new Error(`shrinkPairTable: expected ${aDim}×${bDim} cells, got ${table.length}`);
  if (!(noiseVar >= 0)) throw new Error(`shrinkPairTable: noiseVar must be >= 0, got ${noiseVar}`);
  const rows = new Array<number>(aDim).fill(0);
  const cols = new Array<number>(bDim).fill(0);
  table.forEach((v, k) => {
    rows[Math.floor(k / bDim)]! += v;
    cols[k % bDim]! += v;
  });
  const atLeastZero = (v: number[]): number[] => v.map((x) => Math.max(0, x));
  const r = atLeastZero(rows);
  const c = atLeastZero(cols);
  const total = r.reduce((s, x) => s + x, 0);
  const expected = table.map((_, k) => (total > 0 ? (r[Math.floor(k / bDim)]! * c[k % bDim]!) / total : 0));
  const dev = table.map((v, k) => v - expected[k]!);
  const ss = dev.reduce((s, d) => s + d * d, 0);
  const lambda = ss > 0 ? Math.max(0, 1 - (table.length * noiseVar) / ss) : 0;
  return { table: expected.map((e, k) => Math.max(0, e + lambda * dev[k]!)), lambda };
}

/** Gaussian noise sd per cell that makes the release of `pairs` tables the Gaussian mechanism at noise multiplier z (sensitivity √pairs). */
export function pairNoiseSd(noiseMultiplier: number, pairs: number): number {
  if (!(Number.isFinite(noiseMultiplier) && noiseMultiplier > 0)) throw new RangeError(`pair counts' noise multiplier must be a finite number > 0, got ${noiseMultiplier}`);
  if (!(Number.isSafeInteger(pairs) && pairs >= 1)) throw new RangeError(`pair counts need at least one pair, got ${pairs}`);
  return noiseMultiplier * Math.sqrt(pairs);
}

/**
 * A release's table totals, their median and which table holds it (the upper median for an even
 * count). Every table of one release counts the same rows, so the median is the release's row count
 * as its tables say, robust to one table that strays.
 */
export function medianTableTotal(tables: readonly (readonly number[])[]): { index: number; total: number; totals: number[] } {
  if (tables.length === 0) throw new Error('medianTableTotal: no table');
  const totals = tables.map((t) => t.reduce((x, y) => x + y, 0));
  const order = totals.map((_, i) => i).sort((x, y) => totals[x]! - totals[y]!);
  const index = order[Math.floor(order.length / 2)]!;
  return { index, total: totals[index]!, totals };
}

/** One pair's merged target: the spans by offset and width, the shrunk joint, and how much of its association the noise left (λ). */
export interface MergedPairTarget {
  aOffset: number;
  aDim: number;
  bOffset: number;
  bDim: number;
  joint: number[];
  lambda: number;
}

/**
 * The consortium's pair targets from the banks' noisy tables (each bank's list in `pairs` order,
 * with its per-cell noise sd): per pair the sum over banks, shrunk towards the independent table of
 * its margins (shrinkPairTable, with the summed noise variance); pairs the noise explains entirely
 * (λ = 0) are left out. With a bank's `weight` (its FedAvg weight, e.g. its released row count), its
 * tables are first scaled so that their median total is that weight, and its noise sd with them: a
 * bank then pulls the targets as much as it pulls the model, however large the counts it sends. A
 * bank whose median total is not positive (all noise) is left out then. Post-processing of DP
 * releases: no privacy cost. Pure.
 */
export function mergePairTargets(pairs: readonly SpanPair[], banks: readonly { noiseSd: number; tables: readonly (readonly number[])[]; weight?: number }[]): MergedPairTarget[] {
  if (banks.length === 0) return [];
  const merged = pairs.map((p) => new Array<number>(p.a.dim * p.b.dim).fill(0));
  let noiseVar = 0;
  let used = 0;
  banks.forEach((bank, b) => {
    if (!(Number.isFinite(bank.noiseSd) && bank.noiseSd > 0)) throw new RangeError(`mergePairTargets: bank ${b}'s noise sd must be a finite number > 0, got ${bank.noiseSd}`);
    if (bank.tables.length !== pairs.length) throw new Error(`mergePairTargets: bank ${b} sent ${bank.tables.length} tables, expected ${pairs.length}`);
    bank.tables.forEach((t, i) => {
      if (t.length !== merged[i]!.length) throw new Error(`mergePairTargets: bank ${b}'s table ${i} has ${t.length} cells, expected ${merged[i]!.length}`);
    });
    let scale = 1;
    if (bank.weight !== undefined) {
      if (!(Number.isFinite(bank.weight) && bank.weight > 0)) throw new RangeError(`mergePairTargets: bank ${b}'s weight must be a finite number > 0, got ${bank.weight}`);
      const median = medianTableTotal(bank.tables).total;
      if (!(median > 0)) return;
      scale = bank.weight / median;
    }
    used++;
    noiseVar += (bank.noiseSd * scale) ** 2;
    bank.tables.forEach((t, i) => t.forEach((v, j) => (merged[i]![j]! += v * scale)));
  });
  if (used === 0) return [];
  return pairs
    .map((p, i) => ({ p, ...shrinkPairTable(merged[i]!, p.a.dim, p.b.dim, noiseVar) }))
    .filter((x) => x.lambda > 0 && x.table.some((v) => v > 0))
    .map(({ p, table, lambda }) => ({ aOffset: p.a.offset, aDim: p.a.dim, bOffset: p.b.offset, bDim: p.b.dim, joint: table, lambda }));
}
