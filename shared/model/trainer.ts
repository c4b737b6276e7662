// Local GAN training on one bank's transformed rows.
//
// The discriminator step is split so DP-SGD can replace its middle part:
//   discriminatorInputs()      → packed real and fake rows (tensors)
//   discriminatorGradients()   → loss and gradients (here: ordinary autodiff on the batch mean;
//                                DP-SGD swaps in per-example clipped sums + Gaussian noise using
//                                model.discriminatorForward's per-layer (a, z) traces)
//   applyDiscriminatorGradients() → Adam step
// Training-by-sampling follows CTGAN (Xu et al. 2019, §4.3): pick a conditional column uniformly,
// a category with probability ∝ log(1 + frequency), then a local real row with that category.
// The frequencies are an input (the DP-noised merged counts), never computed from the raw rows
// here; the row index per category is built locally and never leaves the trainer. For DP runs use
// sampling: 'uniform' (see TrainerOptions.sampling).
//
// Adam state persists across trainSteps calls on one trainer; resetOptimizers() drops it (the
// client does so per round). Every tensor made in a step is disposed in it (tests check
// tf.memory().numTensors). The row index is cached per data array: do not mutate it in place.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../tensor/random';
import { Adam } from './adam';
import { categoryCdfs, drawFromCdf, excludedCategorySets, type GanModel } from './model';
import { labelCrossEntropy, softplus } from './layers';
import { CryptoRandom } from '../privacy/secure-noise';
import { SecureNoisePrefetcher } from '../privacy/noise-prefetch';
import { checkClassifierPacking, dpDiscriminatorGradients, expectedPacks, packSample, parseDpSgdOptions, poissonSample, type DpSgdOptions } from './dp-sgd';

/** Discriminators with at least this many parameters get their DP noise drawn ahead on a worker thread. */
export const NOISE_PREFETCH_MIN_PARAMS = 100_000;

export interface TrainerOptions {
  /** DP only: parameter count from which D's noise is prefetched on a worker (default NOISE_PREFETCH_MIN_PARAMS; Infinity = never). */
  noisePrefetchMinParams?: number;
  lrG?: number;
  lrD?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** L2 weight decay (CTGAN: 1e-6 on both networks). */
  weightDecayG?: number;
  weightDecayD?: number;
  /**
   * Per conditional column (model.condSpans order), non-negative category weights — in the
   * federation, DP-noised merged counts. Absent: every category that occurs locally is equally
   * likely (no statistic of the raw rows is used beyond presence).
   */
  categoryFrequencies?: number[][];
  /**
   * Categories the encoding never produces, by output span offset (the transformer's
   * unusedCategories: rare categories merged into another's slot). No cond vector names them: no
   * real row carries them, and the sampler never draws them, so a G step conditioned on one would
   * only teach the generator to produce what is thrown away.
   */
  excludedCategories?: readonly { offset: number; categories: readonly number[] }[];
  /**
   * Numeric columns' mode shares, by the offset of the mode one-hot: the fitted transformer's mixture
   * weights (and its spike's), themselves post-processing of the banks' DP-noised histograms. With
   * ModelConfig.marginalWeight the generator's marginal term matches them too, as it matches the
   * category shares (a weak D under DP noise let the zeros of an amount column, 7-13% of the real
   * rows, come out at 2-4%).
   */
  modeShares?: readonly ModeShares[];
  /**
   * Two-way targets for the generator's marginal term (with ModelConfig.marginalWeight, under the
   * same conditions as the one-way targets): per pair of softmax spans, non-negative weights of
   * their joint categories (e.g. the consortium's DP-noised two-way counts), row-major a × b. The
   * term adds KL(target ‖ the generated batch's joint) per pair, the batch importance-weighted as
   * for the one-way targets. Each row's two spans are independent draws given its noise, so the
   * batch's joint is the weighted mean of the outer products of the two softmaxes.
   */
  pairTargets?: readonly PairTarget[];
  /** Weight of the two-way terms relative to the marginal term's weight (default 1). */
  pairWeight?: number;
  /**
   * How real rows are drawn for D.
   * 'by-category' (default, CTGAN): conditional column uniformly, category ∝ log(1 + frequency)
   *   among categories present locally, then a row of that category; generated rows get cond
   *   vectors from the same distribution. Exact CTGAN, but which categories exist locally then
   *   shapes the G update, and the row choice is not the uniform subsampling DP accounting assumes.
   * 'uniform': rows uniformly at random (or the caller's indices, e.g. Poisson-sampled by DP-SGD),
   *   each conditioned on its own category of a random conditional column; generated rows get
   *   cond vectors ∝ categoryFrequencies (the DP-noised counts), so the G step depends on no local
   *   statistic. Use this with DP.
   */
  sampling?: 'by-category' | 'uniform';
  /**
   * DP-SGD on the discriminator (see dp-sgd.ts): each D update Poisson-samples local rows at rate
   * `sampleRate` (node:crypto), clips every packed input's gradient to `maxGradNorm`, adds
   * N(0, (noiseMultiplier·Δ)²) once (Δ = maxGradNorm, or 2·maxGradNorm when pac > 1) and divides by
   * the expected number of packs. Requires loss 'ns' and sampling 'uniform' (the default when dp is
   * set); without categoryFrequencies, generated rows get cond vectors with uniform category weights
   * (never the local statistics). The caller accounts each D update as one sampled Gaussian
   * mechanism (q = sampleRate, σ = noiseMultiplier); the generator step is post-processing.
   */
  dp?: DpSgdOptions;
  /** Seeds batch sampling, noise and dropout; default derives from the model seed. */
  seed?: number;
}

/**
 * The mean over pairs of KL(target ‖ the batch's joint of the pair), all pairs at once: `probs` the
 * pairs' spans' softmaxes side by side [B, S], `weights` [B, 1] summing to 1, `targets` S × S with
 * each pair's normalised joint in its block and 0 elsewhere, `entropy` Σ t·log t over it.
 */
