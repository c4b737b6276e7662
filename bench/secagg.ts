// bench:secagg — cost of secure aggregation (Bonawitz et al. 2017) against plain float updates.
//
// 1. Over loopback (bench/loopback.ts): the real coordinator CLI and 3, 10 and 100 lightweight
//    simulated banks (real socket.io clients running the agent's own secure-aggregation session)
//    that answer each round with a random clipped update of the default model's size; plain
//    (`--insecure-aggregation`) vs secure, and secure with 10% of the banks dropping after sharing
//    their keys, before masking. Reports round latency, the coordinator's CPU per round
//    (/proc/<pid>/stat), the banks' CPU per round and the bytes each bank sends per round.
// 2. In-process (no sockets), the same protocol split by party: per-bank and server CPU ms and
//    bytes per bank at d = the 'ctgan' architecture's parameter count on bench:train's layout.
// Writes the `## bench:secagg` section of BENCHMARKS.md (other sections are kept).
//   node bin/run-ts.mjs bench/secagg.ts [--banks 3,10,100] [--rounds 4] [--d N] [--skip-loopback] [--skip-in-process] [--no-write]
import os from 'node:os';
import { median } from './common';
import { quantile, runConsortium, totals, type ConsortiumResult } from './loopback';
import { defaultModelConfig } from '../shared/model/config';
import { modelSpec } from '../shared/model/spec';
import { clipToNorm } from '../shared/privacy/clip';
import { benchLayout as layout, writeBenchmarkSection } from './common';
import { defaultThreshold, encodeUpdate, quantisationErrorBound, ringParams, simulateRound, wireSize } from '../shared/secagg';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const write = !process.argv.includes('--no-write');
const CLIP = 1;

const ctganParams = modelSpec(defaultModelConfig({ architecture: 'ctgan' }), layout()).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
const D = arg('--d') ? Number(arg('--d')) : ctganParams;
const BANKS = (arg('--banks') ?? '3,10,100').split(',').map(Number);
const ROUNDS = Number(arg('--rounds') ?? '4');
const skip = (what: string): boolean => process.argv.includes(`--skip-${what}`);

function randomUpdate(d: number, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const x = new Float32Array(d);
  for (let i = 0; i < d; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    x[i] = (s / 2 ** 32 - 0.5) * 0.01;
  }
  return x;
}

function cpuMs<T>(f: () => T): [T, number] {
  const t0 = process.cpuUsage();
  const r = f();
  const d = process.cpuUsage(t0);
  return [r, (d.user + d.system) / 1000];
}

interface Row {
  label: string;
  n: number;
  t: number;
  dropped: number;
  plainBankMs: number;
  plainServerMs: number;
  plainBytes: number;
  secureEncodeMs: number;
  secureBankMs: number;
  secureServerMs: number;
  sentBytes: number;
  totalBytes: number;
  wallS: number;
  errBound: number;
}

function run(n: number, dropBeforeInput: number): Row {
  const ids = Array.from({ length: n }, (_, i) => `bank-${String(i).padStart(3, '0')}`);
  const p = ringParams({ clipNorm: CLIP, maxBanks: n });
  // Plain: clip the float update, send it; the server sums in float64.
  let plainBank = 0;
  let plainBytes = 0;
  const plainSum = new Float64Array(D);
  let plainServer = 0;
  for (let i = 0; i < n; i++) {
    const x = randomUpdate(D, i + 1);
    const [c, ms] = cpuMs(() => clipToNorm(x, CLIP));
    plainBank += ms;
    plainBytes += wireSize({ type: 'clientUpdate', roundId: 1, tensors: [{ name: 'all', shape: [D], data: new Uint8Array(c.buffer) }] });
    plainServer += cpuMs(() => {
      for (let j = 0; j < D; j++) plainSum[j] += c[j];
    })[1];
  }
  // Secure: clip + quantise (encode), then the four Bonawitz rounds.
  let encodeMs = 0;
  const dropped = ids.filter((_, i) => i % 10 === 3).slice(0, dropBeforeInput);
  const t0 = performance.now();
  const r = simulateRound({
    ids,
    vectorLength: D,
    dropBeforeInput: dropped,
    clone: false,
    input: (id) => {
      const x = randomUpdate(D, ids.indexOf(id) + 1);
      const [enc, ms] = cpuMs(() => encodeUpdate(x, p).ring);
      encodeMs += ms;
      return enc;
    },
  });
  const wallS = (performance.now() - t0) / 1000;
  const live = ids.filter((id) => !dropped.includes(id));
  const costs = live.map((id) => r.clients.get(id)!);
  const mean = (f: (c: (typeof costs)[number]) => number) => costs.reduce((s, c) => s + f(c), 0) / costs.length;
  return {
    label: dropBeforeInput ? `${n} (${dropBeforeInput} drop before masking)` : String(n),
    n,
    t: defaultThreshold(n),
    dropped: dropBeforeInput,
    plainBankMs: plainBank / n,
    plainServerMs: plainServer,
    plainBytes: plainBytes / n,
    secureEncodeMs: encodeMs / live.length,
    secureBankMs: mean((c) => c.cpuMs),
    secureServerMs: r.server.cpuMs,
    sentBytes: mean((c) => c.sentBytes),
    totalBytes: mean((c) => c.sentBytes + c.receivedBytes),
    wallS,
    errBound: quantisationErrorBound(p, live.length),
  };
}

