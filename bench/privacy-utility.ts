// bench:privacy (utility part) — the same federated harness as bench:quality, with record-level DP
// per bank: a DP summary (share of ε) and DP-SGD on the discriminator (the rest), at ε = 1 and 3,
// δ = 1e-5. Reports TSTR vs TRTR AUC, minority recall, precision and PR-AUC, and the membership-inference AUC.
//   node bin/run-ts.mjs bench/privacy-utility.ts [--only ...] [--eps 1,3] [--rounds R] [--steps S] [--lr LR] [--lr-d LR] [--ema BETA] [--ema-generator-only] [--also-ema-generator-only] [--classifier-weight W] [--classifier-clip-share S] [--classifier-clip-norm R] [--summary-epsilon E] [--summary-target-share S] [--batch B] [--repeat N] [--model JSON] [--work DIR] [--also-weighted-labels] [--also-generator-labels] [--also-unstratified] [--oracle-labels] [--classifier-holdout] [--also-label-scale A,B] [--also-uncalibrated] [--label-calibration-noise Z] [--also-rows-factor F,G] [--also-oversample F] [--point-masses] [--no-mode-shares] [--spike-shares] [--update-clip-norm S] [--pair-noise Z] [--pair-weight W] [--pairs-from-round R] [--g-steps K] [--reference-labels LR[@E]] [--no-write]
// --ema-generator-only: the moving average over rounds covers G alone (before 2026-12-06), not G and C;
//   --also-ema-generator-only scores that variant of the same run too, printed only.
// --also-weighted-labels: also scores rows sampled from the same model with C's labels picked by the old
//   weighted draw (QuotaDraw 'weighted') instead of the prior shift, printed only.
// --also-generator-labels: also scores rows sampled from the same model with the generator's own labels, printed only.
// --also-unstratified: also scores rows sampled from the same model without stratifying (fedsynth sample --no-stratify), printed only.
// --oracle-labels (diagnostic, printed only): relabels the synthetic rows with a GBDT fitted on the REAL
//   train split (same positive count, weighted draw) and scores TSTR again: near TRTR means the DP generator's
//   features suffice and the labels are what is lost; far below means the features are.
// --reference-labels LR[@E] (diagnostic, printed only; spends ε on the real rows again): relabels the synthetic rows
//   with bench/privacy-reference.ts's federated DP-SGD logistic regression (rate LR, this run's rounds x steps) at the run's ε (or E) and scores TSTR
//   again, with that model's own holdout AUC: TSTR near it means the sample's features carry what a better C would
//   give; far below means they do not.
// --classifier-holdout (diagnostic, printed only): the published C on the real holdout: its AUC and PR-AUC, its recall at
//   the holdout's own F1-best threshold, its mean P(minority) against the class's share, and its per-example
//   gradient norms (what DP-SGD clips; see classifierClipNorm in shared/model/dp-sgd.ts), and its calibration:
//   the slope a and intercept b of P(y) ≈ σ(a·logit p + b) fitted on the holdout (a < 1: C over-confident);
//   and the recall and precision at the F1-best threshold on labels drawn from C for the holdout's own rows
//   (as the sampler draws them), against the true labels: what a TSTR model that learned C exactly would flag.
// --also-label-scale A,B (printed only; with --min-class-rows, the sized sample too): also scores rows sampled from the same model with C's logits
//   multiplied by A, then B (the sampler's labelLogitScale; < 1 flattens C's labels).
// --also-uncalibrated (printed only): also scores rows sampled from the same model with C's labels drawn
//   without the published calibration map (the sampler's labelCalibration null), as before 2026-12-07.
// --label-calibration-noise Z: the banks' calibration release after the last round (default 20, the
//   coordinator's; 0 = off, and then not planned into σ either).
// --also-rows-factor F,G (printed only): also scores samples of F, then G times the train split's rows.
// --also-oversample F (printed only): the sample just scored plus F times its minority rows more, drawn as
//   `fedsynth sample --where target=minority` does, once with C's labels (the class's rows of a stratified
//   sample, the default) and once with the generator's (--generator-labels: rows generated for the class):
//   TSTR of each augmented sample, and the extra minority rows' column shapes / pairs against the real
//   train split's minority rows (the evaluator's fidelity, minority rows only, target dropped).
// --classifier-clip-norm R: DP-SGD's classifierClipNorm (default: none, C's gradient clipped at C√s as it stands).
// --model: model config overrides over the mlp defaults, e.g. '{"discriminatorDims":[64,64]}'.
// --no-mode-shares (with --point-masses): the generator's marginal term without the numeric columns' mode shares.
// --point-masses: the transformer keeps point masses at 0 and the declared bounds, and the generator's marginal term holds
//   every numeric column's mode shares (the coordinator's --point-masses; off by default, as there).
// --spike-shares (with --point-masses): the generator's marginal term holds only the point masses' shares, not every mixture mode's.
// --pair-noise Z (the coordinator's --pair-counts-noise): each bank also releases the two-way counts of
//   every pair of softmax spans but the target's, Gaussian noise at noise multiplier Z (sd Z·√pairs per cell),
//   planned into σ; the merged tables, shrunk towards independence by what the noise explains, are the generator's
//   pair targets (bench/federated.ts pairNoise, shared/transformer/pair-counts.ts). --pair-weight W: their weight
//   relative to the marginal term's (default 1; the coordinator's --pair-weight, default 10). --pairs-from-round R:
//   the first round that trains with them (default 2, as the agent and coordinator run it: the counts go with each
//   bank's first update). --g-steps K: K generator updates per local step (default 1; the coordinator's --g-steps).
// --update-clip-norm S: each bank's update clipped to L2 norm S, as the agent does with the coordinator's --update-clip-norm (default: not clipped).
// --min-class-rows K (default 1000; 0 = off): each run also scores a second sample, as many rows as the train split or
//   more so that the target's rarest class gets K rows (`fedsynth sample --min-class-rows K`), in the tables'
//   "sized sample" columns. Same model; when the train split's size already gives K, the same figures.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { selectBackend } from '../shared/tensor/backend';
import { bankRowCounts, benchmarkSplits, metric, PRIVACY_DATASETS, samplableOf, sampleAndEvaluate, trainFederated } from './federated';
import { commandLine, writeBenchmarkSection } from './common';
import { aucRoc, bestF1Threshold, metricsAt, dropColumn, fitAndScore, loadEvaluationInput, positiveClassOf, prAuc, readSchemaFile, trainGbdt } from '../shared/eval';
import { applyBinnedDesign, fitBinnedDesign, predictLogistic, trainFederatedDpLogistic } from '../shared/eval/dp-logistic';
import { quantileSorted } from '../shared/eval/random';
import { labelsForQuotas, priorShiftProbabilities, rowsForClassMinimum, sampleRows } from '../shared/sampling/sampler';
import { applyLabelCalibration } from '../shared/model/label-calibration';
import { evaluateFiles } from '../shared/eval/run';
import { parseCsvText, writeCsv } from '../shared/data/csv';
import { DEFAULT_SUMMARY_TARGET_SHARE } from '../shared/privacy/summary-noise';
import { Rng } from '../shared/tensor/random';
import type { FederatedResult, Split } from './federated';
import { formatRow, loadTable } from '../shared/data/schema';
import * as tf from '@tensorflow/tfjs';
import { createModel } from '../shared/model';
import { classifierSpan } from '../shared/model/config';
import { discriminatorDeltas, perExampleSquaredNorms } from '../shared/model/dp-sgd';
import { spikeValuesOf } from '../shared/transformer/gmm';
import { ROW_COUNT_NOISE_SD } from '../client-node/dp-row-count';

