// bench:quality — what the federated, non-private model learns, judged by the evaluation suite.
//   node bin/run-ts.mjs bench/quality.ts [--only simulated,credit-default,bank-marketing]
//        [--rounds R] [--steps S] [--arch mlp|ctgan] [--lr LR] [--lr-d LR] [--ema BETA]
//        [--keep-optimizer] [--average all|generator] [--momentum BETA] [--classifier-weight W]
//        [--classifier linear|mlp] [--seed N] [--model JSON] [--work DIR] [--label-calibration-noise Z] [--no-write]
// --label-calibration-noise Z: the banks' calibration release after the last round and the map it
// fits, as the coordinator's flag (default here 0: off).
// --classifier linear|mlp: C's form, as the coordinator's --classifier; default mlp, the form for a
// consortium training without DP, as these runs do (CLASSIFIER_PRESETS in shared/model/config.ts).
// --seed: the training seed (default 7, as the table); --model: model config overrides (JSON, any
// ModelConfig field, over --classifier's); --work: scratch folder (default .tmp/bench-quality; one per parallel run);
// --lr-d: discriminator learning rate (default --lr); --ema: server-side EMA of the global
// generator per round, sampled instead of the last global model; --average generator: banks keep
// their own discriminators; --momentum: FedAvgM server momentum. bench/quality-trace.ts prints the
// cheap-fidelity trajectory of the same training over rounds.
// Datasets: the project's simulated 3-bank fraud data (public schema), and the public tables in
// ../shared/datasets (stratified 80/20 train/holdout, seed 42, train split 50/30/20 across 3 banks,
// schema drafted from the train split). Targets (issue #4): simulated column shapes ≥ 0.90 and
// pairs ≥ 0.85; real tables TSTR GBDT AUC ≥ 0.97 × TRTR.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { selectBackend } from '../shared/tensor/backend';
import { benchmarkSplits, metric, sampleAndEvaluate, trainFederated, type Split } from './federated';
import { commandLine, writeBenchmarkSection } from './common';
import { classifierPreset, createModel, createTrainer, defaultModelConfig, type ModelConfig } from '../shared/model';
import { consortiumModelConfig } from '../coordinator/model-config';
import { loadTable } from '../shared/data/schema';
import { GmmTransformer, summaryColumns, summaryCounts } from '../shared/transformer/gmm';
import { SimpleTransformer } from '../shared/transformer/simple';

const { args, arg } = commandLine();
const only = arg('--only', 'simulated,credit-default,bank-marketing').split(',');
const rounds = Number(arg('--rounds', '24'));
const steps = Number(arg('--steps', '50'));
const arch = arg('--arch', 'mlp') as 'mlp' | 'ctgan';
const lr = Number(arg('--lr', '2e-4'));
const lrD = args.includes('--lr-d') ? Number(arg('--lr-d', '')) : undefined;
const ema = Number(arg('--ema', '0.8')); // the coordinator's default --generator-ema
const average = arg('--average', 'all') as 'all' | 'generator';
const momentum = Number(arg('--momentum', '0'));
const classifierWeight = Number(arg('--classifier-weight', '1')); // the coordinator's default --classifier-weight
const seed = Number(arg('--seed', '7'));
// The coordinator's --label-calibration-noise (its default is 20, also for consortia without DP).
// Here 0 by default, as the recorded table ran (BENCHMARKS.md notes of 2026-12-07, fourth session).
const labelCalibrationNoise = Number(arg('--label-calibration-noise', '0'));
const classifier = arg('--classifier', 'mlp');
if (classifier !== 'linear' && classifier !== 'mlp') throw new Error(`--classifier must be linear or mlp, got ${classifier}`);
const preset = classifierPreset(classifier);
const modelOverrides = { ...preset, ...(JSON.parse(arg('--model', '{}')) as Partial<ModelConfig>) };
const write = !args.includes('--no-write');
const extraFlags = `${lrD !== undefined ? ` --lr-d ${lrD}` : ''}${` --ema ${ema}`}${average !== 'all' ? ` --average ${average}` : ''}${momentum > 0 ? ` --momentum ${momentum}` : ''} --classifier-weight ${classifierWeight}${classifier !== 'mlp' ? ` --classifier ${classifier}` : ''}${seed !== 7 ? ` --seed ${seed}` : ''}${args.includes('--model') ? ` --model '${JSON.stringify(modelOverrides)}'` : ''}`;
const work = resolve(arg('--work', '.tmp/bench-quality'));

/**
 * Median ms per local step (batch 500): the first issue's simple model (default mlp, no classifier)
 * on the simple layout vs the consortium's default model (with the classifier of the schema's
 * target, as the coordinator builds it) on the GMM layout.
 */
async function stepTimes(split: Split): Promise<{ simple: number; gmm: number; dims: [number, number] }> {
  const rows = (await loadTable(split.bankPaths[0]!, split.schema)).rows;
  const counts = summaryCounts(split.schema, rows);
  const gmm = GmmTransformer.fit(split.schema, summaryColumns(split.schema).map((c, k) => ({ column: c.column, values: counts[k]! })));
  const simple = SimpleTransformer.fromSchema(split.schema);
  const time = (t: { spans: typeof gmm.spans; outputDim: number }, data: Float32Array, config: ModelConfig): number => {
    const model = createModel(config, t.spans);
    const trainer = createTrainer(model, { seed: 1 });
    const ms: number[] = [];
    for (let i = 0; i < 23; i++) {
      const t0 = performance.now();
      trainer.trainSteps(data, rows.length, { steps: 1, batchSize: 500 });
      if (i >= 3) ms.push(performance.now() - t0);
    }
    trainer.dispose();
    model.dispose();
    return ms.sort((a, b) => a - b)[ms.length >> 1]!;
  };
  const consortium = consortiumModelConfig(split.schema, { ...modelOverrides, classifierWeight });
  return { simple: time(simple, simple.transform(rows), defaultModelConfig()), gmm: time(gmm, gmm.transform(rows), consortium), dims: [simple.outputDim, gmm.outputDim] };
}

