// Secure aggregation end to end over real sockets (issue #6): a real coordinator (socket.io server,
// SQLite state, checkpoints) and real bank agents (socket.io clients, signed protobuf frames, the
// SecAggClient state machine). Local training is replaced by a deterministic fake trainer so the
// test is about aggregation, not GAN training: each bank's plaintext update is captured AT THE BANK
// (test hook) and the committed global model must equal plain FedAvg of those updates within the
// stated quantisation bound, while everything the coordinator decoded holds only masked inputs.
// Every bank holds the consortium directory (its peers' Ed25519 keys) and verifies the signed key
// list; a bank whose directory lacks a peer refuses that round (KEY_LIST_UNKNOWN_BANK).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { runCoordinator, type CoordinatorSettings } from '../../coordinator/run-coordinator';
import { startAgent, type RunningAgent } from '../../client-node/agent';
import { AgentWire } from '../../client-node/wire';
import type { ConsortiumTargets, LocalTrainer } from '../../client-node/trainer';
import { softmaxSpanPairs, type SpanPair } from '../../shared/transformer/pair-counts';
import type { DistributedDpMechanism, SecAggInputInfo } from '../../client-node/secagg-client';
import { parseConsortiumModelConfig } from '../../client-node/local-trainer';
import { createModel } from '../../shared/model';
import { memoryLogger } from '../../shared/log/logger';
import { simulateBanks } from '../../shared/data/simulate';
import { schemaHash, validateSchema } from '../../shared/data/schema';
import { readCheckpoint } from '../../coordinator/store/checkpoint';
import { decodeFrame, generateIdentity, type ClientUpdateMessage, type DecodedMessage, type Identity, type PairTable, type SecAggAdvertiseKeysMessage } from '../../protocol';
import { ringParams } from '../../shared/secagg';
import type { ConsortiumDirectory } from '../../shared/secagg/keys';
import { secAggMeanErrorBound } from '../../coordinator/secagg-round';

type Tensors = { name: string; shape: number[]; data: Float32Array }[];

const SMALL_MODEL = { noiseDim: 8, generatorDims: [16], discriminatorDims: [16], seed: 7 };
const CLIP = 5;
// Different sizes, so that sample-count weighting matters (an unweighted mean would fail the test).
const ROWS: Record<string, number> = { 'bank-1': 500, 'bank-2': 900, 'bank-3': 1300, 'bank-4': 2100 };
// Long-term identities of the consortium's banks and the directory the operator hands every bank.
const IDENTITIES = new Map<string, Identity>(Object.keys(ROWS).map((id) => [id, generateIdentity(id)]));
const DIRECTORY: ConsortiumDirectory = new Map([...IDENTITIES].map(([id, i]) => [id, i.sign.publicKey]));

let dir: string;
let schemaPath: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-secagg-'));
  schemaPath = simulateBanks({ banks: 1, rows: 20, out: join(dir, 'data'), seed: 3 }).schemaPath;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function settings(stateDir: string, over: Partial<CoordinatorSettings['policy']> = {}): CoordinatorSettings {
  return {
    host: '127.0.0.1',
    port: 0,
    schemaPath,
    stateDir,
    model: SMALL_MODEL,
    transformer: 'simple',
    policy: { minClients: 3, maxRounds: 2, deadlineMs: 30_000, waitForClientsMs: 300, retryLimit: 2, ...over },
    plan: { localSteps: 1, batchSize: 64, lrGenerator: 2e-4, lrDiscriminator: 2e-4, dSteps: 1, loss: 'ns', updateClipNorm: CLIP },
    dp: { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 },
    maxFrameBytes: 8 * 1024 * 1024,
    secureAggregation: { stepTimeoutMs: 15_000 },
  };
}

