import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inferSchemaFromCsv, roundOutward } from '../../shared/data/infer';
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

  it('drafts a usable schema for the public credit-default table', async () => {
    const file = resolve(process.cwd(), '../shared/datasets/credit-default.csv');
    const s = await inferSchemaFromCsv(file, { target: 'default.payment.next.month', ids: ['ID'] });
    expect(s.columns.find((c) => c.name === 'SEX')!.type).toBe('categorical');
    expect(s.columns.find((c) => c.name === 'LIMIT_BAL')!.type).toBe('integer');
    const t = await loadTable(file, s, { maxProblems: 0 });
    expect(t.rows.length).toBe(30000);
  });
});
