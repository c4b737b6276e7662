// End to end over real sockets on loopback: a real coordinator (socket.io server, SQLite state,
// checkpoint files), real bank agents (socket.io clients, tfjs wasm training, signed protobuf
// frames), real CSV files produced by the simulator.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCoordinator, type CoordinatorSettings } from '../../coordinator/run-coordinator';
import { ROW_COUNT_CACHE_FILE, runAgent } from '../../client-node/run-agent';
import { ROW_COUNT_NOISE_SD } from '../../client-node/dp-row-count';
import { memoryLogger } from '../../shared/log/logger';
import { simulateBanks } from '../../shared/data/simulate';
import { startRecordingProxy } from '../helpers/tcp-proxy';
import { readCheckpoint } from '../../coordinator/store/checkpoint';
import { rowsForClassMinimum, sampleRows } from '../../shared/sampling/sampler';
import { parseLabelCalibration } from '../../shared/model/label-calibration';

const CLI = resolve(__dirname, '../../bin/fedsynth.mjs');
const SMALL_MODEL = { noiseDim: 16, generatorDims: [32, 32], discriminatorDims: [32, 32], seed: 7 };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-it-'));
  // 24,000 rows: about 100 fraud rows, enough for the label calibration's counts to say something.
  simulateBanks({ banks: 3, rows: 24_000, out: join(dir, 'data'), seed: 11 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function settings(stateDir: string, over: Partial<CoordinatorSettings['policy']> = {}): CoordinatorSettings {
  return {
    host: '127.0.0.1',
    port: 0,
    schemaPath: join(dir, 'data', 'schema.json'),
    stateDir,
    model: SMALL_MODEL,
    policy: { minClients: 2, maxRounds: 2, deadlineMs: 60_000, waitForClientsMs: 200, retryLimit: 0, ...over },
    plan: { localSteps: 3, batchSize: 64, lrGenerator: 2e-4, lrDiscriminator: 2e-4, dSteps: 1, loss: 'ns', updateClipNorm: 5 },
    dp: { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 },
    maxFrameBytes: 8 * 1024 * 1024,
    // Rounds of 2 banks: secure aggregation needs ≥ 3, so these tests opt out explicitly.
    insecureAggregation: true,
  };
}

function agentOpts(bank: number, url: string, stateDir: string) {
  return {
    coordinatorUrl: url,
    bankId: `bank-${bank}`,
    dataPath: join(dir, 'data', `bank-${bank}.csv`),
    schemaPath: join(dir, 'data', 'schema.json'),
    stateDir,
    exitWhenFinished: true,
    maxRowProblems: 10,
    epsilonMax: 1,
    summaryEpsilon: 0.2,
    log: memoryLogger(`bank-${bank}`),
  };
}

describe('consortium over real sockets', () => {
  it('a coordinator and 2 banks complete 2 rounds, checkpoint the model, and no raw data leaves a bank', async () => {
    // Plant a canary in bank 1's CSV: a transaction id no one could guess. It must never be on the wire.
    const canary = `canary-${Math.random().toString(36).slice(2)}-${Date.now()}`;
    const csv = join(dir, 'data', 'bank-1.csv');
    const original = readFileSync(csv, 'utf8');
    const lines = original.trimEnd().split('\n');
    const header = lines[0]!.split(',');
    const row = lines[1]!.split(',');
    row[header.indexOf('transaction_id')] = canary;
    appendFileSync(csv, row.join(',') + '\n');

    const stateDir = join(dir, 'state-a');
    const log = memoryLogger('coordinator');
    // With label calibration after the last round, at a noise multiplier small enough (0.5; the
    // CLI's default is 20) for a test-sized fraud class to clear the fit's floor of 3 noise sds.
    // With point masses (--point-masses): the fitted transformer says so in every checkpoint.
    // With pair counts (--pair-counts-noise 2): each bank releases its two-way counts with its updates.
    const coordinator = await runCoordinator({ ...settings(stateDir), labelCalibrationNoise: 0.5, labelCalibrationTimeoutMs: 5000, pointMasses: true, pairCounts: { noiseMultiplier: 2, weight: 10 } }, { exitWhenFinished: false, log });
    const proxy = await startRecordingProxy(coordinator.port);
    try {
      // Bank 1's budget affords the calibration release at that noise (ε ≈ 12 on its own).
      const a1 = runAgent({ ...agentOpts(1, `http://127.0.0.1:${proxy.port}`, join(dir, 'bank-1-state')), epsilonMax: 50 });
      // Bank 2 also runs client-level DP (DP-FedAvg noise on its update), charged per round.
      // Bank 2 opts out of the label calibration release (--no-label-calibration) and of the pair counts (--no-pair-counts).
      const a2 = runAgent({ ...agentOpts(2, coordinator.url, join(dir, 'bank-2-state')), epsilonMax: 50, clientDp: { noiseMultiplier: 4, banks: 1 }, labelCalibration: false, pairCounts: false });
      await coordinator.finished;
      await Promise.all([a1, a2]);

      const snap = coordinator.rounds.snapshot();
      expect(snap.roundsCommitted).toBe(2);
      expect(snap.modelVersion).toBe(2);
      const ledger2 = readFileSync(join(dir, 'bank-2-state', 'privacy-ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(ledger2.filter((e) => e.kind === 'client-level').map((e) => e.round)).toEqual([1, 2]);
      expect(ledger2.filter((e) => e.kind === 'client-level').every((e) => e.params.sigma === 4)).toBe(true);
      const ledger1 = readFileSync(join(dir, 'bank-1-state', 'privacy-ledger.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(ledger1.some((e) => e.kind === 'client-level')).toBe(false);
      // The summary reached the coordinator with a noise sd per column: the target's (is_fraud,
      // half the summary's privacy loss) the smallest, at the ledger's one charge for the summary.
      const received = log.lines.map((l) => JSON.parse(l)).filter((e) => e.event === 'summary_received' && e.bank === 'bank-1');
      expect(received).toHaveLength(1);
      const sds = received[0].noiseStd as number[];
      // The bank's first release is its row count (Gaussian, sensitivity 1); the FedAvg weight the
      // coordinator got in every round is that released count, whatever the exact one.
      expect(ledger1[0]).toMatchObject({ seq: 0, kind: 'counts', params: { sigma: ROW_COUNT_NOISE_SD, sensitivity: 1 } });
      expect(ledger1[0].note).toMatch(/^row count/);
      const rowCount = JSON.parse(readFileSync(join(dir, 'bank-1-state', ROW_COUNT_CACHE_FILE), 'utf8')) as { exactRows: number; released: number };
      expect(rowCount.exactRows).toBe(readFileSync(csv, 'utf8').trimEnd().split('\n').length - 1); // the CSV's rows, the canary's included
      const weights1 = log.lines.map((l) => JSON.parse(l)).filter((e) => e.event === 'update_received' && e.bank === 'bank-1');
      expect(weights1.length).toBeGreaterThanOrEqual(2);
      expect(weights1.every((e) => e.samples === rowCount.released)).toBe(true);
      const counts = ledger1.filter((e) => e.kind === 'counts' && !/^(label calibration|row count|two-way counts)/.test(String(e.note)));
      expect(counts).toHaveLength(1);
      const z = counts[0].params.sigma / counts[0].params.sensitivity;
      expect(Math.min(...sds)).toBeCloseTo(z * Math.SQRT2, 2);
      expect(Math.max(...sds)).toBeCloseTo(z * Math.sqrt(2 * (sds.length - 1)), 2);
      // Bank 1's pair counts: released once (sd 2·√pairs, sensitivity √pairs), before its first update;
      // the coordinator merged them into the targets of round 2. Bank 2 opted out: nothing in its ledger.
      const pairsOf = (ledger: { kind: string; note?: string }[]) => ledger.filter((e) => e.kind === 'counts' && String(e.note).startsWith('two-way counts'));
      const pc = pairsOf(ledger1) as unknown as { params: { sigma: number; sensitivity: number } }[];
      expect(pc).toHaveLength(1);
      expect(pc[0]!.params.sigma / pc[0]!.params.sensitivity).toBeCloseTo(2, 10);
      expect(pc[0]!.params.sensitivity).toBeGreaterThan(1);
      expect(pairsOf(ledger2)).toHaveLength(0);
      const coordEvents = log.lines.map((l) => JSON.parse(l));
      expect(coordEvents.filter((e) => e.event === 'pair_counts_received').map((e) => e.bank)).toEqual(['bank-1']);
      const mergedPairs = coordEvents.filter((e) => e.event === 'pair_targets_merged');
      expect(mergedPairs.map((e) => e.round)).toEqual([2]);
      expect(mergedPairs[0]).toMatchObject({ banks: ['bank-1'], pairs: Math.round(pc[0]!.params.sensitivity ** 2) });
      expect(mergedPairs[0].kept).toBeGreaterThan(0);
      const committed = log.lines.map((l) => JSON.parse(l)).filter((e) => e.event === 'round_committed');
      expect(committed.map((e) => e.round)).toEqual([1, 2]);
      expect(committed.every((e) => e.banks === 2)).toBe(true);

      // After the last round bank 1 released its calibration counts once, charged to its ledger at
      // the planned noise (sd 0.5·√2 per count, sensitivity √2) before they were sent; bank 2 opted out ...
      const calibrationOf = (ledger: { kind: string; note?: string }[]) => ledger.filter((e) => e.kind === 'counts' && String(e.note).startsWith('label calibration'));
      const cal = calibrationOf(ledger1) as unknown as { seq: number; params: { sigma: number; sensitivity: number } }[];
      expect(cal).toHaveLength(1);
      expect(cal[0]!.params.sensitivity).toBeCloseTo(Math.SQRT2, 12);
      expect(cal[0]!.params.sigma).toBeCloseTo(0.5 * Math.SQRT2, 10);
      expect(cal[0]!.seq).toBe(ledger1[ledger1.length - 1].seq); // the last release of the run
      expect(calibrationOf(ledger2)).toHaveLength(0);
      expect(readFileSync(join(dir, 'bank-2-state', 'privacy-ledger.jsonl'), 'utf8')).not.toContain('label calibration');
      // ... and the coordinator, after waiting for bank 2 until its timeout, published the map fitted
      // to bank 1's counts as the next model version (3, of version 2).
      const events = log.lines.map((l) => JSON.parse(l));
      expect(events.filter((e) => e.event === 'label_calibration_received').map((e) => e.bank)).toEqual(['bank-1']);
      const published = events.find((e) => e.event === 'label_calibration_published');
      expect(published).toMatchObject({ modelVersion: 3, ofVersion: 2, banks: ['bank-1'], missing: ['bank-2'] });
      // The latest checkpoint is a valid file holding weights, no rows.
      const ckpt = readCheckpoint(join(stateDir, 'latest.ckpt'));
      expect(ckpt.version).toBe(3);
      const v2 = readCheckpoint(join(stateDir, 'checkpoints', readdirSync(join(stateDir, 'checkpoints')).find((f) => f.includes('000002'))!));
      expect(ckpt.tensors.map((t) => Array.from(t.data))).toEqual(v2.tensors.map((t) => Array.from(t.data)));
      const calibration = parseLabelCalibration(ckpt.meta.labelCalibration, 2);
      expect(calibration.knots.length).toBeGreaterThanOrEqual(1);
      expect(v2.meta.labelCalibration).toBeUndefined();
      expect(ckpt.tensors.length).toBeGreaterThan(0);
      // The transformer in it was fitted from the banks' DP summaries (mixtures, no rows) and samples.
      const state = ckpt.transformer as { kind: string; pointMasses?: boolean; columns?: { column: string; kind: string; mixture?: { means: number[] } }[] };
      expect(state.kind).toBe('gmm');
      expect(state.pointMasses).toBe(true);
      expect(state.columns!.find((c) => c.column === 'amount')!.mixture!.means.length).toBeGreaterThanOrEqual(1);
      const { rows, columns } = sampleRows(ckpt as Parameters<typeof sampleRows>[0], 50, { seed: 3 });
      expect(rows.length).toBe(50);
      expect(columns).toContain('is_fraud');
      const fraud = sampleRows(ckpt as Parameters<typeof sampleRows>[0], 20, { seed: 4, where: { column: 'is_fraud', value: '1' } });
      expect(fraud.rows.every((r) => r[columns.indexOf('is_fraud')] === 1)).toBe(true);
      // `fedsynth sample --min-class-rows`: more rows than --rows where the rare class needs them.
      const out = join(dir, 'min-class.csv');
      const said = execFileSync(process.execPath, [CLI, 'sample', '--model', join(stateDir, 'latest.ckpt'), '--rows', '50', '--min-class-rows', '30', '--seed', '5', '--out', out], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      expect(said.trim()).toBe(out);
      const need = rowsForClassMinimum(ckpt as Parameters<typeof rowsForClassMinimum>[0], 50, 30);
      expect(need.rows).toBeGreaterThan(50);
      const lines = readFileSync(out, 'utf8').trim().split('\n');
      expect(lines.length - 1).toBe(need.rows);
      const fi = lines[0]!.split(',').indexOf('is_fraud');
      expect(lines.slice(1).filter((l) => ['1', 'true'].includes(l.split(',')[fi]!)).length).toBeGreaterThanOrEqual(30);
      expect(JSON.parse(readFileSync(`${out}.model-card.json`, 'utf8'))).toMatchObject({ rows: need.rows, minClassRows: 30 });
      expect(() => execFileSync(process.execPath, [CLI, 'sample', '--model', join(stateDir, 'latest.ckpt'), '--rows', '50', '--min-class-rows', '30', '--where', 'is_fraud=1', '--out', out], { stdio: 'pipe' })).toThrow(/cannot be combined with --where/);
      // A class too rare for the rows asked of it: refused before anything is held in memory.
      expect(() => execFileSync(process.execPath, [CLI, 'sample', '--model', join(stateDir, 'latest.ckpt'), '--rows', '50', '--min-class-rows', '1000000', '--out', out], { stdio: 'pipe' })).toThrow(/would need \d+ rows .* over 5000000: ask for fewer, or sample the class alone with --where is_fraud=1/);

      // Everything bank 1 sent went through the proxy: the canary is in none of it, in any encoding.
      const sent = proxy.upstreamBytes();
      expect(sent.length).toBeGreaterThan(10_000); // updates really went through the proxy
      for (const needle of [canary, Buffer.from(canary).toString('base64'), Buffer.from(canary).toString('hex')]) {
        expect(sent.includes(Buffer.from(needle))).toBe(false);
      }
      // Nor in the coordinator's state on disk.
      for (const f of readdirSync(stateDir)) {
        if (f.endsWith('.ckpt') || f.endsWith('.db')) expect(readFileSync(join(stateDir, f)).includes(Buffer.from(canary))).toBe(false);
      }
    } finally {
      writeFileSync(csv, original);
      await proxy.close();
      await coordinator.close();
    }
  });

  it('a bank killed mid-round neither stalls nor crashes the coordinator: the round completes with the rest', async () => {
    const stateDir = join(dir, 'state-b');
    const log = memoryLogger('coordinator');
    // Long local rounds so the kill lands mid-training; the deadline is the backstop, not the mechanism.
    const s = settings(stateDir, { minClients: 2, maxRounds: 1, deadlineMs: 120_000, waitForClientsMs: 1500 });
    s.plan.localSteps = 400;
    // A calibration noise far too large for about 100 fraud rows over 3 banks (3 merged noise sds
    // ≈ 735 rows, against summary noise of sd < 100), so the coordinator cancels the release when
    // the weights freeze.
    const coordinator = await runCoordinator({ ...s, labelCalibrationNoise: 100 }, { exitWhenFinished: false, log });
    const victim = spawn(
      process.execPath,
      [CLI, 'agent', '--coordinator', coordinator.url, '--bank-id', 'bank-3', '--data', join(dir, 'data', 'bank-3.csv'), '--schema', join(dir, 'data', 'schema.json'), '--state-dir', join(dir, 'bank-3-state')],
      { stdio: 'ignore' },
    );
    const until = Date.now() + 90_000;
    const waitFor = async (cond: () => boolean, what: string) => {
      while (!cond()) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    try {
      // Bank 3 (a separate process) joins first, so the round surely includes it.
      await waitFor(() => log.lines.some((l) => l.includes('"summary_received"') && l.includes('"bank-3"')), 'bank-3 to join');
      const opts = [1, 2].map((n) => agentOpts(n, coordinator.url, join(dir, `bank-${n}-state-b`)));
      const agents = opts.map((o) => runAgent(o));
      // Wait until the round has started with all three banks, then SIGKILL bank 3.
      while (Date.now() < until && !(coordinator.rounds.snapshot().participants.length === 3)) await new Promise((r) => setTimeout(r, 100));
      expect(coordinator.rounds.snapshot().participants).toContain('bank-3');
      victim.kill('SIGKILL');
      const t0 = Date.now();
      await coordinator.finished;
      await Promise.all(agents);
      expect(Date.now() - t0).toBeLessThan(100_000); // well before the 120 s deadline would have fired
      const events = log.lines.map((l) => JSON.parse(l));
      expect(events.some((e) => e.event === 'bank_dropped' && e.bank === 'bank-3')).toBe(true);
      const committed = events.find((e) => e.event === 'round_committed');
      expect(committed).toMatchObject({ round: 1, banks: 2, dropped: 1 });
      // The calibration release was cancelled before round 1 and announced in its RoundStart (a bank
      // then plans no ε for it: dp-sgd.test.ts): nothing requested after the round, nothing charged.
      expect(events.find((e) => e.event === 'label_calibration_skipped')?.reason).toMatch(/^(class 1 has|the classes other than 0 have) about \d+ rows .* of 3 bank\(s\).*decided before the first round/);
      expect(events.some((e) => e.event === 'label_calibration_requested')).toBe(false);
      for (const o of opts) {
        expect(o.log.lines.some((l) => l.includes('"label_calibration_not_planned"'))).toBe(true);
        expect(readFileSync(join(o.stateDir, 'privacy-ledger.jsonl'), 'utf8')).not.toContain('label calibration');
      }
    } finally {
      victim.kill('SIGKILL');
      await coordinator.close();
    }
  });
});