const { args, arg } = commandLine();
const only = arg('--only', PRIVACY_DATASETS).split(',');
const epsilons = arg('--eps', '1,3').split(',').map(Number);
// Defaults are the settings of BENCHMARKS.md's table, so `npm run bench:privacy` reproduces it
// (both ε, three runs each: 24 runs of 75-130 s on 2 cores).
const rounds = Number(arg('--rounds', '8'));
const steps = Number(arg('--steps', '40'));
const lr = Number(arg('--lr', '2e-4'));
// As the coordinator's --label-calibration-noise (default 20; 0 = off): planned into σ, then released after the last round.
const labelCalibrationNoise = Number(arg('--label-calibration-noise', '20'));
const ema = Number(arg('--ema', '0.8')); // the coordinator's default --generator-ema
const classifierWeight = Number(arg('--classifier-weight', '1')); // the coordinator's default --classifier-weight
const summaryEpsilon = Number(arg('--summary-epsilon', '0.4')); // the agent's --summary-epsilon default
const targetShare = args.includes('--summary-target-share') ? Number(arg('--summary-target-share', '')) : undefined; // the agent's --summary-target-share (default 0.5)
const clipShare = args.includes('--classifier-clip-share') ? Number(arg('--classifier-clip-share', '')) : undefined; // DP-SGD's classifierClipShare (default DEFAULT_CLASSIFIER_CLIP_SHARE, 0.5)
const clipNormC = args.includes('--classifier-clip-norm') ? Number(arg('--classifier-clip-norm', '')) : undefined;
const modelOverrides = JSON.parse(arg('--model', '{}')) as Record<string, unknown>;
const write = !args.includes('--no-write');
const batchSize = Number(arg('--batch', '500'));
const lrD = args.includes('--lr-d') ? Number(arg('--lr-d', '')) : undefined; // D's rate when it differs from --lr
const repeats = Number(arg('--repeat', '3')); // runs per (data, ε): seeds 7, 1007, …, with a median table
if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeat must be a positive integer, got ${arg('--repeat', '')}`);
const work = resolve(arg('--work', '.tmp/bench-privacy')); // separate dirs let runs go side by side
const minClassRows = Number(arg('--min-class-rows', '1000'));
if (!Number.isInteger(minClassRows) || minClassRows < 0) throw new Error(`--min-class-rows must be a non-negative integer, got ${arg('--min-class-rows', '')}`);

async function main(): Promise<void> {
  const backend = await selectBackend({ log: (l) => process.stderr.write(`${l}\n`) });
  const log = (l: string): void => void process.stderr.write(`${l}\n`);
  const splits = await benchmarkSplits(only, work);
  const lines: string[] = [];
  const medians: string[] = [];
  for (const split of splits) {
    for (const eps of epsilons) {
      const runs: { ratio: number; recall: number; trtrRecall: number; precision: number; trtrPrecision: number; prAuc: number; trtrPrAuc: number; mia: number; sized?: { factor: number; ratio: number; recall: number; prAuc: number; mia: number } }[] = [];
      for (let rep = 0; rep < repeats; rep++) {
        const t0 = performance.now();
        const tag = repeats > 1 ? ` #${rep + 1}` : '';
        log(`== ${split.name}${tag} at ε = ${eps}: ${rounds} rounds x ${steps} steps x 3 banks`);
        const res = await trainFederated(split, { model: { ...modelOverrides, architecture: 'mlp' }, rounds, localSteps: steps, batchSize, lr, labelCalibrationNoise, ...(args.includes('--no-mode-shares') ? { modeShares: false } : args.includes('--spike-shares') ? { modeShares: 'spikes' as const } : {}), ...(args.includes('--point-masses') ? { pointMasses: true } : {}), ...(args.includes('--pair-noise') ? { pairNoise: Number(arg('--pair-noise', '')) } : {}), ...(args.includes('--pair-weight') ? { pairWeight: Number(arg('--pair-weight', '')) } : {}), ...(args.includes('--pairs-from-round') ? { pairsFromRound: Number(arg('--pairs-from-round', '')) } : {}), ...(args.includes('--g-steps') ? { gSteps: Number(arg('--g-steps', '')) } : {}), ...(args.includes('--update-clip-norm') ? { updateClipNorm: Number(arg('--update-clip-norm', '')) } : {}), ...(lrD !== undefined ? { lrD } : {}), generatorEma: ema, ...(args.includes('--ema-generator-only') ? { emaNetworks: ['G/'] } : {}), ...(args.includes('--also-ema-generator-only') ? { alsoEmaNetworks: ['G/'] } : {}), classifierWeight, seed: 7 + 1000 * rep, dp: { epsilon: eps, delta: 1e-5, summaryEpsilon, maxGradNorm: 1, ...(clipShare !== undefined ? { classifierClipShare: clipShare } : {}), ...(clipNormC !== undefined ? { classifierClipNorm: clipNormC } : {}), ...(targetShare !== undefined ? { summaryTargetShare: targetShare } : {}) }, log });
        const trainRows = (readFileSync(split.trainPath, 'utf8').match(/\n/g)?.length ?? 1) - 1;
        const report = await sampleAndEvaluate(split, res, { rows: trainRows, seed: 11 + rep, outDir: work });
        // Where the minority recall goes: the F1 thresholds each model chose on its own training rows.
        log(`  ${split.name} ε = ${eps}: GBDT F1 threshold TSTR ${metric(report, 'utility.gbdt.tstr.threshold').toFixed(3)} / TRTR ${metric(report, 'utility.gbdt.trtr.threshold').toFixed(3)}, precision TSTR ${metric(report, 'utility.gbdt.tstr.precision').toFixed(2)} / TRTR ${metric(report, 'utility.gbdt.trtr.precision').toFixed(2)}`);
        // The sample just evaluated, loaded once more for the minority count (and the diagnostic).
        const sample = await loadSample(split, join(work, `${split.name}-synthetic.csv`));
        const spikes = spikeShares(split, join(work, `${split.name}-synthetic.csv`));
        if (spikes) log(`  ${split.name} ε = ${eps}: rows exactly at 0 or a declared bound, real train / synthetic: ${spikes}`);
        if (args.includes('--also-oversample')) {
          // Here, before the options below sample the model again into the same CSV.
          const factor = Number(arg('--also-oversample', ''));
          const minority = minorityInputs(split, sample, work);
          // The scored sample's rows as written (the augmented CSVs repeat them), read once for both draws.
          const plain = parseCsvText(readFileSync(join(work, `${split.name}-synthetic.csv`), 'utf8'));
          for (const labels of ['classifier', 'generator'] as const) {
            const o = await oversampled(split, res, sample, plain, minority, { factor, labels, seed: 11 + rep, work });
            log(`  ${split.name} ε = ${eps}, EXPERIMENT plus ${o.extra} minority rows from --where (${labels === 'classifier' ? "C's labels" : "the generator's labels"}): ${tstrScores(o.report)}; those rows against the real minority rows: shapes ${o.shapes.toFixed(3)}, pairs ${o.pairs.toFixed(3)}`);
          }
        }
        if (args.includes('--oracle-labels')) {
          const o = oracleRelabelled(sample);
          log(`  ${split.name} ε = ${eps}, DIAGNOSTIC synthetic features with labels from a GBDT fitted on real rows: TSTR ${o.auc.toFixed(3)}, recall ${o.recall.toFixed(2)} (synthetic positives ${o.positives}); real-fitted GBDT's AUC at telling the sampled labels ${o.labelAgreementAuc.toFixed(3)}`);
        }
        if (args.includes('--reference-labels')) {
          // LR or LR@E: the reference's rate, and its ε per bank (default the run's).
          const [refLr, refEps] = arg('--reference-labels', '').split('@').map(Number) as [number, number | undefined];
          const eRef = refEps ?? eps;
          const o = referenceRelabelled(split, sample, eRef, refLr!);
          const enc = await referenceOnEncoding(split, res, sample, eRef, refLr!);
          log(`  ${split.name} ε = ${eps}, DIAGNOSTIC the same logistic regression on the transformer's encoding (C's inputs) instead of the binned design: holdout AUC ${enc.auc.toFixed(3)}, PR-AUC ${enc.prAuc.toFixed(3)}; its labels on the sample: TSTR ${enc.tstr.auc.toFixed(3)}, recall ${enc.tstr.recall.toFixed(2)}, PR-AUC ${enc.tstr.prAuc.toFixed(3)}`);
          log(`  ${split.name} ε = ${eps}, DIAGNOSTIC synthetic features with labels from a federated DP-SGD logistic regression at ε = ${eRef} per bank (spent on top of the run's; bench/privacy-reference.ts): its own holdout AUC ${o.ownAuc.toFixed(3)}, PR-AUC ${o.ownPrAuc.toFixed(3)}, calibration slope ${o.ownSlope.toFixed(2)} (C's: --classifier-holdout); TSTR ${o.auc.toFixed(3)}, recall ${o.recall.toFixed(2)}, PR-AUC ${o.prAuc.toFixed(3)} (synthetic positives ${o.positives})`);
        }
        if (args.includes('--classifier-holdout')) {
          const c = await classifierOnHoldout(split, res, log);
          log(`  ${split.name} ε = ${eps}, DIAGNOSTIC C itself on the real holdout: AUC ${c.auc.toFixed(3)}, PR-AUC ${c.prAuc.toFixed(3)}, recall ${c.recall.toFixed(2)} at its F1-best threshold on the holdout (F1 ${c.f1.toFixed(2)}); mean P(minority) ${c.meanP.toFixed(4)} vs holdout share ${c.share.toFixed(4)}; C's per-example gradient norm, median / 90% / 99%: ${c.norms}`);
        }
        if (args.includes('--also-weighted-labels')) {
          const w = await sampleAndEvaluate(split, res, { rows: trainRows, seed: 11, outDir: work, quotaDraw: 'weighted' });
          log(`  ${split.name} ε = ${eps}, same model, C's labels drawn 'weighted' (the sampler's draw before 2026-12-06): TSTR ${metric(w, 'utility.gbdt.tstr.auc').toFixed(3)}, minority recall ${metric(w, 'utility.gbdt.tstr.recall').toFixed(2)}`);
        }
        if (res.alsoEma) {
          const g = await sampleAndEvaluate(split, { ...res, weights: res.alsoEma, labelCalibration: undefined }, { rows: trainRows, seed: 11, outDir: work });
          log(`  ${split.name} ε = ${eps}, same run, the moving average over G only (C as the last round left it): TSTR ${metric(g, 'utility.gbdt.tstr.auc').toFixed(3)}, minority recall ${metric(g, 'utility.gbdt.tstr.recall').toFixed(2)}`);
        }
        if (args.includes('--also-label-scale')) {
          // The sample a data scientist would draw for a rare class: sized (--min-class-rows) and sharpened.
          const need = minClassRows > 0 ? rowsForClassMinimum(samplableOf(res), trainRows, minClassRows) : undefined;
          for (const a of arg('--also-label-scale', '').split(',').map(Number)) {
            const w = await sampleAndEvaluate(split, res, { rows: trainRows, seed: 11 + rep, outDir: work, labelLogitScale: a });
            log(`  ${split.name} ε = ${eps}, EXPERIMENT C's logits x ${a}: ${tstrScores(w)}`);
            if (need && need.rows > trainRows) {
              const z = await sampleAndEvaluate(split, res, { rows: need.rows, seed: 11 + rep, outDir: join(work, 'sized-scaled'), labelLogitScale: a });
              log(`  ${split.name} ε = ${eps}, EXPERIMENT the sized sample (${(need.rows / trainRows).toFixed(1)}x) with C's logits x ${a}: ${tstrScores(z)}`);
            }
          }
        }
        if (args.includes('--also-uncalibrated') && res.labelCalibration) {
          const w = await sampleAndEvaluate(split, res, { rows: trainRows, seed: 11 + rep, outDir: work, labelCalibration: null });
          log(`  ${split.name} ε = ${eps}, same model, C's labels without the calibration map: ${tstrScores(w)}; GBDT F1 threshold ${metric(w, 'utility.gbdt.tstr.threshold').toFixed(3)}`);
        }
        if (args.includes('--also-rows-factor')) {
          for (const f of arg('--also-rows-factor', '').split(',').map(Number)) {
            const t1 = performance.now();
            const w = await sampleAndEvaluate(split, res, { rows: Math.round(trainRows * f), seed: 11 + rep, outDir: work });
            log(`  ${split.name} ε = ${eps}, EXPERIMENT ${f}x the rows: ${tstrScores(w)} (${((performance.now() - t1) / 1000).toFixed(0)} s)`);
          }
        }
        if (args.includes('--also-generator-labels')) {
          const g = await sampleAndEvaluate(split, res, { rows: trainRows, seed: 11, outDir: work, labels: 'generator' });
          log(`  ${split.name} ε = ${eps}, same model, the generator's own labels (fedsynth sample --generator-labels): TSTR ${metric(g, 'utility.gbdt.tstr.auc').toFixed(3)}, minority recall ${metric(g, 'utility.gbdt.tstr.recall').toFixed(2)}`);
        }
        if (args.includes('--also-unstratified')) {
          const u = await sampleAndEvaluate(split, res, { rows: trainRows, seed: 11, outDir: work, stratify: false });
          log(`  ${split.name} ε = ${eps}, unstratified sample: TSTR ${metric(u, 'utility.gbdt.tstr.auc').toFixed(3)}, minority recall ${metric(u, 'utility.gbdt.tstr.recall').toFixed(2)}`);
        }
        // How many minority rows the sample has against the real train split: stratified sampling
        // follows the consortium's DP-noised class counts, and for a class of a few dozen rows per
        // bank the noise can be as large as the count.
        const minority = { synthetic: count(sample.ys), real: count(sample.y) };
        const tstr = metric(report, 'utility.gbdt.tstr.auc');
        const trtr = metric(report, 'utility.gbdt.trtr.auc');
        const p = res.privacy!;
        const u = (k: string): number => metric(report, `utility.gbdt.${k}`);
        // The sized sample (--min-class-rows): last, since the options above reuse the same CSV path.
        let sized: { factor: number; ratio: number; recall: number; prAuc: number; mia: number } | undefined;
        if (minClassRows > 0) {
          const need = rowsForClassMinimum(samplableOf(res), trainRows, minClassRows);
          const r = need.rows === trainRows ? report : await sampleAndEvaluate(split, res, { rows: need.rows, seed: 11 + rep, outDir: join(work, 'sized') });
          sized = { factor: need.rows / trainRows, ratio: metric(r, 'utility.gbdt.tstr.auc') / metric(r, 'utility.gbdt.trtr.auc'), recall: metric(r, 'utility.gbdt.tstr.recall'), prAuc: metric(r, 'utility.gbdt.tstr.prAuc'), mia: largestMia(r) };
        }
        runs.push({ ratio: tstr / trtr, recall: u('tstr.recall'), trtrRecall: u('trtr.recall'), precision: u('tstr.precision'), trtrPrecision: u('trtr.precision'), prAuc: u('tstr.prAuc'), trtrPrAuc: u('trtr.prAuc'), mia: Math.max(largestMia(report), sized?.mia ?? 0), ...(sized ? { sized } : {}) });
        const sizedCell = sized ? ` ${sized.factor.toFixed(1)}x: ${sized.ratio.toFixed(3)} / ${sized.recall.toFixed(2)} / ${sized.prAuc.toFixed(3)} |` : '';
        const line = `| ${split.name}${tag} | ${eps} (${p.epsilon.toFixed(3)}) | ${p.sigma.toFixed(2)} (q ${p.sampleRate.toFixed(3)}) | ${tstr.toFixed(3)} / ${trtr.toFixed(3)} = ${(tstr / trtr).toFixed(3)} | ${u('tstr.recall').toFixed(2)} / ${u('trtr.recall').toFixed(2)} | ${u('tstr.precision').toFixed(2)} / ${u('trtr.precision').toFixed(2)} | ${u('tstr.prAuc').toFixed(3)} / ${u('trtr.prAuc').toFixed(3)} | ${minority.synthetic} / ${minority.real} (count noise sd ${p.summaryNoiseStd.toFixed(0)} per bank) | ${metric(report, 'privacy.mia.distanceAuc').toFixed(3)} / ${metric(report, 'privacy.mia.densityAuc').toFixed(3)} | ${metric(report, 'fidelity.columnShapes').toFixed(3)} / ${metric(report, 'fidelity.columnPairs').toFixed(3)} |${sizedCell} ${res.msPerStep.toFixed(0)} | ${((performance.now() - t0) / 1000).toFixed(0)} s |`;
        log(line);
        lines.push(line);
      }
      if (repeats > 1) {
        const ratio = spread(runs.map((r) => r.ratio), 3);
        const recall = spread(runs.map((r) => r.recall), 2);
        const sizedRuns = runs.filter((r) => r.sized).map((r) => ({ ...r.sized!, trtrRecall: r.trtrRecall }));
        const sizedCells = minClassRows > 0 ? ` ${spread(sizedRuns.map((r) => r.factor), 1)}x | ${spread(sizedRuns.map((r) => r.ratio), 3)} | ${spread(sizedRuns.map((r) => r.recall), 2)} | ${spread(sizedRuns.map((r) => r.prAuc), 3)} | ${targetsMet(sizedRuns)} |` : '';
        const line = `| ${split.name} | ${eps} | ${repeats} | ${ratio} | ${recall} / ${spread(runs.map((r) => r.trtrRecall), 2)} | ${spread(runs.map((r) => r.precision), 2)} / ${spread(runs.map((r) => r.trtrPrecision), 2)} | ${spread(runs.map((r) => r.prAuc), 3)} / ${spread(runs.map((r) => r.trtrPrAuc), 3)} | ${targetsMet(runs)} | ${Math.max(...runs.map((r) => r.mia)).toFixed(3)} |${sizedCells}`;
        log(line);
        medians.push(line);
      }
    }
  }
  const body = [
    `Command: \`node bin/run-ts.mjs bench/privacy-utility.ts --eps ${epsilons.join(',')} --rounds ${rounds} --steps ${steps} --lr ${lr}${summaryEpsilon !== 0.4 ? ` --summary-epsilon ${summaryEpsilon}` : ''}${targetShare !== undefined ? ` --summary-target-share ${targetShare}` : ''}${lrD !== undefined ? ` --lr-d ${lrD}` : ''}${clipShare !== undefined ? ` --classifier-clip-share ${clipShare}` : ''}${clipNormC !== undefined ? ` --classifier-clip-norm ${clipNormC}` : ''} --ema ${ema} --classifier-weight ${classifierWeight}${batchSize !== 500 ? ` --batch ${batchSize}` : ''}${labelCalibrationNoise !== 20 ? ` --label-calibration-noise ${labelCalibrationNoise}` : ''}${repeats > 1 ? ` --repeat ${repeats}` : ''}${Object.keys(modelOverrides).length ? ` --model '${JSON.stringify(modelOverrides)}'` : ''}${minClassRows !== 1000 ? ` --min-class-rows ${minClassRows}` : ''}${passedFlags()}\`. Backend ${backend.name}, ${os.cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `Per bank (record-level, δ = 1e-5), as the agent's defaults: the DP summary (noisy counts + histograms) costs ε = ${summaryEpsilon} on its own, the target column taking ${targetShare ?? DEFAULT_SUMMARY_TARGET_SHARE} of its privacy loss (the noise sd each bank adds to the target's class counts is given with the minority rows); DP-SGD for the discriminator and the target's classifier C (one mechanism; ${rounds}×${steps} steps at q = batch / the bank's released row count, C = 1) has its σ calibrated so that summary ⊕ the row count (Gaussian, sd ${ROW_COUNT_NOISE_SD}) ⊕ DP-SGD${labelCalibrationNoise > 0 ? ` ⊕ the label-calibration counts after the last round (noise multiplier ${labelCalibrationNoise}, sd ${(labelCalibrationNoise * Math.SQRT2).toFixed(1)} per count per bank)` : ''} compose in RDP to the ε of the row (the column "ε per bank" is that total, as the bank's ledger reports it). Same 3-bank splits as bench:quality; mlp model, 'ns' loss; ${rounds} rounds x ${steps} local steps; the sampled model's generator averaged over rounds with β = ${ema} (the coordinator's --generator-ema; 0 = off). Sampled as \`fedsynth sample\` does (stratified by the target, its labels drawn from C${labelCalibrationNoise > 0 ? ', calibrated by the map fitted to the banks\' noisy counts (the coordinator\'s --label-calibration-noise)' : ''}).`,
    '',
    ...(minClassRows > 0
      ? [
          `Every figure but the "sized sample" column is of a sample of the train split's size (the convention of SDV and of the earlier tables), except the largest MIA AUC, taken over both samples. The sized sample is drawn from the same model with as many rows, or more where the target's rarest class needs them to get ${minClassRows} rows by the consortium's noisy class share (\`fedsynth sample --min-class-rows ${minClassRows}\`; post-processing, no privacy cost): rows as a multiple of the train split's, then its TSTR AUC ratio / minority recall / PR-AUC against the same TRTR.`,
          '',
        ]
      : []),
    `| data | ε per bank (composed) | σ (q) | GBDT AUC TSTR / TRTR = ratio | minority recall TSTR / TRTR | precision TSTR / TRTR | PR-AUC TSTR / TRTR | minority rows synthetic / real | MIA AUC distance / density | shapes / pairs |${minClassRows > 0 ? ' sized sample: rows, ratio / recall / PR-AUC |' : ''} ms per local step | wall |`,
    `|---|---|---|---|---|---|---|---|---|---|${minClassRows > 0 ? '---|' : ''}---|---|`,
    ...lines,
    '',
    'Targets (issue #5) at ε = 1: TSTR ≥ 0.90 × TRTR, minority recall within 0.15 of TRTR, MIA AUC ≤ 0.55. Recall and precision are at the F1-best threshold each GBDT chose on a validation split of its own training rows; PR-AUC (average precision on the holdout) does not depend on a threshold: a recall bought with precision shows there.',
    ...(repeats > 1
      ? [
          '',
          `Over the ${repeats} runs of each row (training seeds 7, 1007, …, evaluation seeds 11, 12, …, so TRTR moves too; DP noise from node:crypto differs in every run): median [min, max]; a run meets a target against its own TRTR.`,
          '',
          `| data | ε per bank | runs | TSTR / TRTR ratio | minority recall TSTR / TRTR | precision TSTR / TRTR | PR-AUC TSTR / TRTR | runs meeting the AUC / recall target | MIA AUC, largest |${minClassRows > 0 ? ' sized sample: rows | ratio | recall | PR-AUC | runs meeting the AUC / recall target |' : ''}`,
          `|---|---|---|---|---|---|---|---|---|${minClassRows > 0 ? '---|---|---|---|---|' : ''}`,
          ...medians,
        ]
      : []),
  ].join('\n');
  process.stdout.write(body + '\n');
  if (write) writeBenchmarkSection('bench:privacy utility', `## bench:privacy utility\n\n${body}`);
}