/** Deterministic stand-in for local training: global + a pseudo-random step of norm ~2 (some banks beyond the clip). */
class FakeTrainer implements LocalTrainer {
  private weights: Tensors;
  readonly globals: Tensors[] = [];
  /** The pair targets each round trained with (RoundStart.pairTargets). */
  readonly pairTargets: (PairTable[] | undefined)[] = [];
  constructor(
    private readonly bank: number,
    initial: Tensors,
    private readonly spans: { column: string; offset: number; dim: number }[],
    private readonly pairs: { pairs: SpanPair[]; noiseMultiplier: number; rows: number } | undefined,
  ) {
    this.weights = initial;
  }
  /** When planned: tables of `rows` rows on each pair's diagonal (a strong association), consistent across pairs. */
  pairCounts(): { tables: PairTable[]; noiseMultiplier: number } | undefined {
    if (!this.pairs) return undefined;
    const { pairs, rows, noiseMultiplier } = this.pairs;
    const tables = pairs.map((p) => {
      const k = Math.min(p.a.dim, p.b.dim);
      const values = Array.from({ length: p.a.dim * p.b.dim }, (_, c) => (Math.floor(c / p.b.dim) === c % p.b.dim ? Math.floor(rows / k) + (c === 0 ? rows % k : 0) : 0));
      return { aOffset: p.a.offset, aDim: p.a.dim, bOffset: p.b.offset, bDim: p.b.dim, values };
    });
    return { tables, noiseMultiplier };
  }
  setWeights(w: Tensors): void {
    this.globals.push(w.map((t) => ({ ...t, data: t.data.slice() })));
    this.weights = w.map((t) => ({ ...t, data: t.data.slice() }));
  }
  getWeights(): Tensors {
    return this.weights;
  }
  async train(_data: unknown, plan: { seed: number }, consortium: ConsortiumTargets): Promise<Record<string, number>> {
    this.pairTargets.push(consortium.pairTargets);
    let x = (plan.seed * 31 + this.bank * 7919) >>> 0 || 1;
    const amp = this.bank === 4 ? 0.2 : 0.02; // bank 4's update exceeds the clip norm
    for (const t of this.weights) {
      for (let i = 0; i < t.data.length; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        t.data[i]! += amp * (x / 2 ** 32 - 0.5);
      }
    }
    return { lossG: 0, lossD: 0 };
  }
  conditionalSpans() {
    return this.spans;
  }
  epsilonSpent(): number {
    return 0;
  }
  delta(): number {
    return 0;
  }
  dispose(): void {}
}

interface Bank {
  id: string;
  agent: RunningAgent;
  inputs: Map<number, SecAggInputInfo>;
  trainer: () => FakeTrainer;
  log: ReturnType<typeof memoryLogger>;
  refusals: { roundId: number; code: string; message: string }[];
}

/** `directory: null` = none configured (then `unverifiedKeyLists` decides); default: the full consortium directory. */
function startBank(
  n: number,
  url: string,
  onSend?: (msg: DecodedMessage, bank: Bank) => void,
  o: { directory?: ConsortiumDirectory | null; unverifiedKeyLists?: boolean; chargeDistributedDp?: (c: { roundId: number; mechanism: DistributedDpMechanism }) => void } = {},
): Bank {
  const id = `bank-${n}`;
  let trainer: FakeTrainer | undefined;
  const inputs = new Map<number, SecAggInputInfo>();
  const log = memoryLogger(id);
  const bank: Bank = { id, agent: undefined as unknown as RunningAgent, inputs, trainer: () => trainer!, log, refusals: [] };
  bank.agent = startAgent({
    coordinatorUrl: url,
    bankId: id,
    schemaHash: schemaHash(validateSchema(JSON.parse(readFileSync(schemaPath, 'utf8')))),
    identity: IDENTITIES.get(id)!,
    ...(o.directory === null ? {} : { consortiumDirectory: o.directory ?? DIRECTORY }),
    unverifiedKeyLists: o.unverifiedKeyLists ?? false,
    onSecAggRefused: (r) => bank.refusals.push(r),
    createTrainer: async (json) => {
      const cfg = parseConsortiumModelConfig(json);
      const model = createModel(cfg.model as Parameters<typeof createModel>[0], cfg.spans);
      const initial = model.getWeights().map((t) => ({ name: t.name, shape: [...t.shape], data: Float32Array.from(t.data) }));
      const spans = model.condSpans.map((s) => ({ column: s.column, offset: s.offset, dim: s.dim }));
      const exclude = model.labelSpan ? [model.labelSpan.column] : [];
      model.dispose();
      const pairs = cfg.pairCounts ? { pairs: softmaxSpanPairs(cfg.spans, exclude), noiseMultiplier: cfg.pairCounts.noiseMultiplier, rows: ROWS[id]! } : undefined;
      trainer = new FakeTrainer(n, initial, spans, pairs);
      return trainer;
    },
    dataset: { prepare: () => ({ encoded: new Float32Array(0), rows: ROWS[id]!, publicRows: ROWS[id]!, dim: 0 }) },
    summarize: (requested) => ({ counts: requested.map((c) => ({ column: c.column, values: Array.from({ length: c.dim }, (_, i) => 50 + i) })), epsilon: 0.1, delta: 1e-6, noiseStd: 1 }),
    epsilonSpent: () => ({ epsilon: 0.1, delta: 1e-6 }),
    // Noise at the planned multiplier (sd z·√pairs), as client-node/dp-pair-counts.ts adds it (no ledger here).
    releasePairCounts: (exact, z) => {
      const sd = z * Math.sqrt(exact.length);
      return { tables: exact.map((t) => ({ ...t, values: t.values.map((v, j) => v + sd * Math.sin(7 * j + n)) })), noiseSd: sd, epsilon: 0.1, cached: false };
    },
    log,
    exitWhenFinished: true,
    reconnectDelayMs: 200,
    onSecAggInput: (info) => inputs.set(info.roundId, info),
    ...(o.chargeDistributedDp ? { chargeDistributedDp: o.chargeDistributedDp } : {}),
    ...(onSend ? { onSend: (bytes: Uint8Array) => onSend(decodeFrame(bytes), bank) } : {}),
  });
  return bank;
}

