import { describe, expect, it } from 'vitest';
import { aucRoc, bestF1Threshold, metricsAt, prAuc } from '../../shared/eval/auc';
import {
  columnPairs, contingency, contingencySimilarity, correlationSimilarity, cramersV, jsDistance, ksComplement, mmdRbf, pearson, tvComplement,
} from '../../shared/eval/fidelity';
import { rng } from '../../shared/eval/random';

const f64 = (a: number[]): Float64Array => Float64Array.from(a);
const i32 = (a: number[]): Int32Array => Int32Array.from(a);

/** Exact O(n^2) AUC: P(s+ > s-) + 0.5 P(s+ = s-). */
function aucBrute(s: ArrayLike<number>, y: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < s.length; i++) {
    if (y[i] !== 1) continue;
    for (let j = 0; j < s.length; j++) {
      if (y[j] !== 0) continue;
      den++;
      num += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
    }
  }
  return num / den;
}

describe('column shape metrics', () => {
  it('KS complement matches a hand-computed statistic', () => {
    // real {1,2,3,4}, syn {3,4,5,6}: ECDFs differ most at x in [2,3): 0.5 - 0 = 0.5.
    expect(ksComplement(f64([1, 2, 3, 4]), f64([3, 4, 5, 6]))).toBeCloseTo(0.5, 12);
    // With ties: real {1,1,2}, syn {1,2,2}: at x=1: 2/3 vs 1/3 -> D = 1/3.
    expect(ksComplement(f64([1, 1, 2]), f64([1, 2, 2]))).toBeCloseTo(2 / 3, 12);
    expect(ksComplement(f64([1, 2, 3]), f64([3, 2, 1]))).toBe(1);
    expect(ksComplement(f64([0, 1]), f64([5, 6]))).toBe(0);
  });

  it('KS complement ignores missing values', () => {
    expect(ksComplement(f64([1, NaN, 2]), f64([2, 1, NaN, NaN]))).toBe(1);
  });

  it('TV complement matches a hand-computed value', () => {
    // p = (0.5, 0.5, 0), q = (0.25, 0.25, 0.5): TV = 0.5 * (0.25 + 0.25 + 0.5) = 0.5.
    expect(tvComplement(i32([0, 1]), i32([0, 1, 2, 2]), 3)).toBeCloseTo(0.5, 12);
    expect(tvComplement(i32([0, 0, 1]), i32([1, 0, 0]), 2)).toBe(1);
  });

  it('Jensen-Shannon distance: 0 for equal, 1 for disjoint, known middle value', () => {
    expect(jsDistance(f64([0.3, 0.7]), f64([0.3, 0.7]))).toBe(0);
    expect(jsDistance(f64([1, 0]), f64([0, 1]))).toBeCloseTo(1, 12);
    // p = (1, 0), q = (0.5, 0.5): m = (0.75, 0.25); JSD = 0.5 log2(1/0.75) + 0.5 (0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25)).
    const jsd = 0.5 * Math.log2(1 / 0.75) + 0.5 * (0.5 * Math.log2(0.5 / 0.75) + 0.5 * Math.log2(2));
    expect(jsDistance(f64([1, 0]), f64([0.5, 0.5]))).toBeCloseTo(Math.sqrt(jsd), 12);
  });
});

describe('column pair metrics', () => {
  it('Pearson correlation of exact linear relations and of a hand case', () => {
    expect(pearson(f64([1, 2, 3, 4]), f64([2, 4, 6, 8]))).toBeCloseTo(1, 12);
    expect(pearson(f64([1, 2, 3, 4]), f64([8, 6, 4, 2]))).toBeCloseTo(-1, 12);
    // x = (1,2,3), y = (1,3,2): cov = 0.5*... r = 0.5 by hand (sxy = 1, sxx = syy = 2).
    expect(pearson(f64([1, 2, 3]), f64([1, 3, 2]))).toBeCloseTo(0.5, 12);
    expect(pearson(f64([1, 1, 1]), f64([1, 2, 3]))).toBe(0);
    expect(correlationSimilarity(0.8, -0.2)).toBeCloseTo(0.5, 12);
  });

  it("Cramér's V: 1 for a perfect association, 0 for independence, hand value for a 2x2 table", () => {
    const a = i32([0, 0, 1, 1, 2, 2]);
    expect(cramersV(contingency(a, 3, i32([2, 2, 0, 0, 1, 1]), 3), 3, 3)).toBeCloseTo(1, 12);
    expect(cramersV(contingency(i32([0, 0, 1, 1]), 2, i32([0, 1, 0, 1]), 2), 2, 2)).toBeCloseTo(0, 12);
    // 2x2 counts [[30, 10], [10, 50]]: phi = (30*50 - 10*10) / sqrt(40*60*40*60) = 1400/2400.
    const x: number[] = [];
    const y: number[] = [];
    const add = (p: number, q: number, n: number): void => {
      for (let i = 0; i < n; i++) {
        x.push(p);
        y.push(q);
      }
    };
    add(0, 0, 30);
    add(0, 1, 10);
    add(1, 0, 10);
    add(1, 1, 50);
    expect(cramersV(contingency(i32(x), 2, i32(y), 2), 2, 2)).toBeCloseTo(1400 / 2400, 12);
  });

  it('contingency similarity is 1 - total variation of the joint tables', () => {
    const r = contingency(i32([0, 0, 1, 1]), 2, i32([0, 1, 0, 1]), 2); // all 0.25
    const s = contingency(i32([0, 0, 1, 1]), 2, i32([0, 0, 1, 1]), 2); // 0.5 on the diagonal
    expect(contingencySimilarity(r, s)).toBeCloseTo(0.5, 12);
    expect(contingencySimilarity(r, r)).toBe(1);
  });
});