interface LoadedSample {
  input: Awaited<ReturnType<typeof loadEvaluationInput>>;
  target: string;
  /** 1 for the minority class (the least frequent target value of the real train split). */
  y: Uint8Array;
  ys: Uint8Array;
  yh: Uint8Array;
}

/** The split's train, holdout and a synthetic CSV as evaluation tables, with minority-class indicators. */
async function loadSample(split: Split, synthetic: string): Promise<LoadedSample> {
  const input = await loadEvaluationInput({ real: split.trainPath, holdout: split.holdoutPath, synthetic }, { schema: await readSchemaFile(split.schemaPath), target: split.target });
  const pc = positiveClassOf(input.real.columns.find((c) => c.name === split.target)!);
  return { input, target: split.target, y: pc.is(input.real), ys: pc.is(input.synthetic), yh: pc.is(input.holdout) };
}

interface MinorityInputs {
  /** The minority class's label, as written in the CSVs. */
  label: string;
  /** The real train and holdout splits' minority rows, and the schema without its target (one class). */
  realPath: string;
  holdoutPath: string;
  schemaPath: string;
}

/** --also-oversample: the files the extra minority rows' fidelity is measured against, written once per run. */
function minorityInputs(split: Split, sample: LoadedSample, work: string): MinorityInputs {
  const label = positiveClassOf(sample.input.real.columns.find((c) => c.name === split.target)!).label;
  const minorityOnly = (path: string, out: string): string => {
    const t = parseCsvText(readFileSync(path, 'utf8'));
    const j = t.header.indexOf(split.target);
    writeCsv(out, t.header, t.rows.map((r) => r.values).filter((v) => v[j] === label));
    return out;
  };
  const schema = JSON.parse(readFileSync(split.schemaPath, 'utf8')) as { target?: string; columns: { role?: string }[] };
  delete schema.target;
  for (const c of schema.columns) if (c.role === 'target') delete c.role;
  const schemaPath = join(work, `${split.name}-schema-no-target.json`);
  writeFileSync(schemaPath, JSON.stringify(schema));
  return {
    label,
    realPath: minorityOnly(split.trainPath, join(work, `${split.name}-real-minority.csv`)),
    holdoutPath: minorityOnly(split.holdoutPath, join(work, `${split.name}-holdout-minority.csv`)),
    schemaPath,
  };
}