export function meanPairKl(probs: tf.Tensor2D, weights: tf.Tensor2D, pairs: { targets: tf.Tensor2D; entropy: number; count: number }): tf.Scalar {
  return tf.tidy(() => {
    const joint = tf.matMul(tf.transpose(tf.mul(probs, weights)), probs);
    const cross = tf.sum(tf.mul(pairs.targets, tf.log(tf.add(joint, 1e-8))));
    return tf.div(tf.sub(tf.scalar(pairs.entropy), cross), pairs.count) as tf.Scalar;
  });
}

/** TrainerOptions.pairTargets: two softmax spans by offset, and their joint weights (aDim × bDim, row-major). */
export interface PairTarget {
  a: number;
  b: number;
  joint: readonly number[];
}

/**
 * A numeric column's mode shares (TrainerOptions.modeShares): `shares` per slot of the mode one-hot
 * at `offset`, or, with `groups`, per group of slots (e.g. each point mass alone and the mixture's
 * slots together, so only the point masses' shares are held).
 */
export interface ModeShares {
  offset: number;
  shares: readonly number[];
  groups?: readonly (readonly number[])[];
}

export interface TrainStepsOptions {
  steps: number;
  /** Rows per batch; a multiple of the model's pac (default 500). */
  batchSize?: number;
  /** Discriminator updates per generator update (default 1). */
  dSteps?: number;
  /**
   * Generator updates per step (default 1), after the step's D updates. Under DP-SGD they cost no
   * privacy (the generator is post-processing of D and of the released counts it matches).
   */
  gSteps?: number;
}

export interface StepLosses {
  step: number;
  /** Discriminator loss of the last D update in the step (including the gradient penalty for WGAN-GP). */
  dLoss: number;
  /** Generator adversarial loss (without the conditional term). */
  gLoss: number;
  /** Conditional cross-entropy between cond vectors and the generator's discrete spans. */
  condLoss: number;
  /** WGAN-GP only: the λ-weighted gradient penalty included in dLoss. */
  gradientPenalty?: number;
  /** With a classifier: its cross-entropy on the last D update's real rows (local; not released). */
  classifierLoss?: number;
  /** With a classifier: the generator's classifier term (CE of C on generated rows, unweighted). */
  gClassifierLoss?: number;
}

export type ProgressFn = (p: StepLosses & { steps: number }) => void;

/** Packed discriminator inputs for one D update (owned by the caller; dispose them). */
export interface DiscriminatorInputs {
  /** [B/pac, pac·(outputDim+condDim)] real rows with their cond vectors. */
  real: tf.Tensor2D;
  /** [F/pac, same columns]: generated rows (no gradient to G) with their cond vectors. */
  fake: tf.Tensor2D;
  /** Rows of the data array the real rows were drawn from (DP-SGD divides by q·n/pac). */
  n?: number;
  /** With a classifier: the real rows unpacked, [B, outputDim] (C's training input). */
  realRows?: tf.Tensor2D;
}

/** Disposes every tensor of a DiscriminatorInputs. */
export function disposeInputs(inputs: DiscriminatorInputs): void {
  inputs.real.dispose();
  inputs.fake.dispose();
  inputs.realRows?.dispose();
}

export interface DiscriminatorGradients {
  /** In model.discriminatorParamNames() order; owned by the caller (apply disposes them). */
  grads: tf.Tensor[];
  loss: number;
  gradientPenalty?: number;
  /** With a classifier: C's gradients (model.classifierParamNames() order; apply disposes them) and loss. */
  classifierGrads?: tf.Tensor[];
  classifierLoss?: number;
}

/** Per-category row lists of one data array: rows[k][j] = rows whose conditional span k is category j. */
interface RowIndex {
  n: number;
  rows: Int32Array[][];
  cdfs: (Float64Array | null)[];
  usableSpans: number[];
}

/**
 * Discriminator loss from logits. 'ns': −mean log σ(D(real)) − mean log(1 − σ(D(fake)))
 * (Goodfellow et al. 2014). 'wgan-gp': mean D(fake) − mean D(real) (Arjovsky et al. 2017), the
 * penalty is added separately.
 */
export function discriminatorLoss(loss: 'ns' | 'wgan-gp', realLogits: tf.Tensor, fakeLogits: tf.Tensor): tf.Scalar {
  return tf.tidy(() =>
    loss === 'ns'
      ? (tf.add(tf.mean(softplus(tf.neg(realLogits))), tf.mean(softplus(fakeLogits))) as tf.Scalar)
      : (tf.sub(tf.mean(fakeLogits), tf.mean(realLogits)) as tf.Scalar),
  );
}

/** Generator adversarial loss: non-saturating −mean log σ(D(fake)), or −mean D(fake) for WGAN. */
export function generatorLoss(loss: 'ns' | 'wgan-gp', fakeLogits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => (loss === 'ns' ? tf.mean(softplus(tf.neg(fakeLogits))) : tf.neg(tf.mean(fakeLogits))) as tf.Scalar);
}

/** TrainerOptions.excludedCategories as a predicate over (cond span, category); undefined when nothing is excluded. */
function allowedCategories(model: GanModel, excluded: TrainerOptions['excludedCategories']): ((k: number, j: number) => boolean) | undefined {
  if (!excluded || excluded.length === 0) return undefined;
  const byOffset = excludedCategorySets(model.spans, excluded, 'trainer');
  // A softmax span that is not conditional has no cond draw to leave anything out of.
  const skip = model.condSpans.map((s) => byOffset.get(s.offset) ?? new Set<number>());
  return (k, j) => !skip[k]!.has(j);
}

/** A category's weight in the G step's cond draw under 'uniform' sampling (see Trainer.genCdfs). */
const generatorStepWeight = (f: number): number => Math.log1p(Math.max(f, 1));