async function main(): Promise<void> {
  const backend = await selectBackend({ log: (l) => process.stderr.write(`${l}\n`) });
  const log = (l: string): void => void process.stderr.write(`${l}\n`);
  const splits = await benchmarkSplits(only, work);
  const rowsOut: string[] = [];
  for (const split of splits) {
    const t0 = performance.now();
    log(`== ${split.name}: ${rounds} rounds x ${steps} local steps x 3 banks, ${arch}, batch 500, lr ${lr}${extraFlags}`);
    const res = await trainFederated(split, { model: { ...modelOverrides, architecture: arch, loss: (arg('--loss', 'ns') as 'ns' | 'wgan-gp') }, rounds, localSteps: steps, batchSize: 500, lr, ...(lrD !== undefined ? { lrD } : {}), generatorEma: ema, classifierWeight, average, serverMomentum: momentum, keepOptimizer: args.includes('--keep-optimizer'), seed, labelCalibrationNoise, log });
    const trainRows = (readFileSync(split.trainPath, 'utf8').match(/\n/g)?.length ?? 1) - 1;
    const report = await sampleAndEvaluate(split, res, { rows: trainRows, seed: 11, outDir: work });
    const secs = (performance.now() - t0) / 1000;
    const shapes = metric(report, 'fidelity.columnShapes');
    const pairs = metric(report, 'fidelity.columnPairs');
    const tstr = metric(report, 'utility.gbdt.tstr.auc');
    const trtr = metric(report, 'utility.gbdt.trtr.auc');
    const line = `| ${split.name} | ${shapes.toFixed(3)} | ${pairs.toFixed(3)} | ${metric(report, 'fidelity.detectionAuc').toFixed(3)} | ${tstr.toFixed(3)} / ${trtr.toFixed(3)} = ${(tstr / trtr).toFixed(3)} | ${metric(report, 'utility.gbdt.tstr.recall').toFixed(2)} / ${metric(report, 'utility.gbdt.trtr.recall').toFixed(2)} | ${metric(report, 'privacy.dcr.shareCloserToTrain').toFixed(3)} / ${metric(report, 'privacy.mia.distanceAuc').toFixed(3)} | ${res.msPerStep.toFixed(0)} | ${secs.toFixed(0)} s |`;
    log(line);
    rowsOut.push(line);
  }
  const speed = splits.length > 0 ? await stepTimes(splits[0]!) : undefined;
  const body = [
    `Command: \`node bin/run-ts.mjs bench/quality.ts --rounds ${rounds} --steps ${steps} --arch ${arch} --loss ${arg('--loss', 'ns')} --lr ${lr}${args.includes('--keep-optimizer') ? ' --keep-optimizer' : ''}${extraFlags}\` (npm run bench:quality). Backend ${backend.name}, ${os.cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `Federated, non-private: 3 banks in one process (production schema, summaries, GMM transformer fit, trainer, FedAvg; no sockets), ${rounds} rounds x ${steps} local steps per bank at batch 500. Synthetic rows = train rows, sampled as \`fedsynth sample\` does (stratified by the target, its labels drawn from the classifier C); judged by \`fedsynth evaluate\` against the real holdout. C is ${classifier === 'mlp' ? `the coordinator's \`--classifier mlp\` (one hidden layer of ${preset.classifierDims.join('-')}, Adam at ${preset.classifierLr}), the form for a consortium training without DP, as here; the default, linear, is for DP-SGD` : `linear (the coordinator's default, for DP-SGD)`}.${args.includes('--model') ? ` Model overrides: \`${arg('--model', '{}')}\`.` : ''}`,
    '',
    '| data | column shapes | column pairs | detection AUC | GBDT AUC TSTR / TRTR = ratio | minority recall TSTR / TRTR | closer-to-train / MIA AUC | ms per local step | wall |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rowsOut,
    '',
    'Targets (issue #4): simulated shapes ≥ 0.90 and pairs ≥ 0.85; real tables TSTR ≥ 0.97 × TRTR.',
    ...(speed
      ? [
          '',
          `Step cost (mlp, batch 500, median of 20 steps) on the ${splits[0]!.name} layout: the simple model (simple transformer, ${speed.dims[0]} dims, no classifier) ${speed.simple.toFixed(0)} ms; the model trained here (GMM transformer, ${speed.dims[1]} dims${classifierWeight > 0 ? ', with the classifier of the target' : ''}) ${speed.gmm.toFixed(0)} ms = ${(speed.gmm / speed.simple).toFixed(2)}x (target ≤ 1.3x).`,
        ]
      : []),
  ].join('\n');
  process.stdout.write(body + '\n');
  if (write) writeBenchmarkSection('bench:quality', `## bench:quality\n\n${body}`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
