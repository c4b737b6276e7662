// The bank's row count leaves the bank only as a DP release (client-node/dp-row-count.ts): charged to
// the ledger before use, the default δ computed from it, reused on restart without a new charge; and
// the agent's FedAvg weight and DP-SGD rate come from it, never from the exact count.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROW_COUNT_NOISE_SD, noisyRowCount, releaseRowCount, rowCountRdp } from '../../client-node/dp-row-count';
import { BudgetExceededError, PrivacyLedger } from '../../client-node/ledger';
import { GanLocalTrainer } from '../../client-node/local-trainer';
import { generateIdentity, type DecodedMessage } from '../../protocol';
import { defaultModelConfig, createModel } from '../../shared/model';
import { memoryLogger } from '../../shared/log/logger';
import { DEFAULT_ORDERS, rdpToEpsilon } from '../../shared/privacy/rdp';
import { selectBackend } from '../../shared/tensor/backend';
import { condToy } from '../model/helpers';
import { handCoordinator, startToyAgent } from './helpers/hand-coordinator';

let dir: string;
let k = 0;
const fresh = (): string => join(dir, `case-${k++}`);
beforeAll(async () => {
  await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-rows-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the released row count', () => {
  it('is n plus Gaussian noise of the stated sd, rounded, never below 1', () => {
    const n = 5000;
    const draws = Array.from({ length: 4000 }, () => noisyRowCount(n, 50));
    expect(draws.every((v) => Number.isInteger(v))).toBe(true);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const sd = Math.sqrt(draws.reduce((a, b) => a + (b - mean) ** 2, 0) / (draws.length - 1));
    expect(Math.abs(mean - n)).toBeLessThan(5); // 4 standard errors of the mean (50/√4000 ≈ 0.8)
    expect(sd).toBeGreaterThan(46);
    expect(sd).toBeLessThan(54);
    expect(Array.from({ length: 200 }, () => noisyRowCount(3, 1000)).every((v) => v >= 1)).toBe(true);
    expect(() => noisyRowCount(0, 10)).toThrow(/row count must be an integer ≥ 1/);
    expect(() => noisyRowCount(10, 0)).toThrow(/noise sd must be a finite number > 0/);
  });

  it('is charged to the ledger once, as a Gaussian count of sensitivity 1, and the default δ comes from it', () => {
    const path = fresh();
    const ledger = PrivacyLedger.open(`${path}.jsonl`);
    // 200,000 rows: δ = 1/(10·n) is below 1e-5 here, so it shows which count it came from; sd 10,000
    // makes the released count differ from the exact one in all but ~4 of 100,000 runs.
    const n = 200_000;
    const { released, budget, cached } = releaseRowCount(n, { ledger, epsilonMax: 1, noiseSd: 10_000, cachePath: `${path}.json` });
    expect(cached).toBe(false);
    expect(budget.delta).toBe(1 / (10 * released.rows));
    expect(budget.delta).not.toBe(1 / (10 * n));
    const entries = ledger.entries();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ kind: 'counts', params: { sigma: 10_000, sensitivity: 1 } });
    expect(entries[0]!.note).toMatch(/^row count/);
    expect(ledger.spent(budget.delta)).toBeCloseTo(released.epsilon, 10);
    expect(released.epsilon).toBeCloseTo(rdpToEpsilon(DEFAULT_ORDERS, rowCountRdp(10_000), budget.delta).epsilon, 12);
    // An explicit δ is kept as it is.
    const other = releaseRowCount(n, { ledger: PrivacyLedger.open(`${fresh()}.jsonl`), epsilonMax: 1, delta: 1e-6 });
    expect(other.budget.delta).toBe(1e-6);
    expect(other.released.noiseSd).toBe(ROW_COUNT_NOISE_SD);
  });

  it('is reused on restart without a new charge, and released again (and charged) when the bank’s row count changed', () => {
    const path = fresh();
    const ledgerPath = `${path}.jsonl`;
    const first = releaseRowCount(1234, { ledger: PrivacyLedger.open(ledgerPath), epsilonMax: 1, cachePath: `${path}.json` });
    const again = releaseRowCount(1234, { ledger: PrivacyLedger.open(ledgerPath), epsilonMax: 1, cachePath: `${path}.json` });
    expect(again.cached).toBe(true);
    expect(again.released.rows).toBe(first.released.rows);
    expect(PrivacyLedger.open(ledgerPath).entries()).toHaveLength(1);
    const grown = releaseRowCount(1300, { ledger: PrivacyLedger.open(ledgerPath), epsilonMax: 1, cachePath: `${path}.json` });
    expect(grown.cached).toBe(false);
    expect(PrivacyLedger.open(ledgerPath).entries()).toHaveLength(2);
    // A damaged cache is an error that says what to do, not a silent second charge.
    writeFileSync(`${path}.json`, '{"released": "many"');
    expect(() => releaseRowCount(1300, { ledger: PrivacyLedger.open(ledgerPath), epsilonMax: 1, cachePath: `${path}.json` })).toThrow(/not valid JSON .* delete it to release \(and charge\) the count again/);
    writeFileSync(`${path}.json`, JSON.stringify({ exactRows: 1300, noiseSd: 100, released: -4 }));
    expect(() => releaseRowCount(1300, { ledger: PrivacyLedger.open(ledgerPath), epsilonMax: 1, cachePath: `${path}.json` })).toThrow(/malformed/);
    expect(PrivacyLedger.open(ledgerPath).entries()).toHaveLength(2);
    // A cache edited to send another count (here the exact one) matches no charge: refused, nothing charged.
    writeFileSync(`${path}.json`, JSON.stringify({ exactRows: 1300, noiseSd: ROW_COUNT_NOISE_SD, released: 1300 }));
    expect(() => releaseRowCount(1300, { ledger: PrivacyLedger.open(ledgerPath), epsilonMax: 1, cachePath: `${path}.json` })).toThrow(
      /cached row-count release matches no charge in the privacy ledger .* nothing was sent/,
    );
    expect(PrivacyLedger.open(ledgerPath).entries()).toHaveLength(2);
  });

  it('past the budget: refused, nothing charged, nothing cached', () => {
    const path = fresh();
    const ledger = PrivacyLedger.open(`${path}.jsonl`);
    expect(() => releaseRowCount(1000, { ledger, epsilonMax: 1e-4, noiseSd: 5, cachePath: `${path}.json` })).toThrow(BudgetExceededError);
    // The message names the release.
    expect(() => releaseRowCount(1000, { ledger, epsilonMax: 1e-4, noiseSd: 5 })).toThrow(/privacy budget exceeded: counts \[row count, noise sd 5\] \(Gaussian σ = 5, sensitivity 1\)/);
    expect(ledger.entries()).toHaveLength(0);
    expect(existsSync(`${path}.json`)).toBe(false);
  });
});

