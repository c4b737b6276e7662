import { describe, expect, it } from 'vitest';
import { inferMetadata, metadataFromSchema, TableBuilderFactory, INFER_NUMERIC_MIN_DISTINCT } from '../../shared/eval/table';
import { exactCopyRate } from '../../shared/eval/privacy';
import { positiveClassOf } from '../../shared/eval/utility';

const H = ['id', 'x', 'small', 'word', 'y'];
function rows(n: number, distinctSmall = 5): string[][] {
  return Array.from({ length: n }, (_, i) => [String(i), (i * 1.5).toFixed(1), String(i % distinctSmall), i % 2 ? 'a' : 'b', i % 10 === 0 ? 'yes' : 'no']);
}

describe('schema inference', () => {
  it(`numeric only with more than ${INFER_NUMERIC_MIN_DISTINCT} distinct numbers; id excluded; target categorical`, () => {
    const m = inferMetadata(H, rows(100), 'y');
    expect(m.excluded).toEqual(['id']);
    expect(m.columns.map((c) => `${c.name}:${c.kind}`)).toEqual(['x:numeric', 'small:categorical', 'word:categorical', 'y:categorical']);
    const m2 = inferMetadata(H, rows(100, INFER_NUMERIC_MIN_DISTINCT + 1));
    expect(m2.columns.find((c) => c.name === 'small')!.kind).toBe('numeric');
  });

  it('rejects a target that is not a column, or is an id column', () => {
    expect(() => inferMetadata(H, rows(10), 'z')).toThrow(/target "z" is not a column/);
    const schema = { columns: [{ name: 'id', type: 'integer' as const, role: 'id' as const }, { name: 'x', type: 'continuous' as const }] };
    expect(() => metadataFromSchema(schema, H, 'id')).toThrow(/target "id" is an id\/pii column/);
    expect(() => metadataFromSchema({ columns: [{ name: 'nope', type: 'continuous' }] }, H)).toThrow(/column "nope" is not in the CSV header/);
    expect(() => metadataFromSchema({ columns: [{ name: 'x', type: 'float' as never }] }, H)).toThrow(/unknown type "float"/);
  });
});

describe('table building', () => {
  it('shares category codes across tables and grows the dictionary for new categories', () => {
    const f = new TableBuilderFactory(inferMetadata(H, rows(50), 'y'));
    const a = f.fromRows(H, rows(50));
    const b = f.fromRows(H, [['0', '1', '0', 'c', 'no'], ['1', '2', '1', 'a', 'yes']]);
    const wa = a.columns.find((c) => c.name === 'word')!;
    const wb = b.columns.find((c) => c.name === 'word')!;
    if (wa.kind !== 'categorical' || wb.kind !== 'categorical') throw new Error('expected categorical');
    expect(wb.categories).toBe(wa.categories);
    expect(wb.categories[wb.codes[0]!]).toBe('c');
    expect(wb.categories[wb.codes[1]!]).toBe('a');
    expect(wb.codes[1]).toBe(wa.codes[1]);
  });

  it('names the column and line of a value that is not a number, and treats NA as missing', () => {
    const f = new TableBuilderFactory(inferMetadata(H, rows(50), 'y'));
    expect(() => f.fromRows(H, [['0', 'abc', '0', 'a', 'no']], 'synthetic')).toThrow(/column "x" line 2: "abc" is not a number/);
    const t = f.fromRows(H, [['0', 'NA', '0', '', 'no']]);
    const x = t.columns.find((c) => c.name === 'x')!;
    expect(x.kind === 'numeric' && Number.isNaN(x.values[0]!)).toBe(true);
  });

  it('fails clearly when a header lacks a column', () => {
    const f = new TableBuilderFactory(inferMetadata(H, rows(50), 'y'));
    expect(() => f.start(['id', 'x', 'small', 'y'], 'holdout')).toThrow(/holdout: column "word" is missing from the header/);
  });
});

describe('exact copies and the positive class', () => {
  it('counts exact row copies, including rows with missing values, and not near-copies', () => {
    const f = new TableBuilderFactory(inferMetadata(H, rows(50), 'y'));
    const train = f.fromRows(H, [...rows(50), ['99', 'NA', '1', 'a', 'no']]);
    const syn = f.fromRows(H, [
      ['7', '10.5', '2', 'a', 'no'], // row 7 of train except id... id is excluded by metadata
      ['5', '7.5', '0', 'a', 'no'], // equals row 5
      ['5', '7.50001', '0', 'a', 'no'], // near copy
      ['9', 'NA', '1', 'a', 'no'], // copy of the NaN row
    ]);
    // rows(50)[7] = [7, 10.5, 2, a, no]; rows(50)[5] = [5, 7.5, 0, a, no]
    expect(exactCopyRate(train, syn)).toBe(3 / 4);
  });

  it('picks the least frequent class as positive', () => {
    const f = new TableBuilderFactory(inferMetadata(H, rows(50), 'y'));
    const t = f.fromRows(H, rows(50));
    const pc = positiveClassOf(t.columns.find((c) => c.name === 'y')!);
    expect(pc.label).toBe('yes');
    expect(Array.from(pc.is(t)).reduce((s, v) => s + v, 0)).toBe(5);
    const no = positiveClassOf(t.columns.find((c) => c.name === 'y')!, 'no');
    expect(no.label).toBe('no');
    expect(Array.from(no.is(t)).reduce((s, v) => s + v, 0)).toBe(45);
    expect(() => positiveClassOf(t.columns.find((c) => c.name === 'y')!, 'maybe')).toThrow(/positive class "maybe" does not occur .* \(values: no, yes\)/);
  });
});
