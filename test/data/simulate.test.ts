import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTable, validateSchema } from '../../shared/data/schema';
import { simulateBanks } from '../../shared/data/simulate';

describe('simulated banks', () => {
  const a = mkdtempSync(join(tmpdir(), 'fedsynth-sim-a-'));
  const b = mkdtempSync(join(tmpdir(), 'fedsynth-sim-b-'));
  const c = mkdtempSync(join(tmpdir(), 'fedsynth-sim-c-'));
  const ra = simulateBanks({ banks: 3, rows: 60000, out: a, seed: 42 });
  const rb = simulateBanks({ banks: 3, rows: 60000, out: b, seed: 42 });
  simulateBanks({ banks: 3, rows: 60000, out: c, seed: 43 });

  it('is deterministic per seed and differs across seeds', () => {
    for (const n of [1, 2, 3]) {
      const x = readFileSync(join(a, `bank-${n}.csv`), 'utf8');
      expect(readFileSync(join(b, `bank-${n}.csv`), 'utf8')).toBe(x);
      expect(readFileSync(join(c, `bank-${n}.csv`), 'utf8')).not.toBe(x);
    }
  });

  it('splits rows unequally (50/30/20) with realistic, different fraud rates', () => {
    expect(ra.banks.map((x) => x.rows)).toEqual([30000, 18000, 12000]);
    const rates = ra.banks.map((x) => x.frauds / x.rows);
    for (const r of rates) {
      expect(r).toBeGreaterThanOrEqual(0.002);
      expect(r).toBeLessThanOrEqual(0.01);
    }
    expect(rates[1]).toBeGreaterThan(rates[2]!); // the digital bank sees more fraud
  });

  it('every row passes the schema it ships with', async () => {
    const schema = validateSchema(JSON.parse(readFileSync(ra.schemaPath, 'utf8')));
    for (const bank of ra.banks) {
      const t = await loadTable(bank.path, schema, { maxProblems: 0 });
      expect(t.rows.length).toBe(bank.rows);
    }
  });

  it('fraud depends on several columns jointly and banks differ in customer mix', async () => {
    const schema = validateSchema(JSON.parse(readFileSync(ra.schemaPath, 'utf8')));
    const col = (name: string) => schema.columns.findIndex((c) => c.name === name);
    const [age, amount, channel, hour, country, fraud] = ['customer_age', 'amount', 'channel', 'hour', 'country', 'is_fraud'].map(col) as number[];
    let inPattern = 0;
    let fraudInPattern = 0;
    let total = 0;
    let frauds = 0;
    const meanAge: number[] = [];
    const online: number[] = [];
    for (const bank of ra.banks) {
      const t = await loadTable(bank.path, schema);
      let s = 0;
      let on = 0;
      for (const r of t.rows) {
        total++;
        if (r[fraud!] === 1) frauds++;
        s += r[age!] as number;
        if (r[channel!] === 'online') on++;
        const night = (r[hour!] as number) <= 5 || r[hour!] === 23;
        if (r[channel!] === 'online' && night && r[country!] !== 'domestic' && (r[amount!] as number) > 300) {
          inPattern++;
          if (r[fraud!] === 1) fraudInPattern++;
        }
      }
      meanAge.push(s / t.rows.length);
      online.push(on / t.rows.length);
    }
    // The joint pattern is rare but mostly fraud; the base rate is well under 1%.
    expect(inPattern).toBeGreaterThan(20);
    expect(fraudInPattern / inPattern).toBeGreaterThan(0.3);
    expect(frauds / total).toBeLessThan(0.01);
    expect(Math.abs(meanAge[0]! - meanAge[1]!)).toBeGreaterThan(8);
    expect(online[1]).toBeGreaterThan(online[0]! + 0.15);
  });

  it('refuses nonsense sizes', () => {
    expect(() => simulateBanks({ banks: 0, rows: 100, out: a, seed: 1 })).toThrow(/banks must be a positive integer/);
    expect(() => simulateBanks({ banks: 3, rows: 5, out: a, seed: 1 })).toThrow(/rows must be an integer/);
  });
});