describe('bank agent: what depends on its size comes from the released count', () => {
  const toy = condToy(400, [0.5, 0.3, 0.2], [-0.5, 0, 0.5]);
  const model = defaultModelConfig({ noiseDim: 6, generatorDims: [16], discriminatorDims: [16], loss: 'ns', pac: 1, seed: 8 });

  it("reports the released count as its FedAvg weight and samples DP-SGD's rows at batch / released count", async () => {
    const bankId = generateIdentity('bank-1');
    const spec = createModel(model, toy.spans);
    const weights = spec.getWeights();
    spec.dispose();
    const coordinator = await handCoordinator(bankId, weights);
    const { wire, next, send } = coordinator;
    const ledger = PrivacyLedger.open(`${fresh()}.jsonl`);
    const budget = { epsilonMax: 50, delta: 1e-5 };
    // 400 rows in the bank, 437 as released: every figure that leaves must be of 437.
    const agent = startToyAgent({
      coordinator,
      bank: bankId,
      ledger,
      trainer: (json) => new GanLocalTrainer(JSON.parse(json), 4, { ledger, budget, noiseMultiplier: 2 }),
      data: { encoded: toy.data, rows: 400, publicRows: 437, dim: 4 },
      log: memoryLogger('bank-1'),
    });
    try {
      await next('register');
      send(wire.welcome({ bankId: 'bank-1', modelConfigJson: JSON.stringify({ model, spans: toy.spans }), currentRound: 0 }));
      await next('summary');
      send(wire.roundStart({ roundId: 1, modelVersion: 0, weights, plan: { localSteps: 2, batchSize: 40, lrGenerator: 2e-4, lrDiscriminator: 2e-4, dSteps: 1, loss: 'ns', updateClipNorm: 5 }, deadlineMs: Date.now() + 60_000, seed: 1, dp: { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 } }));
      const update = (await next('clientUpdate')) as Extract<DecodedMessage, { type: 'clientUpdate' }>;
      expect(update.sampleCount).toBe(437);
      expect(update.metrics.sampleRate).toBeCloseTo(40 / 437, 6);
      const sgd = ledger.entries().filter((e) => e.kind === 'dp-sgd');
      expect(sgd).toHaveLength(1);
      expect((sgd[0]!.params as { q: number }).q).toBeCloseTo(40 / 437, 12);
      expect(sgd[0]!.note).not.toMatch(/\b400\b/);
    } finally {
      agent.stop();
      coordinator.close();
    }
  });
});

describe('the row-count cache', () => {
  it('the cache holds the exact count beside the released one, readable only by the bank (0600)', () => {
    const path = fresh();
    releaseRowCount(777, { ledger: PrivacyLedger.open(`${path}.jsonl`), epsilonMax: 1, cachePath: `${path}.json` });
    const c = JSON.parse(readFileSync(`${path}.json`, 'utf8')) as { exactRows: number; released: number; noiseSd: number };
    expect(c.exactRows).toBe(777);
    expect(c.noiseSd).toBe(ROW_COUNT_NOISE_SD);
    expect(Number.isInteger(c.released) && c.released >= 1).toBe(true);
    expect((statSync(`${path}.json`).mode & 0o777).toString(8)).toBe('600');
  });
});