export class Trainer {
  readonly model: GanModel;
  private readonly optG: Adam;
  private readonly optD: Adam;
  private readonly optC: Adam | undefined;
  private readonly rng: Rng;
  private readonly freqs: number[][] | undefined;
  private readonly indexCache = new WeakMap<Float32Array, RowIndex>();
  private stepCounter = 0;
  readonly sampling: 'by-category' | 'uniform';
  /** 'uniform' mode with categoryFrequencies: cond distribution for D's generated rows (∝ frequency). */
  private readonly freqCdfs: (Float64Array | null)[] | undefined;
  /**
   * 'uniform' mode with categoryFrequencies: cond distribution of the generator's own step, ∝
   * log(1 + max(frequency, 1)) as CTGAN's training-by-sampling. D's generated rows must follow the
   * real rows' category shares (∝ frequency), or D would learn that a rare category means "fake";
   * the G step reads no real row and may use any distribution. At ∝ frequency a class of 0.4% of
   * the rows, or one whose DP-noised count came out ≤ 0, almost never conditions the generator, so
   * it never learns to produce it and `fedsynth sample --where` cannot oversample it. The floor of
   * 1 keeps every category the schema declares in training.
   */
  private readonly genCdfs: (Float64Array | null)[] | undefined;
  /** Whether category j of cond span k may name a cond vector (TrainerOptions.excludedCategories); absent: all. */
  private readonly allowed: ((k: number, j: number) => boolean) | undefined;
  /** DP-SGD settings (absent: ordinary training). */
  readonly dp: DpSgdOptions | undefined;
  /** Poisson sampling and privacy noise: node:crypto, never the seeded Rng. */
  private readonly crypto = new CryptoRandom();
  private noisePrefetch: SecureNoisePrefetcher | undefined;
  /** With ModelConfig.marginalWeight: pf/pg per category (importance weights), and the noisy marginals as tensors. */
  private importance: number[][] | undefined;
  private marginalTargets: tf.Tensor1D[] | undefined;
  /** With ModelConfig.marginalWeight: numeric columns' mode shares (TrainerOptions.modeShares) as tensors. */
  private modeTargets: { offset: number; dim: number; target: tf.Tensor1D; groups?: tf.Tensor2D }[] = [];
  /**
   * With TrainerOptions.pairTargets, all pairs at once: the softmax spans they name (offset order),
   * the targets placed in an S × S matrix over those spans' S slots (each pair's normalised joint in
   * its a-rows × b-columns block, 0 elsewhere), Σ t·log t over it, and the number of pairs.
   */
  private pairs: { spans: { offset: number; dim: number }[]; targets: tf.Tensor2D; entropy: number; count: number } | undefined;
  private pairWeight = 1;