describe('AUC and thresholded metrics', () => {
  it('AUC-ROC equals the exact O(n^2) pair count, with and without ties', () => {
    const r = rng(5);
    for (const ties of [false, true]) {
      const n = 400;
      const s = new Float64Array(n);
      const y = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        y[i] = r() < 0.3 ? 1 : 0;
        const v = y[i]! * 0.7 + r();
        s[i] = ties ? Math.round(v * 4) / 4 : v;
      }
      expect(aucRoc(s, y)).toBeCloseTo(aucBrute(s, y), 12);
    }
  });

  it('AUC is 1 for a perfect ranking, 0 for a reversed one, 0.5 for constant scores, NaN for one class', () => {
    expect(aucRoc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])).toBe(1);
    expect(aucRoc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1])).toBe(0);
    expect(aucRoc([1, 1, 1, 1], [0, 1, 0, 1])).toBe(0.5);
    expect(aucRoc([1, 2], [1, 1])).toBeNaN();
    expect(() => aucRoc([1, 2, 3], [0, 1])).toThrow(/3 scores but 2 labels/);
  });

  it('PR-AUC (average precision) matches a hand computation', () => {
    // Ranked: 1(+), 0.8(-), 0.6(+), 0.4(-): AP = 0.5*1 + 0.5*(2/3).
    expect(prAuc([1, 0.8, 0.6, 0.4], [1, 0, 1, 0])).toBeCloseTo(0.5 + 1 / 3, 12);
    expect(prAuc([0.9, 0.1], [1, 0])).toBe(1);
  });

  it('precision / recall / F1 at a threshold, and the max-F1 threshold', () => {
    const s = [0.9, 0.8, 0.7, 0.3, 0.2];
    const y = [1, 0, 1, 1, 0];
    const m = metricsAt(s, y, 0.7); // predicted + : 0.9, 0.8, 0.7 -> tp 2, fp 1, fn 1
    expect(m.precision).toBeCloseTo(2 / 3, 12);
    expect(m.recall).toBeCloseTo(2 / 3, 12);
    expect(m.f1).toBeCloseTo(2 / 3, 12);
    // Candidates: t=0.9 F1 0.5; 0.8 0.4; 0.7 0.667; 0.3 0.857; 0.2 0.75 -> 0.3.
    expect(bestF1Threshold(s, y)).toBe(0.3);
  });
});

describe('multivariate and pair composition', () => {
  it('MMD^2 is 0 for identical samples and grows with a mean shift', () => {
    const r = rng(8);
    const n = 200;
    const d = 3;
    const x = Float32Array.from({ length: n * d }, () => r());
    const shifted = (s: number): Float32Array => x.map((v, i) => v + (i % d === 0 ? s : 0));
    expect(mmdRbf(x, n, x, n, d).mmd2).toBeCloseTo(0, 10);
    const small = mmdRbf(x, n, shifted(0.2), n, d).mmd2;
    const large = mmdRbf(x, n, shifted(1), n, d).mmd2;
    expect(small).toBeGreaterThan(0);
    expect(large).toBeGreaterThan(small);
  });

  it('columnPairs uses Pearson for numeric pairs and contingency + Cramér\'s V otherwise', () => {
    const cats = ['a', 'b'];
    const real = {
      nRows: 4,
      columns: [
        { kind: 'numeric' as const, name: 'x', values: f64([1, 2, 3, 4]) },
        { kind: 'numeric' as const, name: 'y', values: f64([2, 4, 6, 8]) },
        { kind: 'categorical' as const, name: 'c', codes: i32([0, 0, 1, 1]), categories: cats },
      ],
    };
    const syn = {
      nRows: 4,
      columns: [
        { kind: 'numeric' as const, name: 'x', values: f64([1, 2, 3, 4]) },
        { kind: 'numeric' as const, name: 'y', values: f64([8, 6, 4, 2]) },
        { kind: 'categorical' as const, name: 'c', codes: i32([0, 0, 1, 1]), categories: cats },
      ],
    };
    const pairs = columnPairs(real, syn);
    const xy = pairs.find((p) => p.a === 'x' && p.b === 'y')!;
    expect(xy.method).toBe('pearson');
    expect(xy.real).toBeCloseTo(1, 12);
    expect(xy.synthetic).toBeCloseTo(-1, 12);
    expect(xy.score).toBeCloseTo(0, 12);
    const xc = pairs.find((p) => p.a === 'x' && p.b === 'c')!;
    expect(xc.method).toBe('contingency');
    expect(xc.score).toBe(1);
    expect(xc.real).toBeCloseTo(1, 12); // x's low half is exactly category a
    expect(pairs).toHaveLength(3);
  });
});
