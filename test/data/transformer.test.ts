import { describe, expect, it } from 'vitest';
import { validateSchema, type Row } from '../../shared/data/schema';
import { simulateBankRows, transactionSchema } from '../../shared/data/simulate';
import { SimpleTransformer } from '../../shared/transformer/simple';

describe('SimpleTransformer', () => {
  const schema = transactionSchema();
  const t = SimpleTransformer.fromSchema(schema);
  const rows: Row[] = simulateBankRows(0, 2000, 5).map((r) => {
    const row = r.slice() as Row;
    row[0] = null; // id column: not modelled
    return row;
  });

  it('round-trips rows exactly for discrete and integer columns, within float error for continuous', () => {
    const enc = t.transform(rows);
    expect(enc.length).toBe(rows.length * t.outputDim);
    const back = t.inverse(enc, rows.length);
    const amount = schema.columns.findIndex((c) => c.name === 'amount');
    back.forEach((r, i) => {
      r.forEach((v, j) => {
        if (j === amount) expect(Math.abs((v as number) - (rows[i]![j] as number))).toBeLessThan(25000 * 1e-6);
        else expect(v).toEqual(rows[i]![j]);
      });
    });
  });

  it('spans cover the encoding contiguously and one-hots sum to 1', () => {
    let off = 0;
    for (const s of t.spans) {
      expect(s.offset).toBe(off);
      off += s.dim;
    }
    expect(off).toBe(t.outputDim);
    const enc = t.transform(rows.slice(0, 50));
    for (let r = 0; r < 50; r++) {
      for (const s of t.spans.filter((x) => x.kind === 'softmax')) {
        let sum = 0;
        for (let j = 0; j < s.dim; j++) sum += enc[r * t.outputDim + s.offset + j]!;
        expect(sum).toBe(1);
      }
    }
  });

  it('inverse always yields valid typed values within bounds, even from arbitrary outputs', () => {
    const n = 200;
    const junk = new Float32Array(n * t.outputDim).map((_, i) => Math.sin(i * 12.9898) * 3);
    for (const r of t.inverse(junk, n)) {
      schema.columns.forEach((c, j) => {
        const v = r[j];
        if (c.role === 'id') return expect(v).toBeNull();
        if (c.type === 'categorical') expect(c.categories).toContain(v);
        else if (c.type === 'boolean') expect([0, 1]).toContain(v);
        else {
          expect(v as number).toBeGreaterThanOrEqual(c.min!);
          expect(v as number).toBeLessThanOrEqual(c.max!);
          if (c.type === 'integer') expect(Number.isInteger(v)).toBe(true);
          if (c.step !== undefined) expect(Number(((v as number) / c.step).toFixed(6)) % 1).toBe(0);
        }
      });
    }
  });

  it('encodes missing values with an indicator and restores them', () => {
    const s = validateSchema({
      version: 1,
      columns: [
        { name: 'x', type: 'continuous', min: 0, max: 10, nullable: true },
        { name: 'c', type: 'categorical', categories: ['a', 'b'], nullable: true },
      ],
    });
    const tr = SimpleTransformer.fromSchema(s);
    const data: Row[] = [
      [5, 'a'],
      [null, null],
      [10, 'b'],
    ];
    expect(tr.inverse(tr.transform(data), 3)).toEqual(data);
    expect(() => SimpleTransformer.fromSchema(validateSchema({ version: 1, columns: [{ name: 'x', type: 'continuous', min: 0, max: 1 }] })).transform([[null]])).toThrow(/missing value in non-nullable column 'x'/);
  });

  it('serialises through JSON to an identical transformer', () => {
    const t2 = SimpleTransformer.fromJSON(JSON.parse(JSON.stringify(t.toJSON())));
    expect(t2.outputDim).toBe(t.outputDim);
    expect(Array.from(t2.transform(rows.slice(0, 20)))).toEqual(Array.from(t.transform(rows.slice(0, 20))));
    expect(() => SimpleTransformer.fromJSON({ kind: 'gmm' })).toThrow(/not a simple transformer/);
  });
});