  constructor(model: GanModel, opts: TrainerOptions = {}) {
    this.model = model;
    const base = { beta1: opts.beta1 ?? 0.5, beta2: opts.beta2 ?? 0.9, eps: opts.eps ?? 1e-8 };
    this.optG = new Adam(model.generatorVariables(), { ...base, lr: opts.lrG ?? 2e-4, weightDecay: opts.weightDecayG ?? 1e-6 });
    // Under DP-SGD, D steps at ModelConfig.discriminatorLrDpScale × its rate (see there).
    const lrD = (opts.lrD ?? 2e-4) * (opts.dp ? model.config.discriminatorLrDpScale : 1);
    this.optD = new Adam(model.discriminatorVariables(), { ...base, lr: lrD, weightDecay: opts.weightDecayD ?? 1e-6 });
    // The classifier reads the same real rows as D; its own learning rate (ModelConfig.classifierLr, classifierLrDp).
    if (model.labelSpan) {
      const lr = opts.dp ? model.config.classifierLrDp : model.config.classifierLr;
      this.optC = new Adam(model.classifierVariables(), { ...base, lr, weightDecay: opts.weightDecayD ?? 1e-6 });
    }
    this.rng = new Rng(opts.seed ?? (model.config.seed ^ 0x27d4eb2f) >>> 0);
    this.sampling = opts.sampling ?? (opts.dp ? 'uniform' : 'by-category');
    if (this.sampling !== 'by-category' && this.sampling !== 'uniform') {
      throw new Error(`trainer: sampling must be 'by-category' or 'uniform', got ${JSON.stringify(opts.sampling)}`);
    }
    if (opts.dp) {
      this.dp = parseDpSgdOptions(opts.dp, 'trainer: dp');
      // Large discriminators: draw the next step's noise on a worker thread meanwhile (noise-prefetch.ts).
      const dParams = model.discriminatorVariables().reduce((n, v) => n + v.size, 0);
      if (this.dp.noiseMultiplier > 0 && dParams >= (opts.noisePrefetchMinParams ?? NOISE_PREFETCH_MIN_PARAMS)) {
        this.noisePrefetch = new SecureNoisePrefetcher(dParams, this.crypto);
      }
      if (this.sampling !== 'uniform') {
        throw new Error(
          "trainer: DP-SGD needs sampling 'uniform' (Poisson-sampled rows); 'by-category' picks rows through local category " +
            'statistics, which the privacy accounting does not cover',
        );
      }
      checkClassifierPacking(model, 'trainer');
      if (model.config.loss !== 'ns') {
        throw new Error(
          `trainer: DP-SGD supports the 'ns' loss only, this model uses '${model.config.loss}' (the WGAN-GP gradient penalty ` +
            "is second order in the real rows and cannot be clipped per example here); build the model with loss 'ns'",
        );
      }
    }
    this.allowed = allowedCategories(model, opts.excludedCategories);
    const allowed = this.allowed;
    if (opts.categoryFrequencies) {
      // Validate shape and values now, so a bad input fails before any training.
      categoryCdfs(model.condSpans, opts.categoryFrequencies, Math.log1p, 'trainer');
      this.freqs = opts.categoryFrequencies.map((f) => [...f]);
      if (this.sampling === 'uniform') {
        this.freqCdfs = categoryCdfs(model.condSpans, this.freqs, (f) => f, 'trainer', allowed);
        this.genCdfs = categoryCdfs(model.condSpans, this.freqs, generatorStepWeight, 'trainer', allowed);
        if (model.config.marginalWeight > 0) {
          const norm = (v: number[]): number[] => {
            const t = v.reduce((a, b) => a + b, 0);
            return v.map((x) => (t > 0 ? x / t : 0));
          };
          this.importance = this.freqs.map((f, k) => {
            const pf = norm(f);
            const pg = norm(f.map((x, j) => (!allowed || allowed(k, j) ? generatorStepWeight(x) : 0)));
            return pf.map((x, j) => (pg[j]! > 0 ? x / pg[j]! : 0));
          });
          this.marginalTargets = this.freqs.map((f) => {
            const p = norm(f).map((x) => x + 1e-6);
            return tf.keep(tf.tensor1d(norm(p)));
          });
          this.modeTargets = (opts.modeShares ?? []).map(({ offset, shares, groups }) => {
            const span = model.spans.find((sp) => sp.offset === offset && sp.kind === 'softmax' && (groups ? true : sp.dim === shares.length));
            if (!span) throw new Error(`trainer: mode shares at offset ${offset} name no softmax span of ${shares.length} slots`);
            if (!shares.every((x) => Number.isFinite(x) && x >= 0) || !(shares.reduce((a, b) => a + b, 0) > 0)) throw new Error(`trainer: mode shares of '${span.column}' must be non-negative with a positive sum`);
            let agg: tf.Tensor2D | undefined;
            if (groups) {
              // Slot → group indicator matrix (dim × groups); every slot in at most one group.
              const seen = new Set<number>();
              if (groups.length !== shares.length || groups.some((g) => g.some((j) => !Number.isInteger(j) || j < 0 || j >= span.dim || seen.has(j) || !seen.add(j)))) {
                throw new Error(`trainer: mode share groups of '${span.column}' must be ${shares.length} disjoint lists of slots in [0, ${span.dim})`);
              }
              const a = new Float32Array(span.dim * groups.length);
              groups.forEach((g, k) => g.forEach((j) => (a[j * groups.length + k] = 1)));
              agg = tf.keep(tf.tensor2d(a, [span.dim, groups.length]));
            }
            return { offset, dim: span.dim, target: tf.keep(tf.tensor1d(norm(norm([...shares]).map((x) => x + 1e-6)))), ...(agg ? { groups: agg } : {}) };
          });
          const spanAt = (offset: number): { dim: number; column: string } => {
            const span = model.spans.find((sp) => sp.offset === offset && sp.kind === 'softmax');
            if (!span) throw new Error(`trainer: a pair target names no softmax span at offset ${offset}`);
            return span;
          };
          this.pairWeight = opts.pairWeight ?? 1;
          if (!(Number.isFinite(this.pairWeight) && this.pairWeight >= 0)) throw new Error(`trainer: pairWeight must be a finite number >= 0, got ${opts.pairWeight}`);
          const checked = (opts.pairTargets ?? []).map(({ a, b, joint }) => {
            const sa = spanAt(a);
            const sb = spanAt(b);
            if (a === b) throw new Error(`trainer: a pair target pairs '${sa.column}' with itself`);
            if (joint.length !== sa.dim * sb.dim || !joint.every((x) => Number.isFinite(x) && x >= 0) || !(joint.reduce((x, y) => x + y, 0) > 0)) {
              throw new Error(`trainer: the pair target of '${sa.column}' and '${sb.column}' must hold ${sa.dim}×${sb.dim} non-negative weights with a positive sum`);
            }
            return { a, aDim: sa.dim, b, bDim: sb.dim, joint: norm(norm([...joint]).map((x) => x + 1e-6)) };
          });
          if (checked.length > 0) {
            // One S × S matrix for all pairs: the G step then takes one matMul and a masked sum
            // instead of a few ops per pair (credit-default has over a hundred pairs).
            const offsets = [...new Set(checked.flatMap((t) => [t.a, t.b]))].sort((x, y) => x - y);
            const spans = offsets.map((offset) => ({ offset, dim: spanAt(offset).dim }));
            const slot = new Map<number, number>();
            let size = 0;
            for (const sp of spans) {
              slot.set(sp.offset, size);
              size += sp.dim;
            }
            const t = new Float32Array(size * size);
            let entropy = 0;
            for (const p of checked) {
              const r0 = slot.get(p.a)!;
              const c0 = slot.get(p.b)!;
              p.joint.forEach((v, k) => {
                const cell = (r0 + Math.floor(k / p.bDim)) * size + c0 + (k % p.bDim);
                if (t[cell] !== 0) throw new Error(`trainer: two pair targets name the same pair of spans (offsets ${p.a} and ${p.b})`);
                t[cell] = v;
                entropy += v * Math.log(v);
              });
            }
            this.pairs = { spans, targets: tf.keep(tf.tensor2d(t, [size, size])), entropy, count: checked.length };
          }
        }
      }
    } else if (this.dp && model.condDim > 0) {
      // No DP-noised counts yet: uniform category weights, so generated rows depend on no local statistic.
      this.freqCdfs = categoryCdfs(model.condSpans, model.condSpans.map((s) => new Array<number>(s.dim).fill(1)), (f) => f, 'trainer', allowed);
    }
    if ((opts.pairTargets?.length ?? 0) > 0 && !this.pairs) {
      throw new Error("trainer: pairTargets apply with the marginal term only (ModelConfig.marginalWeight > 0, categoryFrequencies and sampling 'uniform')");
    }
  }

  /** Steps taken by this trainer (across trainSteps calls). */
  get steps(): number {
    return this.stepCounter;
  }

  /**
   * Forgets both optimisers' moment estimates. Adam state otherwise persists across trainSteps
   * calls on the same trainer; the client resets it per federated round (the global weights
   * changed under it), which is the simple, stateless-client choice.
   */
  resetOptimizers(): void {
    this.optG.reset();
    this.optD.reset();
    this.optC?.reset();
  }

