import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTable, parseCell, schemaHash, snapToStep, validateSchema, type RowProblem } from '../../shared/data/schema';
import { transactionSchema } from '../../shared/data/simulate';

const dir = mkdtempSync(join(tmpdir(), 'fedsynth-schema-'));

const base = () => ({
  version: 1,
  target: 'fraud',
  columns: [
    { name: 'id', type: 'categorical', role: 'id' },
    { name: 'age', type: 'integer', min: 18, max: 100 },
    { name: 'amount', type: 'continuous', min: 0, max: 1000, nullable: true },
    { name: 'channel', type: 'categorical', categories: ['web', 'pos'] },
    { name: 'when', type: 'datetime', min: '2020-01-01T00:00:00Z', max: '2030-01-01T00:00:00Z' },
    { name: 'fraud', type: 'boolean' },
  ],
});

describe('consortium schema', () => {
  it("checks a numeric column's step, and snaps values to its multiples within the bounds", () => {
    const withStep = (k: number, step: unknown) => {
      const s = base();
      (s.columns[k] as Record<string, unknown>).step = step;
      return s;
    };
    expect(validateSchema(withStep(2, 0.01)).columns[2]!.step).toBe(0.01);
    expect(() => validateSchema(withStep(2, 0))).toThrow(/columns\[2\] \(amount\)\.step must be a positive number, got 0/);
    expect(() => validateSchema(withStep(2, '0.01'))).toThrow(/step must be a positive number, got "0.01"/);
    expect(() => validateSchema(withStep(1, 2.5))).toThrow(/columns\[1\] \(age\)\.step of an integer column must be an integer, got 2\.5/);
    expect(() => validateSchema(withStep(1, 1000))).toThrow(/step 1000: no multiple of it lies within \[18, 100\]/);
    expect(() => validateSchema(withStep(3, 1))).toThrow(/min\/max\/scale\/step are not used by categorical columns/);
    expect(() => validateSchema(withStep(4, 1))).toThrow(/step is for continuous and integer columns/);
    // The step is part of the schema, so of its hash.
    expect(schemaHash(validateSchema(withStep(2, 0.01)))).not.toBe(schemaHash(validateSchema(base())));

    const cents = { name: 'a', type: 'continuous' as const, min: 0, max: 1000, step: 0.01 };
    expect(snapToStep(cents, 0.0700001)).toBe(0.07);
    expect(snapToStep(cents, 12.345678)).toBe(12.35);
    expect(String(snapToStep(cents, 0.29))).toBe('0.29');
    const limit = { name: 'l', type: 'integer' as const, min: 5000, max: 1_000_000, step: 10_000 };
    expect(snapToStep(limit, 123_456)).toBe(120_000);
    // The nearest multiple inside the bounds: 0 is below min 5000, 1,000,000 is the last one.
    expect(snapToStep(limit, 5000)).toBe(10_000);
    expect(snapToStep(limit, 1_000_000)).toBe(1_000_000);
    expect(snapToStep({ ...limit, max: 999_999 }, 999_999)).toBe(990_000);
    // Without a step: unchanged.
    expect(snapToStep({ name: 'x', type: 'continuous', min: 0, max: 1 }, 0.123456789)).toBe(0.123456789);
  });

  it('accepts a valid schema and normalises datetime bounds', () => {
    const s = validateSchema(base());
    expect(s.target).toBe('fraud');
    expect(s.columns[4]!.min).toBe(Date.parse('2020-01-01T00:00:00Z'));
    expect(validateSchema(JSON.parse(JSON.stringify(s)))).toEqual(s);
  });

  it('names the bad key in every error', () => {
    const cases: [(s: ReturnType<typeof base>) => void, RegExp][] = [
      [(s) => ((s as { version: number }).version = 2), /schema.version: expected 1/],
      [(s) => ((s.columns[1] as Record<string, unknown>).type = 'float'), /columns\[1\] \(age\)\.type must be one of/],
      [(s) => delete (s.columns[1] as Record<string, unknown>).max, /columns\[1\] \(age\): a integer column needs declared 'min' and 'max'/],
      [(s) => ((s.columns[2] as Record<string, unknown>).max = -1), /columns\[2\] \(amount\): max \(-1\) must be greater than min/],
      [(s) => ((s.columns[3] as Record<string, unknown>).categories = ['web']), /columns\[3\] \(channel\)\.categories must list at least 2/],
      [(s) => ((s.columns[3] as Record<string, unknown>).categories = ['web', 'web']), /has duplicates/],
      [(s) => ((s.columns[3] as Record<string, unknown>).colour = 'red'), /columns\[3\]: unknown key 'colour'/],
      [(s) => (s.columns[2]!.name = 'age'), /columns\[2\] \(age\): duplicate column name/],
      [(s) => (s.target = 'nope'), /schema.target: no column named 'nope'/],
      [(s) => (s.target = 'amount'), /must be a modelled categorical or boolean column/],
      [(s) => ((s.columns[4] as Record<string, unknown>).min = 'yesterday'), /columns\[4\] \(when\)\.min: 'yesterday' is not an ISO-8601 date/],
      [(s) => ((s.columns[1] as Record<string, unknown>).role = 'secret'), /\.role must be one of/],
    ];
    for (const [mutate, re] of cases) {
      const s = base();
      mutate(s);
      expect(() => validateSchema(s)).toThrow(re);
    }
    expect(() => validateSchema([])).toThrow(/expected a JSON object/);
    expect(() => validateSchema({ version: 1, columns: [{ name: 'x', type: 'categorical', role: 'pii' }] })).toThrow(/nothing to model/);
  });

  it('hash is stable under key order and changes with content', () => {
    const a = validateSchema(base());
    const reordered = JSON.parse(JSON.stringify({ columns: a.columns, target: a.target, version: 1 }));
    expect(schemaHash(validateSchema(reordered))).toBe(schemaHash(a));
    const b = base();
    (b.columns[3] as { categories: string[] }).categories = ['web', 'pos', 'atm'];
    expect(schemaHash(validateSchema(b))).not.toBe(schemaHash(a));
    expect(schemaHash(a)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('parses cells by type, with reasons for bad values', () => {
    const s = validateSchema(base());
    const [id, age, amount, channel, when, fraud] = s.columns as [never, never, never, never, never, never];
    expect(parseCell(id, 'ACC-123')).toEqual({ value: null }); // id values are dropped, never kept
    expect(parseCell(age, '42')).toEqual({ value: 42 });
    expect(parseCell(age, '42.5')).toEqual({ reason: "'42.5' is not an integer" });
    expect(parseCell(age, '17')).toEqual({ reason: '17 is outside the declared bounds [18, 100]' });
    expect(parseCell(age, '')).toEqual({ reason: 'missing value in a column that is not nullable' });
    expect(parseCell(amount, '')).toEqual({ value: null });
    expect(parseCell(amount, 'abc')).toEqual({ reason: "'abc' is not a number" });
    expect(parseCell(channel, 'atm')).toEqual({ reason: "'atm' is not one of the schema's categories" });
    expect(parseCell(when, '2024-05-01T10:00:00Z')).toEqual({ value: Date.parse('2024-05-01T10:00:00Z') });
    expect(parseCell(fraud, 'TRUE')).toEqual({ value: 1 });
    expect(parseCell(fraud, 'no')).toEqual({ value: 0 });
    expect(parseCell(fraud, '2')).toHaveProperty('reason');
  });

  it('loadTable reports every bad row with line, column and reason and keeps going', async () => {
    const s = validateSchema(base());
    const p = join(dir, 'bank.csv');
    const lines = ['id,age,amount,channel,when,fraud'];
    for (let i = 0; i < 300; i++) lines.push(`A${i},${20 + (i % 50)},${i},web,2024-01-01T00:00:00Z,0`);
    lines[11] = 'A10,200,5,web,2024-01-01T00:00:00Z,0'; // line 12: age out of bounds
    lines[21] = 'A20,30,5,atm,2024-01-01T00:00:00Z,0'; // line 22: unknown category
    lines[31] = 'A30,30,5,web'; // line 32: too few fields
    writeFileSync(p, lines.join('\n') + '\n');
    const seen: RowProblem[] = [];
    const t = await loadTable(p, s, { onProblem: (x) => seen.push(x) });
    expect(t.rows.length).toBe(297);
    expect(t.rejectedRows).toBe(3);
    expect(seen).toEqual([
      { line: 12, column: 'age', reason: '200 is outside the declared bounds [18, 100]' },
      { line: 22, column: 'channel', reason: "'atm' is not one of the schema's categories" },
      { line: 32, column: '', reason: 'expected 6 fields, found 4' },
    ]);
    expect(t.rows[0]).toEqual([null, 20, 0, 'web', Date.parse('2024-01-01T00:00:00Z'), 0]);
    await expect(loadTable(p, s, { maxProblems: 2 })).rejects.toThrow(/more than 2 rows do not match the schema \(latest: line 32/);
  });

  it('refuses a file whose header does not match, naming the columns', async () => {
    const s = validateSchema(base());
    const p = join(dir, 'wrong.csv');
    writeFileSync(p, 'id,age,channel,when,fraud,ssn\nA,30,web,2024-01-01,0,123\n');
    await expect(loadTable(p, s)).rejects.toThrow(/missing column\(s\) amount/);
    writeFileSync(p, 'id,age,amount,channel,when,fraud,ssn\nA,30,1,web,2024-01-01,0,123\n');
    await expect(loadTable(p, s)).rejects.toThrow(/column\(s\) ssn are not in the schema/);
  });

  it('refuses a file that is mostly bad (the wrong file, not a few bad rows)', async () => {
    const s = validateSchema(base());
    const p = join(dir, 'mostly-bad.csv');
    const lines = ['id,age,amount,channel,when,fraud'];
    for (let i = 0; i < 500; i++) lines.push(`A${i},${i % 3 === 0 ? 'x' : 30},1,web,2024-01-01,0`);
    writeFileSync(p, lines.join('\n'));
    await expect(loadTable(p, s)).rejects.toThrow(/167 of 500 rows do not match the schema \(first: line 2, column age/);
  });

  it('the simulated data schema is valid and public (declared bounds, no data)', () => {
    const s = transactionSchema();
    expect(s.target).toBe('is_fraud');
    expect(s.columns.find((c) => c.name === 'transaction_id')!.role).toBe('id');
  });
});
