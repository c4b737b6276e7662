import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BudgetExceededError, LedgerTamperedError, PrivacyLedger, defaultDelta, releaseDigest } from '../../client-node/ledger';
import { DEFAULT_ORDERS, composeRdp, computeRdp, rdpGaussian, rdpToEpsilon } from '../../shared/privacy/rdp';
import { skellamRdpCurve } from '../../shared/privacy/skellam';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ledger-'));
  file = join(dir, 'privacy.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const budget = { epsilonMax: 5, delta: 1e-5 };
const sgd = (steps: number) => ({ kind: 'dp-sgd' as const, params: { q: 0.01, sigma: 1.1, steps }, note: 'discriminator' });

function filled(): PrivacyLedger {
  const l = PrivacyLedger.open(file);
  l.charge(sgd(100), budget);
  l.charge({ kind: 'histogram', params: { sigma: 20, sensitivity: 1 }, note: 'category counts' }, budget);
  l.charge(sgd(200), budget);
  return l;
}

describe('PrivacyLedger', () => {
  it('composes charges in RDP and persists across reopen', () => {
    const l = filled();
    const expected = rdpToEpsilon(
      DEFAULT_ORDERS,
      composeRdp(computeRdp(0.01, 1.1, 300), rdpGaussian(20, 1)),
      1e-5,
    ).epsilon;
    expect(l.spent(1e-5)).toBeCloseTo(expected, 10);
    const again = PrivacyLedger.open(file);
    expect(again.entries()).toHaveLength(3);
    expect(again.spent(1e-5)).toBeCloseTo(expected, 10);
    expect(statSync(`${file}.key`).mode & 0o777).toBe(0o600);
  });

  it('charges distributed Skellam rounds with the Skellam RDP (Agarwal et al. 2021) and validates them', () => {
    const l = PrivacyLedger.open(file);
    const params = { l1Sensitivity: 5e7, l2Sensitivity: 2e4, mu: 2e9 };
    l.charge({ kind: 'distributed-skellam', params, round: 1 }, budget);
    l.charge({ kind: 'distributed-skellam', params, round: 2 }, budget);
    const expected = rdpToEpsilon(DEFAULT_ORDERS, skellamRdpCurve(params, 2), 1e-5).epsilon;
    expect(l.spent(1e-5)).toBeCloseTo(expected, 10);
    expect(PrivacyLedger.open(file).spent(1e-5)).toBeCloseTo(expected, 10);
    expect(() => l.charge({ kind: 'distributed-skellam', params: { ...params, mu: 0 } }, budget)).toThrow(/mu must be a finite number > 0/);
    expect(() => l.charge({ kind: 'distributed-skellam', params: { ...params, l2Sensitivity: Number.NaN } }, budget)).toThrow(/l2Sensitivity/);
  });

  it('refuses a charge past the budget before writing anything, with spent/requested/budget', () => {
    const l = PrivacyLedger.open(file);
    const tight = { epsilonMax: 1, delta: 1e-5 };
    const allowed = l.planSteps(0.01, 1.1, tight);
    expect(allowed).toBeGreaterThan(0);
    l.charge(sgd(allowed), tight);
    expect(l.spent(1e-5)).toBeLessThanOrEqual(1);
    expect(l.wouldExceed(sgd(1), 1, 1e-5)).toBe(true);
    let err: unknown;
    try {
      l.charge(sgd(1), tight);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect((err as Error).message).toMatch(/budget --epsilon-max 1\b.*Nothing was released/);
    expect((err as BudgetExceededError).wouldBe).toBeGreaterThan(1);
    expect(PrivacyLedger.open(file).entries()).toHaveLength(1);
  });

  it('reports ε = 0 exactly before anything is charged (not the RDP conversion slack)', () => {
    const l = PrivacyLedger.open(file);
    expect(l.entries()).toHaveLength(0);
    expect(l.spent(1e-5)).toBe(0);
    expect(l.spent(1e-9)).toBe(0);
    expect(rdpToEpsilon(DEFAULT_ORDERS, DEFAULT_ORDERS.map(() => 0), 1e-5).epsilon).toBeGreaterThan(0);
  });

  it('defaults δ to min(1e-5, 1/(10n))', () => {
    expect(defaultDelta(1000)).toBe(1e-5);
    expect(defaultDelta(1_000_000)).toBeCloseTo(1e-7, 15);
    expect(() => defaultDelta(0)).toThrow(/record count/);
  });

  it('detects an edited byte', () => {
    filled();
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace('"steps":200', '"steps":2'));
    expect(() => PrivacyLedger.open(file)).toThrow(LedgerTamperedError);
  });

  it('detects a deleted entry (middle or tail)', () => {
    filled();
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    writeFileSync(file, [lines[0], lines[2]].join('\n') + '\n');
    expect(() => PrivacyLedger.open(file)).toThrow(/deleted or reordered|chain broken/);
    writeFileSync(file, [lines[0], lines[1]].join('\n') + '\n');
    expect(() => PrivacyLedger.open(file)).toThrow(/entries were deleted/);
  });

  it('detects reordered entries', () => {
    filled();
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    writeFileSync(file, [lines[1], lines[0], lines[2]].join('\n') + '\n');
    expect(() => PrivacyLedger.open(file)).toThrow(LedgerTamperedError);
  });

  it('detects a chain recomputed without the key (HMAC)', () => {
    filled();
    writeFileSync(`${file}.key`, 'ab'.repeat(32) + '\n', { mode: 0o600 });
    expect(() => PrivacyLedger.open(file)).toThrow(/HMAC does not verify/);
  });

  it("records a release's digest in the entry's hash, so a cached release can be matched to its charge", () => {
    const l = PrivacyLedger.open(file);
    const released = { released: 10_234, noiseSd: 100 };
    l.charge({ kind: 'counts', params: { sigma: 100, sensitivity: 1 }, note: 'row count', release: releaseDigest(released) }, budget);
    l.charge(sgd(1), budget);
    const again = PrivacyLedger.open(file);
    expect(again.hasRelease(releaseDigest({ noiseSd: 100, released: 10_234 }))).toBe(true); // key order does not matter
    expect(again.hasRelease(releaseDigest({ released: 10_000, noiseSd: 100 }))).toBe(false);
    // The digest is part of the entry: changing it breaks the entry's hash.
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace(releaseDigest(released), releaseDigest({ released: 10_000, noiseSd: 100 })));
    expect(() => PrivacyLedger.open(file)).toThrow(/does not match its hash/);
    expect(() => PrivacyLedger.open(join(dir, 'other.jsonl')).charge({ kind: 'counts', params: { sigma: 1, sensitivity: 1 }, release: 'abc' }, budget)).toThrow(/SHA-256 digest/);
  });

  it('rejects invalid entries with a clear message', () => {
    const l = PrivacyLedger.open(file);
    expect(() => l.charge({ kind: 'dp-sgd', params: { q: 2, sigma: 1, steps: 1 } }, budget)).toThrow(/sample rate q/);
    expect(() => l.charge(sgd(1), { epsilonMax: 0, delta: 1e-5 })).toThrow(/--epsilon-max/);
  });
});
