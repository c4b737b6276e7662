import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CsvError, detectSeparator, formatCsvLine, openCsv, parseCsvText, writeCsv, type CsvRecord } from '../../shared/data/csv';

const dir = mkdtempSync(join(tmpdir(), 'fedsynth-csv-'));

async function readAll(path: string, highWaterMark?: number): Promise<{ header: string[]; rows: CsvRecord[] }> {
  const src = await openCsv(path, highWaterMark ? { highWaterMark } : {});
  const rows: CsvRecord[] = [];
  for await (const r of src.rows) rows.push(r);
  return { header: src.header, rows };
}

describe('CSV reader', () => {
  const tricky =
    '\ufeffid,name,note\r\n' +
    '1,"Smith, John","said ""hi"""\r\n' +
    '2,plain,"two\nlines"\r\n' +
    '\r\n' +
    '3,,last\n';

  it('handles BOM, CRLF, quoted separators, doubled quotes, embedded newlines and blank lines', async () => {
    const p = join(dir, 'tricky.csv');
    writeFileSync(p, tricky);
    const { header, rows } = await readAll(p);
    expect(header).toEqual(['id', 'name', 'note']);
    expect(rows.map((r) => r.values)).toEqual([
      ['1', 'Smith, John', 'said "hi"'],
      ['2', 'plain', 'two\nlines'],
      ['3', '', 'last'],
    ]);
    // Line numbers are where each record starts; the quoted newline pushes record 3 down a line.
    expect(rows.map((r) => r.line)).toEqual([2, 3, 6]);
  });

  it('gives the same records whatever the chunk boundaries', async () => {
    const p = join(dir, 'tricky2.csv');
    writeFileSync(p, tricky);
    const whole = await readAll(p);
    for (const hwm of [1, 2, 3, 5, 7, 11]) expect(await readAll(p, hwm)).toEqual(whole);
  });

  it('detects ; and tab separators from the header', async () => {
    expect(detectSeparator('"a";"b";"c"')).toBe(';');
    expect(detectSeparator('a\tb\tc')).toBe('\t');
    expect(detectSeparator('a,b;c,d')).toBe(',');
    const p = join(dir, 'semi.csv');
    writeFileSync(p, '"x";"y"\n1;"a;b"\n');
    const { header, rows } = await readAll(p);
    expect(header).toEqual(['x', 'y']);
    expect(rows[0]!.values).toEqual(['1', 'a;b']);
  });

  it('reports malformed quoting with the line number', () => {
    expect(() => parseCsvText('a,b\n1,"open\n')).toThrow(CsvError);
    expect(() => parseCsvText('a,b\n1,"open\n')).toThrow(/line 2: quoted field is never closed/);
    expect(() => parseCsvText('a,b\n1,x"y\n')).toThrow(/line 2: stray quote/);
    expect(() => parseCsvText('a,b\n1,"x"y\n')).toThrow(/line 2: unexpected character after a closing quote/);
  });

  it('refuses empty files, empty and duplicate header names', async () => {
    const e = join(dir, 'empty.csv');
    writeFileSync(e, '');
    await expect(openCsv(e)).rejects.toThrow(/empty file/);
    const d = join(dir, 'dup.csv');
    writeFileSync(d, 'a,b,a\n1,2,3\n');
    await expect(openCsv(d)).rejects.toThrow(/names column 'a' twice/);
    await expect(openCsv(join(dir, 'missing.csv'))).rejects.toThrow(/ENOENT/);
  });

  it('writes atomically and round-trips through the reader', async () => {
    const p = join(dir, 'out.csv');
    const rows = [
      [1, 'a,b', null],
      [2.5, 'quote"d', 'multi\nline'],
      [-3, ' padded ', ''],
    ];
    writeCsv(p, ['n', 's', 't'], rows);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const back = await readAll(p);
    expect(back.header).toEqual(['n', 's', 't']);
    expect(back.rows.map((r) => r.values)).toEqual([
      ['1', 'a,b', ''],
      ['2.5', 'quote"d', 'multi\nline'],
      ['-3', ' padded ', ''],
    ]);
    expect(() => writeCsv(join(dir, 'bad.csv'), ['x'], [[Number.NaN]])).toThrow(/non-finite/);
    expect(existsSync(join(dir, 'bad.csv'))).toBe(false);
    expect(formatCsvLine(['a', 1, null, 'x;y'], ';')).toBe('a;1;;"x;y"');
  });

  // Real public files beside the repo (../shared/datasets): every record has the header's field count.
  const datasets = resolve(process.cwd(), '../shared/datasets');
  it('parses the public bank-marketing (;) and credit-default (,) files', async () => {
    for (const [file, cols, n] of [
      ['bank-marketing.csv', 17, 45211],
      ['credit-default.csv', 25, 30000],
    ] as const) {
      const src = await openCsv(join(datasets, file));
      expect(src.header.length).toBe(cols);
      let count = 0;
      let bad = 0;
      for await (const r of src.rows) {
        count++;
        if (r.values.length !== cols) bad++;
      }
      expect(bad).toBe(0);
      const lines = readFileSync(join(datasets, file), 'utf8').split('\n').filter((l) => l.trim() !== '').length - 1;
      expect(count).toBe(lines);
      expect(count).toBe(n);
    }
  });
});
