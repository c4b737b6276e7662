// A consortium on loopback for benchmarks (bench:load, bench:secagg): the real coordinator CLI in
// its own process, and N lightweight simulated banks in a few worker processes.
//
// Each simulated bank is a real socket.io client that registers with signed frames (protocol/
// identity, envelope and codec, exactly as the agent), sends a DP summary of the right shape, and on
// every RoundStart answers at once with a random update of the real model layout (from the
// RoundStart), clipped to the plan's updateClipNorm. Banks do no training, so a round's latency
// (round_started → round_committed, from the coordinator's own log) is coordinator + transport +
// protocol overhead only.
//
// With `secure: true` the banks run the agent's own secure-aggregation session
// (client-node/secagg-client.ts: signed key advertisement, key lists verified against the consortium
// directory, sealed Shamir shares, masking in the ring, unmasking) and the coordinator runs with
// secure aggregation on. `dropEvery: k` makes every k-th
// bank (index % k = k−1, at most ⌊n/k⌋) leave each round right after sharing its keys, before
// masking (the case where the coordinator must rebuild the dropped banks' pairwise masks); it
// reconnects for the next round.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { io, type Socket } from 'socket.io-client';
import { SecAggSession } from '../client-node/secagg-client';
import {
  decodeFrame,
  encodeFrame,
  generateIdentity,
  publicIdentity,
  saveIdentity,
  type DecodedMessage,
  type Identity,
  type RoundStartMessage,
} from '../protocol';
import { schemaHash, validateSchema } from '../shared/data/schema';
import { transactionSchema } from '../shared/data/simulate';
import { freePort } from '../shared/net/free-port';

const ROOT = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const CLI = join(ROOT, 'bin', 'fedsynth.mjs');
const RUN_TS = join(ROOT, 'bin', 'run-ts.mjs');
const SELF = join(ROOT, 'bench', 'loopback.ts');
const MAX_FRAME_BYTES = 32 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Worker process: a slice of the simulated banks.

interface WorkerConfig {
  url: string;
  schemaHash: string;
  coordinatorKey: string;
  secure: boolean;
  /** Charge each bank's own steps with process.cpuUsage (a syscall each: off for bench:load). */
  measureCpu: boolean;
  /** Ids of the banks that drop before masking in every round. */
  droppers: string[];
  /** Every bank's id and Ed25519 public key (base64). */
  directory: { id: string; signPublicKey: string }[];
  banks: { id: string; signSecretKey: string; signPublicKey: string; boxPublicKey: string }[];
}

export interface WorkerStats {
  registered: number;
  updates: number;
  /** Bytes of the ClientUpdate frames (plain tensors or masked ring tensors). */
  updateBytes: number;
  /** All frames the banks sent after registering (summary excluded), and their count of bank-rounds. */
  sentBytes: number;
  /** Frames received other than RoundStart / Welcome (the model broadcast is the same in both modes). */
  receivedBytes: number;
  bankRounds: number;
  /** CPU ms spent in the banks' own handlers (encoding, signing, secure-aggregation steps), summed. */
  handlerCpuMs: number;
  /** The whole worker process's CPU seconds (socket.io, decoding, handlers). */
  processCpuS: number;
  errors: Record<string, number>;
  finished: number;
}

function cpuMsSince(t0: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000;
}