/**
 * --also-oversample: the sample just scored (work/<name>-synthetic.csv: `sample` loaded, `plain` as parsed
 * CSV) plus factor × its minority rows drawn with `where target = minority` (C's or the generator's labels),
 * scored as TSTR; and those extra rows' fidelity against the real minority rows.
 */
async function oversampled(split: Split, res: FederatedResult, sample: LoadedSample, plain: ReturnType<typeof parseCsvText>, minority: MinorityInputs, o: { factor: number; labels: 'classifier' | 'generator'; seed: number; work: string }): Promise<{ extra: number; report: Record<string, unknown>; shapes: number; pairs: number }> {
  const extra = Math.round(o.factor * count(sample.ys));
  const { rows, columns } = sampleRows(samplableOf(res), extra, { seed: o.seed + 500, where: { column: split.target, value: minority.label }, labels: o.labels });
  const extraRows = rows.map((r) => formatRow(split.schema, r));
  const ti = columns.indexOf(split.target);
  if (extraRows.some((r) => String(r[ti]) !== minority.label)) throw new Error('--also-oversample: a --where row is not of the minority class');
  // The augmented sample: the scored sample's rows, then the extra ones (same header, same order).
  if (plain.header.join() !== columns.join()) throw new Error(`--also-oversample: the sample's columns ${plain.header.join()} differ from the sampler's ${columns.join()}`);
  const augmented = join(o.work, `${split.name}-oversampled.csv`);
  writeCsv(augmented, columns, [...plain.rows.map((r) => r.values), ...extraRows]);
  const { report } = await evaluateFiles({ real: split.trainPath, holdout: split.holdoutPath, synthetic: augmented, target: split.target, schema: split.schemaPath, outDir: join(o.work, `${split.name}-oversampled-report`), seed: o.seed });
  const extraPath = join(o.work, `${split.name}-extra-minority.csv`);
  writeCsv(extraPath, columns, extraRows);
  const fid = await evaluateFiles({ real: minority.realPath, holdout: minority.holdoutPath, synthetic: extraPath, schema: minority.schemaPath, outDir: join(o.work, `${split.name}-minority-report`), seed: o.seed });
  const r = fid.report as unknown as Record<string, unknown>;
  return { extra, report: report as unknown as Record<string, unknown>, shapes: metric(r, 'fidelity.columnShapes'), pairs: metric(r, 'fidelity.columnPairs') };
}

