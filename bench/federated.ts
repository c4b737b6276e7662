// Shared harness of bench:quality and bench:privacy: a consortium of banks simulated in ONE process
// with the production pieces (schema, per-bank DP summaries, GMM transformer fit, GAN trainer with
// optional DP-SGD, FedAvg), without sockets (the wire is tested elsewhere; here we measure what the
// model learns). Then the global generator is sampled and judged by the evaluation suite against a
// real holdout the banks never saw.
import { calibrationSkipReason, fitFromNoisyCounts, type LabelCalibration } from '../shared/model/label-calibration';
import { countForCalibration, planLabelCalibration } from '../shared/sampling/label-calibration-round';
import { addCalibrationNoise, calibrationRdp } from '../client-node/dp-calibration';
import { ROW_COUNT_NOISE_SD, noisyRowCount, rowCountRdp } from '../client-node/dp-row-count';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openCsv, writeCsv } from '../shared/data/csv';
import { bankShares, simulateBankRows, simulateBanks, transactionSchema } from '../shared/data/simulate';
import { inferSchemaFromCsv } from '../shared/data/infer';
import { formatRow, loadTable, type ConsortiumSchema, type Row } from '../shared/data/schema';
import { evaluateFiles } from '../shared/eval/run';
import { createModel, createTrainer, type GanModel, type ModelConfig, type PairTarget, type Trainer } from '../shared/model';
import { epsilonFor, noiseMultiplierFor } from '../shared/privacy/calibrate';
import { DEFAULT_ORDERS, composeRdp, computeRdp, rdpGaussian, rdpToEpsilon } from '../shared/privacy/rdp';
import { secureGaussian } from '../shared/privacy/secure-noise';
import { mergePairTargets, pairCounts, pairNoiseSd, softmaxSpanPairs } from '../shared/transformer/pair-counts';
import { pairCountsRdp } from '../client-node/dp-pair-counts';
import { DEFAULT_SUMMARY_TARGET_SHARE, summaryNoise } from '../shared/privacy/summary-noise';
import { sampleRows, type QuotaDraw, type SamplableModel } from '../shared/sampling/sampler';
import { Rng } from '../shared/tensor/random';
import { GmmTransformer, pooledCategoryWeights, summaryColumns, summaryCounts } from '../shared/transformer/gmm';
import { prepareUpdate } from '../client-node/update';
import { weightedMean } from '../coordinator/strategy/aggregate';
import { mergeNoisyCounts } from '../coordinator/summaries';
import { emaGenerator, emaWarmupBeta } from '../coordinator/strategy/aggregate';
import { consortiumModelConfig } from '../coordinator/model-config';

export interface Split {
  name: string;
  dir: string;
  schemaPath: string;
  schema: ConsortiumSchema;
  target: string;
  /** Per bank CSV of training rows; holdout CSV; the pooled train CSV (for the evaluator). */
  bankPaths: string[];
  trainPath: string;
  holdoutPath: string;
}

