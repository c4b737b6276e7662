import { describe, expect, it } from 'vitest';
import { trainGbdt } from '../../shared/eval/gbdt';
import { trainLogistic } from '../../shared/eval/logistic';
import { aucRoc } from '../../shared/eval/auc';
import { rng } from '../../shared/eval/random';
import type { Table } from '../../shared/eval/table';

function numericTable(cols: Float64Array[]): Table {
  return { nRows: cols[0]!.length, columns: cols.map((values, k) => ({ kind: 'numeric' as const, name: `x${k}`, values })) };
}
function accuracy(p: Float64Array, y: Uint8Array): number {
  let c = 0;
  for (let i = 0; i < y.length; i++) c += (p[i]! >= 0.5 ? 1 : 0) === y[i] ? 1 : 0;
  return c / y.length;
}
function gen(n: number, seed: number, label: (a: number, b: number, c: number) => number): { t: Table; y: Uint8Array } {
  const r = rng(seed);
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  const c = new Float64Array(n);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = r() * 2 - 1;
    b[i] = r() * 2 - 1;
    c[i] = r(); // noise feature
    y[i] = label(a[i]!, b[i]!, c[i]!);
  }
  return { t: numericTable([a, b, c]), y };
}

describe('histogram GBDT', () => {
  it('reaches ~100% accuracy on linearly separable data (unseen test set)', () => {
    const rule = (a: number, b: number): number => (a + 0.5 * b > 0.1 ? 1 : 0);
    const tr = gen(3000, 1, rule);
    const te = gen(2000, 2, rule);
    const m = trainGbdt(tr.t, tr.y, { maxIter: 150 });
    expect(accuracy(m.predictProba(te.t), te.y)).toBeGreaterThan(0.97);
  });

  it('finds an XOR interaction that logistic regression cannot', () => {
    const xor = (a: number, b: number): number => (a > 0 !== b > 0 ? 1 : 0);
    const tr = gen(4000, 3, xor);
    const te = gen(2000, 4, xor);
    const gb = trainGbdt(tr.t, tr.y, { maxIter: 100 });
    const lr = trainLogistic(tr.t, tr.y);
    const gAuc = aucRoc(gb.predictProba(te.t), te.y);
    const lAuc = aucRoc(lr.predictProba(te.t), te.y);
    expect(accuracy(gb.predictProba(te.t), te.y)).toBeGreaterThan(0.95);
    expect(gAuc).toBeGreaterThan(0.98);
    expect(lAuc).toBeLessThan(0.6);
  });

  it('uses categorical features and missing values', () => {
    const r = rng(9);
    const n = 3000;
    const codes = new Int32Array(n);
    const v = new Float64Array(n);
    const y = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      codes[i] = Math.floor(r() * 6);
      v[i] = r() < 0.3 ? Number.NaN : r();
      // positives: categories 1 and 4 (not adjacent codes), or a missing value
      y[i] = codes[i] === 1 || codes[i] === 4 || Number.isNaN(v[i]!) ? 1 : 0;
    }
    const t: Table = {
      nRows: n,
      columns: [
        { kind: 'categorical', name: 'cat', codes, categories: ['a', 'b', 'c', 'd', 'e', 'f'] },
        { kind: 'numeric', name: 'v', values: v },
      ],
    };
    const m = trainGbdt(t, y, { maxIter: 50 });
    expect(accuracy(m.predictProba(t), y)).toBeGreaterThan(0.99);
  });

  it('early stopping keeps fewer rounds than the maximum on an easy problem', () => {
    const tr = gen(12_000, 5, (a) => (a > 0 ? 1 : 0));
    const m = trainGbdt(tr.t, tr.y, { maxIter: 300, earlyStopping: true });
    expect(m.nIter).toBeLessThan(300);
    expect(m.trees.length).toBe(m.nIter);
  });

  it('rejects labels that are not 0/1 and mismatched lengths', () => {
    const tr = gen(50, 6, (a) => (a > 0 ? 1 : 0));
    const bad = tr.y.slice();
    bad[3] = 2;
    expect(() => trainGbdt(tr.t, bad)).toThrow(/label 2 at row 3 is not 0\/1/);
    expect(() => trainGbdt(tr.t, tr.y.slice(1))).toThrow(/50 rows but 49 labels/);
  });
});

describe('logistic regression', () => {
  it('recovers the sign and order of true coefficients and ranks well', () => {
    const r = rng(11);
    const n = 5000;
    const a = new Float64Array(n);
    const b = new Float64Array(n);
    const y = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      a[i] = r() * 4 - 2;
      b[i] = r() * 4 - 2;
      y[i] = r() < 1 / (1 + Math.exp(-(2 * a[i]! - 0.5 * b[i]!))) ? 1 : 0;
    }
    const m = trainLogistic(numericTable([a, b]), y);
    expect(m.weights[0]!).toBeGreaterThan(0);
    expect(m.weights[1]!).toBeLessThan(0);
    expect(Math.abs(m.weights[0]!)).toBeGreaterThan(3 * Math.abs(m.weights[1]!));
    // Standardised a has sd ~1.155, so its coefficient ~2 * 1.155.
    expect(m.weights[0]!).toBeGreaterThan(1.9);
    expect(m.weights[0]!).toBeLessThan(2.8);
  });

  it('stays finite on perfectly separable data (L2 + backtracking)', () => {
    const tr = gen(500, 12, (a) => (a > 0 ? 1 : 0));
    const m = trainLogistic(tr.t, tr.y);
    for (const w of m.weights) expect(Number.isFinite(w)).toBe(true);
    expect(accuracy(m.predictProba(tr.t), tr.y)).toBeGreaterThan(0.98);
  });
});