/** The larger of a report's two membership-inference AUCs (distance and density attacks). */
function largestMia(report: Record<string, unknown>): number {
  return Math.max(metric(report, 'privacy.mia.distanceAuc'), metric(report, 'privacy.mia.densityAuc'));
}

/** The training options given on the command line that the Command line above does not spell out otherwise, as given. */
function passedFlags(): string {
  const switches = ['--point-masses', '--no-mode-shares', '--spike-shares'].filter((f) => args.includes(f));
  const valued = ['--update-clip-norm', '--pair-noise', '--pair-weight', '--pairs-from-round', '--g-steps'].filter((f) => args.includes(f)).map((f) => `${f} ${arg(f, '')}`);
  return [...switches, ...valued].map((f) => ` ${f}`).join('');
}

/** "a / b": the runs meeting issue #5's AUC target (TSTR ≥ 0.90 × TRTR) and recall target (within 0.15 of TRTR). */
function targetsMet(runs: readonly { ratio: number; recall: number; trtrRecall: number }[]): string {
  return `${runs.filter((r) => r.ratio >= 0.9).length} / ${runs.filter((r) => r.recall >= r.trtrRecall - 0.15).length}`;
}

/**
 * The rows exactly at each numeric column's spike candidates (0 and the declared bounds: the
 * transformer's spikeValuesOf), in the real train split and in the sample, where either has ≥ 1%.
 */
