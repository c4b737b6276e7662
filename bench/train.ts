// bench:train — milliseconds per local training step (one D update + one G update, batch 500) for
// each available tfjs backend, both architectures and both losses, on a realistic transformer
// layout (~120 dims, 10 softmax spans). Median over timed steps after warm-up. Writes the
// `## bench:train` section of BENCHMARKS.md (other sections are kept).
//   node bin/run-ts.mjs bench/train.ts [--quick] [--no-write]
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { createModel, createTrainer, defaultModelConfig, type ModelConfig, type OutputSpan } from '../shared/model';
import { BACKEND_ORDER, selectBackend, type BackendName } from '../shared/tensor/backend';
import { registerFastGradients, restoreStockGradients } from '../shared/tensor/fast-gradients';
import { benchLayout as layout, median, syntheticRows, writeBenchmarkSection } from './common';

const quick = process.argv.includes('--quick');
const write = !process.argv.includes('--no-write');
const BATCH = 500;

const isTTY = process.stderr.isTTY === true;
function progress(label: string, done: number, total: number): void {
  if (isTTY) {
    const w = 24;
    const f = Math.round((done / total) * w);
    process.stderr.write(`\r${label.padEnd(34)} [${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total}`);
    if (done === total) process.stderr.write('\n');
  } else if (done === total || done === 0) {
    process.stderr.write(`${label}: ${done === 0 ? 'start' : 'done'} (${total} steps)\n`);
  }
}

interface Row {
  backend: string;
  variant: string;
  ms: number;
  steps: number;
  params: number;
}

function timeVariant(backend: string, variant: string, cfg: Partial<ModelConfig>, spans: OutputSpan[], data: Float32Array, n: number, warm: number, timed: number): Row {
  const m = createModel(defaultModelConfig(cfg), spans);
  const t = createTrainer(m);
  const label = `${backend} ${variant}`;
  const times: number[] = [];
  const total = warm + timed;
  progress(label, 0, total);
  for (let i = 0; i < total; i++) {
    const t0 = performance.now();
    t.trainSteps(data, n, { steps: 1, batchSize: BATCH });
    const dt = performance.now() - t0;
    if (i >= warm) times.push(dt);
    progress(label, i + 1, total);
  }
  const params = m.spec.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  t.dispose();
  m.dispose();
  return { backend, variant, ms: median(times), steps: timed, params };
}

async function main(): Promise<void> {
  const spans = layout();
  const outputDim = spans.reduce((s, x) => s + x.dim, 0);
  const n = 5000;
  const data = syntheticRows(spans, n);
  const variants: [string, Partial<ModelConfig>][] = [
    ['mlp / ns (pac 1)', { architecture: 'mlp', loss: 'ns' }],
    ['mlp / wgan-gp (pac 1)', { architecture: 'mlp', loss: 'wgan-gp' }],
    ['ctgan / ns (pac 10)', { architecture: 'ctgan', loss: 'ns' }],
    ['ctgan / wgan-gp (pac 10)', { architecture: 'ctgan', loss: 'wgan-gp' }],
  ];
  const rows: Row[] = [];
  const unavailable: string[] = [];
  const candidates: BackendName[] = [...BACKEND_ORDER];
  for (const b of candidates) {
    let ok = true;
    await selectBackend({ force: b, log: () => {} }).catch((e: Error) => {
      ok = false;
      const why = e.message.replace(/^could not start forced tfjs backend '[^']+' \([^:]+: /, '').replace(/\)$/, '');
      unavailable.push(`${b}: ${why.replace(/ imported from .*$/, '')}`);
    });
    if (!ok) continue;
    const slow = b === 'cpu';
    const warm = quick || slow ? 1 : 3;
    const timed = quick ? 3 : slow ? 3 : 15;
    for (const [name, cfg] of variants) rows.push(timeVariant(b, name, cfg, spans, data, n, warm, timed));
    if (b === 'wasm') {
      // The same step with tfjs's stock BatchMatMul gradient (transposed matMuls), for comparison.
      restoreStockGradients();
      try {
        rows.push(timeVariant(b, 'mlp / ns, stock matMul gradient', variants[0]![1], spans, data, n, warm, quick ? 3 : 8));
      } finally {
        registerFastGradients();
      }
    }
  }
  const condDim = spans.filter((s) => s.kind === 'softmax' && s.column.startsWith('cat')).reduce((a, s) => a + s.dim, 0);
  const cmd = `npm run bench:train${quick ? ' -- --quick' : ''}   (node bin/run-ts.mjs bench/train.ts${quick ? ' --quick' : ''})`;
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    '## bench:train',
    '',
    `Command: \`${cmd}\`  `,
    `Date: ${new Date().toISOString()}  `,
    `Machine: ${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.arch()}, tfjs ${tf.version.tfjs}`,
    '',
    `One local training step = 1 discriminator update + 1 generator update, batch ${BATCH}, default sizes (noise 128, G 256-256, D 256-256, dropout 0.5); ` +
      `transformer output ${outputDim} dims in ${spans.length} spans (5 continuous columns as tanh + 10-mode softmax, 5 categoricals with 2/4/7/12/40 categories; ` +
      `${spans.filter((s) => s.kind === 'softmax').length} softmax spans), conditional vector ${condDim} dims. Median over the timed steps after warm-up. Non-DP step (DP-SGD per-example clipping will add to the D update).`,
    '',
    '| backend | model / loss | ms per step (median) | timed steps | parameters |',
    '|---|---|---:|---:|---:|',
    ...rows.map((r) => `| ${r.backend} | ${r.variant} | ${r.ms.toFixed(1)} | ${r.steps} | ${r.params.toLocaleString('en-US')} |`),
    '',
    unavailable.length ? `Unavailable backends: ${unavailable.map((u) => `\`${u}\``).join('; ')}.` : 'All backends available.',
    '',
  ];
  const section = lines.join('\n');
  process.stdout.write(section + '\n');
  if (write) process.stderr.write(`wrote the bench:train section of ${writeBenchmarkSection('bench:train', section)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    // Exit cleanly: the wasm runtime otherwise rethrows and dumps its own source.
    process.stderr.write(`bench:train failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  },
);
