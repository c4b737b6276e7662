import { describe, expect, it } from 'vitest';
import { SummaryBook } from '../../coordinator/summaries';

describe('SummaryBook', () => {
  it("merges the banks' noisy counts and their per-column noise: √Σ σ² per column, the summary's sd where a column has none", () => {
    const book = new SummaryBook();
    book.add('a', [{ column: 'x', values: [10, -2], noiseStd: 4 }, { column: 'target', values: [90, 5], noiseStd: 1.5 }], 4);
    book.add('b', [{ column: 'x', values: [7, 1] }, { column: 'target', values: [80, 3] }], 3);
    book.add('c', [{ column: 'x', values: [1, 1], noiseStd: 12 }, { column: 'target', values: [1, 1], noiseStd: 2 }], 12);
    const std = book.columnNoiseStd(['a', 'b']);
    expect(std[0]).toBeCloseTo(5, 12);
    expect(std[1]).toBeCloseTo(Math.sqrt(1.5 ** 2 + 3 ** 2), 12);
    expect(Math.max(...std)).toBeCloseTo(5, 12);
    expect(book.columnNoiseStd([])).toEqual([]);
    const merged = book.freeze(['a', 'b']);
    // Sums clamped at 0; the merged weights carry no per-bank noise figures.
    expect(merged).toEqual([
      { column: 'x', values: [17, 0] },
      { column: 'target', values: [170, 8] },
    ]);
    expect(book.weights).toBe(merged);
  });

  it('freezes what finalize makes of the clamped merge and the unclamped sums (once)', () => {
    const book = new SummaryBook();
    book.add('a', [{ column: 'c', values: [500, -30, 20, -25] }], 10);
    book.add('b', [{ column: 'c', values: [300, 10, -15, 5] }], 10);
    let calls = 0;
    const frozen = book.freeze(['a', 'b'], (clamped, raw) => {
      calls++;
      expect(clamped).toEqual([{ column: 'c', values: [800, 0, 5, 0] }]);
      expect(raw).toEqual([{ column: 'c', values: [800, -20, 5, -20] }]);
      return [{ column: 'c', values: [800, 0, 0, 0] }];
    });
    expect(frozen).toEqual([{ column: 'c', values: [800, 0, 0, 0] }]);
    expect(book.freeze(['a', 'b'], () => [])).toBe(frozen);
    expect(calls).toBe(1);
  });
});
