// The coordinator's HTTP side over real HTTP: a real coordinator (in process, port 0) trains one
// round with two real agents, then serves signed checkpoints, model cards, synthetic CSV and
// Prometheus metrics; `fetch-model` verifies what it downloads against the pinned key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { io } from 'socket.io-client';
import nacl from 'tweetnacl';
import { runCoordinator, type CoordinatorSettings } from '../../coordinator/run-coordinator';
import type { RunningCoordinator } from '../../coordinator/server';
import { readCheckpoint } from '../../coordinator/store/checkpoint';
import { verifyBody } from '../../coordinator/sampling-service';
import { fetchModel, readCoordinatorKey, ModelVerificationError } from '../../cli/commands/fetch-model';
import { runAgent } from '../../client-node/run-agent';
import { memoryLogger } from '../../shared/log/logger';
import { simulateBanks } from '../../shared/data/simulate';

const CLI = resolve(__dirname, '../../bin/fedsynth.mjs');
let dir: string;
let coordinator: RunningCoordinator;
let stateDir: string;
let key: Uint8Array;
let midRoundMetrics = '';

function settings(): CoordinatorSettings {
  return {
    host: '127.0.0.1',
    port: 0,
    schemaPath: join(dir, 'data', 'schema.json'),
    stateDir,
    model: { noiseDim: 16, generatorDims: [32, 32], discriminatorDims: [32, 32], seed: 7 },
    policy: { minClients: 2, maxRounds: 1, deadlineMs: 60_000, waitForClientsMs: 200, retryLimit: 0 },
    plan: { localSteps: 2, batchSize: 64, lrGenerator: 2e-4, lrDiscriminator: 2e-4, dSteps: 1, loss: 'ns', updateClipNorm: 5 },
    dp: { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 },
    maxFrameBytes: 8 * 1024 * 1024,
    maxSampleRows: 5000,
    insecureAggregation: true,
  };
}

const get = (path: string) => fetch(new URL(path, coordinator.url));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-http-'));
  stateDir = join(dir, 'state');
  simulateBanks({ banks: 2, rows: 1200, out: join(dir, 'data'), seed: 3 });
  coordinator = await runCoordinator(settings(), { exitWhenFinished: false, log: memoryLogger('coordinator') });
  key = readCoordinatorKey(join(stateDir, 'coordinator-public.json'));

  // Two bad frames before training, so rejections by reason show up in /metrics.
  const bad = io(coordinator.url, { transports: ['websocket'], reconnection: false });
  await new Promise<void>((r) => bad.once('connect', () => r()));
  const answered = new Promise<void>((r) => {
    let n = 0;
    bad.on('frame', () => ++n === 2 && r());
  });
  bad.emit('frame', 'not binary');
  bad.emit('frame', new Uint8Array([1, 2, 3, 4, 5]));
  await answered;
  bad.close();

  const agents = [1, 2].map((n) =>
    runAgent({
      coordinatorUrl: coordinator.url,
      bankId: `bank-${n}`,
      dataPath: join(dir, 'data', `bank-${n}.csv`),
      schemaPath: join(dir, 'data', 'schema.json'),
      stateDir: join(dir, `bank-${n}-state`),
      exitWhenFinished: true,
      maxRowProblems: 10,
      epsilonMax: 1,
      summaryEpsilon: 0.2,
      log: memoryLogger(`bank-${n}`),
    }),
  );
  // Scrape while both banks are online (during the round).
  const until = Date.now() + 60_000;
  while (Date.now() < until && !coordinator.rounds.isFinished()) {
    const text = await (await get('/metrics')).text();
    if (text.includes('fedsynth_banks_online 2')) {
      midRoundMetrics = text;
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await coordinator.finished;
  await Promise.all(agents);
});

afterAll(async () => {
  await coordinator?.close();
  rmSync(dir, { recursive: true, force: true });
});

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  if (!line) throw new Error(`metric ${name} not exposed`);
  return Number(line.slice(name.length + 1));
}

