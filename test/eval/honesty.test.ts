// Honesty checks: the report must reward a copy on fidelity yet flag it on privacy, treat an
// independent sample of the same distribution as ideal, and notice destroyed dependencies.
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluate, getPath, REPORT_CONTRACT_KEYS, UTILITY_CONTRACT_KEYS, type Report } from '../../shared/eval/report';
import { makeSets, shuffleColumns, HEADER, type Sets } from './helpers';

const opts = { privacyQuerySample: 800, detectionSample: 2000, mmdSample: 300, threads: 1 };

let s: Sets;
let copy: Report;
let fresh: Report;
let shuffled: Report;
let holdoutAsSyn: Report;

beforeAll(async () => {
  s = makeSets(2000, 1000, 2000);
  copy = await evaluate({ real: s.train, holdout: s.holdout, synthetic: s.train, metadata: s.meta }, opts);
  fresh = await evaluate({ real: s.train, holdout: s.holdout, synthetic: s.fresh, metadata: s.meta }, opts);
  const shuf = s.factory.fromRows(HEADER, shuffleColumns(s.rows.train, 77), 'shuffled');
  shuffled = await evaluate({ real: s.train, holdout: s.holdout, synthetic: shuf, metadata: s.meta }, opts);
  holdoutAsSyn = await evaluate({ real: s.train, holdout: s.holdout, synthetic: s.holdout, metadata: s.meta }, opts);
});

describe('report contract', () => {
  it('excludes the id column and has every contract key, each in [0, 1]', () => {
    expect(s.meta.excluded).toEqual(['id']);
    expect(fresh.inputs.columns.map((c) => c.name)).not.toContain('id');
    for (const r of [copy, fresh, shuffled]) {
      for (const k of [...REPORT_CONTRACT_KEYS, ...UTILITY_CONTRACT_KEYS]) {
        const v = getPath(r, k);
        expect(typeof v, k).toBe('number');
        expect(v as number, k).toBeGreaterThanOrEqual(0);
        expect(v as number, k).toBeLessThanOrEqual(1);
      }
    }
  });

  it('infers numeric and categorical columns', () => {
    const kinds = Object.fromEntries(s.meta.columns.map((c) => [c.name, c.kind]));
    expect(kinds).toEqual({ age: 'numeric', income: 'numeric', balance: 'numeric', segment: 'categorical', region: 'categorical', fraud: 'categorical' });
  });
});

describe('a copy of the training data', () => {
  it('scores 1.0 on column shapes and pairs and cannot be detected', () => {
    expect(copy.fidelity.columnShapes).toBe(1);
    expect(copy.fidelity.columnPairs).toBe(1);
    expect(copy.fidelity.detectionAuc).toBeLessThan(0.6);
    // MMD compares two different fixed-seed subsamples, so a copy is near 0, not exactly 0.
    expect(copy.fidelity.mmdRbf).toBeLessThan(shuffled.fidelity.mmdRbf / 3);
  });

  it('is flagged by every privacy metric', () => {
    expect(copy.privacy.exactCopyRate).toBe(1);
    expect(copy.privacy.dcr.synToTrainP5).toBe(0);
    expect(copy.privacy.dcr.shareCloserToTrain).toBeGreaterThan(0.99);
    expect(copy.privacy.nndr.syntheticMedian).toBe(0);
    expect(copy.privacy.mia.distanceAuc).toBeGreaterThan(0.98);
    expect(copy.privacy.mia.densityAuc).toBeGreaterThan(0.95);
  });

  it('has TSTR equal to TRTR (same training rows)', () => {
    expect(copy.utility!.gbdt.tstr.auc).toBeCloseTo(copy.utility!.gbdt.trtr.auc, 10);
  });
});

describe('an independent sample of the real distribution (holdout-like) as synthetic', () => {
  it('scores near-perfect fidelity', () => {
    expect(fresh.fidelity.columnShapes).toBeGreaterThan(0.95);
    expect(fresh.fidelity.columnPairs).toBeGreaterThan(0.95);
    expect(fresh.fidelity.detectionAuc).toBeLessThan(0.6);
  });

  it('looks private: no copies, MIA AUC near 0.5, half closer to train', () => {
    expect(fresh.privacy.exactCopyRate).toBe(0);
    expect(Math.abs(fresh.privacy.mia.distanceAuc - 0.5)).toBeLessThan(0.06);
    expect(Math.abs(fresh.privacy.mia.densityAuc - 0.5)).toBeLessThan(0.06);
    expect(Math.abs(fresh.privacy.dcr.shareCloserToTrain - 0.5)).toBeLessThan(0.06);
  });

  it('has TSTR close to TRTR', () => {
    const u = fresh.utility!;
    expect(u.gbdt.trtr.auc).toBeGreaterThan(0.75);
    expect(Math.abs(u.gbdt.tstr.auc - u.gbdt.trtr.auc)).toBeLessThan(0.05);
    expect(Math.abs(u.logistic.tstr.auc - u.logistic.trtr.auc)).toBeLessThan(0.05);
    expect(u.positiveClass).toBe('1');
  });
});

describe('the holdout file itself passed as synthetic', () => {
  it('scores near-perfect fidelity and is not flagged as leaking training records', () => {
    expect(holdoutAsSyn.fidelity.columnShapes).toBeGreaterThan(0.95);
    expect(holdoutAsSyn.fidelity.columnPairs).toBeGreaterThan(0.95);
    expect(holdoutAsSyn.privacy.exactCopyRate).toBe(0);
    // The non-members are themselves in the "synthetic" set, so the attack scores them as the
    // likelier members: AUC at or below 0.5, never above.
    expect(holdoutAsSyn.privacy.mia.distanceAuc).toBeLessThan(0.55);
    expect(holdoutAsSyn.privacy.mia.densityAuc).toBeLessThan(0.55);
    expect(holdoutAsSyn.privacy.dcr.shareCloserToTrain).toBeCloseTo(0.5, 1);
  });
});

describe('column-shuffled training data', () => {
  it('keeps column shapes but loses the pair score and is detected', () => {
    expect(shuffled.fidelity.columnShapes).toBe(1);
    expect(shuffled.fidelity.columnPairs).toBeLessThan(fresh.fidelity.columnPairs - 0.1);
    expect(shuffled.fidelity.detectionAuc).toBeGreaterThan(0.8);
    expect(shuffled.fidelity.mmdRbf).toBeGreaterThan(3 * fresh.fidelity.mmdRbf);
  });
});
