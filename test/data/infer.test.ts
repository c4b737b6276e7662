import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inferSchemaFromCsv, inferStep, roundOutward } from '../../shared/data/infer';
import { loadTable } from '../../shared/data/schema';

const dir = mkdtempSync(join(tmpdir(), 'fedsynth-infer-'));

describe('schema drafting', () => {
  it('rounds bounds outward to two significant digits', () => {
    expect(roundOutward(1234, 'up')).toBe(1300);
    expect(roundOutward(1234, 'down')).toBe(1200);
    expect(roundOutward(-1234, 'down')).toBe(-1300);
    expect(roundOutward(0.0456, 'up')).toBeCloseTo(0.046, 10);
  });

  it('drafts types, codes, targets, ids, log scale and nullability; the source file passes its own draft', async () => {
    const p = join(dir, 'x.csv');
    const lines = ['id,age,amount,code,city,label,note'];
    for (let i = 0; i < 400; i++) {
      const amount = i === 7 ? 250000 : 10 + (i % 50);
      lines.push(`${1000 + i},${20 + (i % 60)},${amount}.5,${i % 4},${['Paris', 'Lyon', 'Nice'][i % 3]},${i % 10 === 0 ? 'yes' : 'no'},${i % 5 === 0 ? '' : 'x' + (i % 3)}`);
    }
    writeFileSync(p, lines.join('\n'));
    const s = await inferSchemaFromCsv(p, { target: 'label', ids: ['id'] });
    const col = (n: string) => s.columns.find((c) => c.name === n)!;
    expect(col('id').role).toBe('id');
    expect(col('age')).toMatchObject({ type: 'integer', min: 20, max: 79 });
    expect(col('amount')).toMatchObject({ type: 'continuous', scale: 'log' });
    expect(col('amount').max).toBeGreaterThanOrEqual(250000.5);
    expect(col('code')).toMatchObject({ type: 'categorical', categories: ['0', '1', '2', '3'] });
    expect(col('city').categories!.sort()).toEqual(['Lyon', 'Nice', 'Paris']);
    expect(col('label')).toMatchObject({ type: 'categorical', role: 'target' });
    expect(col('note').nullable).toBe(true);
    expect(s.target).toBe('label');
    const t = await loadTable(p, s, { maxProblems: 0 });
    expect(t.rows.length).toBe(400);
    await expect(inferSchemaFromCsv(p, { target: 'nope' })).rejects.toThrow(/target column 'nope' is not in the header/);
  });

  it("suggests a numeric column's grain only where nearly every value lies on it", () => {
    const ints = (f: (i: number) => number, n = 1000) => Array.from({ length: n }, (_, i) => String(f(i)));
    expect(inferStep(ints((i) => 10_000 * (1 + (i % 90))), true, 1e6)).toBe(10_000);
    expect(inferStep(ints((i) => 50 * (i % 300)), true, 15_000)).toBe(50);
    // One stray value in 1000 does not veto the grain; two do.
    expect(inferStep(ints((i) => (i === 0 ? 12_345 : 10_000 * (1 + (i % 90)))), true, 1e6)).toBe(10_000);
    expect(inferStep(ints((i) => (i < 2 ? 12_345 : 10_000 * (1 + (i % 90)))), true, 1e6)).toBeUndefined();
    expect(inferStep(ints((i) => 18 + (i % 70)), true, 100)).toBeUndefined();
    // Too few values to tell a grain from chance, or too coarse a grain for the range.
    expect(inferStep(ints((i) => 10_000 * (i % 9), 99), true, 1e6)).toBeUndefined();
    expect(inferStep(ints((i) => 10_000 * (i % 3)), true, 30_000)).toBe(5000);
    // Written decimals: cents, whole numbers among decimals, and no grain in exponent notation.
    const cents = Array.from({ length: 500 }, (_, i) => (i * 1.37).toFixed(2));
    expect(inferStep(cents, false, 1000)).toBe(0.01);
    expect(inferStep([...Array.from({ length: 999 }, (_, i) => String(i)), '2.5'], false, 1000)).toBe(1);
    expect(inferStep(Array.from({ length: 500 }, (_, i) => `${i}e-3`), false, 1)).toBeUndefined();
    expect(inferStep(Array.from({ length: 500 }, (_, i) => String(Math.sqrt(i + 2))), false, 30)).toBeUndefined();
  });

  it('drafts a usable schema for the public credit-default table', async () => {
    const file = resolve(process.cwd(), '../shared/datasets/credit-default.csv');
    const s = await inferSchemaFromCsv(file, { target: 'default.payment.next.month', ids: ['ID'] });
    expect(s.columns.find((c) => c.name === 'SEX')!.type).toBe('categorical');
    expect(s.columns.find((c) => c.name === 'LIMIT_BAL')!.type).toBe('integer');
    // Credit limits are set in tens of thousands (all but one of 30,000 rows); no other column has a grain.
    expect(s.columns.filter((c) => c.step !== undefined).map((c) => [c.name, c.step])).toEqual([['LIMIT_BAL', 10_000]]);
    const t = await loadTable(file, s, { maxProblems: 0 });
    expect(t.rows.length).toBe(30000);
  });
});