/** Stratified 80/20 split of a public CSV (seeded), train split across banks of unequal size. */
export async function splitDataset(o: { name: string; file: string; target: string; drop: string[]; dir: string; seed: number; shares: number[] }): Promise<Split> {
  mkdirSync(o.dir, { recursive: true });
  const src = await openCsv(o.file);
  const keep = src.header.map((h, j) => (o.drop.includes(h) ? -1 : j)).filter((j) => j >= 0);
  const header = keep.map((j) => src.header[j]!);
  const rows: string[][] = [];
  for await (const r of src.rows) rows.push(keep.map((j) => r.values[j]!));
  const ti = header.indexOf(o.target);
  if (ti < 0) throw new Error(`${o.file} has no column ${o.target}`);
  const rng = new Rng(o.seed);
  const byClass = new Map<string, number[]>();
  rows.forEach((r, i) => byClass.set(r[ti]!, [...(byClass.get(r[ti]!) ?? []), i]));
  const train: string[][] = [];
  const holdout: string[][] = [];
  for (const idx of byClass.values()) {
    rng.shuffle(idx);
    const cut = Math.round(idx.length * 0.2);
    idx.forEach((i, k) => (k < cut ? holdout : train).push(rows[i]!));
  }
  rng.shuffle(train);
  const trainPath = join(o.dir, 'train.csv');
  const holdoutPath = join(o.dir, 'holdout.csv');
  writeCsv(trainPath, header, train);
  writeCsv(holdoutPath, header, holdout);
  // The operator's schema: drafted from the train split (a benchmark stands in for the operator).
  const schema = await inferSchemaFromCsv(trainPath, { target: o.target });
  const schemaPath = join(o.dir, 'schema.json');
  writeFileSync(schemaPath, JSON.stringify(schema, null, 2));
  const bankPaths: string[] = [];
  let start = 0;
  o.shares.forEach((s, b) => {
    const end = b === o.shares.length - 1 ? train.length : start + Math.round(s * train.length);
    const p = join(o.dir, `bank-${b + 1}.csv`);
    writeCsv(p, header, train.slice(start, end));
    bankPaths.push(p);
    start = end;
  });
  return { name: o.name, dir: o.dir, schemaPath, schema, target: o.target, bankPaths, trainPath, holdoutPath };
}

/**
 * The project's simulated 3-bank data (public schema); holdout = fresh rows of the same banks (other
 * seed), in the same proportions. 'simulated': 24,000 train rows (about 100 fraud rows, 34 per bank)
 * and a 6,000-row holdout (about 25 fraud rows: a recall measured on them moves in steps of 0.04,
 * binomial sd ≈ 0.1). 'simulated-96k': the same banks at 4x the rows (about 400 fraud rows; 24,000
 * holdout rows with about 100 fraud rows), nearer a bank's month of card transactions.
 */
export const SIMULATED_SIZES: Record<string, { rows: number; holdoutRows: number }> = {
  simulated: { rows: 24_000, holdoutRows: 6_000 },
  'simulated-96k': { rows: 96_000, holdoutRows: 24_000 },
};

export async function simulatedSplit(work: string, name = 'simulated'): Promise<Split> {
  const size = SIMULATED_SIZES[name];
  if (!size) throw new Error(`unknown simulated dataset '${name}' (known: ${Object.keys(SIMULATED_SIZES).join(', ')})`);
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const sim = simulateBanks({ banks: 3, rows: size.rows, out: dir, seed: 42 });
  const schema = transactionSchema();
  const header = schema.columns.map((c) => c.name);
  const shares = bankShares(3);
  const holdout = [0, 1, 2].flatMap((b) => simulateBankRows(b, Math.round(shares[b]! * size.holdoutRows), 4242));
  const holdoutPath = join(dir, 'holdout.csv');
  writeCsv(holdoutPath, header, holdout);
  const train: string[][] = [];
  for (const bank of sim.banks) for await (const r of (await openCsv(bank.path)).rows) train.push(r.values);
  const trainPath = join(dir, 'train.csv');
  writeCsv(trainPath, header, train);
  return { name, dir, schemaPath: sim.schemaPath, schema, target: 'is_fraud', bankPaths: sim.banks.map((b) => b.path), trainPath, holdoutPath };
}

/** The data sets of bench:privacy and bench:privacy-reference, by default all four. */
export const PRIVACY_DATASETS = 'simulated,simulated-96k,credit-default,bank-marketing';

/** Each bank's row count in a split (its CSV's lines after the header); the pooled train CSV is the banks' CSVs in this order. */
export function bankRowCounts(split: Split): number[] {
  return split.bankPaths.map((p) => (readFileSync(p, 'utf8').match(/\n/g)?.length ?? 1) - 1);
}

