// A bank whose privacy budget cannot afford a round stops, with a message that says why, instead
// of refusing every round the coordinator retries (the round then fails at each deadline). Real
// agent (startAgent), real GanLocalTrainer and ledger on disk, a hand-driven coordinator speaking
// the real protocol.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentFatalError } from '../../client-node/agent';
import { GanLocalTrainer, type LocalDpOptions } from '../../client-node/local-trainer';
import { PrivacyLedger } from '../../client-node/ledger';
import { generateIdentity } from '../../protocol';
import { defaultModelConfig, createModel } from '../../shared/model';
import { memoryLogger } from '../../shared/log/logger';
import { selectBackend } from '../../shared/tensor/backend';
import { condToy } from '../model/helpers';
import { agentOutcome, handCoordinator, startToyAgent } from './helpers/hand-coordinator';

const toy = condToy(400, [0.5, 0.3, 0.2], [-0.5, 0, 0.5]);
const model = defaultModelConfig({ noiseDim: 6, generatorDims: [16], discriminatorDims: [16], loss: 'ns', pac: 1, seed: 8 });
const plan = { localSteps: 2, batchSize: 40, lrGenerator: 2e-4, lrDiscriminator: 2e-4, dSteps: 1, loss: 'ns' as const, updateClipNorm: 5 };
const noDp = { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 };

let dir: string;
beforeAll(async () => {
  await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-budget-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One bank against a hand-driven coordinator; resolves with the agent's end and its log. */
async function runOneRound(name: string, dp: (ledger: PrivacyLedger) => LocalDpOptions): Promise<{ error: unknown; log: string[]; ledger: PrivacyLedger; updates: number }> {
  const bank = generateIdentity('bank-1');
  const spec = createModel(model, toy.spans);
  const weights = spec.getWeights();
  spec.dispose();
  const coordinator = await handCoordinator(bank, weights);
  const ledger = PrivacyLedger.open(join(dir, `${name}.jsonl`));
  const log = memoryLogger('bank-1');
  const agent = startToyAgent({ coordinator, bank, ledger, trainer: (json) => new GanLocalTrainer(JSON.parse(json), 4, dp(ledger)), data: { encoded: toy.data, rows: 400, dim: 4 }, log });
  try {
    await coordinator.next('register');
    coordinator.send(coordinator.wire.welcome({ bankId: 'bank-1', modelConfigJson: JSON.stringify({ model, spans: toy.spans }), currentRound: 0 }));
    await coordinator.next('summary');
    coordinator.send(coordinator.wire.roundStart({ roundId: 1, modelVersion: 0, weights, plan, deadlineMs: Date.now() + 60_000, seed: 1, dp: noDp }));
    const error = await agentOutcome(agent, 20_000);
    return { error, log: log.lines, ledger, updates: coordinator.received.filter((m) => m.type === 'clientUpdate').length };
  } finally {
    agent.stop();
    coordinator.close();
  }
}

describe('bank agent: an exhausted privacy budget', () => {
  it('stops the agent with the spent and planned ε when nothing is left for DP-SGD', async () => {
    const budget = { epsilonMax: 1, delta: 1e-5 };
    const r = await runOneRound('spent', (ledger) => {
      // Earlier sessions spent more than the bank's total (charged under a larger budget then).
      ledger.charge({ kind: 'counts', params: { sigma: 4, sensitivity: 1 }, note: 'an earlier summary' }, { epsilonMax: 10, delta: 1e-5 });
      return { ledger, budget, totalEpsilon: 1, plannedRounds: 2, sampleRate: 0.1 };
    });
    expect(r.error).toBeInstanceOf(AgentFatalError);
    const spent = r.ledger.spent(1e-5);
    expect(spent).toBeGreaterThan(1);
    expect((r.error as Error).message).toMatch(new RegExp(`privacy budget exhausted: this bank's ledger has spent ε = ${spent.toPrecision(4).replace('.', '\\.')} at δ = 1\\.00e-5`));
    expect((r.error as Error).message).toMatch(/nothing for DP-SGD under the bank's total ε = 1/);
    expect(r.log.some((l) => l.includes('"event":"privacy_budget_exhausted"'))).toBe(true);
    // Nothing trained, charged or sent.
    expect(r.ledger.entries().map((e) => e.kind)).toEqual(['counts']);
    expect(r.updates).toBe(0);
  });

  it("stops the agent when a round's DP-SGD charge would pass --epsilon-max", async () => {
    // A fixed noise multiplier: the ledger refuses the round's charge (BudgetExceededError).
    const r = await runOneRound('exceeded', (ledger) => ({ ledger, budget: { epsilonMax: 0.5, delta: 1e-5 }, noiseMultiplier: 0.6, sampleRate: 0.1 }));
    expect(r.error).toBeInstanceOf(AgentFatalError);
    expect((r.error as Error).message).toMatch(/refusing to train round 1: privacy budget exceeded: .* past this bank's budget --epsilon-max 0\.5\. Nothing was released/);
    expect(r.ledger.entries()).toHaveLength(0);
    expect(r.updates).toBe(0);
  });
});
