// Every rejection path of the wire, over real sockets against the real coordinator (allow-list,
// SQLite state): an unknown key, a forged signature, a replayed frame, a message for a stale round
// and a malformed frame each get a specific error code back, are counted in the metrics, and
// change nothing (no bank registered, no round started).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { runCoordinator, type CoordinatorSettings } from '../../coordinator/run-coordinator';
import type { RunningCoordinator } from '../../coordinator/server';
import { AgentWire } from '../../client-node/wire';
import { readCheckpoint } from '../../coordinator/store/checkpoint';
import { generateIdentity, loadIdentity, publicIdentity, type Identity } from '../../protocol';
import { memoryLogger } from '../../shared/log/logger';
import { simulateBanks } from '../../shared/data/simulate';
import { schemaHash, validateSchema } from '../../shared/data/schema';
import { readFileSync } from 'node:fs';

let dir: string;
let coordinator: RunningCoordinator;
let hash: string;
const bank1 = generateIdentity('bank-1');
const log = memoryLogger('coordinator');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-rej-'));
  simulateBanks({ banks: 3, rows: 600, out: join(dir, 'data'), seed: 3 });
  hash = schemaHash(validateSchema(JSON.parse(readFileSync(join(dir, 'data', 'schema.json'), 'utf8'))));
  writeFileSync(join(dir, 'allow.json'), JSON.stringify([publicIdentity(bank1)]));
  const settings: CoordinatorSettings = {
    host: '127.0.0.1',
    port: 0,
    schemaPath: join(dir, 'data', 'schema.json'),
    stateDir: join(dir, 'state'),
    allowListPath: join(dir, 'allow.json'),
    model: { noiseDim: 8, generatorDims: [16], discriminatorDims: [16], seed: 1 },
    policy: { minClients: 3, maxRounds: 1, deadlineMs: 60_000, waitForClientsMs: 100, retryLimit: 0 },
    plan: { localSteps: 1, batchSize: 20, lrGenerator: 1e-3, lrDiscriminator: 1e-3, dSteps: 1, loss: 'ns', updateClipNorm: 1 },
    dp: { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 },
    maxFrameBytes: 1024 * 1024,
    // Plaintext updates allowed here so the round checks are reached (secagg's refusal of plaintext
    // is tested in secagg.test.ts).
    insecureAggregation: true,
  };
  coordinator = await runCoordinator(settings, { exitWhenFinished: false, log });
});
afterAll(async () => {
  await coordinator?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Connects a raw client, sends frames, and collects the decoded error codes it gets back. */
async function exchange(identity: Identity, bankId: string, frames: (w: AgentWire) => Uint8Array[], expect: number): Promise<{ codes: string[]; types: string[] }> {
  // Banks are configured with the coordinator's key, so they can verify its error frames too.
  const wire = new AgentWire({ bankId, identity, maxFrameBytes: 1024 * 1024, coordinatorKey: loadIdentity(join(dir, 'state', 'coordinator-identity.json')).sign.publicKey });
  const socket: Socket = io(coordinator.url, { transports: ['websocket'], reconnection: false });
  const codes: string[] = [];
  const types: string[] = [];
  try {
    await new Promise<void>((res, rej) => {
      socket.once('connect', () => res());
      socket.once('connect_error', rej);
    });
    const got = new Promise<void>((res) => {
      socket.on('frame', (payload: unknown) => {
        const d = wire.decode(payload);
        if (d.ok) {
          types.push(d.message.type);
          if (d.message.type === 'error') codes.push(d.message.code);
        } else codes.push(`undecodable:${d.rejection.code}`);
        if (types.length >= expect) res();
      });
    });
    for (const f of frames(wire)) socket.emit('frame', f);
    await Promise.race([got, new Promise((r) => setTimeout(r, 3000))]);
  } finally {
    socket.close();
  }
  return { codes, types };
}

const registeredBanks = (): number => (coordinator.rounds.snapshot() as { connected?: string[] }).connected?.length ?? 0;

describe('rejections over real sockets', () => {
  it('an unknown bank key cannot register', async () => {
    const stranger = generateIdentity('bank-9');
    const r = await exchange(stranger, 'bank-9', (w) => [w.register(hash)], 1);
    expect(r.codes).toEqual(['UNKNOWN_SENDER']);
    expect(coordinator.metrics.rejected.get('UNKNOWN_SENDER')).toBeGreaterThanOrEqual(1);
  });

  it('a frame signed with the wrong key for an allowed bank id is refused as forged', async () => {
    const forger = generateIdentity('bank-1');
    const r = await exchange(forger, 'bank-1', (w) => [w.register(hash)], 1);
    expect(r.codes).toEqual(['BAD_SIGNATURE']);
  });

  it('a replayed frame is refused, the original is accepted', async () => {
    const r = await exchange(bank1, 'bank-1', (w) => {
      const f = w.register(hash);
      return [f, f];
    }, 2);
    expect(r.types).toContain('welcome');
    expect(r.codes).toEqual(['REPLAY']);
  });

  it('a wrong schema hash is refused', async () => {
    const r = await exchange(bank1, 'bank-1', (w) => [w.register('0'.repeat(64))], 1);
    expect(r.codes).toEqual(['SCHEMA_MISMATCH']);
  });

  it('an update for a round that is not running is refused and changes nothing', async () => {
    const before = coordinator.rounds.snapshot();
    const r = await exchange(bank1, 'bank-1', (w) => [
      w.register(hash),
      // Well-formed tensors of the consortium model (from the coordinator's version-0 checkpoint).
      w.update({ roundId: 7, modelVersion: 0, sampleCount: 10, tensors: readCheckpoint(join(dir, 'state', 'latest.ckpt')).tensors, metrics: {}, epsilonSpent: 0, delta: 1e-5 }),
    ], 2);
    expect(r.types[0]).toBe('welcome');
    expect(r.codes.length).toBe(1);
    // No round is running (3 banks are needed): the update names a round that does not exist.
    expect(['STALE_ROUND', 'NOT_PARTICIPANT']).toContain(r.codes[0]);
    const after = coordinator.rounds.snapshot();
    expect(after.roundsCommitted).toBe(before.roundsCommitted);
    expect(after.modelVersion).toBe(before.modelVersion);
  });

  it('pair counts a consortium did not plan are refused with the update, which changes nothing', async () => {
    const before = coordinator.rounds.snapshot();
    const r = await exchange(bank1, 'bank-1', (w) => [
      w.register(hash),
      w.update({
        roundId: 1,
        modelVersion: 0,
        sampleCount: 10,
        tensors: readCheckpoint(join(dir, 'state', 'latest.ckpt')).tensors,
        metrics: {},
        epsilonSpent: 0,
        delta: 1e-5,
        pairCounts: { noiseStd: 5, tables: [{ aOffset: 1, aDim: 2, bOffset: 3, bDim: 2, values: [10, 3, 2, 9] }] },
      }),
    ], 2);
    expect(r.types[0]).toBe('welcome');
    expect(r.codes).toEqual(['INVALID_FIELD']);
    expect(log.lines.some((l) => l.includes('this consortium plans no pair counts'))).toBe(true);
    expect(coordinator.rounds.snapshot().modelVersion).toBe(before.modelVersion);
  });

  it('calibration counts nobody asked for are refused, and the coordinator keeps serving', async () => {
    const r = await exchange(bank1, 'bank-1', (w) => [
      w.register(hash),
      w.calibrationCounts({ modelVersion: 0, rows: [10, 20], positives: [1, 2], noiseStd: 28, epsilon: 0.1, delta: 1e-5, epsilonSpent: 0.3 }),
    ], 2);
    expect(r.types[0]).toBe('welcome');
    expect(r.codes).toEqual(['UNEXPECTED_MESSAGE']);
    expect((await fetch(`${coordinator.url}/healthz`)).ok).toBe(true);
  });

  it('garbage bytes get a specific decode error and the coordinator keeps serving', async () => {
    const r = await exchange(bank1, 'bank-1', () => [new Uint8Array([1, 2, 3, 4, 5, 250, 251])], 1);
    expect(r.codes.length).toBe(1);
    expect(r.codes).toEqual(['MALFORMED']);
    const health = await fetch(`${coordinator.url}/healthz`);
    expect(health.ok).toBe(true);
    expect(registeredBanks()).toBeLessThanOrEqual(1);
    expect(coordinator.rounds.snapshot().roundsCommitted).toBe(0);
  });
});