function spikeShares(split: Split, synthetic: string): string | undefined {
  const read = (path: string) => parseCsvText(readFileSync(path, 'utf8'));
  const real = read(split.trainPath);
  const syn = read(synthetic);
  const share = (t: ReturnType<typeof read>, name: string, v: number): number => {
    const j = t.header.indexOf(name);
    return t.rows.filter((r) => r.values[j] !== '' && Number(r.values[j]) === v).length / Math.max(1, t.rows.length);
  };
  const out: string[] = [];
  for (const c of split.schema.columns) {
    for (const v of spikeValuesOf(c)) {
      const a = share(real, c.name, v);
      const b = share(syn, c.name, v);
      if (a >= 0.01 || b >= 0.01) out.push(`${c.name} = ${v}: ${(100 * a).toFixed(1)}% / ${(100 * b).toFixed(1)}%`);
    }
  }
  return out.length > 0 ? out.join(', ') : undefined;
}

/** A report's TSTR AUC, minority recall, precision and PR-AUC, as the diagnostic lines print them. */
function tstrScores(report: Record<string, unknown>): string {
  const u = (k: string): number => metric(report, `utility.gbdt.tstr.${k}`);
  return `TSTR ${u('auc').toFixed(3)}, recall ${u('recall').toFixed(2)}, precision ${u('precision').toFixed(2)}, PR-AUC ${u('prAuc').toFixed(3)}`;
}

/** "median [min, max]" of the values, to `digits` decimals. */
function spread(v: readonly number[], digits: number): string {
  const s = [...v].sort((a, b) => a - b);
  return `${quantileSorted(s, 0.5).toFixed(digits)} [${s[0]!.toFixed(digits)}, ${s[s.length - 1]!.toFixed(digits)}]`;
}

function count(y: Uint8Array): number {
  return y.reduce((s, v) => s + v, 0);
}

/**
 * Diagnostic only (reads the holdout): the published model's classifier C applied to the real
 * holdout rows (transformed as a bank would), against their true labels. The F1-best threshold is
 * chosen on the holdout itself: an upper bound on what C's ranking supports, not a fair score.
 */