/** A bank with no consortium directory: refusing secure aggregation, or explicitly opted out of verification. */
function startBankWithout(n: number, url: string, unverifiedKeyLists: boolean): Bank {
  return startBank(n, url, undefined, { directory: null, unverifiedKeyLists });
}

/** Plain FedAvg step: global + Σ m_k u_k / Σ m_k, in float64. */
function fedAvgStep(global: Tensors, updates: { update: Tensors; sampleCount: number }[]): Float64Array[] {
  const total = updates.reduce((s, u) => s + u.sampleCount, 0);
  return global.map((g, ti) => {
    const out = Float64Array.from(g.data);
    for (const u of updates) for (let j = 0; j < out.length; j++) out[j]! += (u.sampleCount / total) * u.update[ti]!.data[j]!;
    return out;
  });
}

function maxDiff(a: Tensors, b: Float64Array[]): number {
  let m = 0;
  a.forEach((t, i) => t.data.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i]![j]!)))));
  return m;
}

const concat = (ts: { data: Uint32Array }[]): Uint32Array => {
  const out = new Uint32Array(ts.reduce((s, t) => s + t.data.length, 0));
  let at = 0;
  for (const t of ts) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
};

/** Bound on |secure − plain FedAvg| per coordinate: quantisation (stated bound) + float32 storage of the model. */
function tolerance(cohort: number, summed: number, totalWeight: number, maxAbsWeight: number): number {
  const scale = ringParams({ clipNorm: CLIP, maxBanks: cohort }).scale;
  return secAggMeanErrorBound({ scale, weightCap: 1 << 20 }, summed, totalWeight) + 4 * maxAbsWeight * 2 ** -23;
}

