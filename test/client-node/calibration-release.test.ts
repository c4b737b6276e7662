// The bank agent's side of label calibration against a coordinator that asks at the wrong time or
// more than once: a real socket.io server speaking the real protocol (CoordinatorWire, signed
// frames), a real agent (startAgent) with a real GanLocalTrainer and privacy ledger on disk. The
// agent answers only after it trained a round in this run, and only once: a coordinator cannot
// make a bank spend budget it did not plan.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GanLocalTrainer } from '../../client-node/local-trainer';
import { PrivacyLedger } from '../../client-node/ledger';
import { releaseCalibrationCounts } from '../../client-node/dp-calibration';
import { generateIdentity, type DecodedMessage } from '../../protocol';
import { defaultModelConfig, createModel } from '../../shared/model';
import { memoryLogger } from '../../shared/log/logger';
import { selectBackend } from '../../shared/tensor/backend';
import { condToy } from '../model/helpers';
import { handCoordinator, startToyAgent, waitFor } from './helpers/hand-coordinator';

const toy = condToy(400, [0.5, 0.3, 0.2], [-0.5, 0, 0.5]);
const model = defaultModelConfig({ noiseDim: 6, generatorDims: [16], discriminatorDims: [16], classifierColumn: 'c', classifierDims: [], loss: 'ns', pac: 1, seed: 8 });
const consortiumConfig = JSON.stringify({ model, spans: toy.spans, labelCalibration: { noiseMultiplier: 20 } });

let dir: string;
beforeAll(async () => {
  await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-cal-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bank agent: the label calibration release', () => {
  it('is refused before the bank trained, sent once after, charged to the ledger before it leaves; a second request is refused', async () => {
    const bankId = generateIdentity('bank-1');
    const spec = createModel(model, toy.spans);
    const weights = spec.getWeights();
    spec.dispose();
    const coordinator = await handCoordinator(bankId, weights);
    const { wire, next, send, received } = coordinator;

    const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'));
    const budget = { epsilonMax: 5, delta: 1e-5 };
    const log = memoryLogger('bank-1');
    const agent = startToyAgent({
      coordinator,
      bank: bankId,
      ledger,
      trainer: (json) => new GanLocalTrainer(JSON.parse(json), 4, { ledger, budget, noiseMultiplier: 2, sampleRate: 0.1 }),
      data: { encoded: toy.data, rows: 400, dim: 4 },
      log,
      releaseCalibration: (exact, z) => releaseCalibrationCounts(exact, { noiseMultiplier: z, ledger, budget }),
    });
    try {
      const register = await next('register');
      expect(register.frame.sender).toBe('bank-1');
      send(wire.welcome({ bankId: 'bank-1', modelConfigJson: consortiumConfig, currentRound: 0 }));
      await next('summary');
      const classifier = weights.filter((t) => t.name.startsWith('C/'));
      const request = (v: number) => wire.calibrationRequest({ modelVersion: v, classIndex: 2, edges: [-2, -1, 0], classifier });

      // Before any round: refused, nothing charged, nothing sent.
      send(request(0));
      await waitFor(() => log.lines.some((l) => l.includes('label_calibration_refused')));
      expect(log.lines.find((l) => l.includes('label_calibration_refused'))).toMatch(/no round was trained in this run/);
      expect(ledger.entries()).toHaveLength(0);

      // One round, then the request: one release, charged before it was sent.
      send(wire.roundStart({ roundId: 1, modelVersion: 0, weights, plan: { localSteps: 2, batchSize: 40, lrGenerator: 2e-4, lrDiscriminator: 2e-4, dSteps: 1, loss: 'ns', updateClipNorm: 5 }, deadlineMs: Date.now() + 60_000, seed: 1, dp: { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 } }));
      await next('clientUpdate');
      expect(ledger.entries().map((e) => e.kind)).toEqual(['dp-sgd']);
      send(request(1));
      const counts = (await next('calibrationCounts')) as Extract<DecodedMessage, { type: 'calibrationCounts' }>;
      expect(counts.modelVersion).toBe(1);
      expect(counts.rows).toHaveLength(4);
      expect(counts.noiseStd).toBeCloseTo(20 * Math.SQRT2, 10);
      const entries = ledger.entries();
      expect(entries.map((e) => e.kind)).toEqual(['dp-sgd', 'counts']);
      expect(entries[1]!.note).toMatch(/^label calibration/);
      expect(counts.epsilonSpent).toBeCloseTo(ledger.spent(1e-5), 10);
      // The noisy counts are not the exact ones (the exact ones never leave the bank).
      expect(counts.rows.reduce((a, b) => a + b, 0)).not.toBe(400);

      // Asked again: refused, nothing more charged or sent.
      send(request(2));
      await waitFor(() => log.lines.some((l) => l.includes('already sent')));
      await new Promise((r) => setTimeout(r, 200));
      expect(received.filter((m) => m.type === 'calibrationCounts')).toHaveLength(0);
      expect(ledger.entries()).toHaveLength(2);
    } finally {
      agent.stop();
      coordinator.close();
    }
  });
});