async function classifierOnHoldout(split: Split, res: FederatedResult, log: (l: string) => void): Promise<{ auc: number; prAuc: number; recall: number; f1: number; meanP: number; share: number; norms: string }> {
  const rows = (await loadTable(split.holdoutPath, split.schema)).rows;
  const model = createModel(res.modelConfig, res.transformer.spans);
  try {
    model.setWeights(res.weights);
    const span = model.labelSpan;
    if (!span) throw new Error('--classifier-holdout: the model has no classifier');
    const data = res.transformer.transform(rows, 1);
    const probs = model.classifierProbabilities(data, rows.length);
    const d = model.outputDim;
    const truth = encodedClasses(data, rows.length, d, span);
    const counts = classCounts([truth], span.dim);
    const minority = rarestClass(counts);
    const p = Float64Array.from(truth, (_, r) => probs[r * span.dim + minority]!);
    const y = Uint8Array.from(truth, (c) => (c === minority ? 1 : 0));
    const m = metricsAt(p, y, bestF1Threshold(p, y));
    // C's per-example cross-entropy gradient norms on these rows (unscaled: what classifierClipNorm R is compared with).
    const norms = tf.tidy(() => {
      const x = tf.tensor2d(data, [rows.length, d]);
      const cl = model.classifierForward(x);
      const deltas = discriminatorDeltas(model, cl.layers, tf.sub(tf.softmax(cl.logits), model.labelOf(x)) as tf.Tensor2D);
      return tf.sqrt(perExampleSquaredNorms(cl.layers, deltas)).dataSync() as Float32Array;
    });
    const pos = Array.from(norms).filter((_, r) => y[r] === 1).sort((a, b) => a - b);
    const neg = Array.from(norms).filter((_, r) => y[r] === 0).sort((a, b) => a - b);
    const quantiles = (sorted: number[]): string => [0.5, 0.9, 0.99].map((f) => quantileSorted(sorted, f).toFixed(2)).join(' / ');
    const cal = logisticCalibration(p, y);
    log(`  DIAGNOSTIC C's calibration on the holdout: P(y) ≈ σ(${cal.a.toFixed(2)}·logit p + ${cal.b.toFixed(2)})`);
    // The threshold a TSTR model would take from C's labels, with no generator in between: labels
    // drawn as the sampler draws them (prior shifted to the holdout's class counts) on the holdout's
    // own rows, the F1-best threshold on p against THOSE labels, then scored against the true ones.
    // Reliability: C's probability after the prior shift (as the sampler draws from it, uncalibrated)
    // against the real rate, in the top half of 20 equal-frequency bins of C's score.
    {
      const shifted = priorShiftProbabilities(Array.from(p), counts[minority]!);
      const order = Array.from(p.keys()).sort((a, b) => p[a]! - p[b]!);
      const cells: string[] = [];
      for (let b = 10; b < 20; b++) {
        const part = order.slice(Math.floor((b * order.length) / 20), Math.floor(((b + 1) * order.length) / 20));
        const said = part.reduce((a, r) => a + shifted[r]!, 0) / part.length;
        const real = part.reduce((a, r) => a + y[r]!, 0) / part.length;
        cells.push(`${said.toFixed(2)}→${real.toFixed(2)}`);
      }
      log(`  DIAGNOSTIC C's reliability on the holdout, prior-shifted P(minority) → real rate, top half of 20 equal-frequency bins of C's score: ${cells.join(' ')}`);
    }
    const drawn = labelsForQuotas(probs, span.dim, counts, new Rng(17));
    const yDrawn = Uint8Array.from(drawn, (c) => (c === minority ? 1 : 0));
    const t = metricsAt(p, y, bestF1Threshold(p, yDrawn));
    log(
      `  DIAGNOSTIC C's threshold from its own labels on the holdout rows: recall ${t.recall.toFixed(2)}, precision ${t.precision.toFixed(2)}, F1 ${t.f1.toFixed(2)} ` +
        `(at the holdout's F1-best threshold: ${m.recall.toFixed(2)}, ${m.precision.toFixed(2)}, ${m.f1.toFixed(2)})`,
    );
    if (res.labelCalibration) {
      // The same with the published calibration map applied first, as the sampler draws the labels now.
      const cal = Float32Array.from(probs);
      applyLabelCalibration(cal, span.dim, res.labelCalibration);
      const pc = Float64Array.from(truth, (_, r) => cal[r * span.dim + minority]!);
      const yc = Uint8Array.from(labelsForQuotas(cal, span.dim, counts, new Rng(17)), (c) => (c === minority ? 1 : 0));
      const tc = metricsAt(pc, y, bestF1Threshold(pc, yc));
      log(`  DIAGNOSTIC the same with the published label calibration applied: recall ${tc.recall.toFixed(2)}, precision ${tc.precision.toFixed(2)}, F1 ${tc.f1.toFixed(2)}`);
    }
    return { auc: aucRoc(p, y), prAuc: prAuc(p, y), recall: m.recall, f1: m.f1, meanP: p.reduce((s, v) => s + v, 0) / p.length, share: counts[minority]! / rows.length, norms: `minority ${quantiles(pos)}, majority ${quantiles(neg)}` };
  } finally {
    model.dispose();
  }
}

/** Logistic regression of y on logit(p), P(y) = σ(a·logit p + b) by maximum likelihood (grid on a, b by bisection on the mean): a < 1 means p is over-confident. */
function logisticCalibration(p: Float64Array, y: Uint8Array): { a: number; b: number } {
  const z = Array.from(p, (v) => Math.log(Math.max(v, 1e-9) / Math.max(1 - v, 1e-9)));
  const pos = y.reduce((s, v) => s + v, 0);
  const fit = (a: number): { b: number; ll: number } => {
    let lo = -50, hi = 50;
    for (let it = 0; it < 60; it++) {
      const b = (lo + hi) / 2;
      const m = z.reduce((s, zi) => s + 1 / (1 + Math.exp(-(a * zi + b))), 0);
      if (m < pos) lo = b;
      else hi = b;
    }
    const b = (lo + hi) / 2;
    const ll = z.reduce((s, zi, i) => {
      const q = Math.min(1 - 1e-12, Math.max(1e-12, 1 / (1 + Math.exp(-(a * zi + b)))));
      return s + (y[i] ? Math.log(q) : Math.log(1 - q));
    }, 0);
    return { b, ll };
  };
  let best = { a: 1, ...fit(1) };
  for (let a = 0.1; a <= 4.001; a += 0.05) {
    const f = fit(a);
    if (f.ll > best.ll) best = { a, ...f };
  }
  return { a: best.a, b: best.b };
}

/**
 * Diagnostic only (reads real rows freely): see --oracle-labels. The relabelling is the sampler's
 * own quota draw (labelsForQuotas) with a real-fitted GBDT's probabilities in place of C's.
 */