describe('secure aggregation over real sockets', () => {
  it('3 banks complete 2 rounds; the global model is plain FedAvg within the quantisation bound; the coordinator only saw masked inputs', async () => {
    const stateDir = join(dir, 'state-3');
    const received: { bank: string | undefined; msg: DecodedMessage }[] = [];
    const coordinator = await runCoordinator(settings(stateDir), { exitWhenFinished: false, log: memoryLogger('coordinator'), onFrame: (bank, msg) => received.push({ bank, msg }) });
    try {
      const status = (await (await fetch(`${coordinator.url}/status`)).json()) as { secureAggregation: { enabled: boolean } };
      expect(status.secureAggregation.enabled).toBe(true);
      const banks = [1, 2, 3].map((n) => startBank(n, coordinator.url));
      await coordinator.finished;
      await Promise.all(banks.map((b) => b.agent.done));
      expect(coordinator.rounds.snapshot().roundsCommitted).toBe(2);

      // Globals the banks received: round 1 starts from G0, round 2 from G1; the checkpoint is G2.
      const g = banks[0]!.trainer().globals;
      expect(g.length).toBe(2);
      const ckpt = readCheckpoint(join(stateDir, 'latest.ckpt'));
      const g2 = ckpt.tensors as Tensors;
      for (const [round, from, to] of [[1, g[0]!, g[1]!], [2, g[1]!, g2]] as const) {
        const updates = banks.map((b) => b.inputs.get(round)!);
        expect(updates.every((u) => u !== undefined)).toBe(true);
        const expected = fedAvgStep(from, updates);
        const total = updates.reduce((s, u) => s + u.sampleCount, 0);
        const maxAbs = Math.max(...expected.map((t) => t.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
        const diff = maxDiff(to, expected);
        expect(diff).toBeLessThanOrEqual(tolerance(3, 3, total, maxAbs));
        // Sanity: the step is far larger than the bound, so the comparison has teeth.
        expect(maxDiff(to, from.map((t) => Float64Array.from(t.data)))).toBeGreaterThan(100 * tolerance(3, 3, total, maxAbs));
        // An unweighted mean would not pass.
        const unweighted = fedAvgStep(from, updates.map((u) => ({ ...u, sampleCount: 1 })));
        expect(maxDiff(to, unweighted)).toBeGreaterThan(10 * tolerance(3, 3, total, maxAbs));
      }

      // Everything the coordinator decoded from banks: no plaintext update, and every masked input
      // differs from the bank's own quantised input and looks uniform over Z_2^32.
      const updates = received.filter((r) => r.msg.type === 'clientUpdate').map((r) => ({ bank: r.bank!, msg: r.msg as ClientUpdateMessage }));
      expect(updates.length).toBe(6);
      for (const { bank, msg } of updates) {
        expect(msg.tensors).toEqual([]);
        const masked = concat(msg.maskedTensors!);
        const plain = banks.find((b) => b.id === bank)!.inputs.get(msg.roundId)!.ring;
        expect(masked.length).toBe(plain.length);
        let equal = 0;
        let middle = 0;
        let plainMiddle = 0;
        let sum = 0;
        for (let i = 0; i < masked.length; i++) {
          if (masked[i] === plain[i]) equal++;
          if (masked[i]! >= 2 ** 30 && masked[i]! < 3 * 2 ** 30) middle++;
          if (plain[i]! >= 2 ** 30 && plain[i]! < 3 * 2 ** 30) plainMiddle++;
          sum += masked[i]! / 2 ** 32;
        }
        const d = masked.length;
        expect(equal / d).toBeLessThan(0.01);
        expect(Math.abs(middle / d - 0.5)).toBeLessThan(0.05); // uniform: half the ring is the middle half
        expect(plainMiddle / d).toBeLessThan(0.01); // a plain quantised update sits near 0 (small signed values)
        expect(Math.abs(sum / d - 0.5)).toBeLessThan(0.03);
      }
      // Every advert the coordinator relayed carries the bank's Ed25519 signature; every bank verified the list.
      const adverts = received.filter((r) => r.msg.type === 'secaggAdvertiseKeys');
      expect(adverts.length).toBe(6);
      for (const a of adverts) expect((a.msg as SecAggAdvertiseKeysMessage).signature?.length).toBe(64);
      for (const b of banks) {
        const accepted = b.log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'secagg_key_list_accepted');
        expect(accepted.map((e) => [e.round, e.verification])).toEqual([[1, 'verified'], [2, 'verified']]);
        expect(b.refusals).toEqual([]);
      }
      const types = new Set(received.map((r) => r.msg.type));
      expect([...types].sort()).toEqual(['clientUpdate', 'register', 'secaggAdvertiseKeys', 'secaggShareKeys', 'secaggUnmaskResponse', 'summary'].sort());
    } finally {
      await coordinator.close();
    }
  }, 40_000);

  it.each([
    ['after sending its shares (its masks are removed, its input is not in the sum)', 'secaggShareKeys', false],
    ['after sending its masked input (its input stays in the sum)', 'clientUpdate', true],
  ] as const)('a bank that drops %s: the round completes with the right sum', async (_what, dropAfter, counted) => {
    const stateDir = join(dir, `state-drop-${dropAfter}`);
    const log = memoryLogger('coordinator');
    // Wait long enough for all four banks to join, so the round's cohort includes the victim.
    const victim = 'bank-4';
    let banks: Bank[] = [];
    const coordinator = await runCoordinator(settings(stateDir, { maxRounds: 1, waitForClientsMs: 1500 }), {
      exitWhenFinished: false,
      log,
      // The victim vanishes as soon as its frame has reached the coordinator (before the next step).
      onFrame: (bank, msg) => {
        if (bank === victim && msg.type === dropAfter) banks.find((b) => b.id === victim)!.agent.stop();
      },
    });
    try {
      banks = [1, 2, 3, 4].map((n) => startBank(n, coordinator.url));
      await coordinator.finished;
      await Promise.all(banks.map((b) => b.agent.done));
      const events = log.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(events.find((e) => e.event === 'round_started')).toMatchObject({ participants: ['bank-1', 'bank-2', 'bank-3', 'bank-4'] });
      const committed = events.find((e) => e.event === 'round_committed')!;
      expect(committed).toMatchObject({ round: 1, banks: counted ? 4 : 3 });
      const unmasked = events.find((e) => e.event === 'secagg_unmasked')!;
      expect(unmasked.dropped).toEqual(counted ? [] : [victim]);
      expect(unmasked.survivors).toEqual(counted ? ['bank-1', 'bank-2', 'bank-3', 'bank-4'] : ['bank-1', 'bank-2', 'bank-3']);

      const summed = banks.filter((b) => counted || b.id !== victim);
      const updates = summed.map((b) => b.inputs.get(1)!);
      const from = banks[0]!.trainer().globals[0]!;
      const expected = fedAvgStep(from, updates);
      const total = updates.reduce((s, u) => s + u.sampleCount, 0);
      const maxAbs = Math.max(...expected.map((t) => t.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
      const got = readCheckpoint(join(stateDir, 'latest.ckpt')).tensors as Tensors;
      const bound = tolerance(4, summed.length, total, maxAbs);
      expect(maxDiff(got, expected)).toBeLessThanOrEqual(bound);
      if (counted) {
        // Leaving the victim's input out would be far off: the check can fail.
        expect(maxDiff(got, fedAvgStep(from, updates.slice(0, 3)))).toBeGreaterThan(10 * bound);
      } else {
        expect(banks[3]!.inputs.get(1)).toBeUndefined(); // it vanished before masking anything
      }
    } finally {
      await coordinator.close();
    }
  }, 40_000);

  it('--generator-ema: the checkpoint publishes the generator and the classifier averaged over rounds, while banks keep training the plain FedAvg model', async () => {
    const stateDir = join(dir, 'state-ema');
    const beta = 0.5;
    // With pair counts: DP-noised tables travel in the clear beside the masked updates.
    const received: DecodedMessage[] = [];
    const coordinator = await runCoordinator({ ...settings(stateDir), generatorEma: beta, pairCounts: { noiseMultiplier: 2, weight: 10 } }, { exitWhenFinished: false, log: memoryLogger('coordinator'), onFrame: (_b, m) => received.push(m) });
    try {
      const banks = [1, 2, 3].map((n) => startBank(n, coordinator.url));
      await coordinator.finished;
      await Promise.all(banks.map((b) => b.agent.done));
      // Each masked update carried the bank's noisy tables; round 1 trained without targets, round 2 with
      // the targets merged from all three banks' tables (the diagonal association kept).
      const withPairs = received.filter((m) => m.type === 'clientUpdate' && m.maskedTensors !== undefined && m.pairCounts !== undefined);
      expect(withPairs).toHaveLength(6);
      // The operator's status says whose tables are held and how many targets the last round had.
      const status = (await (await fetch(`${coordinator.url}/status`)).json()) as { pairCounts?: { pairs: number; banks: string[]; targetsInOpenRound: number } };
      expect(status.pairCounts?.banks).toEqual(['bank-1', 'bank-2', 'bank-3']);
      expect(status.pairCounts?.targetsInOpenRound).toBe(banks[0]!.trainer().pairTargets[1]!.length);
      expect(status.pairCounts?.pairs).toBeGreaterThanOrEqual(status.pairCounts!.targetsInOpenRound);
      for (const b of banks) {
        const [t1, t2] = b.trainer().pairTargets;
        expect(t1).toBeUndefined();
        expect(t2!.length).toBeGreaterThan(0);
        const first = t2![0]!;
        const diagonal = first.values.filter((_, c) => Math.floor(c / first.bDim) === c % first.bDim).reduce((x, y) => x + y, 0);
        expect(diagonal / first.values.reduce((x, y) => x + y, 0)).toBeGreaterThan(0.9);
      }
      const g = banks[0]!.trainer().globals; // G0 (initial), then what round 2 trained from
      const fedAvg1 = fedAvgStep(g[0]!, banks.map((b) => b.inputs.get(1)!));
      const fedAvg2 = fedAvgStep(g[1]!, banks.map((b) => b.inputs.get(2)!));
      const total = banks.reduce((s, b) => s + b.inputs.get(2)!.sampleCount, 0);
      const tol = tolerance(3, 3, total, 1);
      // Round 2 started from plain FedAvg of round 1 (nothing averaged in yet: round 1 publishes FedAvg as is).
      expect(maxDiff(g[1]!, fedAvg1)).toBeLessThanOrEqual(tol);
      // The checkpoint: G and C = β·(round 1) + (1 − β)·(round 2 FedAvg); D = round 2 FedAvg.
      const ckpt = readCheckpoint(join(stateDir, 'latest.ckpt')).tensors as Tensors;
      const isG = (t: { name: string }) => t.name.startsWith('G/') || t.name.startsWith('C/');
      const expected = fedAvg2.map((d, i) => (isG(ckpt[i]!) ? d.map((v, j) => beta * fedAvg1[i]![j]! + (1 - beta) * v) : d));
      expect(ckpt.some(isG) && ckpt.some((t) => !isG(t)) && ckpt.some((t) => t.name.startsWith('C/'))).toBe(true);
      expect(maxDiff(ckpt, expected)).toBeLessThanOrEqual(2 * tol);
      // And it differs from plain FedAvg in G (the test can fail): by far more than the tolerance.
      const gOnly = (ts: Tensors) => ts.filter(isG);
      expect(maxDiff(gOnly(ckpt), fedAvg2.filter((_, i) => isG(ckpt[i]!)))).toBeGreaterThan(100 * tol);
      // The model cards say so: version 1 is FedAvg as is, version 2 averaged with β = 0.5.
      const card = async (v: string) => (await (await fetch(`${coordinator.url}/models/${v}/card`)).json()) as { modelVersion: number; generatorEma: number };
      expect(await card('1')).toMatchObject({ modelVersion: 1, generatorEma: 0 });
      expect(await card('latest')).toMatchObject({ modelVersion: 2, generatorEma: 0.5 });
    } finally {
      await coordinator.close();
    }
  }, 40_000);

  it('distributed DP: each bank charges the Skellam mechanism before adding its noise in the ring; the committed mean carries noise of the planned std', async () => {
    const stateDir = join(dir, 'state-ddp');
    const z = 0.5;
    const coordinatorLog = memoryLogger('coordinator');
    const s = settings(stateDir, { maxRounds: 1 });
    s.secureAggregation = { stepTimeoutMs: 15_000, distributedDp: { noiseMultiplier: z } };
    const coordinator = await runCoordinator(s, { exitWhenFinished: false, log: coordinatorLog });
    try {
      const events: string[] = [];
      const charges = new Map<string, { roundId: number; mechanism: DistributedDpMechanism }>();
      const banks = [1, 2, 3].map((n) =>
        startBank(n, coordinator.url, undefined, {
          chargeDistributedDp: (c) => {
            events.push(`charge:bank-${n}`);
            charges.set(`bank-${n}`, c);
          },
        }),
      );
      for (const b of banks) {
        const orig = b.inputs.set.bind(b.inputs);
        b.inputs.set = (k, v) => {
          events.push(`input:${b.id}`);
          return orig(k, v);
        };
      }
      await coordinator.finished;
      await Promise.all(banks.map((b) => b.agent.done));
      expect(coordinator.rounds.snapshot().roundsCommitted).toBe(1);
      // Every bank charged first, then encoded (noise drawn) and masked.
      for (const b of banks) expect(events.indexOf(`charge:${b.id}`)).toBeLessThan(events.indexOf(`input:${b.id}`));
      expect(events.indexOf(`charge:bank-1`)).toBeGreaterThanOrEqual(0);
      // The banks re-derived the same mechanism from the public round parameters, at least as noisy as asked.
      const mechs = banks.map((b) => charges.get(b.id)!.mechanism);
      for (const m of mechs) {
        expect(m.noiseMultiplier).toBeGreaterThanOrEqual(z * (1 - 1e-9));
        expect(m.noiseMultiplier).toBeLessThan(z * 1.01);
        expect(m).toEqual(mechs[0]);
      }
      const planned = coordinatorLog.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.event === 'secagg_distributed_dp')!;
      expect(planned).toBeDefined();
      const scale = planned.scale as number;
      const muPerBank = mechs[0]!.mu / 2; // t = 2 of 3 guaranteed: mechanism.mu = t·μ
      // Equal weights under distributed DP (W = 1): mean = Σ u_k / 3 + Σ noise / (3·scale).
      const g0 = banks[0]!.trainer().globals[0]!;
      const g1 = readCheckpoint(join(stateDir, 'latest.ckpt')).tensors as Tensors;
      const updates = banks.map((b) => ({ ...b.inputs.get(1)!, sampleCount: 1 }));
      const expected = fedAvgStep(g0, updates);
      let sq = 0;
      let n = 0;
      g1.forEach((t, i) => t.data.forEach((v, j) => {
        const r = v - expected[i]![j]!;
        sq += r * r;
        n++;
      }));
      const std = Math.sqrt(sq / n);
      const want = Math.sqrt(2 * 3 * muPerBank) / scale / 3;
      expect(n).toBeGreaterThan(500);
      expect(std / want).toBeGreaterThan(0.85);
      expect(std / want).toBeLessThan(1.15);
      // The noise is what the residual is made of: far above the no-DP quantisation bound.
      expect(std).toBeGreaterThan(1000 / scale);
    } finally {
      await coordinator.close();
    }
  }, 40_000);

  it('a bank whose consortium directory lacks a peer refuses that round (KEY_LIST_UNKNOWN_BANK, no shares sent); the others complete it', async () => {
    const stateDir = join(dir, 'state-directory-gap');
    const log = memoryLogger('coordinator');
    const coordinator = await runCoordinator(settings(stateDir, { maxRounds: 1, waitForClientsMs: 1500 }), { exitWhenFinished: false, log });
    const sentBy = new Map<string, string[]>();
    const record = (msg: DecodedMessage, bank: Bank) => sentBy.set(bank.id, [...(sentBy.get(bank.id) ?? []), msg.type]);
    try {
      const partial = new Map([...DIRECTORY].filter(([id]) => id !== 'bank-4'));
      const banks = [1, 2, 3, 4].map((n) => startBank(n, coordinator.url, record, n === 1 ? { directory: partial } : {}));
      await coordinator.finished;
      await Promise.all(banks.map((b) => b.agent.done));
      const events = log.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(events.find((e) => e.event === 'round_started')).toMatchObject({ participants: ['bank-1', 'bank-2', 'bank-3', 'bank-4'] });

      // bank-1: the refusal with its specific code, in its log and its status hook; it shared nothing.
      const refusedBy1 = banks[0]!.log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'secagg_round_refused');
      expect(refusedBy1).toHaveLength(1);
      expect(refusedBy1[0]).toMatchObject({ level: 'error', code: 'KEY_LIST_UNKNOWN_BANK', round: 1, step: 'secaggKeyList', verification: 'verified' });
      expect(String(refusedBy1[0]!.error)).toMatch(/'bank-4', which is not in this bank's consortium directory/);
      expect(banks[0]!.refusals).toMatchObject([{ roundId: 1, code: 'KEY_LIST_UNKNOWN_BANK' }]);
      expect(sentBy.get('bank-1')).toContain('secaggAdvertiseKeys');
      expect(sentBy.get('bank-1')).not.toContain('secaggShareKeys');
      expect(sentBy.get('bank-1')).not.toContain('clientUpdate');
      expect(sentBy.get('bank-1')).toContain('secaggAbort'); // and told the coordinator why
      expect(banks[0]!.inputs.size).toBe(0); // it never masked anything

      // The coordinator dropped bank-1 on its abort, logged the bank's code, counted it, and completed the round with the other three.
      expect(events.find((e) => e.event === 'secagg_bank_aborted' && e.bank === 'bank-1')).toMatchObject({ level: 'warn', round: 1, code: 'KEY_LIST_UNKNOWN_BANK', step: 'shares' });
      expect(await (await fetch(`${coordinator.url}/metrics`)).text()).toContain('fedsynth_secagg_aborts_total{code="KEY_LIST_UNKNOWN_BANK"} 1');
      expect(events.find((e) => e.event === 'round_committed')).toMatchObject({ round: 1, banks: 3 });
      const unmasked = events.find((e) => e.event === 'secagg_unmasked')!;
      expect(unmasked.survivors).toEqual(['bank-2', 'bank-3', 'bank-4']);
      for (const b of banks.slice(1)) expect(b.refusals).toEqual([]);
      const updates = banks.slice(1).map((b) => b.inputs.get(1)!);
      const from = banks[1]!.trainer().globals[0]!;
      const expected = fedAvgStep(from, updates);
      const total = updates.reduce((s, u) => s + u.sampleCount, 0);
      const maxAbs = Math.max(...expected.map((t) => t.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
      expect(maxDiff(readCheckpoint(join(stateDir, 'latest.ckpt')).tensors as Tensors, expected)).toBeLessThanOrEqual(tolerance(4, 3, total, maxAbs));
    } finally {
      await coordinator.close();
    }
  }, 40_000);

  it('without a consortium directory a bank refuses secure-aggregation rounds unless explicitly opted out, and says so at start', async () => {
    const coordinator = await runCoordinator(settings(join(dir, 'state-no-directory'), { maxRounds: 1, waitForClientsMs: 1500 }), { exitWhenFinished: false, log: memoryLogger('c') });
    try {
      const none = startBankWithout(1, coordinator.url, false);
      const optedOut = startBankWithout(2, coordinator.url, true);
      const banks = [none, optedOut, startBank(3, coordinator.url), startBank(4, coordinator.url)];
      await coordinator.finished;
      await Promise.all(banks.map((b) => b.agent.done));
      const ev = (b: Bank) => b.log.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(ev(none).find((e) => e.event === 'secagg_key_verification')).toMatchObject({ level: 'warn', verification: 'refused' });
      expect(ev(none).find((e) => e.event === 'secagg_round_refused')).toMatchObject({ code: 'KEY_LIST_NO_DIRECTORY', round: 1, step: 'roundStart' });
      expect(none.inputs.size).toBe(0);
      expect(ev(optedOut).find((e) => e.event === 'secagg_key_verification')).toMatchObject({ level: 'warn', verification: 'unverified' });
      expect(ev(optedOut).find((e) => e.event === 'secagg_key_list_accepted')).toMatchObject({ round: 1, verification: 'unverified' });
      expect(optedOut.inputs.get(1)).toBeDefined();
    } finally {
      await coordinator.close();
    }
  }, 40_000);

  it('a directory that does not list this bank with its own key is a start-up error', () => {
    const other = generateIdentity('bank-1');
    const base = { coordinatorUrl: 'http://127.0.0.1:1', bankId: 'bank-1', schemaHash: 'x', createTrainer: async () => { throw new Error('unused'); }, dataset: { prepare: () => ({ encoded: new Float32Array(0), rows: 1, publicRows: 1, dim: 0 }) }, summarize: () => ({ counts: [], epsilon: 1, delta: 0, noiseStd: 1 }), epsilonSpent: () => ({ epsilon: 0, delta: 0 }), log: memoryLogger('x') };
    expect(() => startAgent({ ...base, identity: other, consortiumDirectory: DIRECTORY })).toThrow(/lists 'bank-1' with key .* but this bank's identity key is/);
    expect(() => startAgent({ ...base, identity: IDENTITIES.get('bank-1')!, consortiumDirectory: new Map([...DIRECTORY].filter(([id]) => id !== 'bank-1')) })).toThrow(/does not list this bank/);
  });

  it('refuses to start with rounds of 2 banks unless secure aggregation is explicitly opted out', async () => {
    const s = settings(join(dir, 'state-2'), { minClients: 2 });
    await expect(runCoordinator(s, { exitWhenFinished: false, log: memoryLogger('c') })).rejects.toThrow(/at least 3 banks.*--insecure-aggregation/s);
    const opted = await runCoordinator({ ...s, insecureAggregation: true }, { exitWhenFinished: false, log: memoryLogger('c') });
    try {
      const status = (await (await fetch(`${opted.url}/status`)).json()) as { secureAggregation: { enabled: boolean } };
      expect(status.secureAggregation.enabled).toBe(false);
    } finally {
      await opted.close();
    }
  });

  it('refuses a plaintext update with SECURE_AGGREGATION_REQUIRED, before decoding it', async () => {
    const coordinator = await runCoordinator(settings(join(dir, 'state-plain')), { exitWhenFinished: false, log: memoryLogger('c') });
    const wire = new AgentWire({ bankId: 'bank-9', identity: generateIdentity('bank-9'), maxFrameBytes: 8 * 1024 * 1024 });
    const socket = io(coordinator.url, { transports: ['websocket'], reconnection: false });
    try {
      const replies: DecodedMessage[] = [];
      socket.on('frame', (b: Uint8Array) => {
        const d = wire.decode(b);
        if (d.ok) replies.push(d.message);
      });
      await new Promise<void>((r) => socket.once('connect', () => r()));
      socket.emit('frame', wire.register(schemaHash(validateSchema(JSON.parse(readFileSync(schemaPath, 'utf8'))))));
      const until = Date.now() + 5000;
      while (!replies.some((m) => m.type === 'welcome') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      const tensors = [{ name: 'x', shape: [2], data: new Float32Array([1, 2]) }];
      socket.emit('frame', wire.update({ roundId: 1, modelVersion: 0, sampleCount: 10, tensors, metrics: {}, epsilonSpent: 0, delta: 0 }));
      while (!replies.some((m) => m.type === 'error') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(replies.find((m) => m.type === 'error')).toMatchObject({ code: 'SECURE_AGGREGATION_REQUIRED' });
    } finally {
      socket.close();
      await coordinator.close();
    }
  });
});
