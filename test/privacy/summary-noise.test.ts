import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PrivacyLedger } from '../../client-node/ledger';
import { releaseNoisyCounts } from '../../client-node/dp-summary';
import { summaryNoise } from '../../shared/privacy/summary-noise';
import { noiseMultiplierFor } from '../../shared/privacy/calibrate';

const columns = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'target'];

describe('summaryNoise: one Gaussian mechanism over all columns, its noise spread by weight', () => {
  it('splits evenly without a target: z·√k on every count', () => {
    const p = summaryNoise(columns, 2);
    expect(p.columnStd).toHaveLength(9);
    for (const sd of p.columnStd) expect(sd).toBeCloseTo(2 * 3, 12);
    expect(p.sensitivity).toBeCloseTo(3, 12);
    expect(p.sigma).toBeCloseTo(6, 12);
  });

  it("gives the target its share of the privacy loss (sd z/√share) and the others the rest, at the same total cost", () => {
    const z = 3;
    for (const share of [0.2, 0.5, 0.8]) {
      const p = summaryNoise(columns, z, { column: 'target', share });
      const t = p.columnStd[8]!;
      expect(t).toBeCloseTo(z / Math.sqrt(share), 10);
      for (const sd of p.columnStd.slice(0, 8)) expect(sd).toBeCloseTo(z * Math.sqrt(8 / (1 - share)), 10);
      // Each column is a sensitivity-1 Gaussian; their RDPs add to α/2·Σ 1/sd², which must be the
      // same α/(2z²) the ledger charges for (sigma, sensitivity) = (z·S, S).
      expect(p.columnStd.reduce((s, sd) => s + 1 / sd ** 2, 0)).toBeCloseTo(1 / z ** 2, 12);
      expect(p.sigma / p.sensitivity).toBeCloseTo(z, 12);
      // The share is what the target's 1/sd² is of the total.
      expect(1 / t ** 2 / (1 / z ** 2)).toBeCloseTo(share, 10);
    }
  });

  it('ignores a target that is not summarised or is the only column, and refuses bad input', () => {
    expect(summaryNoise(columns, 1, { column: 'nope', share: 0.5 }).columnStd.every((sd) => Math.abs(sd - 3) < 1e-12)).toBe(true);
    expect(summaryNoise(['target'], 1.5, { column: 'target', share: 0.5 }).columnStd).toEqual([1.5]);
    expect(() => summaryNoise(columns, 1, { column: 'target', share: 1 })).toThrow(/share must be in \(0, 1\)/);
    expect(() => summaryNoise(columns, 1, { column: 'target', share: 0 })).toThrow(/share must be in \(0, 1\)/);
    expect(() => summaryNoise(columns, 0)).toThrow(/noise multiplier/);
    expect(() => summaryNoise([], 1)).toThrow(/no columns/);
  });
});

describe('releaseNoisyCounts', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'summary-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("adds each column's noise sd, charges the ledger the same ε with or without a target, and reports the sds", () => {
    const budget = { epsilonMax: 5, delta: 1e-5 };
    const spans = columns.map((column) => ({ column }));
    // 9 columns of 600 counts each: enough draws to measure each column's noise sd within a few %.
    const raw = columns.map((_, k) => Array.from({ length: 600 }, (_, j) => (k * 7 + j) % 50));
    const even = PrivacyLedger.open(join(dir, 'even.jsonl'));
    const weighted = PrivacyLedger.open(join(dir, 'weighted.jsonl'));
    const a = releaseNoisyCounts(raw, spans, { epsilon: 0.2, delta: 1e-5, ledger: even, budget });
    const b = releaseNoisyCounts(raw, spans, { epsilon: 0.2, delta: 1e-5, ledger: weighted, budget, target: 'target', targetShare: 0.5 });
    expect(weighted.spent(1e-5)).toBeCloseTo(even.spent(1e-5), 10);
    expect(even.spent(1e-5)).toBeLessThanOrEqual(0.2 + 1e-9);
    expect(even.spent(1e-5)).toBeGreaterThan(0.19);
    const z = noiseMultiplierFor({ targetEpsilon: 0.2, delta: 1e-5, sampleRate: 1, steps: 1 });
    const empiricalSd = (released: { values: number[] }, k: number): number => {
      const d = released.values.map((v, j) => v - raw[k]![j]!);
      const m = d.reduce((s, x) => s + x, 0) / d.length;
      return Math.sqrt(d.reduce((s, x) => s + (x - m) ** 2, 0) / (d.length - 1));
    };
    a.counts.forEach((c, k) => {
      expect(c.noiseStd).toBeCloseTo(z * 3, 8);
      expect(empiricalSd(c, k) / c.noiseStd).toBeGreaterThan(0.88);
      expect(empiricalSd(c, k) / c.noiseStd).toBeLessThan(1.12);
    });
    expect(b.counts[8]!.noiseStd).toBeCloseTo(z * Math.SQRT2, 8);
    expect(b.counts[0]!.noiseStd).toBeCloseTo(z * 4, 8);
    b.counts.forEach((c, k) => {
      expect(empiricalSd(c, k) / c.noiseStd).toBeGreaterThan(0.88);
      expect(empiricalSd(c, k) / c.noiseStd).toBeLessThan(1.12);
    });
    expect(b.noiseStd).toBeCloseTo(z * 4, 8);
    expect(() => releaseNoisyCounts(raw.slice(1), spans, { epsilon: 0.2, delta: 1e-5, ledger: even, budget })).toThrow(/8 count vectors for 9 columns/);
  });
});