const f0 = (x: number) => x.toFixed(0);
const f1 = (x: number) => x.toFixed(1);
const mb = (x: number) => (x / 1e6).toFixed(2);

interface LoopbackRow {
  label: string;
  n: number;
  mode: 'plain' | 'secure';
  drop: number;
  r: ConsortiumResult;
}

async function loopback(): Promise<{ rows: LoopbackRow[]; d: number }> {
  const rows: LoopbackRow[] = [];
  let d = 0;
  for (const n of BANKS) {
    const cases: { mode: 'plain' | 'secure'; dropEvery: number }[] = [
      { mode: 'plain', dropEvery: 0 },
      { mode: 'secure', dropEvery: 0 },
      ...(n >= 10 ? [{ mode: 'secure' as const, dropEvery: 10 }] : []),
    ];
    for (const c of cases) {
      const label = `${n}${c.dropEvery ? ` (${Math.floor(n / c.dropEvery)} drop before masking)` : ''}`;
      process.stderr.write(`loopback: ${label}, ${c.mode}, ${ROUNDS} rounds\n`);
      const r = await runConsortium({
        banks: n,
        rounds: ROUNDS,
        workers: Math.min(4, n),
        architecture: 'mlp',
        secure: c.mode === 'secure',
        measureBankCpu: true,
        dropEvery: c.dropEvery,
        // Droppers reconnect for the next round; give them a moment so every round has the full cohort.
        waitForClientsS: c.dropEvery ? 2 : 0,
        timeoutS: 1200,
        progress: () => undefined,
      });
      const t = totals(r.workers);
      if (c.mode === 'plain' && t.updates > 0) d = Math.round((t.updateBytes / t.updates) / 4);
      rows.push({ label, n, mode: c.mode, drop: c.dropEvery ? Math.floor(n / c.dropEvery) : 0, r });
      const steady = r.rounds.slice(1);
      process.stderr.write(`  latency p50 ${median(steady.map((x) => x.latencyS)).toFixed(2)} s, coordinator CPU/round ${median(steady.map((x) => x.cpuS)).toFixed(2)} s, failures ${r.failures}, bank errors ${JSON.stringify(t.errors)}\n`);
    }
  }
  return { rows, d };
}

function loopbackTable(rows: LoopbackRow[], d: number): string {
  const fmt = (x: LoopbackRow): string => {
    const steady = x.r.rounds.length > 1 ? x.r.rounds.slice(1) : x.r.rounds;
    const t = totals(x.r.workers);
    // Per bank that completed a round (sent its update); droppers' few bytes and ms are included, so this errs high.
    const bankRounds = Math.max(1, t.updates);
    const sentPerBankRound = t.sentBytes / bankRounds;
    return (
      `| ${x.label} | ${x.mode} | ${x.r.committed} / ${ROUNDS} | ${median(steady.map((s) => s.latencyS)).toFixed(2)} / ${quantile(steady.map((s) => s.latencyS), 1).toFixed(2)} | ` +
      `${median(steady.map((s) => s.cpuS)).toFixed(2)} | ${(t.handlerCpuMs / bankRounds).toFixed(0)} | ${((t.processCpuS * 1000) / bankRounds).toFixed(0)} | ` +
      `${mb(sentPerBankRound)} MB | ${(sentPerBankRound / (4 * d)).toFixed(3)} | ${(t.receivedBytes / bankRounds / 1e3).toFixed(1)} kB | ${Object.keys(t.errors).length ? JSON.stringify(t.errors) : 'none'} |`
    );
  };
  return [
    '| banks | aggregation | rounds committed | round latency median / max (s) | coordinator CPU per round (s) | bank CPU per round, own steps (ms) | bank process CPU per bank-round (ms) | bytes sent per bank per round | sent / (4·d) | received per bank per round (besides the model broadcast) | bank errors |',
    '|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(fmt),
  ].join('\n');
}

