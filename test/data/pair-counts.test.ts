// Two-way counts of encoded rows (shared/transformer/pair-counts.ts): the generator's pair targets.
import { describe, expect, it } from 'vitest';
import { mergePairTargets, pairCounts, pairNoiseSd, shrinkPairTable, softmaxSpanPairs } from '../../shared/transformer/pair-counts';

const spans = [
  { column: 'amount', kind: 'tanh' as const, dim: 1, offset: 0 },
  { column: 'amount', kind: 'softmax' as const, dim: 2, offset: 1 },
  { column: 'channel', kind: 'softmax' as const, dim: 3, offset: 3 },
  { column: 'is_fraud', kind: 'softmax' as const, dim: 2, offset: 6 },
];

describe('two-way counts of encoded rows', () => {
  it('pairs every two softmax spans but the excluded columns', () => {
    expect(softmaxSpanPairs(spans).map((p) => `${p.a.column}:${p.a.offset}/${p.b.column}:${p.b.offset}`)).toEqual(['amount:1/channel:3', 'amount:1/is_fraud:6', 'channel:3/is_fraud:6']);
    expect(softmaxSpanPairs(spans, ['is_fraud']).map((p) => [p.a.dim, p.b.dim])).toEqual([[2, 3]]);
  });

  it("counts each row once in each pair's table, row-major, and refuses a span that is not one-hot", () => {
    // rows: (mode 0, online=1, fraud 0), (mode 1, online=1, fraud 1), (mode 1, atm=2, fraud 0)
    const row = (alpha: number, mode: number, channel: number, fraud: number): number[] => [alpha, ...[0, 1].map((j) => +(j === mode)), ...[0, 1, 2].map((j) => +(j === channel)), ...[0, 1].map((j) => +(j === fraud))];
    const encoded = Float32Array.from([...row(0.1, 0, 1, 0), ...row(-0.4, 1, 1, 1), ...row(0.9, 1, 2, 0)]);
    const pairs = softmaxSpanPairs(spans);
    const t = pairCounts(encoded, 3, 8, pairs);
    expect(t[0]).toEqual([0, 1, 0, 0, 1, 1]); // amount mode × channel
    expect(t[1]).toEqual([1, 0, 1, 1]); // amount mode × is_fraud
    expect(t[2]).toEqual([0, 0, 1, 1, 1, 0]); // channel × is_fraud
    expect(t.map((x) => x.reduce((a, b) => a + b, 0))).toEqual([3, 3, 3]);
    const bad = encoded.slice();
    bad[8 + 3] = 1; // row 1's channel span now has two ones
    expect(() => pairCounts(bad, 3, 8, pairs)).toThrow(/row 1's 'channel' span is not one-hot/);
    const allOnes = encoded.slice();
    allOnes.fill(1, 16 + 3, 16 + 6); // row 2's channel span: three ones
    expect(() => pairCounts(allOnes, 3, 8, pairs)).toThrow(/row 2's 'channel' span is not one-hot/);
    const empty = encoded.slice();
    empty[1] = 0; // row 0's amount mode span: no one at all
    expect(() => pairCounts(empty, 3, 8, pairs)).toThrow(/row 0's 'amount' span is not one-hot/);
    expect(() => pairCounts(encoded, 2, 8, pairs)).toThrow(/expected 2×8 values, got 24/);
  });

  it('shrinks a noisy table towards its independent table by the share of its deviation the noise explains', () => {
    // A strong association (a = b), 1,000 rows: the deviation dwarfs a noise variance of 100 per cell.
    const strong = shrinkPairTable([500, 0, 0, 500], 2, 2, 100);
    expect(strong.lambda).toBeCloseTo(1 - (4 * 100) / (4 * 250 ** 2), 10);
    expect(strong.table[0]).toBeCloseTo(250 + strong.lambda * 250, 8);
    expect(strong.table[1]).toBeCloseTo(250 - strong.lambda * 250, 8);
    // A deviation no larger than the noise: λ = 0, the independent table of the noisy margins.
    const weak = shrinkPairTable([260, 240, 240, 260], 2, 2, 400);
    expect(weak.lambda).toBe(0);
    expect(weak.table).toEqual([250, 250, 250, 250]);
    // Negative noisy cells: margins and cells clamped at 0.
    const neg = shrinkPairTable([-30, 10, 0, 20], 2, 2, 0);
    expect(neg.table.every((x) => x >= 0)).toBe(true);
    expect(() => shrinkPairTable([1, 2, 3], 2, 2, 1)).toThrow(/expected 2×2 cells, got 3/);
    expect(() => shrinkPairTable([1, 2, 3, 4], 2, 2, Number.NaN)).toThrow(/noiseVar must be >= 0/);
  });

  it("merges the banks' noisy tables: summed, shrunk with the summed noise variance, pairs the noise explains dropped", () => {
    const pairs = softmaxSpanPairs(spans, ['is_fraud']).concat(softmaxSpanPairs(spans).slice(1, 2)); // amount×channel, amount×is_fraud
    // Bank tables: a strong amount×channel association; amount×is_fraud exactly independent.
    const strong = [40, 0, 10, 0, 40, 10];
    const indep = [25, 25, 25, 25];
    const banks = [
      { noiseSd: 3, tables: [strong, indep] },
      { noiseSd: 4, tables: [strong.map((v) => v + 1), indep] },
    ];
    const merged = mergePairTargets(pairs, banks);
    expect(merged.map((t) => [t.aOffset, t.aDim, t.bOffset, t.bDim])).toEqual([[1, 2, 3, 3]]);
    // The same as shrinking the summed table with variance 3² + 4² = 25 per cell.
    const sum = strong.map((v) => 2 * v + 1);
    const expected = shrinkPairTable(sum, 2, 3, 25);
    expect(merged[0]!.joint).toEqual(expected.table);
    expect(merged[0]!.lambda).toBeCloseTo(expected.lambda, 12);
    expect(merged[0]!.lambda).toBeGreaterThan(0.9);
    // More noise shrinks it further towards independence.
    const noisier = mergePairTargets(pairs, banks.map((b) => ({ ...b, noiseSd: b.noiseSd * 6 })));
    expect(noisier[0]!.lambda).toBeLessThan(merged[0]!.lambda);
    expect(mergePairTargets(pairs, [])).toEqual([]);
    expect(() => mergePairTargets(pairs, [{ noiseSd: 3, tables: [strong] }])).toThrow(/bank 0 sent 1 tables, expected 2/);
    expect(() => mergePairTargets(pairs, [{ noiseSd: 3, tables: [strong, [1, 2, 3]] }])).toThrow(/bank 0's table 1 has 3 cells, expected 4/);
    expect(() => mergePairTargets(pairs, [{ noiseSd: 0, tables: [strong, indep] }])).toThrow(/noise sd must be a finite number > 0/);
  });

  it("weighs a bank by its FedAvg weight when given: counts inflated a hundredfold pull the targets no more", () => {
    const pairs = softmaxSpanPairs(spans, ['is_fraud']); // amount × channel
    const honest = { noiseSd: 3, tables: [[40, 0, 10, 0, 40, 10]], weight: 100 }; // 100 rows, mode 0 ↔ online
    const other = { noiseSd: 3, tables: [[10, 40, 0, 10, 0, 40]], weight: 100 }; // 100 rows, the opposite association
    const fair = mergePairTargets(pairs, [honest, other]);
    // The second bank sends its counts a hundredfold (its noise sd as before) but reports the same weight.
    const inflated = mergePairTargets(pairs, [honest, { ...other, tables: [other.tables[0]!.map((v) => 100 * v)] }]);
    // (Its noise, scaled down with its tables, shrinks the merge a little less: within 10%.)
    inflated[0]!.joint.forEach((v, k) => expect(Math.abs(v - fair[0]!.joint[k]!)).toBeLessThanOrEqual(0.1 * Math.max(1, fair[0]!.joint[k]!)));
    // With its noise sd inflated alike, exactly the fair merge.
    const alike = mergePairTargets(pairs, [honest, { ...other, noiseSd: 300, tables: [other.tables[0]!.map((v) => 100 * v)] }]);
    alike[0]!.joint.forEach((v, k) => expect(v).toBeCloseTo(fair[0]!.joint[k]!, 6));
    // Without weights the inflated bank would dominate the sum.
    const unweighted = mergePairTargets(pairs, [{ ...honest, weight: undefined }, { ...other, weight: undefined, tables: [other.tables[0]!.map((v) => 100 * v)] }]);
    const ratio = (j: number[]) => j[1]! / j[0]!; // the inflated bank's cell against the honest one's
    expect(ratio(unweighted[0]!.joint)).toBeGreaterThan(3 * ratio(fair[0]!.joint));
    // A weight scales the bank's tables to it: twice the weight, twice the share.
    const heavier = mergePairTargets(pairs, [honest, { ...other, weight: 200 }]);
    expect(heavier[0]!.joint[1]!).toBeGreaterThan(fair[0]!.joint[1]!);
    // A bank whose tables are all noise (median total ≤ 0) is left out when weighted.
    expect(mergePairTargets(pairs, [{ noiseSd: 3, tables: [[-1, -2, 0, 1, -1, 0]], weight: 50 }])).toEqual([]);
    expect(() => mergePairTargets(pairs, [{ ...honest, weight: 0 }])).toThrow(/weight must be a finite number > 0/);
  });

  it('calibrates the noise sd to the number of pairs (sensitivity √pairs)', () => {
    expect(pairNoiseSd(20, 9)).toBe(60);
    expect(pairNoiseSd(2, 1)).toBe(2);
    expect(() => pairNoiseSd(0, 4)).toThrow(/noise multiplier must be a finite number > 0/);
    expect(() => pairNoiseSd(2, 0)).toThrow(/at least one pair/);
  });
});