export async function runWorker(configFile: string): Promise<void> {
  const cfg = JSON.parse(readFileSync(configFile, 'utf8')) as WorkerConfig;
  const coordinatorKey = new Uint8Array(Buffer.from(cfg.coordinatorKey, 'base64'));
  const droppers = new Set(cfg.droppers);
  // The consortium directory every bank checks the relayed key lists against (the allow-list).
  const directory = new Map(cfg.directory.map((e) => [e.id, new Uint8Array(Buffer.from(e.signPublicKey, 'base64'))]));
  const stats: WorkerStats = { registered: 0, updates: 0, updateBytes: 0, sentBytes: 0, receivedBytes: 0, bankRounds: 0, handlerCpuMs: 0, processCpuS: 0, errors: {}, finished: 0 };
  const cpuStart = process.cpuUsage();
  // Banks in this process answer the same RoundStart; decode (verify) each distinct frame once.
  const decoded = new Map<string, DecodedMessage>();
  // One random update per (round, model version) per process, clipped once; each bank signs (and, when secure, masks) its own.
  let update: { key: string; tensors: { name: string; shape: number[]; data: Float32Array }[]; norm: number } | undefined;

  // The cache key is the frame's length and its last 96 bytes (where the Frame's nonce and signature
  // sit): unique per coordinator frame, and far cheaper than hashing a 0.86 MB RoundStart per bank.
  // Only the first bank that sees a frame verifies it; fine for simulated banks in one process.
  const decode = (payload: Uint8Array): DecodedMessage => {
    const h = `${payload.byteLength}:${Buffer.from(payload.buffer, payload.byteOffset + Math.max(0, payload.byteLength - 96), Math.min(96, payload.byteLength)).toString('base64')}`;
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
  const count = (code: string, bank: string, message: string): void => {
    stats.errors[code] = (stats.errors[code] ?? 0) + 1;
    if (stats.errors[code] === 1) process.stderr.write(`bank ${bank}: ${code}: ${message}\n`);
  };

  const sockets: Socket[] = [];
  let done = 0;
  const allDone = new Promise<void>((resolveAll) => {
    for (const b of cfg.banks) {
      const signer = { id: b.id, secretKey: new Uint8Array(Buffer.from(b.signSecretKey, 'base64')) };
      const socket = io(cfg.url, { transports: ['websocket'], reconnection: true, reconnectionDelay: 200, timeout: 60_000 });
      sockets.push(socket);
      let finished = false;
      let summarised = false;
      let session: SecAggSession | null = null;
      // The round whose update this bank masks once the forwarded shares arrive.
      let pending: { msg: RoundStartMessage; u: NonNullable<typeof update> } | null = null;
      const send = (m: Parameters<typeof encodeFrame>[0]): number => {
        const bytes = encodeFrame(m, { signer, maxFrameBytes: MAX_FRAME_BYTES });
        socket.emit('frame', bytes);
        return bytes.byteLength;
      };
      // Runs one of the bank's own steps, charging its CPU and the bytes it sends.
      const step = (f: () => number): void => {
        const t0 = cfg.measureCpu ? process.cpuUsage() : undefined;
        stats.sentBytes += f();
        if (t0) stats.handlerCpuMs += cpuMsSince(t0);
      };
      const dropNow = (): void => {
        session?.cancel('simulated drop');
        session = null;
        pending = null;
        socket.disconnect();
        setTimeout(() => socket.connect(), 300);
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
          count(`decode:${(err as { code?: string }).code ?? 'ERR'}`, b.id, (err as Error).message);
          return;
        }
        if (msg.type !== 'roundStart' && msg.type !== 'welcome') stats.receivedBytes += payload.byteLength;
        try {
          switch (msg.type) {
            case 'welcome': {
              if (stats.registered < cfg.banks.length) stats.registered += 1;
              const summary = (JSON.parse(msg.modelConfigJson) as { summary?: { column: string; dim: number }[] }).summary ?? [];
              if (summary.length > 0 && !summarised) {
                summarised = true;
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
              stats.bankRounds += 1;
              const u = randomUpdate(msg);
              if (!msg.secagg) {
                step(() => {
                  const n = send({ type: 'clientUpdate', roundId: msg.roundId, modelVersion: msg.modelVersion, sampleCount: 1000, tensors: u.tensors, metrics: { updateNorm: u.norm }, epsilonSpent: 0.5, delta: 1e-6 });
                  stats.updateBytes += n;
                  stats.updates += 1;
                  return n;
                });
                return;
              }
              if (!cfg.secure) throw new Error('the coordinator asked for secure aggregation but this benchmark runs plain banks');
              session?.cancel('superseded');
              const layout = msg.weights.map((w) => ({ name: w.name, shape: [...w.shape] }));
              const s = new SecAggSession({ bankId: b.id, roundId: msg.roundId, params: msg.secagg, layout, signingKey: signer.secretKey, directory, coordinatorKey, deadlineMs: msg.deadlineMs });
              session = s;
              step(() => send({ type: 'secaggAdvertiseKeys', ...s.advertise() }));
              pending = { msg, u };
              return;
            }
            case 'secaggKeyList': {
              const s = session;
              if (!s || s.roundId !== msg.roundId) return;
              step(() => send({ type: 'secaggShareKeys', ...s.onKeyList(msg) }));
              if (droppers.has(b.id)) setTimeout(dropNow, 0); // shared its keys, leaves before masking
              return;
            }
            case 'secaggForwardedShares': {
              const s = session;
              const p = pending;
              if (!s || s.roundId !== msg.roundId || !p || p.msg.roundId !== msg.roundId) return;
              pending = null;
              // The shares are in, so mask() runs without waiting: only microtasks between t0 and the
              // end, and its CPU (opening the bundles, pairwise seeds, masks) is this bank's alone.
              const t0 = cfg.measureCpu ? process.cpuUsage() : undefined;
              s.onForwarded(msg);
              void s
                .mask(p.u.tensors, 1000, p.msg.deadlineMs)
                .then((masked) => {
                  if (t0) stats.handlerCpuMs += cpuMsSince(t0);
                  step(() => {
                    const n = send({ type: 'clientUpdate', roundId: p.msg.roundId, modelVersion: p.msg.modelVersion, sampleCount: masked.sampleCount, tensors: [], maskedTensors: masked.maskedTensors, metrics: { updateNorm: p.u.norm }, epsilonSpent: 0.5, delta: 1e-6 });
                    stats.updateBytes += n;
                    stats.updates += 1;
                    return n;
                  });
                })
                .catch((err: Error) => count('mask', b.id, err.message));
              return;
            }
            case 'secaggUnmaskRequest': {
              const s = session;
              if (!s || s.roundId !== msg.roundId) return;
              step(() => send({ type: 'secaggUnmaskResponse', ...s.onUnmaskRequest(msg) }));
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
              count(msg.code, b.id, `coordinator error: ${msg.message}`);
              return;
            default:
              return;
          }
        } catch (err) {
          count('bank', b.id, (err as Error).message);
        }
      });
    }
  });
  const report = (): void => {
    stats.processCpuS = cpuMsSince(cpuStart) / 1000;
    process.stdout.write(JSON.stringify({ stats }) + '\n');
  };
  const timer = setInterval(report, 2000);
  await allDone;
  clearInterval(timer);
  report();
  for (const s of sockets) s.close();
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// Main side: coordinator child, worker children, measurements.

export function procCpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime = field 14, stime = field 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function vmHwmBytes(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}


export interface ConsortiumOptions {
  banks: number;
  rounds: number;
  workers: number;
  architecture: string;
  secure: boolean;
  /** Measure CPU inside each bank's own steps (WorkerStats.handlerCpuMs). */
  measureBankCpu?: boolean;
  /** Every k-th bank drops before masking in every round (secure only); 0 = none. */
  dropEvery?: number;
  /** Seconds the coordinator waits for late joiners before a round (default 0; drop runs need the droppers back). */
  waitForClientsS?: number;
  /** Write CPU profiles of the coordinator (DIR) and the bank workers (DIR/banks). */
  profileDir?: string;
  timeoutS?: number;
  /** Copy the coordinator's JSON log here. */
  logFile?: string;
  /** Progress lines (stderr by default). */
  progress?: (line: string) => void;
}

export interface RoundSample {
  round: number;
  latencyS: number;
  /** Coordinator CPU seconds between round_started and round_committed. */
  cpuS: number;
}

export interface ConsortiumResult {
  rounds: RoundSample[];
  /** Seconds between a commit and the next round's start. */
  gaps: number[];
  committed: number;
  failures: number;
  cpuSeconds: number;
  wallSeconds: number;
  peakRss: number;
  metricsText: string;
  workers: WorkerStats[];
  droppers: number;
}

/** Runs one consortium to completion and returns what was measured. */
export async function runConsortium(o: ConsortiumOptions): Promise<ConsortiumResult> {
  const say = o.progress ?? ((l: string) => process.stderr.write(l + '\n'));
  const { banks, rounds } = o;
  const workers = Math.max(1, Math.min(banks, o.workers));
  if (!Number.isInteger(banks) || banks < 2 || !Number.isInteger(rounds) || rounds < 1) throw new Error('banks must be ≥ 2 and rounds ≥ 1');
  const dropEvery = o.secure ? (o.dropEvery ?? 0) : 0;
  const dir = mkdtempSync(join(tmpdir(), 'fedsynth-loopback-'));
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
    const droppers = dropEvery > 1 ? ids.filter((_, i) => i % dropEvery === dropEvery - 1).map((id) => id.id!) : [];
    writeFileSync(join(dir, 'allow.json'), JSON.stringify(ids.map(publicIdentity)));
    const coordinatorIdentity = generateIdentity('coordinator');
    saveIdentity(join(dir, 'coordinator.json'), coordinatorIdentity);

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const coordinator = spawn(
      process.execPath,
      [
        ...(o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', resolve(o.profileDir)] : []),
        CLI, 'coordinator',
        '--schema', schemaFile,
        '--host', '127.0.0.1',
        '--port', String(port),
        '--state-dir', join(dir, 'state'),
        '--key', join(dir, 'coordinator.json'),
        '--allow-list', join(dir, 'allow.json'),
        '--min-clients', String(banks - droppers.length),
        '--rounds', String(rounds),
        '--deadline', '300',
        '--wait-for-clients', String(o.waitForClientsS ?? 0),
        '--architecture', o.architecture,
        ...(o.secure ? [] : ['--insecure-aggregation']),
      ],
      { env: { ...process.env, FEDSYNTH_LOG_FORMAT: 'json', FEDSYNTH_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.push(coordinator);
    const pid = coordinator.pid!;
    const started = new Map<number, { t: number; cpu: number }>();
    const samples: RoundSample[] = [];
    const committedAt = new Map<number, number>();
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
    const logCopy = o.logFile ? createWriteStream(o.logFile) : null;
    createInterface({ input: coordinator.stderr! }).on('line', (line) => {
      logCopy?.write(line + '\n');
      let e: { event?: string; round?: number; ts?: string; level?: string; reason?: string };
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
        case 'round_started': {
          const cpu = procCpuSeconds(pid);
          if (cpuAtFirstRound === undefined) {
            cpuAtFirstRound = cpu;
            wallFirstRound = Date.now();
          }
          started.set(e.round!, { t, cpu });
          say(`round ${e.round} started`);
          break;
        }
        case 'round_committed': {
          const s = started.get(e.round!);
          committedAt.set(e.round!, t);
          peakRss = Math.max(peakRss, vmHwmBytes(pid));
          if (s) {
            samples.push({ round: e.round!, latencyS: (t - s.t) / 1000, cpuS: procCpuSeconds(pid) - s.cpu });
            say(`round ${e.round} committed in ${((t - s.t) / 1000).toFixed(2)} s`);
          }
          break;
        }
        case 'round_failed':
          failures += 1;
          say(`round ${e.round} failed: ${e.reason ?? line}`);
          break;
        case 'training_finished':
          finished = true;
          cpuAtEnd = procCpuSeconds(pid);
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
    const workerStats: WorkerStats[] = [];
    const workerExits: Promise<number | null>[] = [];
    for (let w = 0; w < workers; w++) {
      const slice = ids.slice(w * per, (w + 1) * per);
      if (slice.length === 0) continue;
      const file = join(dir, `worker-${w}.json`);
      const cfg: WorkerConfig = {
        url,
        schemaHash: shash,
        coordinatorKey: Buffer.from(coordinatorIdentity.sign.publicKey).toString('base64'),
        secure: o.secure,
        measureCpu: o.measureBankCpu ?? false,
        droppers,
        directory: ids.map((id) => ({ id: id.id!, signPublicKey: Buffer.from(id.sign.publicKey).toString('base64') })),
        banks: slice.map((id) => ({
          id: id.id!,
          signSecretKey: Buffer.from(id.sign.secretKey).toString('base64'),
          signPublicKey: Buffer.from(id.sign.publicKey).toString('base64'),
          boxPublicKey: Buffer.from(id.box.publicKey).toString('base64'),
        })),
      };
      writeFileSync(file, JSON.stringify(cfg), { mode: 0o600 });
      const child = spawn(process.execPath, [...(o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', resolve(o.profileDir, 'banks')] : []), RUN_TS, SELF, '--worker', file], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      const idx = workerStats.length;
      workerStats.push({ registered: 0, updates: 0, updateBytes: 0, sentBytes: 0, receivedBytes: 0, bankRounds: 0, handlerCpuMs: 0, processCpuS: 0, errors: {}, finished: 0 });
      createInterface({ input: child.stdout! }).on('line', (line) => {
        try {
          workerStats[idx] = (JSON.parse(line) as { stats: WorkerStats }).stats;
        } catch {
          say(`worker ${w}: ${line}`);
        }
      });
      workerExits.push(new Promise((r) => child.once('exit', (code) => r(code))));
    }

    const timeoutS = o.timeoutS ?? 1800;
    await Promise.race([
      new Promise<void>((r) => (finished ? r() : onFinished.push(r))),
      new Promise<void>((_, rej) =>
        setTimeout(
          () => rej(new Error(`not finished after ${timeoutS} s (${samples.length} rounds committed, ${failures} attempts failed); errors: ${errors.slice(-3).join(' | ')} ${JSON.stringify(workerStats.map((w) => w.errors))}`)),
          timeoutS * 1000,
        ).unref(),
      ),
      coordinatorExit.then((code) => {
        throw new Error(`the coordinator exited (${code}) before finishing: ${errors.slice(-5).join('\n')}`);
      }),
    ]);
    const metricsText = await (await fetch(`${url}/metrics`)).text();
    await Promise.race([Promise.all(workerExits), new Promise((r) => setTimeout(r, 15_000))]);
    coordinator.kill('SIGTERM');
    await Promise.race([coordinatorExit, new Promise((r) => setTimeout(r, 5000))]);
    const gaps: number[] = [];
    for (const [round, t] of committedAt) {
      const next = started.get(round + 1);
      if (next !== undefined) gaps.push((next.t - t) / 1000);
    }
    return {
      rounds: samples.sort((a, b) => a.round - b.round),
      gaps,
      committed: samples.length,
      failures,
      cpuSeconds: (cpuAtEnd ?? NaN) - (cpuAtFirstRound ?? NaN),
      wallSeconds: (wallEnd - wallFirstRound) / 1000,
      peakRss,
      metricsText,
      workers: workerStats,
      droppers: droppers.length,
    };
  } finally {
    cleanup();
    process.off('exit', cleanup);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A Prometheus counter or gauge without labels from the coordinator's /metrics text. */
export function metric(text: string, name: string): number {
  return Number(
    text
      .split('\n')
      .find((l) => l.startsWith(name + ' '))
      ?.split(' ')
      .pop(),
  );
}

/** Sums of the workers' counters. */
export function totals(ws: readonly WorkerStats[]): Omit<WorkerStats, 'errors' | 'registered' | 'finished'> & { errors: Record<string, number> } {
  const errors: Record<string, number> = {};
  for (const w of ws) for (const [k, v] of Object.entries(w.errors)) errors[k] = (errors[k] ?? 0) + v;
  const sum = (f: (w: WorkerStats) => number): number => ws.reduce((s, w) => s + f(w), 0);
  return {
    updates: sum((w) => w.updates),
    updateBytes: sum((w) => w.updateBytes),
    sentBytes: sum((w) => w.sentBytes),
    receivedBytes: sum((w) => w.receivedBytes),
    bankRounds: sum((w) => w.bankRounds),
    handlerCpuMs: sum((w) => w.handlerCpuMs),
    processCpuS: sum((w) => w.processCpuS),
    errors,
  };
}

if (process.argv.includes('--worker')) {
  await runWorker(process.argv[process.argv.indexOf('--worker') + 1]!);
}
