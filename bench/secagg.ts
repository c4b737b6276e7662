// bench:secagg — cost of secure aggregation (Bonawitz et al. 2017) against plain float updates,
// in-process (no sockets): 3, 10 and 100 simulated banks, each with a random clipped update of d
// parameters, d = the default 'ctgan' model's parameter count on bench:train's layout (5
// continuous + 5 categorical columns, 120 transformer dims). Reports per-bank and server CPU ms
// and bytes per bank (estimated protobuf sizes of all secagg messages). Writes the
// `## bench:secagg` section of BENCHMARKS.md (other sections are kept).
//   node bin/run-ts.mjs bench/secagg.ts [--d N] [--banks 3,10,100] [--no-write]
import os from 'node:os';
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

function main(): void {
  process.stderr.write(`d = ${D}${arg('--d') ? ' (--d)' : ` (default ctgan on bench:train layout)`}, banks ${BANKS.join(', ')}\n`);
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
  const section = [
    '## bench:secagg',
    '',
    `Command: \`node bin/run-ts.mjs bench/secagg.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\`  `,
    `Date: ${new Date().toISOString()}  `,
    `Machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? '?'}), Node ${process.version}, ${process.platform} ${process.arch}`,
    '',
    `In-process simulation (no sockets) of one secure-aggregation round (Bonawitz et al. 2017, semi-honest variant; shared/secagg) versus plain float32 updates. ` +
      `d = ${D.toLocaleString('en-US')} parameters${arg('--d') ? '' : " (default 'ctgan' model on bench:train's 120-dim layout)"}; updates clipped to L2 norm S = ${CLIP}; ` +
      `ring Z_2^32 with the largest power-of-two scale that cannot overflow for n banks; threshold t = ⌊n/2⌋+1. ` +
      `CPU ms = process.cpuUsage (user+system) inside each party's steps, averaged over the banks that sent an input; "encode" = clip + stochastic rounding (CSPRNG). ` +
      `Secure bank CPU includes 2 X25519 key pairs, n−1 nacl.box seals and opens (tweetnacl, pure JS), n−1 pairwise seeds and n ChaCha20 mask expansions of d words (1 self mask + n−1 pairwise): ` +
      `naive pairwise masking is O(n·d) per bank, which dominates at 100 banks. Server CPU = summing masked inputs, Shamir reconstruction of every survivor's self-mask seed (with consistency check of the extra shares), ` +
      `and, for dropped banks, reconstruction of their mask key plus one X25519 + one mask expansion per (survivor, dropped) pair. ` +
      `Bytes are estimated protobuf sizes of the secagg messages (plain: one float32 tensor); "sent + received" adds the key list, forwarded share bundles and unmask request each bank receives. ` +
      `The global-weights broadcast is the same in both modes and not counted. One run per row (single-threaded; the machine is shared, so expect ±20%).`,
    '',
    table,
    '',
  ].join('\n');
  process.stdout.write(section + '\n');
  if (write) process.stderr.write(`wrote the bench:secagg section of ${writeBenchmarkSection('bench:secagg', section)}\n`);
}

main();