function inProcess(): Row[] {
  process.stderr.write(`in-process: d = ${D}${arg('--d') ? ' (--d)' : ` (ctgan on bench:train layout)`}, banks ${BANKS.join(', ')}\n`);
  run(3, 0); // warm-up (JIT, OpenSSL cipher contexts); discarded
  const rows: Row[] = [];
  const cases: [number, number][] = [];
  for (const n of BANKS) {
    cases.push([n, 0]);
    if (n >= 10) cases.push([n, Math.floor(n / 10)]);
  }
  for (const [n, drop] of cases) {
    const row = run(n, drop);
    rows.push(row);
    process.stderr.write(`  ${row.label}: bank ${f0(row.secureEncodeMs + row.secureBankMs)} ms, server ${f0(row.secureServerMs)} ms, wall ${f1(row.wallS)} s\n`);
  }
  return rows;
}

async function main(): Promise<void> {
  const lb = skip('loopback') ? null : await loopback();
  const rows = skip('in-process') ? [] : inProcess();
  const raw = 4 * D;
  const table = [
    '| banks (t) | plain: bank CPU ms | plain: server CPU ms | plain: bytes/bank | secure: bank CPU ms (encode + protocol) | secure: server CPU ms | secure: bytes sent/bank | secure: bytes sent+received/bank | sent / (4·d) | sent+recv / (4·d) | max quantisation error per coord |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.label} (t=${r.t}) | ${f1(r.plainBankMs)} | ${f1(r.plainServerMs)} | ${mb(r.plainBytes)} MB | ${f0(r.secureEncodeMs + r.secureBankMs)} (${f0(r.secureEncodeMs)} + ${f0(r.secureBankMs)}) | ${f0(r.secureServerMs)} | ${mb(r.sentBytes)} MB | ${mb(r.totalBytes)} MB | ${(r.sentBytes / raw).toFixed(4)} | ${(r.totalBytes / raw).toFixed(4)} | ${r.errBound.toExponential(2)} |`,
    ),
  ].join('\n');
  const cpu = os.cpus();
  const parts: string[] = [
    '## bench:secagg',
    '',
    `Command: \`npm run bench:secagg${process.argv.slice(2).length ? ' -- ' + process.argv.slice(2).join(' ') : ''}\`   (\`node bin/run-ts.mjs bench/secagg.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\`)  `,
    `Date: ${new Date().toISOString()}  `,
    `Machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? '?'}), Node ${process.version}, ${process.platform} ${process.arch}; 1-min load average ${os.loadavg()[0]!.toFixed(1)} at the end`,
    '',
  ];
  if (lb) {
    const target = lb.rows.filter((x) => x.n >= 100);
    const cpuOf = (x: LoopbackRow): number => median((x.r.rounds.length > 1 ? x.r.rounds.slice(1) : x.r.rounds).map((s) => s.cpuS));
    const bankMs = (x: LoopbackRow): number => totals(x.r.workers).handlerCpuMs / Math.max(1, totals(x.r.workers).updates);
    const plain100 = target.find((x) => x.mode === 'plain');
    const verdicts = target
      .filter((x) => x.mode === 'secure')
      .map((x) => {
        const sent = totals(x.r.workers).sentBytes / Math.max(1, totals(x.r.workers).updates);
        const extraBank = plain100 ? bankMs(x) - bankMs(plain100) : NaN;
        return (
          `${x.label} banks, secure: coordinator CPU per round ${cpuOf(x).toFixed(2)} s (target < 2 s: ${cpuOf(x) < 2 ? 'MET' : 'NOT MET'}), ` +
          `bank CPU ${extraBank.toFixed(0)} ms more than plain (target < 1000 ms: ${extraBank < 1000 ? 'MET' : 'NOT MET'}), ` +
          `bytes sent per bank per round ${(sent / (4 * lb.d)).toFixed(3)} × 4d (target ≤ 1.2: ${sent / (4 * lb.d) <= 1.2 ? 'MET' : 'NOT MET'}).`
        );
      });
    parts.push(
      '### Over loopback (real coordinator and socket.io banks)',
      '',
      `The real coordinator (CLI, own process, default mlp model: d = ${lb.d.toLocaleString('en-US')} parameters) and n simulated banks in up to 4 worker processes (bench/loopback.ts), all on this machine's ${cpu.length} cores. ` +
        'Each bank registers with signed frames and answers every round at once with a random update of the model\'s layout clipped to the plan\'s norm: in plain mode as float32 tensors (`--insecure-aggregation`), in secure mode through the agent\'s own SecAggSession (fresh X25519 keys, Shamir shares sealed to every other bank, masking in Z_2^32, unmasking). ' +
        `"Drop" rows: every 10th bank leaves each round after sharing its keys and before masking, so the coordinator rebuilds its pairwise masks with every survivor. ${ROUNDS} rounds per row; latency and coordinator CPU are medians over rounds 2..${ROUNDS} (round 1 includes start-up). ` +
        'Coordinator CPU per round = utime+stime of its process (/proc/<pid>/stat) from round_started to round_committed: broadcast of the model, every bank\'s frames, the secure-aggregation steps, FedAvg and the durable commit. ' +
        'Bank CPU, own steps = process.cpuUsage inside the bank\'s handlers (encoding and signing frames, key generation, sharing, masking, unmasking) per round of a bank that sent its update (droppers\' work is added in, so this errs high); bank process CPU adds socket.io and frame decoding, shared between the banks of a worker. ' +
        'Bytes sent = the signed frames a bank sends in a round (plain: the update; secure: key advertisement, sealed shares, masked update, unmask response). ' +
        'Round latency of the secure rows grows with n because all n simulated banks do their own secure-aggregation work on these same cores (bank process CPU per bank-round × n, queued); each bank would run on its own machine.',
      '',
      loopbackTable(lb.rows, lb.d),
      '',
      ...(verdicts.length ? ['Targets at 100 banks (issue #6): ' + verdicts.join(' '), ''] : []),
    );
  }
  if (rows.length) {
    parts.push(
      '### In-process, split by party',
      '',
      `One secure-aggregation round (Bonawitz et al. 2017, semi-honest variant; shared/secagg) simulated in one process with no sockets, versus plain float32 updates, so each party's CPU is measured alone. ` +
        `d = ${D.toLocaleString('en-US')} parameters${arg('--d') ? '' : " (the 'ctgan' architecture on bench:train's 120-dim layout, larger than the default mlp)"}; updates clipped to L2 norm S = ${CLIP}; ` +
        `ring Z_2^32 with the largest power-of-two scale that cannot overflow for n banks; threshold t = ⌊n/2⌋+1. ` +
        `CPU ms = process.cpuUsage (user+system) inside each party's steps, averaged over the banks that sent an input; "encode" = clip + stochastic rounding (CSPRNG). ` +
        `Secure bank CPU includes 2 X25519 key pairs, n−1 nacl.box seals and opens (tweetnacl, pure JS), n−1 pairwise seeds and n AES-128-CTR mask expansions of d words (1 self mask + n−1 pairwise): ` +
        `naive pairwise masking is O(n·d) per bank, which dominates at 100 banks. Server CPU = summing masked inputs, Shamir reconstruction of every survivor's self-mask seed (with consistency check of the extra shares), ` +
        `and, for dropped banks, reconstruction of their mask key plus one X25519 + one mask expansion per (survivor, dropped) pair. ` +
        `Bytes are estimated protobuf sizes of the secagg messages (plain: one float32 tensor); "sent + received" adds the key list, forwarded share bundles and unmask request each bank receives. ` +
        `The global-weights broadcast is the same in both modes and not counted. One run per row.`,
      '',
      table,
      '',
    );
  }
  const section = parts.join('\n');
  process.stdout.write(section + '\n');
  if (write) process.stderr.write(`wrote the bench:secagg section of ${writeBenchmarkSection('bench:secagg', section)}\n`);
}

await main();
process.exit(0);