  /** Runs `steps` iterations (dSteps D updates, then one G update each) on n × outputDim rows. */
  trainSteps(data: Float32Array, n: number, opts: TrainStepsOptions, onProgress?: ProgressFn): StepLosses[] {
    const steps = opts.steps;
    const batchSize = opts.batchSize ?? 500;
    const dSteps = opts.dSteps ?? 1;
    const gSteps = opts.gSteps ?? 1;
    if (!Number.isInteger(gSteps) || gSteps < 1) throw new Error(`trainSteps: gSteps must be a positive integer, got ${gSteps}`);
    if (!Number.isInteger(steps) || steps < 0) throw new Error(`trainSteps: steps must be a non-negative integer, got ${steps}`);
    if (!Number.isInteger(dSteps) || dSteps < 1) throw new Error(`trainSteps: dSteps must be a positive integer, got ${dSteps}`);
    this.checkBatchSize(batchSize);
    this.checkData(data, n);
    const out: StepLosses[] = [];
    for (let s = 0; s < steps; s++) {
      let d: DiscriminatorGradients | undefined;
      for (let k = 0; k < dSteps; k++) {
        // DP: a fresh Poisson sample of real rows each D update; the fake count stays batchSize.
        const inputs = this.dp
          ? this.discriminatorInputs(data, n, batchSize, this.samplePrivateRows(n), batchSize)
          : this.discriminatorInputs(data, n, batchSize);
        try {
          d = this.discriminatorGradients(inputs);
        } finally {
          disposeInputs(inputs);
        }
        this.applyDiscriminatorGradients(d.grads, d.classifierGrads);
      }
      let g = this.generatorStep(batchSize, data, n);
      for (let k = 1; k < gSteps; k++) g = this.generatorStep(batchSize, data, n);
      this.stepCounter++;
      const losses: StepLosses = { step: this.stepCounter, dLoss: d!.loss, gLoss: g.gLoss, condLoss: g.condLoss };
      if (d!.gradientPenalty !== undefined) losses.gradientPenalty = d!.gradientPenalty;
      if (d!.classifierLoss !== undefined) losses.classifierLoss = d!.classifierLoss;
      if (g.classifierLoss !== undefined) losses.gClassifierLoss = g.classifierLoss;
      if (!Number.isFinite(losses.dLoss) || !Number.isFinite(losses.gLoss) || !Number.isFinite(losses.condLoss)) {
        throw new Error(`training diverged at step ${this.stepCounter}: dLoss=${losses.dLoss} gLoss=${losses.gLoss} condLoss=${losses.condLoss}`);
      }
      out.push(losses);
      onProgress?.({ ...losses, steps });
    }
    return out;
  }

  /**
   * DP-SGD's real rows for one D update: a Poisson sample (rate q, node:crypto), shuffled and cut
   * to a multiple of pac (the dropped remainder is part of the mechanism, see dp-sgd.ts).
   */
  samplePrivateRows(n: number): Int32Array {
    if (!this.dp) throw new Error('samplePrivateRows: this trainer has no dp options');
    return packSample(poissonSample(n, this.dp.sampleRate, this.crypto), this.model.config.pac, this.crypto);
  }