function oracleRelabelled(s: LoadedSample): { auc: number; recall: number; positives: number; labelAgreementAuc: number } {
  const { input, target } = s;
  const Xs = dropColumn(input.synthetic, target);
  const p = trainGbdt(dropColumn(input.real, target), s.y, { seed: 3 }).predictProba(Xs);
  const k = count(s.ys);
  const f = tstrRelabelled(s, p, k);
  return { auc: f.auc, recall: f.recall, positives: k, labelAgreementAuc: aucRoc(p, s.ys) };
}

/** TSTR of the sample's rows relabelled: k positives drawn with probabilities p (labelsForQuotas' prior-shift draw, as the sampler's). */
function tstrRelabelled(s: LoadedSample, p: ArrayLike<number>, k: number): { auc: number; recall: number; prAuc: number } {
  const probs = new Float32Array(2 * p.length);
  for (let r = 0; r < p.length; r++) {
    probs[2 * r] = 1 - p[r]!;
    probs[2 * r + 1] = p[r]!;
  }
  const yo = Uint8Array.from(labelsForQuotas(probs, 2, [p.length - k, k], new Rng(5)));
  return fitAndScore('gbdt', dropColumn(s.input.synthetic, s.target), yo, dropColumn(s.input.holdout, s.target), s.yh, 42).metrics;
}

/** --reference-labels: bench/privacy-reference.ts's federated model at ε per bank, on this run's schedule (rounds, local steps, batch). */
function referenceModel(banks: { X: Float64Array; y: Uint8Array; n: number }[], d: number, eps: number, lr: number): Float64Array {
  return trainFederatedDpLogistic(banks, d, { rounds, localSteps: steps, batch: batchSize, epsilon: eps, delta: 1e-5, lr, seed: 3 }).averaged;
}

/**
 * --reference-labels LR (diagnostic, printed only; spends ε again on the real rows): relabels the
 * synthetic rows with a logistic regression trained by federated DP-SGD on the banks' real rows, as
 * bench/privacy-reference.ts trains it (binned design, rate LR), keeping the positive count, and
 * scores TSTR again: what the sample would give with that model as its labeller.
 */
function referenceRelabelled(split: Split, s: LoadedSample, eps: number, lr: number): { ownAuc: number; ownPrAuc: number; ownSlope: number; auc: number; recall: number; prAuc: number; positives: number } {
  const { input, target } = s;
  const X = dropColumn(input.real, target);
  const design = fitBinnedDesign(X);
  const d = design.dim;
  const A = applyBinnedDesign(design, X);
  // The pooled train split is the banks' CSVs in order.
  let start = 0;
  const banks = bankRowCounts(split).map((rows) => {
    const b = { X: A.slice(start * d, (start + rows) * d), y: s.y.slice(start, start + rows), n: rows };
    start += rows;
    return b;
  });
  if (start !== X.nRows) throw new Error(`--reference-labels: the banks' CSVs hold ${start} rows, the train split ${X.nRows}`);
  const beta = referenceModel(banks, d, eps, lr);
  const Xh = dropColumn(input.holdout, target);
  const own = predictLogistic(beta, applyBinnedDesign(design, Xh), Xh.nRows, d);
  const Xs = dropColumn(input.synthetic, target);
  const k = count(s.ys);
  const f = tstrRelabelled(s, predictLogistic(beta, applyBinnedDesign(design, Xs), Xs.nRows, d), k);
  return { ownAuc: aucRoc(own, s.yh), ownPrAuc: prAuc(own, s.yh), ownSlope: logisticCalibration(own, s.yh).a, auc: f.auc, recall: f.recall, prAuc: f.prAuc, positives: k };
}

/** --reference-labels: the reference's federated DP-SGD logistic regression on C's own inputs (the transformer's encoding, label span left out). */
async function referenceOnEncoding(split: Split, res: FederatedResult, sample: LoadedSample, eps: number, lr: number): Promise<{ auc: number; prAuc: number; tstr: { auc: number; recall: number; prAuc: number } }> {
  const span = classifierSpan(res.modelConfig, res.transformer.spans);
  if (!span) throw new Error('--reference-labels: the model has no classifier');
  const encode = (rows: Parameters<typeof res.transformer.transform>[0]): { X: Float64Array; cls: Int32Array; n: number; d: number } => {
    const data = res.transformer.transform(rows, 1);
    const full = data.length / rows.length;
    const d = full - span.dim;
    const X = new Float64Array(rows.length * d);
    for (let r = 0; r < rows.length; r++) {
      let k = 0;
      for (let j = 0; j < full; j++) if (j < span.offset || j >= span.offset + span.dim) X[r * d + k++] = data[r * full + j]!;
    }
    return { X, cls: encodedClasses(data, rows.length, full, span), n: rows.length, d };
  };
  const banks = await Promise.all(split.bankPaths.map(async (p) => encode((await loadTable(p, split.schema)).rows)));
  const minority = rarestClass(classCounts(banks.map((b) => b.cls), span.dim));
  const d = banks[0]!.d;
  const beta = referenceModel(banks.map((b) => ({ X: b.X, y: Uint8Array.from(b.cls, (c) => (c === minority ? 1 : 0)), n: b.n })), d, eps, lr);
  const h = encode((await loadTable(split.holdoutPath, split.schema)).rows);
  const p = predictLogistic(beta, h.X, h.n, d);
  const yh = Uint8Array.from(h.cls, (c) => (c === minority ? 1 : 0));
  // The same relabelling as referenceRelabelled's, with this model reading the synthetic rows' encoding.
  const syn = encode((await loadTable(join(work, `${split.name}-synthetic.csv`), split.schema)).rows);
  return { auc: aucRoc(p, yh), prAuc: prAuc(p, yh), tstr: tstrRelabelled(sample, predictLogistic(beta, syn.X, syn.n, d), count(sample.ys)) };
}

/** Each encoded row's class of the target: the largest slot of its label span (one-hot for real rows). */
function encodedClasses(data: Float32Array, n: number, d: number, span: { offset: number; dim: number }): Int32Array {
  const cls = new Int32Array(n);
  for (let r = 0; r < n; r++) for (let c = 1; c < span.dim; c++) if (data[r * d + span.offset + c]! > data[r * d + span.offset + cls[r]!]!) cls[r] = c;
  return cls;
}

function classCounts(classes: readonly ArrayLike<number>[], dim: number): number[] {
  const counts = new Array<number>(dim).fill(0);
  for (const cls of classes) for (let r = 0; r < cls.length; r++) counts[cls[r]!]!++;
  return counts;
}

/** The rarest class that occurs at all. */
function rarestClass(counts: readonly number[]): number {
  return counts.reduce((best, n, c) => (n > 0 && n < counts[best]! ? c : best), counts.findIndex((n) => n > 0));
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});