/**
 * The benchmark datasets named in `only`: the simulated 3-bank data, and the public tables in
 * ../shared/datasets (stratified 80/20 train/holdout, seed 42, train split 50/30/20 across 3 banks).
 */
export async function benchmarkSplits(only: readonly string[], work: string): Promise<Split[]> {
  const datasets = resolve(process.cwd(), '../shared/datasets');
  const splits: Split[] = [];
  for (const name of Object.keys(SIMULATED_SIZES)) if (only.includes(name)) splits.push(await simulatedSplit(work, name));
  if (only.includes('credit-default')) splits.push(await splitDataset({ name: 'credit-default', file: join(datasets, 'credit-default.csv'), target: 'default.payment.next.month', drop: ['ID'], dir: join(work, 'credit-default'), seed: 42, shares: [0.5, 0.3, 0.2] }));
  if (only.includes('bank-marketing')) splits.push(await splitDataset({ name: 'bank-marketing', file: join(datasets, 'bank-marketing.csv'), target: 'y', drop: [], dir: join(work, 'bank-marketing'), seed: 42, shares: [0.5, 0.3, 0.2] }));
  return splits;
}

export interface FederatedOptions {
  model: Partial<ModelConfig>;
  rounds: number;
  localSteps: number;
  batchSize: number;
  lr?: number;
  /** Discriminator learning rate when it differs from lr (TTUR, Heusel et al. 2017). */
  lrD?: number;
  /**
   * Server-side exponential moving average of the global generator (Yazıcı et al. 2019), exactly as
   * the coordinator publishes it (emaGenerator with emaWarmupBeta): training continues from the
   * global model, the snapshot handed to onRound and the result use the averaged generator. 0 = off.
   */
  generatorEma?: number;
  /** Which networks the moving average covers (default the coordinator's SAMPLED_NETWORKS, G and C). */
  emaNetworks?: readonly string[];
  /** Diagnostic: also keep an average over these networks of the same run (FederatedResult.alsoEma). */
  alsoEmaNetworks?: readonly string[];
  /**
   * Weight of the auxiliary classifier of the schema's target (the coordinator's --classifier-weight;
   * default 1 as there; 0 = no classifier).
   */
  classifierWeight?: number;
  /** Keep each bank's Adam state across rounds (default: reset per round, as the agent does). */
  keepOptimizer?: boolean;
  seed: number;
  /** Record-level DP per bank: total ε (summary + DP-SGD) at δ; absent = non-private. */
  /**
   * As the agent does by default: the summary costs summaryEpsilon on its own, and DP-SGD's σ is
   * calibrated so that summary ⊕ DP-SGD compose (RDP) to epsilon in all.
   */
  dp?: { epsilon: number; delta: number; summaryEpsilon: number; maxGradNorm: number; classifierClipShare?: number; classifierClipNorm?: number; summaryTargetShare?: number };
  /**
   * As the coordinator's --label-calibration-noise z: after the last round each bank releases its
   * per-bin counts under the published C with noise sd z·√2 (client-node/dp-calibration.ts), and the
   * fitted map travels with the snapshot (meta.labelCalibration). Under dp the release is planned
   * into σ, as the agent plans it. 0/absent = off.
   */
  labelCalibrationNoise?: number;
  /**
   * Experimental, dp only: each bank also releases the two-way counts of every pair of its encoded
   * rows' softmax spans but the target's (shared/transformer/pair-counts.ts) with Gaussian noise at
   * this noise multiplier z (sd z·√pairs per cell), planned into σ like the other releases; the
   * merged tables, shrunk towards independence by what the noise explains (shrinkPairTable; a pair
   * the noise explains entirely is dropped), are the generator's pair targets
   * (TrainerOptions.pairTargets). The agent does not release them. 0/absent = off.
   */
  pairNoise?: number;
  /** With pairNoise: TrainerOptions.pairWeight (default 1). */
  pairWeight?: number;
  /**
   * With pairNoise: the first round whose training uses the targets. Default 2, as the agent and the
   * coordinator run it (each bank sends its counts with its first update; the targets go out with
   * the next round); 1 = as if released before round 1 (the ninth session's runs).
   */
  pairsFromRound?: number;
  /** Generator updates per local step (TrainStepsOptions.gSteps, default 1). */
  gSteps?: number;
  /** false: the generator's marginal term leaves the numeric columns' mode shares out (as before 2026-12-07's sixth session); 'spikes': holds only the point masses' shares. */
  modeShares?: boolean | 'spikes';
  /** The transformer keeps point masses (FitOptions.pointMasses; the coordinator's --point-masses). Default off, as the coordinator's. */
  pointMasses?: boolean;
  /** Each bank's update (new weights minus global) clipped to this L2 norm, as the agent does with the coordinator's --update-clip-norm; 0 or absent: not clipped. The round log marks a clipped update with '*'. */
  updateClipNorm?: number;
  /**
   * What the server averages: 'all' (default, plain FedAvg of G and D) or 'generator' (only the
   * generator's tensors are averaged; each bank keeps its own discriminator across rounds).
   */
  average?: 'all' | 'generator';
  /** FedAvgM (Hsu et al. 2019): server momentum β on the averaged update (0 or absent = plain FedAvg). */
  serverMomentum?: number;
  /** Called after each round's aggregation with the new global weights and the round's mean losses per bank. */
  onRound?: (r: number, snapshot: ModelSnapshot, losses: { dLoss: number; gLoss: number; condLoss: number }[]) => void | Promise<void>;
  log: (line: string) => void;
}

