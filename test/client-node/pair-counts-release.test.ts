// The bank's two-way counts leave the bank only as a DP release (client-node/dp-pair-counts.ts):
// charged to the ledger before the noise is drawn, noise sd z·√pairs, reused on restart without a new
// charge, refused past the budget with nothing written. And the agent releases them before its first
// round trains (so DP-SGD's noise is calibrated with the charge in the ledger), sends the same noisy
// tables with every update, and trains with the coordinator's pair targets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pairCountsRdp, releasePairCounts } from '../../client-node/dp-pair-counts';
import { BudgetExceededError, PrivacyLedger } from '../../client-node/ledger';
import { GanLocalTrainer, parseConsortiumModelConfig } from '../../client-node/local-trainer';
import { generateIdentity, type DecodedMessage } from '../../protocol';
import { defaultModelConfig, createModel, type OutputSpan } from '../../shared/model';
import { memoryLogger } from '../../shared/log/logger';
import { DEFAULT_ORDERS, rdpGaussian, rdpToEpsilon } from '../../shared/privacy/rdp';
import { selectBackend } from '../../shared/tensor/backend';
import { Rng } from '../../shared/tensor/random';
import { pairCounts, softmaxSpanPairs } from '../../shared/transformer/pair-counts';
import { handCoordinator, startToyAgent, waitFor } from './helpers/hand-coordinator';

