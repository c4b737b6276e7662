// The demo's real-vs-synthetic comparison restricted to one class (its fraud oversampling step).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatSummary, minorityClass, summarizeComparison } from '../../cli/demo/summary';

describe('demo summary', () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-summary-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const schema = join(dir, 'schema.json');
  writeFileSync(schema, JSON.stringify({ version: 1, target: 'is_fraud', columns: [{ name: 'amount', type: 'continuous', min: 0, max: 1000 }, { name: 'is_fraud', type: 'categorical', categories: ['0', '1'], role: 'target' }] }));
  const real = join(dir, 'real.csv');
  writeFileSync(real, 'amount,is_fraud\n10,0\n20,0\n30,0\n500,1\n');
  const syn = join(dir, 'syn.csv');
  writeFileSync(syn, 'amount,is_fraud\n15,0\n700,1\n900,1\n');

  it('finds the rarest target class and compares only its rows when asked', async () => {
    const all = await summarizeComparison(schema, [real], syn);
    expect(all.realRows).toBe(4);
    expect(minorityClass(all)).toBe('1');
    const fraud = await summarizeComparison(schema, [real], syn, { column: 'is_fraud', value: '1' });
    expect(fraud.realRows).toBe(1);
    expect(fraud.syntheticRows).toBe(2);
    expect(fraud.columns.amount!.real.mean).toBe(500);
    expect(fraud.columns.amount!.synthetic.mean).toBe(800);
    expect(formatSummary(fraud, 'is_fraud = 1').split('\n')[0]).toBe('is_fraud = 1 rows: real 1   synthetic 2');
    expect(formatSummary(all)).toMatch(/^real rows: 4   synthetic rows: 3\nis_fraud rate: real 25.00%   synthetic 66.67%/);
    await expect(summarizeComparison(schema, [real], syn, { column: 'nope', value: '1' })).rejects.toThrow(/no column 'nope'/);
  });
});