type NamedWeights = { name: string; shape: number[]; data: Float32Array }[];

/** What sampling needs: the global model after some round. */
export interface ModelSnapshot {
  transformer: GmmTransformer;
  modelConfig: ModelConfig;
  weights: NamedWeights;
  categoryWeights: { column: string; values: number[] }[];
  /** The published map that calibrates C's labels (FederatedOptions.labelCalibrationNoise), if any. */
  labelCalibration?: LabelCalibration;
}

export interface FederatedResult extends ModelSnapshot {
  /** With alsoEmaNetworks: the published weights under that average instead. */
  alsoEma?: NamedWeights;
  trainSeconds: number;
  msPerStep: number;
  /** DP only: noise multiplier of DP-SGD and ε per part. */
  /** summaryNoiseStd: each bank's Gaussian noise sd on the target's class counts (shared/privacy/summary-noise). */
  /** sgdEpsilon: what DP-SGD alone would cost; epsilon: summary ⊕ DP-SGD composed (the bank's total). */
  privacy?: { sigma: number; sampleRate: number; summaryEpsilon: number; summaryNoiseStd: number; sgdEpsilon: number; epsilon: number; delta: number };
}

export async function trainFederated(split: Split, o: FederatedOptions): Promise<FederatedResult> {
  const schema = split.schema;
  const banks: Row[][] = [];
  for (const p of split.bankPaths) banks.push((await loadTable(p, schema)).rows);
  // 1. Each bank's summary (DP-noised when dp is set), merged.
  const cols = summaryColumns(schema);
  let noiseStd = cols.map(() => 0);
  let summaryEpsilon = 0;
  let summaryNoiseStd = 0;
  let summaryRdp: number[] = [];
  const released = banks.map((rows) => {
    const raw = summaryCounts(schema, rows);
    if (!o.dp) return raw;
    summaryEpsilon = o.dp.summaryEpsilon;
    const z = noiseMultiplierFor({ targetEpsilon: summaryEpsilon, delta: o.dp.delta, sampleRate: 1, steps: 1 });
    // As the agent's releaseNoisyCounts: the target column takes its share of the privacy loss.
    const plan = summaryNoise(cols.map((c) => c.column), z, schema.target !== undefined ? { column: schema.target, share: o.dp.summaryTargetShare ?? DEFAULT_SUMMARY_TARGET_SHARE } : undefined);
    summaryNoiseStd = plan.columnStd[cols.findIndex((c) => c.column === schema.target)] ?? plan.columnStd[0]!;
    summaryRdp = rdpGaussian(plan.sigma, plan.sensitivity);
    noiseStd = noiseStd.map((s, k) => Math.sqrt(s ** 2 + plan.columnStd[k]! ** 2));
    return raw.map((v, k) => {
      const noise = secureGaussian(v.length, plan.columnStd[k]!);
      return v.map((x, j) => x + noise[j]!);
    });
  });
  // The coordinator's merge: per (column, bin) sum over banks, clamped at 0; the transformer is
  // fitted from it, and the category weights pool its merged rare categories from the unclamped sums.
  const perBank = released.map((r) => cols.map((c, k) => ({ column: c.column, values: r[k]! })));
  const clamped = mergeNoisyCounts(perBank);
  const transformer = GmmTransformer.fit(schema, clamped, { noiseStd, ...(o.pointMasses ? { pointMasses: true } : {}) });
  const merged = pooledCategoryWeights(transformer.toJSON(), mergeNoisyCounts(perBank, { clamp: false }));
  const modelConfig = consortiumModelConfig(schema, { ...(o.classifierWeight !== undefined ? { classifierWeight: o.classifierWeight } : {}), ...o.model });
  // As the agent (client-node/dp-row-count.ts): with DP, each bank's size enters q, the DP-SGD divisor
  // and the FedAvg weight only through its released row count, whose charge the σ plan composes.
  const data = banks.map((rows) => ({ encoded: transformer.transform(rows, o.seed), n: rows.length, publicRows: o.dp ? noisyRowCount(rows.length, ROW_COUNT_NOISE_SD) : rows.length }));
  if (o.dp) summaryRdp = composeRdp(summaryRdp, rowCountRdp(ROW_COUNT_NOISE_SD));
  let pairTargets: PairTarget[] | undefined;
  if (o.dp && o.pairNoise && o.pairNoise > 0) {
    // As the agents and the coordinator do (client-node/dp-pair-counts.ts, coordinator/server.ts):
    // each bank's tables with noise sd z·√pairs, merged and shrunk (mergePairTargets), charged into σ's plan.
    const pairs = softmaxSpanPairs(transformer.spans, modelConfig.classifierColumn ? [modelConfig.classifierColumn] : []);
    const noiseSd = pairNoiseSd(o.pairNoise, pairs.length);
    const released = data.map((d) => {
      const noisy = pairCounts(d.encoded, d.n, transformer.outputDim, pairs).map((table) => {
        const noise = secureGaussian(table.length, noiseSd);
        return table.map((v, j) => v + noise[j]!);
      });
      // Weighted by the FedAvg weight its updates carry, as the coordinator's pair book does.
      return { noiseSd, tables: noisy, weight: d.publicRows };
    });
    const kept = mergePairTargets(pairs, released);
    pairTargets = kept.map((x) => ({ a: x.aOffset, b: x.bOffset, joint: x.joint }));
    summaryRdp = composeRdp(summaryRdp, pairCountsRdp(o.pairNoise, pairs.length));
    const name = (offset: number): string => transformer.spans.find((sp) => sp.offset === offset)?.column ?? String(offset);
    const top = [...kept].sort((x, y) => y.lambda - x.lambda).slice(0, 6).map((x) => `${name(x.aOffset)}/${name(x.bOffset)} ${x.lambda.toFixed(2)}`);
    o.log(`  ${split.name} pair counts: ${pairs.length} pairs, noise sd ${noiseSd.toFixed(0)} per cell per bank; ${kept.length} pairs kept (λ > 0), e.g. ${top.join(', ')}; targets from round ${o.pairsFromRound ?? 2}`);
  }
  // 2. One model + trainer per bank (its own Adam state), the global weights in between.
  const models = banks.map(() => createModel(modelConfig, transformer.spans));
  const condFreq = models[0]!.condSpans.map((s) => merged.find((m) => m.column === s.column)!.values);
  // The calibration release after the last round, planned like the agent plans it (local-trainer.ts).
  // As the coordinator, decided from the merged counts before the first round (calibrationSkipReason): a skipped release is not planned into σ.
  const askedZ = o.labelCalibrationNoise && modelConfig.classifierColumn ? o.labelCalibrationNoise : 0;
  const calibrationSkip = askedZ > 0 ? calibrationSkipReason(merged.find((c) => c.column === modelConfig.classifierColumn)?.values, askedZ, banks.length) : null;
  if (calibrationSkip !== null) o.log(`  ${split.name} label calibration: not planned (${calibrationSkip})`);
  const calibrationZ = calibrationSkip === null ? askedZ : 0;
  if (o.dp && calibrationZ > 0) summaryRdp = composeRdp(summaryRdp, calibrationRdp(calibrationZ));
  let sigma = 0;
  let sampleRate = 0;
  let sgdEpsilon = 0;
  let totalEpsilon = 0;
  const makeTrainer = (m: GanModel, b: number, withPairs: boolean): Trainer => {
    let dp: { noiseMultiplier: number; maxGradNorm: number; sampleRate: number; publicRows: number; classifierClipShare?: number } | undefined;
    if (o.dp) {
      sampleRate = Math.min(1, o.batchSize / data[b]!.publicRows);
      const s = noiseMultiplierFor({ targetEpsilon: o.dp.epsilon, delta: o.dp.delta, sampleRate, steps: o.rounds * o.localSteps, priorRdp: summaryRdp });
      sgdEpsilon = epsilonFor({ sampleRate, noiseMultiplier: s, steps: o.rounds * o.localSteps, delta: o.dp.delta });
      totalEpsilon = Math.max(totalEpsilon, rdpToEpsilon(DEFAULT_ORDERS, composeRdp(summaryRdp, computeRdp(sampleRate, s, o.rounds * o.localSteps)), o.dp.delta).epsilon);
      sigma = Math.max(sigma, s);
      dp = { noiseMultiplier: s, maxGradNorm: o.dp.maxGradNorm, sampleRate, publicRows: data[b]!.publicRows, ...(o.dp.classifierClipShare !== undefined ? { classifierClipShare: o.dp.classifierClipShare } : {}), ...(o.dp.classifierClipNorm !== undefined ? { classifierClipNorm: o.dp.classifierClipNorm } : {}) };
    }
    return createTrainer(m, {
      lrG: o.lr,
      lrD: o.lrD ?? o.lr,
      categoryFrequencies: condFreq,
      excludedCategories: transformer.unusedCategories(),
      ...(o.modeShares === false ? {} : { modeShares: o.modeShares === 'spikes' ? transformer.spikeShares() : transformer.modeShares() }),
      seed: o.seed + b,
      ...(pairTargets && withPairs ? { pairTargets, ...(o.pairWeight !== undefined ? { pairWeight: o.pairWeight } : {}) } : {}),
      ...(dp ? { dp, sampling: 'uniform' as const } : {}),
    });
  };
  const pairsFrom = o.pairsFromRound ?? 2;
  const trainers = models.map((m, b) => makeTrainer(m, b, pairsFrom <= 1));
  let global: NamedWeights = models[0]!.getWeights();
  const average = o.average ?? 'all';
  const beta = o.serverMomentum ?? 0;
  let velocity: Float64Array[] | undefined;
  const emaBeta = o.generatorEma ?? 0;
  let ema: NamedWeights | undefined;
  let emaAlt: NamedWeights | undefined;
  const t0 = performance.now();
  let steps = 0;
  for (let r = 1; r <= o.rounds; r++) {
    if (pairTargets && r === pairsFrom && r > 1) {
      // The targets arrive with this round's start: the agent builds its trainer per round with them.
      trainers.forEach((t, b) => {
        t.dispose();
        trainers[b] = makeTrainer(models[b]!, b, true);
      });
    }
    const updates = banks.map((_, b) => {
      // 'generator': the bank's own discriminator stays (the model still holds it from last round).
      const own = average === 'generator' && r > 1 ? models[b]!.getWeights() : undefined;
      models[b]!.setWeights(own ? global.map((t, i) => (t.name.startsWith('D/') ? own[i]! : t)) : global);
      if (!o.keepOptimizer) trainers[b]!.resetOptimizers();
      const losses = trainers[b]!.trainSteps(data[b]!.encoded, data[b]!.n, { steps: o.localSteps, batchSize: o.batchSize, ...(o.gSteps ? { gSteps: o.gSteps } : {}) });
      steps += o.localSteps;
      const mean = (k: 'dLoss' | 'gLoss' | 'condLoss'): number => losses.reduce((s, l) => s + l[k], 0) / losses.length;
      // The agent's update: new weights minus global, clipped to the plan's updateClipNorm (client-node/update.ts).
      const local = models[b]!.getWeights();
      const { update, norm, clipped } = prepareUpdate(local, global, o.updateClipNorm ?? 0);
      const tensors = clipped ? update.map((t, i) => ({ ...t, data: t.data.map((v, j) => global[i]!.data[j]! + v) })) : local;
      return { tensors, weight: data[b]!.publicRows, norm, clipped, mean: { dLoss: mean('dLoss'), gLoss: mean('gLoss'), condLoss: mean('condLoss') } };
    });
    const avg = weightedMean(updates.map((u) => ({ tensors: u.tensors, weight: u.weight })));
    if (beta > 0) {
      // v ← β·v + (avg − global); global ← global + v (server learning rate 1).
      velocity ??= global.map((t) => new Float64Array(t.data.length));
      global = global.map((t, i) => {
        const v = velocity![i]!;
        const a = avg[i]!.data;
        const out = new Float32Array(t.data.length);
        for (let j = 0; j < out.length; j++) {
          v[j] = beta * v[j]! + (a[j]! - t.data[j]!);
          out[j] = t.data[j]! + v[j]!;
        }
        return { name: t.name, shape: [...t.shape], data: out };
      });
    } else {
      global = avg;
    }
    // The coordinator's own published-model average (--generator-ema), with its warm-up.
    if (emaBeta > 0) ema = emaGenerator(ema, global, emaWarmupBeta(emaBeta, r), ...(o.emaNetworks ? [o.emaNetworks] : []));
    if (emaBeta > 0 && o.alsoEmaNetworks) emaAlt = emaGenerator(emaAlt, global, emaWarmupBeta(emaBeta, r), o.alsoEmaNetworks);
    const secs = (performance.now() - t0) / 1000;
    o.log(`  ${split.name} round ${r}/${o.rounds}: mean D ${updates.map((u) => u.mean.dLoss.toFixed(3)).join('/')}  G ${updates.map((u) => u.mean.gLoss.toFixed(3)).join('/')}  cond ${updates.map((u) => u.mean.condLoss.toFixed(3)).join('/')}  update norm ${updates.map((u) => u.norm.toFixed(2) + (u.clipped ? '*' : '')).join('/')}  ${secs.toFixed(0)} s`);
    await o.onRound?.(r, { transformer, modelConfig, weights: ema ?? global, categoryWeights: merged }, updates.map((u) => u.mean));
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  const published = ema ?? global;
  let labelCalibration: LabelCalibration | undefined;
  if (calibrationZ > 0) {
    // As the coordinator (planLabelCalibration, fitFromNoisyCounts) and the banks (countForCalibration, then the noise releaseCalibrationCounts adds).
    const plan = planLabelCalibration({ modelConfig, transformer: transformer.toJSON(), tensors: published, meta: { categoryWeights: merged } }, { seed: o.rounds });
    // Too rare a class was decided before training (calibrationZ 0); every bank is still here.
    if (plan) {
      const releases = banks.map((_, b) => addCalibrationNoise(countForCalibration(models[b]!, data[b]!.encoded, data[b]!.n, plan), calibrationZ));
      labelCalibration = fitFromNoisyCounts(plan.edges, plan.reference, plan.classIndex, releases).calibration ?? undefined;
      if (labelCalibration) o.log(`  ${split.name} label calibration: ${labelCalibration.knots.length} bins, P(class ${plan.classIndex}) ${labelCalibration.logits.map((v) => (1 / (1 + Math.exp(-v))).toFixed(3)).join(' ')}`);
      else o.log(`  ${split.name} label calibration: no map (no bin holds enough class rows for the noise)`);
    }
  }
  for (const t of trainers) t.dispose();
  for (const m of models) m.dispose();
  return {
    transformer,
    modelConfig,
    weights: published,
    ...(labelCalibration ? { labelCalibration } : {}),
    ...(emaAlt ? { alsoEma: emaAlt } : {}),
    categoryWeights: merged,
    trainSeconds,
    msPerStep: (trainSeconds * 1000) / steps,
    ...(o.dp ? { privacy: { sigma, sampleRate, summaryEpsilon, summaryNoiseStd, sgdEpsilon, epsilon: totalEpsilon, delta: o.dp.delta } } : {}),
  };
}

/** Samples the global model, writes the synthetic CSV and evaluates it against the holdout. */
export async function sampleAndEvaluate(split: Split, res: ModelSnapshot, o: { rows: number; seed: number; outDir: string; stratify?: boolean; quotaDraw?: QuotaDraw; labels?: 'classifier' | 'generator'; labelLogitScale?: number; labelCalibration?: LabelCalibration | null }): Promise<Record<string, unknown>> {
  mkdirSync(o.outDir, { recursive: true });
  const synPath = writeSynthetic(split, res, { ...o, path: join(o.outDir, `${split.name}-synthetic.csv`) });
  const { report } = await evaluateFiles({ real: split.trainPath, holdout: split.holdoutPath, synthetic: synPath, target: split.target, schema: split.schemaPath, outDir: join(o.outDir, `${split.name}-report`), seed: o.seed });
  return report as unknown as Record<string, unknown>;
}

/** A model snapshot in the form the sampler takes (what a checkpoint holds). */
export function samplableOf(res: ModelSnapshot): SamplableModel {
  return { modelConfig: res.modelConfig, transformer: res.transformer.toJSON(), tensors: res.weights, meta: { categoryWeights: res.categoryWeights, ...(res.labelCalibration ? { labelCalibration: res.labelCalibration } : {}) } };
}

/** Samples `rows` rows from a model snapshot into a CSV at `path` (returned). */
export function writeSynthetic(split: Split, res: ModelSnapshot, o: { rows: number; seed: number; path: string; stratify?: boolean; quotaDraw?: QuotaDraw; labels?: 'classifier' | 'generator'; labelLogitScale?: number; labelCalibration?: LabelCalibration | null }): string {
  const { rows, columns } = sampleRows(samplableOf(res), o.rows, { seed: o.seed, ...(o.stratify === false ? { stratify: false } : {}), ...(o.quotaDraw ? { quotaDraw: o.quotaDraw } : {}), ...(o.labels ? { labels: o.labels } : {}), ...(o.labelLogitScale ? { labelLogitScale: o.labelLogitScale } : {}), ...(o.labelCalibration !== undefined ? { labelCalibration: o.labelCalibration } : {}) });
  writeCsv(o.path, columns, rows.map((r) => formatRow(split.schema, r)));
  return o.path;
}

export function metric(o: unknown, path: string): number {
  let cur: unknown = o;
  for (const k of path.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[k];
  return typeof cur === 'number' ? cur : Number.NaN;
}
