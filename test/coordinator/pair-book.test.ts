// The coordinator's book of the banks' DP-noised pair counts (coordinator/pair-book.ts): what it
// refuses, what it keeps, and the targets it merges.
import { describe, expect, it } from 'vitest';
import { PairBook } from '../../coordinator/pair-book';
import { mergePairTargets, softmaxSpanPairs } from '../../shared/transformer/pair-counts';
import { secureGaussian } from '../../shared/privacy/secure-noise';
import { openPersistence } from '../../coordinator/sqlite-persistence';
import { memoryLogger } from '../../shared/log/logger';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const spans = [
  { column: 'amount', kind: 'tanh' as const, dim: 1, offset: 0 },
  { column: 'amount', kind: 'softmax' as const, dim: 2, offset: 1 },
  { column: 'channel', kind: 'softmax' as const, dim: 3, offset: 3 },
  { column: 'device', kind: 'softmax' as const, dim: 2, offset: 6 },
];
const pairs = softmaxSpanPairs(spans);
// One bank's exact tables of 600 rows: channel and device strongly associated.
const exact = [
  [100, 100, 100, 100, 100, 100],
  [150, 150, 150, 150],
  [190, 10, 10, 190, 100, 100],
];
const noisy = (sd: number) =>
  pairs.map((p, i) => {
    const noise = secureGaussian(exact[i]!.length, sd);
    return { aOffset: p.a.offset, aDim: p.a.dim, bOffset: p.b.offset, bDim: p.b.dim, values: exact[i]!.map((v, j) => v + noise[j]!) };
  });

describe("the coordinator's pair book", () => {
  it('refuses tables of another layout, another number of pairs, or totals that cannot be one table of rows', () => {
    const book = new PairBook(pairs);
    const ok = { noiseStd: 3, tables: noisy(3) };
    expect(book.problem(ok)).toBeNull();
    expect(book.problem({ ...ok, tables: ok.tables.slice(1) })).toMatch(/has 2 tables, the consortium plans 3 pairs/);
    const moved = ok.tables.map((t, i) => (i === 2 ? { ...t, bOffset: 7 } : t));
    expect(book.problem({ ...ok, tables: moved })).toMatch(/pairCounts\[2\] is spans 3\+3 × 7\+2, the consortium plans 'channel' \(3\+3\) × 'device' \(6\+2\)/);
    // One table inflated on its own (a bank pulling the targets): its total is far from the others'.
    const inflated = ok.tables.map((t, i) => (i === 2 ? { ...t, values: t.values.map((v, j) => (j === 0 ? v + 5000 : v)) } : t));
    expect(book.problem({ ...ok, tables: inflated })).toMatch(/pairCounts\[2\] counts 5[56]\d\d rows, the bank's other tables about (5\d\d|6\d\d)\b/);
    // Honest noise, even large, passes (the tolerance is in noise sds).
    expect(book.problem({ noiseStd: 60, tables: noisy(60) })).toBeNull();
  });

  it("keeps each bank's latest release, and merges the targets from every bank's", () => {
    const book = new PairBook(pairs);
    expect(book.targets()).toBeUndefined();
    const a = { noiseStd: 3, tables: noisy(3) };
    const b = { noiseStd: 4, tables: noisy(4) };
    expect(book.keep('bank-b', b)).toBe('received');
    expect(book.keep('bank-a', a)).toBe('received');
    expect(book.keep('bank-a', { ...a, tables: a.tables.map((t) => ({ ...t, values: [...t.values] })) })).toBe('same');
    // The same tables with another FedAvg weight are another state of the bank's release.
    const weighted = new PairBook(pairs);
    expect(weighted.keep('bank-a', a, 600)).toBe('received');
    expect(weighted.keep('bank-a', a, 600)).toBe('same');
    expect(weighted.keep('bank-a', a, 700)).toBe('replaced');
    expect(weighted.entries()['bank-a']!.weight).toBe(700);
    expect(book.bankIds()).toEqual(['bank-a', 'bank-b']);
    const expected = mergePairTargets(pairs, [a, b].map((x) => ({ noiseSd: x.noiseStd, tables: x.tables.map((t) => t.values) })));
    expect(book.targets()).toEqual(expected.map((t) => ({ aOffset: t.aOffset, aDim: t.aDim, bOffset: t.bOffset, bDim: t.bDim, values: t.joint })));
    // channel × device is the association the noise leaves.
    expect(book.targets()!.some((t) => t.aOffset === 3 && t.bOffset === 6)).toBe(true);
    const a2 = { noiseStd: 3, tables: noisy(3) };
    expect(book.keep('bank-a', a2)).toBe('replaced');
    expect(book.size).toBe(2);
  });

  it('is saved and restored across a restart (SQLite state), dropping releases that no longer fit the plan', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-pairbook-'));
    try {
      const open = () => openPersistence({ stateDir: dir, modelConfig: {}, transformer: {}, schemaHash: 'sha256:test', log: memoryLogger('store') });
      const book = new PairBook(pairs);
      book.keep('bank-a', { noiseStd: 3, tables: noisy(3) });
      book.keep('bank-b', { noiseStd: 4, tables: noisy(4) });
      const first = open();
      expect(first.pairCounts()).toEqual({});
      first.savePairCounts(book.entries());
      first.close();
      const again = open();
      const restored = new PairBook(pairs, again.pairCounts());
      expect(restored.bankIds()).toEqual(['bank-a', 'bank-b']);
      expect(restored.targets()).toEqual(book.targets());
      // A plan with other pairs (another schema or transformer): the saved releases are not used.
      const other = new PairBook(pairs.slice(1), again.pairCounts());
      expect(other.size).toBe(0);
      expect(other.dropped).toEqual(['bank-a', 'bank-b']);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
