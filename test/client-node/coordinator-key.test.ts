// The bank pins the coordinator's signing key. A coordinator whose Welcome is signed by another key
// (its identity re-created, or an impostor) makes the agent stop with both fingerprints, instead of
// ignoring every frame and waiting forever.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentFatalError } from '../../client-node/agent';
import { readCoordinatorKey } from '../../client-node/coordinator-key';
import { GanLocalTrainer } from '../../client-node/local-trainer';
import { PrivacyLedger } from '../../client-node/ledger';
import { generateIdentity, keyFingerprint, publicIdentity } from '../../protocol';
import { defaultModelConfig, createModel } from '../../shared/model';
import { memoryLogger } from '../../shared/log/logger';
import { selectBackend } from '../../shared/tensor/backend';
import { condToy } from '../model/helpers';
import { agentOutcome, handCoordinator, startToyAgent } from './helpers/hand-coordinator';

const toy = condToy(200, [0.5, 0.3, 0.2], [-0.5, 0, 0.5]);
const model = defaultModelConfig({ noiseDim: 6, generatorDims: [16], discriminatorDims: [16], loss: 'ns', pac: 1, seed: 8 });

let dir: string;
beforeAll(async () => {
  await selectBackend({ force: process.env.FEDSYNTH_BACKEND ? undefined : 'wasm', log: () => {} });
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-ckey-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("bank agent: the coordinator's pinned key", () => {
  it('stops with both fingerprints when the Welcome is signed by another key', async () => {
    const bank = generateIdentity('bank-1');
    const spec = createModel(model, toy.spans);
    const weights = spec.getWeights();
    spec.dispose();
    const coordinator = await handCoordinator(bank, weights);
    const pinned = generateIdentity('coordinator').sign.publicKey; // the key the bank pinned earlier
    const ledger = PrivacyLedger.open(join(dir, 'ledger.jsonl'));
    const log = memoryLogger('bank-1');
    const agent = startToyAgent({
      coordinator,
      bank,
      ledger,
      trainer: (json) => new GanLocalTrainer(JSON.parse(json), 4, { ledger, budget: { epsilonMax: 5, delta: 1e-5 }, noiseMultiplier: 2 }),
      data: { encoded: toy.data, rows: 200, dim: 4 },
      log,
      coordinatorKey: pinned,
      coordinatorKeySource: 'pinned on first use in /state/coordinator-key.txt',
    });
    try {
      await coordinator.next('register');
      coordinator.send(coordinator.wire.welcome({ bankId: 'bank-1', modelConfigJson: JSON.stringify({ model, spans: toy.spans }), currentRound: 0 }));
      const error = await agentOutcome(agent, 10_000);
      expect(error).toBeInstanceOf(AgentFatalError);
      const message = (error as Error).message;
      expect(message).toContain(`presents signing key ${keyFingerprint(coordinator.identity.sign.publicKey)}`);
      expect(message).toContain(`this bank pinned ${keyFingerprint(pinned)} (pinned on first use in /state/coordinator-key.txt)`);
      expect(log.lines.some((l) => l.includes('"event":"coordinator_key_mismatch"'))).toBe(true);
      // Nothing was built or released for that coordinator.
      expect(coordinator.received.filter((m) => m.type === 'summary')).toHaveLength(0);
      expect(ledger.entries()).toHaveLength(0);
    } finally {
      agent.stop();
      coordinator.close();
    }
  });

  it('reads the key from the public identity JSON keygen writes, a base64 file, or inline; names a bad one', () => {
    const id = generateIdentity('coordinator');
    const json = join(dir, 'coordinator-public.json');
    writeFileSync(json, JSON.stringify(publicIdentity(id)));
    const b64 = Buffer.from(id.sign.publicKey).toString('base64');
    const txt = join(dir, 'coordinator-key.txt');
    writeFileSync(txt, b64 + '\n');
    for (const arg of [json, txt, b64]) expect(Buffer.from(readCoordinatorKey(arg)).equals(Buffer.from(id.sign.publicKey))).toBe(true);
    expect(() => readCoordinatorKey('c2hvcnQ=')).toThrow(/--coordinator-key must be a public identity JSON file or a base64 Ed25519 public key \(32 bytes\), got 5 bytes/);
    writeFileSync(json, '{"id": ');
    expect(() => readCoordinatorKey(json)).toThrow(/is not valid JSON/);
  });
});
