import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { readCheckpoint } from '../../coordinator/store/checkpoint';
import { writeCsv } from '../../shared/data/csv';
import { createProgress } from '../../shared/log/progress';
import { rowsForClassMinimum, sampleRows } from '../../shared/sampling/sampler';
import { selectBackend } from '../../shared/tensor/backend';
import { positiveInt, positiveNumber } from './agent';

/** The most rows --min-class-rows may raise a sample to (a few GB of rows in memory). */
const MAX_SIZED_ROWS = 5_000_000;

export function register(program: Command): void {
  program
    .command('sample')
    .description('write synthetic rows from a checkpointed global model, with the original column names and types')
    .requiredOption('--model <checkpoint>', 'checkpoint file (e.g. <state-dir>/latest.ckpt)')
    .requiredOption('--rows <n>', 'number of rows')
    .requiredOption('--out <csv>', 'output CSV; the model card is written beside it as <csv>.model-card.json')
    .option('--where <column=value>', 'only rows with this category of a discrete column, e.g. is_fraud=1')
    .option(
      '--min-class-rows <k>',
      "draw more than --rows where needed so that every class of the schema's target gets at least k rows of the stratified sample (class shares from the consortium's DP-noised counts). A model trained on synthetic rows learns a rare class from the rows labelled with it: at ε = 1 on little data (about 100 fraud rows in all), a GBDT trained on a sample holding about 1,000 fraud rows reached a PR-AUC of 0.07-0.28, against 0.02-0.15 for a sample the size of the real data (BENCHMARKS.md). Post-processing: no privacy cost",
    )
    .option('--seed <n>', 'random seed for reproducible samples')
    .option('--no-stratify', "without --where: draw each row's condition as CTGAN does, instead of stratifying by the schema's target (each class's share from the consortium's DP-noised counts)")
    .option('--generator-labels', "keep the generator's own labels of the schema's target instead of drawing them from the consortium's classifier of the target (models trained with one)")
    .option(
      '--label-temperature <t>',
      "with the classifier's labels: draw them from C's probabilities at this temperature (its logits divided by t). 1 (default) is C as trained; t > 1 flattens them, so more borderline rows get the minority label (a recall-oriented sample; under DP-SGD C comes out over-confident, see BENCHMARKS.md), t < 1 sharpens them (a ranking-oriented sample of a rare class: on the simulated fraud data at ε = 1, t = 0.25 raised a train-on-synthetic model's PR-AUC in 7 of 8 runs, median 0.061 to 0.131, where --min-class-rows 1000 did as well or better and the two together no better; on a class of 12% of the rows it cost recall instead, BENCHMARKS.md). Post-processing: no privacy cost",
    )
    .option('--no-label-calibration', "with the classifier's labels: ignore the checkpoint's label calibration (fitted from the banks' DP-noised counts after training) and draw from C as trained")
    .action(async (o: { model: string; rows: string; out: string; where?: string; minClassRows?: string; seed?: string; stratify?: boolean; generatorLabels?: boolean; labelTemperature?: string; labelCalibration?: boolean }) => {
      let n = positiveInt(o.rows, '--rows');
      const minClassRows = o.minClassRows === undefined ? undefined : positiveInt(o.minClassRows, '--min-class-rows');
      if (minClassRows !== undefined && (o.where !== undefined || o.stratify === false)) throw new Error('--min-class-rows sizes a stratified sample; it cannot be combined with --where or --no-stratify');
      const temperature = o.labelTemperature === undefined ? undefined : positiveNumber(o.labelTemperature, '--label-temperature');
      if (temperature !== undefined && o.generatorLabels) throw new Error("--label-temperature applies to the classifier's labels; it cannot be combined with --generator-labels");
      let where: { column: string; value: string } | undefined;
      if (o.where !== undefined) {
        const eq = o.where.indexOf('=');
        if (eq <= 0) throw new Error(`--where must look like column=value, got '${o.where}'`);
        where = { column: o.where.slice(0, eq), value: o.where.slice(eq + 1) };
      }
      const ckpt = readCheckpoint(o.model);
      if (minClassRows !== undefined) {
        const need = rowsForClassMinimum(ckpt as Parameters<typeof rowsForClassMinimum>[0], n, minClassRows);
        // The rows are held in memory: a very rare class would ask for more than a machine has.
        if (need.rows > MAX_SIZED_ROWS) {
          throw new Error(
            `--min-class-rows ${minClassRows} would need ${need.rows} rows (${need.column}=${need.label} is ${(100 * need.share).toPrecision(2)}% of the consortium's rows), over ${MAX_SIZED_ROWS}: ask for fewer, or sample the class alone with --where ${need.column}=${need.label}`,
          );
        }
        if (need.rows > n) process.stderr.write(`drawing ${need.rows} rows instead of ${n}: ${need.column}=${need.label} is ${(100 * need.share).toPrecision(2)}% of the consortium's rows, and --min-class-rows asks for ${minClassRows} of them\n`);
        n = need.rows;
      }
      await selectBackend({ log: (l) => process.stderr.write(`${l}\n`) });
      const progress = createProgress('sampling', n);
      const t0 = Date.now();
      const { rows, columns, stratifiedBy, labelledBy } = sampleRows(ckpt as Parameters<typeof sampleRows>[0], n, {
        where,
        stratify: o.stratify !== false,
        labels: o.generatorLabels ? 'generator' : 'classifier',
        ...(temperature !== undefined ? { labelLogitScale: 1 / temperature } : {}),
        ...(o.labelCalibration === false ? { labelCalibration: null } : {}),
        seed: o.seed === undefined ? undefined : positiveInt(o.seed, '--seed'),
        onProgress: (done) => progress.update(done),
      });
      progress.done(`${((Date.now() - t0) / 1000).toFixed(1)} s`);
      if (temperature !== undefined && !labelledBy) process.stderr.write(`--label-temperature ignored: the target's labels in these rows are the generator's (the model has no classifier of the target, or the class is too rare for it to pick)\n`);
      writeCsv(o.out, columns, rows);
      const card = { model: o.model, version: ckpt.version, round: ckpt.round, createdAt: ckpt.createdAt, sampledAt: new Date().toISOString(), rows: n, minClassRows: minClassRows ?? null, where: o.where ?? null, stratifiedBy: stratifiedBy ?? null, labelsFromClassifier: labelledBy ?? null, labelTemperature: labelledBy ? (temperature ?? 1) : null, ...ckpt.meta, labelsCalibrated: Boolean(labelledBy && ckpt.meta.labelCalibration && o.labelCalibration !== false), categoryWeights: undefined };
      writeFileSync(`${o.out}.model-card.json`, JSON.stringify(card, null, 2) + '\n');
      process.stdout.write(`${o.out}\n`);
    });
}