  /**
   * Real rows and freshly generated rows, packed for D. Real rows follow the sampling mode, or are
   * exactly `rowIndices` when given (e.g. a Poisson sample drawn by DP-SGD; a multiple of pac, may
   * be empty when `fakeRows` is given). Generated rows: `fakeRows` (default: as many as real rows).
   */
  discriminatorInputs(data: Float32Array, n: number, batchSize: number, rowIndices?: Int32Array, fakeRows?: number): DiscriminatorInputs {
    if (rowIndices) {
      batchSize = rowIndices.length;
      for (const i of rowIndices) if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`rowIndices: ${i} is not a row index in [0, ${n})`);
    }
    const fakeSize = fakeRows ?? batchSize;
    this.checkBatchSize(fakeSize);
    if (!(fakeRows !== undefined && batchSize === 0)) this.checkBatchSize(batchSize);
    this.checkData(data, n);
    const m = this.model;
    // DP: the real rows' cond choices come from a fresh stream per call (row r gets the r-th draw),
    // so the trainer's own stream, which drives the fake rows, never depends on the sample size.
    const realRng = this.dp && rowIndices ? new Rng(this.rng.seed()) : this.rng;
    const { rows, cond } = this.sampleReal(data, n, batchSize, rowIndices, realRng);
    const fakeCond = this.sampleCond(data, n, fakeSize);
    const noise = this.rng.normal(fakeSize * m.config.noiseDim);
    let stats: ReturnType<GanModel['generatorForward']>['bnStats'] = [];
    const packed = tf.tidy(() => {
      const fc = m.condDim > 0 ? tf.tensor2d(fakeCond, [fakeSize, m.condDim]) : null;
      const g = m.generatorForward(tf.tensor2d(noise, [fakeSize, m.config.noiseDim]), fc, true, m.gumbelNoise(fakeSize, this.rng));
      stats = g.bnStats.map((s) => ({ index: s.index, mean: tf.keep(s.mean), variance: tf.keep(s.variance) }));
      const rc = m.condDim > 0 ? tf.tensor2d(cond, [batchSize, m.condDim]) : null;
      const realRows = tf.tensor2d(rows, [batchSize, m.outputDim]);
      const both = { real: m.packInput(realRows, rc), fake: m.packInput(g.activated, fc) };
      return m.labelSpan ? { ...both, realRows } : both;
    });
    const result: DiscriminatorInputs = { ...packed, n };
    m.updateRunningStats(stats, fakeSize);
    for (const s of stats) {
      s.mean.dispose();
      s.variance.dispose();
    }
    return result;
  }

  /**
   * Loss and mean gradients of D over the packed batch. Real and fake rows go through one forward
   * pass (one larger matMul instead of two). With dp options: the DP-SGD estimate instead
   * (per-pack clipped real sum + secure Gaussian noise, divided by q·n/pac, plus the mean of the clipped fake gradients).
   */
  discriminatorGradients(inputs: DiscriminatorInputs): DiscriminatorGradients {
    const m = this.model;
    if (this.dp) {
      if (inputs.n === undefined) throw new Error('discriminatorGradients: DP-SGD needs inputs.n (the local row count)');
      const r = dpDiscriminatorGradients(m, inputs.real, inputs.fake, {
        dp: this.dp,
        expectedRealPacks: expectedPacks(this.dp.publicRows ?? inputs.n, this.dp.sampleRate, m.config.pac),
        rng: this.rng,
        noiseRng: this.crypto,
        ...(this.noisePrefetch ? { noiseSource: this.noisePrefetch } : {}),
        ...(inputs.realRows ? { realRows: inputs.realRows } : {}),
      });
      const out: DiscriminatorGradients = { grads: r.grads, loss: r.loss };
      if (r.classifierGrads) out.classifierGrads = r.classifierGrads;
      if (r.classifierLoss !== undefined) out.classifierLoss = r.classifierLoss;
      return out;
    }
    const cfg = m.config;
    const vars = m.discriminatorVariables();
    let gp: tf.Scalar | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const rows = inputs.real.shape[0];
      const x = tf.concat([inputs.real, inputs.fake], 0);
      const logits = m.discriminatorForward(x, true, this.rng).logits;
      const lr = tf.slice(logits, [0, 0], [rows, 1]);
      const lf = tf.slice(logits, [rows, 0], [inputs.fake.shape[0], 1]);
      let loss = discriminatorLoss(cfg.loss, lr, lf);
      if (cfg.loss === 'wgan-gp' && cfg.gpLambda > 0) {
        const p = this.gradientPenalty(inputs.real, inputs.fake);
        gp = tf.keep(p);
        loss = tf.add(loss, p);
      }
      return loss;
    }, vars);
    const names = vars.map((v) => v.name);
    const out: DiscriminatorGradients = { grads: names.map((nm) => grads[nm]!), loss: value.dataSync()[0]! };
    value.dispose();
    if (gp) {
      out.gradientPenalty = gp.dataSync()[0]!;
      gp.dispose();
    }
    if (m.labelSpan) {
      if (!inputs.realRows) throw new Error('discriminatorGradients: a model with a classifier needs inputs.realRows');
      const c = this.classifierGradients(inputs.realRows);
      out.classifierGrads = c.grads;
      out.classifierLoss = c.loss;
    }
    return out;
  }

  /** C's mean cross-entropy on real rows (their own label) and its gradients. */
  private classifierGradients(realRows: tf.Tensor2D): { grads: tf.Tensor[]; loss: number } {
    const m = this.model;
    const vars = m.classifierVariables();
    const { value, grads } = tf.variableGrads(() => labelCrossEntropy(m.classifierForward(realRows).logits, m.labelOf(realRows)), vars);
    const loss = value.dataSync()[0]!;
    value.dispose();
    return { grads: vars.map((v) => grads[v.name]!), loss };
  }

  /**
   * λ·mean((‖∇ₓD(x̂)‖₂ − 1)²) at x̂ = α·real + (1−α)·fake, one α per packed row (Gulrajani et al.
   * 2017; CTGAN's calc_gradient_penalty). Differentiated again by the caller: second order.
   */
  private gradientPenalty(real: tf.Tensor2D, fake: tf.Tensor2D): tf.Scalar {
    const m = this.model;
    const rows = real.shape[0];
    const alpha = tf.tensor2d(this.rng.uniform(rows), [rows, 1]);
    const interp = tf.add(tf.mul(alpha, real), tf.mul(tf.sub(1, alpha), fake)) as tf.Tensor2D;
    const g = tf.grad((x: tf.Tensor) => tf.sum(m.discriminatorForward(x as tf.Tensor2D, true, this.rng).logits))(interp);
    const norm = tf.sqrt(tf.add(tf.sum(tf.square(g), 1), 1e-12));
    return tf.mul(tf.mean(tf.square(tf.sub(norm, 1))), m.config.gpLambda) as tf.Scalar;
  }

  /** Adam step on D (and on C when its gradients are given); disposes the gradients. */
  applyDiscriminatorGradients(grads: tf.Tensor[], classifierGrads?: tf.Tensor[]): void {
    try {
      this.optD.apply(grads);
      if (classifierGrads) {
        if (!this.optC) throw new Error('applyDiscriminatorGradients: classifier gradients for a model without a classifier');
        this.optC.apply(classifierGrads);
      }
    } finally {
      grads.forEach((g) => g.dispose());
      classifierGrads?.forEach((g) => g.dispose());
    }
  }

  /** One generator update: adversarial loss + conditional cross-entropy (CTGAN). */
  generatorStep(batchSize: number, data?: Float32Array, n?: number): { gLoss: number; condLoss: number; classifierLoss?: number } {
    this.checkBatchSize(batchSize);
    const m = this.model;
    const cfg = m.config;
    const cond = this.generatorConds(batchSize, data, n);
    const marginal = this.marginalTargets ? { weights: this.marginalWeights(cond, batchSize), targets: this.marginalTargets } : undefined;
    const noise = this.rng.normal(batchSize * cfg.noiseDim);
    let stats: ReturnType<GanModel['generatorForward']>['bnStats'] = [];
    let condLossT: tf.Scalar | undefined;
    let clfT: tf.Scalar | undefined;
    let advT: tf.Scalar | undefined;
    const gVars = m.generatorVariables();
    const { value, grads } = tf.tidy(() => {
      const c = m.condDim > 0 ? tf.tensor2d(cond, [batchSize, m.condDim]) : null;
      const z = tf.tensor2d(noise, [batchSize, cfg.noiseDim]);
      const gumbel = m.gumbelNoise(batchSize, this.rng);
      return tf.variableGrads(() => {
        const g = m.generatorForward(z, c, true, gumbel);
        stats = g.bnStats.map((s) => ({ index: s.index, mean: tf.keep(s.mean), variance: tf.keep(s.variance) }));
        const logits = m.discriminatorForward(m.packInput(g.activated, c), true, this.rng).logits;
        const adv = generatorLoss(cfg.loss, logits);
        advT = tf.keep(adv);
        let loss: tf.Scalar = adv;
        if (c) {
          const ce = this.condCrossEntropy(g.raw, c);
          condLossT = tf.keep(ce);
          loss = tf.add(loss, ce);
        }
        if (c && marginal) {
          // Importance weights turn this batch (cond ∝ log-frequency) into one with cond ∝ frequency,
          // whose every column should follow the noisy marginals: weighted mean of softmax(raw).
          const w = tf.tensor2d(marginal.weights, [batchSize, 1]);
          // Each span's softmax once per step: the one-way and the pair terms share the spans they name.
          const softmaxes = new Map<number, tf.Tensor2D>();
          const softmaxAt = (offset: number, dim: number): tf.Tensor2D => {
            let sm = softmaxes.get(offset);
            if (!sm) softmaxes.set(offset, (sm = tf.softmax(tf.slice(g.raw, [0, offset], [-1, dim])) as tf.Tensor2D));
            return sm;
          };
          const kl = (offset: number, dim: number, p: tf.Tensor1D, groups?: tf.Tensor2D): tf.Scalar => {
            const slots = softmaxAt(offset, dim);
            const probs = groups ? tf.matMul(slots, groups) : slots;
            const mean = tf.sum(tf.mul(probs, w), 0);
            return tf.sum(tf.mul(p, tf.sub(tf.log(p), tf.log(tf.add(mean, 1e-8)))));
          };
          // One term per column: each discrete column's categories, each numeric column's modes.
          const terms = [...m.condSpans.map((s, j) => kl(s.offset, s.dim, marginal.targets[j]!)), ...this.modeTargets.map((t) => kl(t.offset, t.dim, t.target, t.groups))];
          loss = tf.add(loss, tf.mul(tf.div(tf.addN(terms), terms.length), cfg.marginalWeight));
          if (this.pairs && this.pairWeight > 0) {
            // The batch's joint over all the pairs' spans at once: J = (w ⊙ P)ᵀ · P, P the spans'
            // softmaxes side by side (explicit transpose: wasm's transposed matMul is slow). Each
            // pair's block of J sums to 1, as its target's does; the mean of KL(target ‖ block)
            // over pairs is (Σ t·log t − Σ t·log J) / pairs, t zero outside the pairs' blocks.
            const parts = this.pairs.spans.map((sp) => softmaxAt(sp.offset, sp.dim));
            const probs = (parts.length === 1 ? parts[0]! : tf.concat(parts, 1)) as tf.Tensor2D;
            loss = tf.add(loss, tf.mul(meanPairKl(probs, w, this.pairs), cfg.marginalWeight * this.pairWeight));
          }
        }
        if (m.labelSpan && cfg.classifierWeight > 0) {
          // CTAB-GAN's generator term: C should recover each generated row's own label from its
          // features. The label is the hard draw (no gradient through it); C's weights stay fixed here.
          const label = tf.oneHot(tf.argMax(m.labelOf(g.activated), 1), m.labelSpan.dim).toFloat() as tf.Tensor2D;
          const ce = labelCrossEntropy(m.classifierForward(g.activated).logits, label);
          clfT = tf.keep(ce);
          loss = tf.add(loss, tf.mul(ce, cfg.classifierWeight));
        }
        return loss;
      }, gVars);
    });
    this.optG.apply(gVars.map((v) => grads[v.name]!));
    m.updateRunningStats(stats, batchSize);
    const gLoss = advT!.dataSync()[0]!;
    const condLoss = condLossT ? condLossT.dataSync()[0]! : 0;
    const classifierLoss = clfT ? clfT.dataSync()[0]! : undefined;
    // value may be the same tensor as advT (no cond term): dispose each distinct tensor once.
    const owned = new Set<tf.Tensor>([value, advT!, ...Object.values(grads)]);
    if (condLossT) owned.add(condLossT);
    if (clfT) owned.add(clfT);
    for (const s of stats) owned.add(s.mean).add(s.variance);
    owned.forEach((x) => x.dispose());
    return classifierLoss === undefined ? { gLoss, condLoss } : { gLoss, condLoss, classifierLoss };
  }

  /**
   * CTGAN's cond loss: cross-entropy of the generator's raw logits in each conditional span
   * against the cond vector, summed over spans (only the chosen span is non-zero), mean over rows.
   */
  private condCrossEntropy(raw: tf.Tensor2D, cond: tf.Tensor2D): tf.Scalar {
    const m = this.model;
    const terms = m.condSpans.map((s) => {
      const logits = tf.slice(raw, [0, s.offset], [-1, s.dim]);
      const target = tf.slice(cond, [0, s.condOffset], [-1, s.dim]);
      return tf.sum(tf.mul(target, tf.logSoftmax(logits)));
    });
    return tf.div(tf.neg(tf.addN(terms)), raw.shape[0]) as tf.Scalar;
  }

  /**
   * Per row of a G-step batch, the self-normalised importance weight pf(c)/pg(c) of its cond
   * category c (pf ∝ frequency, pg the G step's log-frequency weights).
   */
  private marginalWeights(cond: Float32Array, batchSize: number): Float32Array {
    const m = this.model;
    const w = new Float32Array(batchSize);
    let tot = 0;
    for (let r = 0; r < batchSize; r++) {
      for (let k = 0; k < m.condSpans.length; k++) {
        const s = m.condSpans[k]!;
        for (let j = 0; j < s.dim; j++) {
          if (cond[r * m.condDim + s.condOffset + j] === 1) w[r] = this.importance![k]![j]!;
        }
      }
      tot += w[r]!;
    }
    for (let r = 0; r < batchSize; r++) w[r] = tot > 0 ? w[r]! / tot : 1 / batchSize;
    return w;
  }

  /** Cond vectors for the generator's own step (see genCdfs); otherwise as for D's generated rows. */
  generatorConds(batchSize: number, data?: Float32Array, n?: number): Float32Array {
    return this.sampleCond(data, n, batchSize, this.genCdfs);
  }

  /** Cond vectors for generated rows (see TrainerOptions.sampling); `weights` (category CDFs) overrides freqCdfs. */
  private sampleCond(data: Float32Array | undefined, n: number | undefined, batchSize: number, weights = this.freqCdfs): Float32Array {
    const m = this.model;
    const out = new Float32Array(batchSize * m.condDim);
    if (m.condDim === 0) return out;
    if (this.sampling === 'uniform') {
      if (weights) {
        const usable = weights.map((c, k) => (c ? k : -1)).filter((k) => k >= 0);
        for (let r = 0; r < batchSize; r++) {
          const k = usable[this.rng.int(usable.length)]!;
          out[r * m.condDim + m.condSpans[k]!.condOffset + drawFromCdf(weights[k]!, this.rng.next())] = 1;
        }
        return out;
      }
      // No frequencies given (non-DP use): the local empirical distribution, via random rows.
      if (!data || n === undefined) throw new Error('uniform sampling without categoryFrequencies needs the data to draw cond vectors');
      return this.sampleReal(data, n, batchSize).cond;
    }
    const cdfs = data && n !== undefined ? this.rowIndex(data, n) : this.globalCdfs();
    for (let r = 0; r < batchSize; r++) {
      const k = cdfs.usableSpans[this.rng.int(cdfs.usableSpans.length)]!;
      const j = drawFromCdf(cdfs.cdfs[k]!, this.rng.next());
      out[r * m.condDim + m.condSpans[k]!.condOffset + j] = 1;
    }
    return out;
  }

  private lastIndex: RowIndex | undefined;

  private globalCdfs(): RowIndex {
    // The G step without data uses the categories of the last data seen (those D was trained on).
    if (this.lastIndex) return this.lastIndex;
    if (!this.freqs) throw new Error('generatorStep: pass data (or train a D step first, or give categoryFrequencies) so cond vectors can be drawn');
    const cdfs = categoryCdfs(this.model.condSpans, this.freqs, Math.log1p, 'trainer', this.allowed);
    return { n: 0, rows: [], cdfs, usableSpans: cdfs.map((c, k) => (c ? k : -1)).filter((k) => k >= 0) };
  }

  /** Training-by-sampling: real rows and their cond vectors (uniform rows if unconditional). */
  private sampleReal(data: Float32Array, n: number, batchSize: number, rowIndices?: Int32Array, rng: Rng = this.rng): { rows: Float32Array; cond: Float32Array } {
    const m = this.model;
    const d = m.outputDim;
    const cd = m.condDim;
    const rows = new Float32Array(batchSize * d);
    const cond = new Float32Array(batchSize * cd);
    if (cd === 0 || this.sampling === 'uniform' || rowIndices) {
      const spans = m.condSpans;
      for (let r = 0; r < batchSize; r++) {
        const i = rowIndices ? rowIndices[r]! : rng.int(n);
        rows.set(data.subarray(i * d, (i + 1) * d), r * d);
        if (cd > 0) {
          // Condition on the row's own category in one conditional column chosen uniformly.
          const s = spans[rng.int(spans.length)]!;
          const o = i * d + s.offset;
          let best = 0;
          for (let j = 1; j < s.dim; j++) if (data[o + j]! > data[o + best]!) best = j;
          cond[r * cd + s.condOffset + best] = 1;
        }
      }
      return { rows, cond };
    }
    const idx = this.rowIndex(data, n);
    for (let r = 0; r < batchSize; r++) {
      const k = idx.usableSpans[this.rng.int(idx.usableSpans.length)]!;
      const j = drawFromCdf(idx.cdfs[k]!, this.rng.next());
      const list = idx.rows[k]![j]!;
      const i = list[this.rng.int(list.length)]!;
      rows.set(data.subarray(i * d, (i + 1) * d), r * d);
      cond[r * m.condDim + m.condSpans[k]!.condOffset + j] = 1;
    }
    return { rows, cond };
  }

  private rowIndex(data: Float32Array, n: number): RowIndex {
    const cached = this.indexCache.get(data);
    if (cached && cached.n === n) return (this.lastIndex = cached);
    const m = this.model;
    const d = m.outputDim;
    const rows = m.condSpans.map((s) => {
      const buckets: number[][] = Array.from({ length: s.dim }, () => []);
      for (let i = 0; i < n; i++) {
        const o = i * d + s.offset;
        let best = 0;
        for (let j = 1; j < s.dim; j++) if (data[o + j]! > data[o + best]!) best = j;
        buckets[best]!.push(i);
      }
      return buckets.map((b) => Int32Array.from(b));
    });
    const present = (k: number, j: number): boolean => rows[k]![j]!.length > 0 && (!this.allowed || this.allowed(k, j));
    const freqs = this.freqs ?? m.condSpans.map((s) => new Array<number>(s.dim).fill(1));
    // Categories absent locally cannot supply a real row, so they get no weight here.
    const cdfs = categoryCdfs(m.condSpans, freqs, Math.log1p, 'trainer', present);
    const usableSpans = cdfs.map((c, k) => (c ? k : -1)).filter((k) => k >= 0);
    const idx = { n, rows, cdfs, usableSpans };
    this.indexCache.set(data, idx);
    return (this.lastIndex = idx);
  }

  private checkBatchSize(batchSize: number): void {
    const pac = this.model.config.pac;
    if (!Number.isInteger(batchSize) || batchSize < pac || batchSize % pac !== 0) {
      throw new Error(`batchSize must be a positive multiple of pac=${pac}, got ${batchSize}`);
    }
  }

  private checkData(data: Float32Array, n: number): void {
    if (!(data instanceof Float32Array)) throw new Error('training data must be a Float32Array (n × outputDim, row-major)');
    if (!Number.isInteger(n) || n < 1) throw new Error(`training data: n must be a positive integer, got ${n}`);
    const d = this.model.outputDim;
    if (data.length !== n * d) throw new Error(`training data has ${data.length} values; expected n × outputDim = ${n} × ${d} = ${n * d}`);
  }

  dispose(): void {
    this.optG.dispose();
    this.optD.dispose();
    this.optC?.dispose();
    this.marginalTargets?.forEach((t) => t.dispose());
    this.pairs?.targets.dispose();
    this.modeTargets.forEach((t) => tf.dispose([t.target, ...(t.groups ? [t.groups] : [])]));
    this.noisePrefetch?.close();
  }
}

export function createTrainer(model: GanModel, opts: TrainerOptions = {}): Trainer {
  return new Trainer(model, opts);
}