let dir: string;
let k = 0;
const fresh = (): string => {
  const d = join(dir, `case-${k++}`);
  mkdirSync(d);
  return d;
};
beforeAll(async () => {
  await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-pairs-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const exact = [
  { aOffset: 1, aDim: 2, bOffset: 3, bDim: 3, values: [30, 5, 5, 5, 25, 30] },
  { aOffset: 1, aDim: 2, bOffset: 6, bDim: 2, values: [20, 20, 30, 30] },
  { aOffset: 3, aDim: 3, bOffset: 6, bDim: 2, values: [10, 25, 15, 15, 25, 10] },
];

describe('the released pair counts', () => {
  it('are charged as one Gaussian mechanism at z (sd z·√pairs, sensitivity √pairs), and noised', () => {
    const ledger = PrivacyLedger.open(join(fresh(), 'ledger.jsonl'));
    const budget = { epsilonMax: 5, delta: 1e-5 };
    const r = releasePairCounts(exact, { noiseMultiplier: 4, ledger, budget });
    expect(r.cached).toBe(false);
    expect(r.noiseSd).toBeCloseTo(4 * Math.sqrt(3), 12);
    expect(r.tables.map((t) => [t.aOffset, t.aDim, t.bOffset, t.bDim, t.values.length])).toEqual(exact.map((t) => [t.aOffset, t.aDim, t.bOffset, t.bDim, t.values.length]));
    const entries = ledger.entries();
    expect(entries).toHaveLength(1);
    expect(entries[0]!.kind).toBe('counts');
    expect(entries[0]!.params).toEqual({ sigma: r.noiseSd, sensitivity: Math.sqrt(3) });
    // The same RDP curve as a Gaussian mechanism at noise multiplier 4 with sensitivity 1.
    const ref = rdpGaussian(4, 1);
    pairCountsRdp(4, 3).forEach((v, i) => expect(v).toBeCloseTo(ref[i]!, 9));
    expect(r.epsilon).toBeCloseTo(rdpToEpsilon(DEFAULT_ORDERS, rdpGaussian(4, 1), 1e-5).epsilon, 12);
    expect(ledger.spent(1e-5)).toBeCloseTo(r.epsilon, 10);
    // Noisy: no cell is its exact count (a continuous draw), and the noise has about the stated sd.
    const diffs = r.tables.flatMap((t, i) => t.values.map((v, j) => v - exact[i]!.values[j]!));
    expect(diffs.every((d) => d !== 0)).toBe(true);
  });

  it("adds noise of the stated sd per cell (empirically, over many cells)", () => {
    const ledger = PrivacyLedger.open(join(fresh(), 'ledger.jsonl'));
    const big = [{ aOffset: 0, aDim: 100, bOffset: 100, bDim: 100, values: new Array<number>(10_000).fill(7) }];
    const r = releasePairCounts(big, { noiseMultiplier: 3, ledger, budget: { epsilonMax: 5, delta: 1e-5 } });
    const d = r.tables[0]!.values.map((v) => v - 7);
    const mean = d.reduce((a, b) => a + b, 0) / d.length;
    const sd = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / (d.length - 1));
    expect(Math.abs(mean)).toBeLessThan(0.15); // 5 standard errors (3/√10000 = 0.03)
    expect(sd).toBeGreaterThan(2.9);
    expect(sd).toBeLessThan(3.1);
  });

  it('are reused on restart without a new charge; other exact counts are a new release', () => {
    const state = fresh();
    const ledger = PrivacyLedger.open(join(state, 'ledger.jsonl'));
    const budget = { epsilonMax: 5, delta: 1e-5 };
    const cachePath = join(state, 'dp-pair-counts.json');
    const first = releasePairCounts(exact, { noiseMultiplier: 4, ledger, budget, cachePath });
    const again = releasePairCounts(exact, { noiseMultiplier: 4, ledger: PrivacyLedger.open(join(state, 'ledger.jsonl')), budget, cachePath });
    expect(again.cached).toBe(true);
    expect(again.tables).toEqual(first.tables);
    expect(PrivacyLedger.open(join(state, 'ledger.jsonl')).entries()).toHaveLength(1);
    // The cache holds the noisy tables and a salted hash, never the exact counts.
    const file = readFileSync(cachePath, 'utf8');
    expect(file).not.toContain('"values":[30,5,5,5,25,30]');
    expect(JSON.parse(file).salt).toMatch(/^[0-9a-f]{32}$/);
    const changed = exact.map((t, i) => (i === 0 ? { ...t, values: t.values.map((v, j) => v + (j === 0 ? 1 : 0)) } : t));
    const fresh2 = releasePairCounts(changed, { noiseMultiplier: 4, ledger, budget, cachePath });
    expect(fresh2.cached).toBe(false);
    expect(ledger.entries()).toHaveLength(2);
    // Another noise multiplier is another release, too.
    expect(releasePairCounts(changed, { noiseMultiplier: 5, ledger, budget, cachePath }).cached).toBe(false);
    // Edited noisy tables (the key still matches the exact counts) match no charge in the ledger: refused.
    const cached = JSON.parse(readFileSync(cachePath, 'utf8')) as { tables: { values: number[] }[] };
    cached.tables[0]!.values[0] = 31;
    writeFileSync(cachePath, JSON.stringify(cached));
    const charges = ledger.entries().length;
    expect(() => releasePairCounts(changed, { noiseMultiplier: 5, ledger, budget, cachePath })).toThrow(/cached pair-count release matches no charge in the privacy ledger/);
    expect(ledger.entries()).toHaveLength(charges);
    writeFileSync(cachePath, '{not json');
    expect(() => releasePairCounts(exact, { noiseMultiplier: 4, ledger, budget, cachePath })).toThrow(/cached pair-count release is not valid JSON/);
  });

  it('are refused past the budget: nothing charged, nothing written', () => {
    const state = fresh();
    const ledger = PrivacyLedger.open(join(state, 'ledger.jsonl'));
    const cachePath = join(state, 'dp-pair-counts.json');
    expect(() => releasePairCounts(exact, { noiseMultiplier: 0.5, ledger, budget: { epsilonMax: 1, delta: 1e-5 }, cachePath })).toThrow(BudgetExceededError);
    expect(ledger.entries()).toHaveLength(0);
    expect(existsSync(cachePath)).toBe(false);
    expect(() => releasePairCounts([], { noiseMultiplier: 4, ledger, budget: { epsilonMax: 1, delta: 1e-5 } })).toThrow(/no pair to release/);
    expect(() => releasePairCounts([{ ...exact[0]!, values: [1, 2] }], { noiseMultiplier: 4, ledger, budget: { epsilonMax: 1, delta: 1e-5 } })).toThrow(/must hold 2×3 non-negative whole counts/);
  });
});

// Two correlated discrete columns a (3) and b (2) and a numeric x: one pair, a × b.
const spans: OutputSpan[] = [
  { column: 'x', kind: 'tanh', dim: 1, offset: 0 },
  { column: 'a', kind: 'softmax', dim: 3, offset: 1 },
  { column: 'b', kind: 'softmax', dim: 2, offset: 4 },
];
function toyRows(n: number): Float32Array {
  const r = new Rng(5);
  const out = new Float32Array(n * 6);
  for (let i = 0; i < n; i++) {
    const a = Math.min(2, Math.floor(r.next() * 3));
    const b = r.next() < (a === 0 ? 0.9 : 0.1) ? 0 : 1;
    out[i * 6] = 0.2 * (a - 1) + 0.05 * r.normal(1)[0]!;
    out[i * 6 + 1 + a] = 1;
    out[i * 6 + 4 + b] = 1;
  }
  return out;
}

describe('bank agent: the pair counts', () => {
  const model = defaultModelConfig({ noiseDim: 6, generatorDims: [16], discriminatorDims: [16], loss: 'ns', pac: 1, seed: 8, marginalWeight: 10 });
  const consortiumConfig = JSON.stringify({ model, spans, pairCounts: { noiseMultiplier: 5, weight: 10 } });

  it('parses the plan and refuses a malformed one', () => {
    expect(parseConsortiumModelConfig(consortiumConfig).pairCounts).toEqual({ noiseMultiplier: 5, weight: 10 });
    expect(() => parseConsortiumModelConfig(JSON.stringify({ model, spans, pairCounts: { noiseMultiplier: 0, weight: 1 } }))).toThrow(/malformed pairCounts/);
    expect(() => parseConsortiumModelConfig(JSON.stringify({ model, spans, pairCounts: { noiseMultiplier: 2, weight: -1 } }))).toThrow(/malformed pairCounts/);
  });

  it('are released once before the first round trains, re-sent unchanged with every update; the targets reach the trainer', async () => {
    const bank = generateIdentity('bank-1');
    const spec = createModel(model, spans);
    const weights = spec.getWeights();
    spec.dispose();
    const coordinator = await handCoordinator(bank, weights);
    const { wire, next, send } = coordinator;
    const state = fresh();
    const ledger = PrivacyLedger.open(join(state, 'ledger.jsonl'));
    const budget = { epsilonMax: 20, delta: 1e-5 };
    const log = memoryLogger('bank-1');
    const rows = 600;
    const encoded = toyRows(rows);
    const agent = startToyAgent({
      coordinator,
      bank,
      ledger,
      trainer: (json) => new GanLocalTrainer(parseConsortiumModelConfig(json), 6, { ledger, budget, noiseMultiplier: 2, sampleRate: 0.1 }),
      data: { encoded, rows, dim: 6 },
      log,
      releasePairCounts: (tables, z) => releasePairCounts(tables, { noiseMultiplier: z, ledger, budget, cachePath: join(state, 'dp-pair-counts.json') }),
    });
    try {
      await next('register');
      send(wire.welcome({ bankId: 'bank-1', modelConfigJson: consortiumConfig, currentRound: 0 }));
      await next('summary');
      const plan = { localSteps: 2, batchSize: 60, lrGenerator: 2e-4, lrDiscriminator: 2e-4, dSteps: 1, gSteps: 2, loss: 'ns', updateClipNorm: 5 };
      const dp = { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 };
      const categoryWeights = [
        { column: 'a', values: [1, 1, 1] },
        { column: 'b', values: [1, 1] },
      ];
      const start = (roundId: number, extra: Record<string, unknown> = {}) =>
        send(wire.roundStart({ roundId, modelVersion: roundId - 1, weights, plan, deadlineMs: Date.now() + 60_000, seed: roundId, dp, categoryWeights, ...extra }));

      start(1);
      const u1 = (await next('clientUpdate')) as Extract<DecodedMessage, { type: 'clientUpdate' }>;
      // Charged before DP-SGD: the release is in the ledger when the round's noise is planned.
      expect(ledger.entries().map((e) => e.kind)).toEqual(['counts', 'dp-sgd']);
      expect(ledger.entries()[0]!.note).toMatch(/two-way counts of 1 pairs/);
      const exactTables = pairCounts(encoded, rows, 6, softmaxSpanPairs(spans));
      expect(u1.pairCounts?.noiseStd).toBeCloseTo(5, 12);
      expect(u1.pairCounts?.tables.map((t) => [t.aOffset, t.aDim, t.bOffset, t.bDim])).toEqual([[1, 3, 4, 2]]);
      const sent = u1.pairCounts!.tables[0]!.values;
      expect(sent).not.toEqual(exactTables[0]);
      // Noise of sd 5 on 6 cells: all within 6 sds of the exact counts.
      sent.forEach((v, j) => expect(Math.abs(v - exactTables[0]![j]!)).toBeLessThan(30));

      // Round 2 with the coordinator's targets: trained with them, the same noisy tables re-sent, no new charge.
      start(2, { pairTargets: [{ aOffset: 1, aDim: 3, bOffset: 4, bDim: 2, values: [0.3, 0.03, 0.03, 0.3, 0.03, 0.3] }] });
      const u2 = (await next('clientUpdate')) as Extract<DecodedMessage, { type: 'clientUpdate' }>;
      expect(u2.pairCounts?.tables[0]!.values).toEqual(sent);
      expect(ledger.entries().map((e) => e.kind)).toEqual(['counts', 'dp-sgd', 'dp-sgd']);

      // Targets that do not fit the model (a pair on the numeric span): the trainer refuses; nothing charged or sent.
      start(3, { pairTargets: [{ aOffset: 0, aDim: 1, bOffset: 4, bDim: 2, values: [0.5, 0.5] }] });
      await waitFor(() => log.lines.some((l) => l.includes('round_failed_locally')));
      expect(log.lines.find((l) => l.includes('round_failed_locally'))).toMatch(/names no softmax span at offset 0/);
      expect(ledger.entries()).toHaveLength(3);
    } finally {
      agent.stop();
      coordinator.close();
    }
  });
});