describe('/metrics', () => {
  it('exposes banks online, rounds committed, round duration, bytes received and rejections by reason', async () => {
    expect(metric(midRoundMetrics, 'fedsynth_banks_online')).toBe(2);
    const res = await get('/metrics');
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(metric(text, 'fedsynth_rounds_committed_total')).toBe(1);
    expect(metric(text, 'fedsynth_rounds_committed')).toBe(1);
    expect(metric(text, 'fedsynth_bytes_received_total')).toBeGreaterThan(10_000);
    expect(metric(text, 'fedsynth_round_duration_seconds_count')).toBe(1);
    expect(metric(text, 'fedsynth_round_duration_seconds_sum')).toBeGreaterThan(0);
    expect(metric(text, 'fedsynth_round_duration_seconds_bucket{le="+Inf"}')).toBe(1);
    expect(metric(text, 'fedsynth_round_commit_seconds_count')).toBe(1);
    expect(text).toContain('# TYPE fedsynth_round_duration_seconds histogram');
    expect(metric(text, 'fedsynth_rejected_messages_total{reason="MALFORMED"}')).toBeGreaterThanOrEqual(1);
    const rejected = text.split('\n').filter((l) => l.startsWith('fedsynth_rejected_messages_total{'));
    expect(rejected.reduce((s, l) => s + Number(l.split(' ').pop()), 0)).toBe(2);
    expect(metric(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });
});

describe('model endpoints', () => {
  it('GET /models/latest returns the checkpoint bytes signed by the coordinator identity', async () => {
    const res = await get('/models/latest');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-fedsynth-model-version')).toBe('1');
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(verifyBody('model', bytes, res.headers.get('x-fedsynth-signature')!, key)).toBe(true);
    // Domain separation: the same signature does not pass as a model card's or a sample's.
    expect(verifyBody('model-card', bytes, res.headers.get('x-fedsynth-signature')!, key)).toBe(false);
    expect(verifyBody('model', bytes, res.headers.get('x-fedsynth-signature')!, nacl.sign.keyPair().publicKey)).toBe(false);
    expect(Buffer.from(bytes).equals(readFileSync(join(stateDir, 'checkpoints', 'model-v000001.ckpt')))).toBe(true);
    const v0 = await get('/models/0');
    expect(v0.headers.get('x-fedsynth-model-version')).toBe('0');
    expect((await get('/models/7')).status).toBe(404);
    expect((await get('/models/abc')).status).toBe(400);
    const list = (await (await get('/models')).json()) as { models: { version: number }[] };
    expect(list.models.map((m) => m.version)).toEqual([0, 1]);
  });

  it('serves a signed model card: rounds, banks, ε per bank from the reported spend, date, schema hash', async () => {
    const res = await get('/models/1/card');
    const body = new Uint8Array(await res.arrayBuffer());
    expect(verifyBody('model-card', body, res.headers.get('x-fedsynth-signature')!, key)).toBe(true);
    const card = JSON.parse(Buffer.from(body).toString('utf8'));
    expect(card).toMatchObject({ kind: 'fedsynth-model-card', modelVersion: 1, round: 1, rounds: 1, banks: [{ bankId: 'bank-1', rounds: 1 }, { bankId: 'bank-2', rounds: 1 }] });
    expect(Object.keys(card.epsilonByBank).sort()).toEqual(['bank-1', 'bank-2']);
    // Trained without DP-SGD: no finite guarantee, reported as null.
    expect(card.epsilonByBank['bank-1']).toBeNull();
    expect(Date.parse(card.createdAt)).toBeGreaterThan(Date.now() - 600_000);
    expect(card.schemaHash).toMatch(/^[0-9a-f]{64}$/);
    const model = await get('/models/1');
    expect(card.checkpointSha256).toBe(model.headers.get('x-fedsynth-sha256'));
  });

  it('the checkpoint meta (what `fedsynth sample` copies into its sidecar) has rounds, banks, ε per bank and a date', () => {
    const ckpt = readCheckpoint(join(stateDir, 'latest.ckpt'));
    expect(ckpt.meta).toMatchObject({ rounds: 1, banks: ['bank-1', 'bank-2'] });
    expect(Object.keys(ckpt.meta.epsilonByBank as object).sort()).toEqual(['bank-1', 'bank-2']);
    expect(Date.parse(ckpt.createdAt)).toBeGreaterThan(0);
  });
});

describe('GET /sample', () => {
  it('returns signed CSV from the latest model, with the model card linked', async () => {
    const res = await get('/sample?rows=50&seed=1');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(res.headers.get('x-fedsynth-model-card')).toBe('/models/1/card');
    // The schema names is_fraud as its target: stratified by it, labels drawn by its classifier.
    expect(res.headers.get('x-fedsynth-stratified-by')).toBe('is_fraud');
    expect(res.headers.get('x-fedsynth-labels-from-classifier')).toBe('is_fraud');
    const body = new Uint8Array(await res.arrayBuffer());
    expect(verifyBody('sample', body, res.headers.get('x-fedsynth-signature')!, key)).toBe(true);
    const lines = Buffer.from(body).toString('utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(51);
    expect(lines[0]!.split(',')).toContain('channel');
  });

  it('honours where=column=value and refuses bad or oversized requests', async () => {
    const res = await get('/sample?rows=20&where=channel=online&seed=2');
    expect(res.status).toBe(200);
    const [header, ...rows] = (await res.text()).trimEnd().split('\n');
    const c = header!.split(',').indexOf('channel');
    expect(rows).toHaveLength(20);
    expect(rows.every((r) => r.split(',')[c] === 'online')).toBe(true);
    expect(res.headers.get('x-fedsynth-stratified-by')).toBeNull();
    // where on the target: the rows the consortium's classifier labels with that class.
    const legit = await get('/sample?rows=20&where=is_fraud=0&seed=2');
    expect(legit.status).toBe(200);
    expect(legit.headers.get('x-fedsynth-labels-from-classifier')).toBe('is_fraud');
    const [lh, ...lrows] = (await legit.text()).trimEnd().split('\n');
    const f = lh!.split(',').indexOf('is_fraud');
    expect(lrows).toHaveLength(20);
    expect(lrows.every((r) => ['0', 'false'].includes(r.split(',')[f]!))).toBe(true);
    const capped = await get('/sample?rows=5001');
    expect(capped.status).toBe(400);
    expect(((await capped.json()) as { error: string }).error).toMatch(/capped at 5000/);
    expect((await get('/sample?rows=0')).status).toBe(400);
    expect((await get('/sample?rows=5&where=nope')).status).toBe(400);
    expect((await get('/sample?rows=5&where=channel=teleport')).status).toBe(400);
  });
});

describe('fedsynth fetch-model', () => {
  it('downloads, verifies against the pinned key and writes the checkpoint and its model card', async () => {
    const out = join(dir, 'fetched', 'model.ckpt');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'fetched'));
    const r = await fetchModel({ coordinatorUrl: coordinator.url, coordinatorKey: key, out });
    expect(r.card.modelVersion).toBe(1);
    expect(readCheckpoint(out, { expectedSha256: r.sha256 }).version).toBe(1);
    const card = JSON.parse(readFileSync(`${out}.model-card.json`, 'utf8'));
    expect(card).toMatchObject({ modelVersion: 1, rounds: 1, checkpointSha256: r.sha256 });
    expect(card.banks.map((b: { bankId: string }) => b.bankId)).toEqual(['bank-1', 'bank-2']);
  });

  it('refuses a model that is not signed by the pinned key, and writes nothing', async () => {
    const out = join(dir, 'wrong.ckpt');
    const other = nacl.sign.keyPair().publicKey;
    await expect(fetchModel({ coordinatorUrl: coordinator.url, coordinatorKey: other, out })).rejects.toThrow(ModelVerificationError);
    await expect(fetchModel({ coordinatorUrl: coordinator.url, coordinatorKey: other, out })).rejects.toThrow(/does not verify against the pinned coordinator key/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.model-card.json`)).toBe(false);
  });

  it('works as a CLI command with --model-version and a public identity file as the pinned key', async () => {
    const out = join(dir, 'cli-v0.ckpt');
    const args = [CLI, 'fetch-model', '--coordinator', coordinator.url, '--coordinator-key', join(stateDir, 'coordinator-public.json'), '--out', out, '--model-version', '0'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(stderr).toMatch(/model v0 .* verified/);
    expect(code).toBe(0);
    expect(readCheckpoint(out).version).toBe(0);
    const otherKey = Buffer.from(nacl.sign.keyPair().publicKey).toString('base64');
    const bad = spawn(process.execPath, [...args.slice(0, 5), otherKey, '--out', join(dir, 'x.ckpt')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let badErr = '';
    bad.stderr.on('data', (d) => (badErr += d));
    expect(await new Promise<number | null>((r) => bad.once('exit', r))).toBe(1);
    expect(badErr).toMatch(/does not verify against the pinned coordinator key/);
  });
});

describe('fedsynth sample', () => {
  it("writes the rows and a model card that says how they were drawn; --generator-labels keeps the generator's labels", async () => {
    const run = async (extra: string[]): Promise<{ code: number | null; card: Record<string, unknown>; lines: string[] }> => {
      const out = join(dir, `cli-sample${extra.length}.csv`);
      const child = spawn(process.execPath, [CLI, 'sample', '--model', join(stateDir, 'latest.ckpt'), '--rows', '40', '--out', out, '--seed', '3', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      return { code, card: JSON.parse(readFileSync(`${out}.model-card.json`, 'utf8')), lines: readFileSync(out, 'utf8').trimEnd().split('\n') };
    };
    const plain = await run([]);
    expect(plain.code).toBe(0);
    expect(plain.lines).toHaveLength(41);
    expect(plain.card).toMatchObject({ rows: 40, stratifiedBy: 'is_fraud', labelsFromClassifier: 'is_fraud' });
    expect(plain.card).toMatchObject({ labelTemperature: 1 });
    const gen = await run(['--generator-labels']);
    expect(gen.code).toBe(0);
    expect(gen.card).toMatchObject({ rows: 40, labelsFromClassifier: null, labelTemperature: null });
    const warm = await run(['--label-temperature', '2.5']);
    expect(warm.code).toBe(0);
    expect(warm.lines).toHaveLength(41);
    expect(warm.card).toMatchObject({ labelsFromClassifier: 'is_fraud', labelTemperature: 2.5 });
  });

  it('refuses a --label-temperature that is not a number > 0, or one combined with --generator-labels, and writes nothing', async () => {
    for (const [extra, message] of [
      [['--label-temperature', '0'], /--label-temperature must be a positive number, got '0'/],
      [['--label-temperature', 'warm'], /--label-temperature must be a positive number, got 'warm'/],
      [['--label-temperature', '2', '--generator-labels'], /cannot be combined with --generator-labels/],
    ] as const) {
      const out = join(dir, 'refused.csv');
      const child = spawn(process.execPath, [CLI, 'sample', '--model', join(stateDir, 'latest.ckpt'), '--rows', '5', '--out', out, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      expect(await new Promise<number | null>((r) => child.once('exit', r))).not.toBe(0);
      expect(stderr).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  });
});
