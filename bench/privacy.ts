// bench:privacy — cost of DP-SGD on the discriminator and the accountant's ε for typical settings.
// Milliseconds per discriminator update (inputs + gradients + Adam step) with DP-SGD (Poisson
// sampling, per-pack clipping, secure Gaussian noise) vs. plain, batch 500, on the bench:train
// layout (~120 dims); plus the time of the secure noise alone and an (ε, δ) table from the RDP
// accountant. Writes the `## bench:privacy` section of BENCHMARKS.md (other sections are kept).
//   node bin/run-ts.mjs bench/privacy.ts [--quick] [--no-write]
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { createModel, createTrainer, defaultModelConfig, type ModelConfig, type OutputSpan, type Trainer } from '../shared/model';
import { epsilonFor, noiseMultiplierFor } from '../shared/privacy/calibrate';
import { secureGaussian } from '../shared/privacy/secure-noise';
import { selectBackend } from '../shared/tensor/backend';
import { benchLayout as layout, median, syntheticRows, writeBenchmarkSection } from './common';

const quick = process.argv.includes('--quick');
const write = !process.argv.includes('--no-write');
const BATCH = 500;
const N = 5000;
const DELTA = 1e-5;

function dStep(t: Trainer, data: Float32Array, dp: boolean): void {
  const inputs = dp ? t.discriminatorInputs(data, N, BATCH, t.samplePrivateRows(N), BATCH) : t.discriminatorInputs(data, N, BATCH);
  let g;
  try {
    g = t.discriminatorGradients(inputs);
  } finally {
    inputs.real.dispose();
    inputs.fake.dispose();
  }
  t.applyDiscriminatorGradients(g.grads);
}

interface Row {
  variant: string;
  plain: number;
  dp: number;
  noise: number;
  dParams: number;
}

function timeVariant(variant: string, cfg: Partial<ModelConfig>, spans: OutputSpan[], data: Float32Array, warm: number, timed: number): Row {
  const m = createModel(defaultModelConfig(cfg), spans);
  const plainT = createTrainer(m, { sampling: 'uniform' });
  const dpT = createTrainer(m, { dp: { noiseMultiplier: 1.1, maxGradNorm: 1, sampleRate: BATCH / N } });
  const dParams = m.discriminatorVariables().reduce((s, v) => s + v.size, 0);
  const plain: number[] = [];
  const dp: number[] = [];
  const noise: number[] = [];
  // Interleaved so both see the same machine load.
  for (let i = 0; i < warm + timed; i++) {
    let t0 = performance.now();
    dStep(plainT, data, false);
    const a = performance.now() - t0;
    t0 = performance.now();
    dStep(dpT, data, true);
    const b = performance.now() - t0;
    t0 = performance.now();
    secureGaussian(dParams, 1);
    const c = performance.now() - t0;
    if (i >= warm) {
      plain.push(a);
      dp.push(b);
      noise.push(c);
    }
    process.stderr.write(`\r${variant}: ${i + 1}/${warm + timed}`);
  }
  process.stderr.write('\n');
  plainT.dispose();
  dpT.dispose();
  m.dispose();
  return { variant, plain: median(plain), dp: median(dp), noise: median(noise), dParams };
}

async function main(): Promise<void> {
  const sel = await selectBackend({ log: () => {} });
  const spans = layout();
  const data = syntheticRows(spans, N);
  const warm = quick ? 1 : 3;
  const timed = quick ? 3 : 15;
  const rows = [
    timeVariant('ctgan / ns (pac 10)', { architecture: 'ctgan', loss: 'ns' }, spans, data, warm, timed),
    timeVariant('mlp / ns (pac 1)', { architecture: 'mlp', loss: 'ns' }, spans, data, warm, timed),
  ];

  const qs = [0.01, 0.1];
  const sigmas = [0.8, 1.1, 2.0];
  const stepsList = [250, 1000, 5000];
  const acc: string[] = [];
  for (const q of qs) for (const sigma of sigmas) acc.push(`| ${q} | ${sigma} | ${stepsList.map((s) => epsilonFor({ sampleRate: q, noiseMultiplier: sigma, steps: s, delta: DELTA }).toFixed(3)).join(' | ')} |`);
  const cal: string[] = [];
  for (const [eps, q, steps] of [[1, 0.1, 250], [1, 0.01, 1000], [3, 0.1, 1000], [8, 0.1, 5000]] as const) {
    const t0 = performance.now();
    const sigma = noiseMultiplierFor({ targetEpsilon: eps, delta: DELTA, sampleRate: q, steps });
    cal.push(`| ${eps} | ${q} | ${steps} | ${sigma.toFixed(3)} | ${(performance.now() - t0).toFixed(0)} |`);
  }

  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    '## bench:privacy',
    '',
    'Command: `npm run bench:privacy   (node bin/run-ts.mjs bench/privacy.ts)`  ',
    `Date: ${new Date().toISOString()}  `,
    `Machine: ${os.cpus().length} cores (${cpu}), Node ${process.version}, ${os.platform()} ${os.arch()}, tfjs ${tf.version.tfjs}, backend ${sel.name}`,
    '',
    `One discriminator update (packed inputs incl. generating the fake rows, gradients, Adam step), batch ${BATCH}, ${N} local rows, bench:train layout ` +
      `(120 dims, cond 65), default sizes (D 256-256, dropout 0.5). DP-SGD: Poisson rate q = ${BATCH / N} (node:crypto), exact per-pack clipping (C = 1), ` +
      'secure Gaussian noise (σ = 1.1) on all D parameters, division by q·n/pac. For D ≥ 100k parameters the trainer draws the next step\'s noise ahead on a worker thread (shared/privacy/noise-prefetch.ts; the same sampler), so it overlaps the gradient computation and costs a second core instead of wall time. Median of ' +
      `${timed} interleaved steps after ${warm} warm-up. "secure noise" = secureGaussian for all D parameters alone, on the main thread (part of the DP step when not prefetched).`,
    '',
    '| model / loss | D parameters | plain ms / D step | DP-SGD ms / D step | overhead | secure noise ms |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.variant} | ${r.dParams.toLocaleString('en-US')} | ${r.plain.toFixed(1)} | ${r.dp.toFixed(1)} | ${(((r.dp - r.plain) / r.plain) * 100).toFixed(0)}% | ${r.noise.toFixed(1)} |`,
    ),
    '',
    `Accountant (RDP, sampled Gaussian, δ = ${DELTA}): ε after T steps. Each D update is one step; pac > 1 needs no adjustment here because the noise is already scaled to the record-level sensitivity 2C.`,
    '',
    `| q | σ | ${stepsList.map((s) => `T = ${s}`).join(' | ')} |`,
    `|---:|---:|${stepsList.map(() => '---:').join('|')}|`,
    ...acc,
    '',
    'Calibration (noiseMultiplierFor):',
    '',
    '| target ε | q | T | σ | ms |',
    '|---:|---:|---:|---:|---:|',
    ...cal,
    '',
  ];
  const section = lines.join('\n');
  process.stdout.write(section + '\n');
  if (write) process.stderr.write(`wrote the bench:privacy section of ${writeBenchmarkSection('bench:privacy', section)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench:privacy failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
