// DP-SGD for the discriminator (Abadi et al. 2016, "Deep Learning with Differential Privacy"):
// Poisson-sampled real records, exact per-example gradient clipping to L2 norm C over ALL
// discriminator parameters, one draw of Gaussian noise N(0, (σ·Δ)²) on the clipped sum, division
// by the expected batch size, then the ordinary optimiser step. Accounted as the sampled Gaussian
// mechanism (shared/privacy/rdp) by the caller's ledger, one mechanism per D update.
//
// Per-example gradients without a per-example loop. D is an MLP of dense layers z = a·W + b
// (model.discriminatorForward exposes every layer's input a, pre-activation z and dropout mask).
// With δ = ∂ℓ_r/∂z for row r (rows are independent through D: no batch norm in D),
//   ∂ℓ_r/∂W = a_rᵀ δ_r (rank one),  ∂ℓ_r/∂b = δ_r,
// so ‖∇ℓ_r‖² = Σ_layers (‖a_r‖² + 1)·‖δ_r‖² exactly (Goodfellow 2015, "Efficient per-example
// gradient computations"), and the clipped sum is Σ_r c_r ∇ℓ_r = aᵀ(c ⊙ δ) (bias: Σ_r c_r δ_r) with
// c_r = min(1, C/‖∇ℓ_r‖). δ is back-propagated by hand through LeakyReLU (derivative 1 or slope,
// written as the same algebraic form as layers.leakyRelu so ties at 0 match autodiff) and the
// inverted-dropout masks recorded in the forward pass. Transposed operands are materialised with
// tf.transpose: matMul's transpose flags are ~13x slower on wasm.
//
// What is private, and why this is sound.
//  - Real rows. Each step every local record is included independently with probability q
//    (Poisson sampling, node:crypto CSPRNG: the sampling randomness is part of the mechanism).
//  - PacGAN (pac > 1): D judges packed rows of `pac` records, so the per-example gradient exists
//    per *pack*, and clipping bounds each pack's contribution by C. The sample is shuffled
//    (CSPRNG) and cut into packs; the remainder (< pac records) is dropped. Under add/remove-one
//    neighbouring (the relation the accountant uses) one record either (a) falls in the dropped
//    remainder (no change), (b) completes a new pack (one extra term, norm ≤ C), or (c) takes the
//    place of a record in an existing pack, which moves to the remainder (one term changes from
//    g to g', ‖g − g'‖ ≤ 2C). (These couplings reproduce the uniform random packing, and the
//    summed output does not depend on pack order.) So the record-level L2 sensitivity of the
//    clipped sum is Δ = C for pac = 1 and Δ = 2C for pac > 1. We add N(0, (σ·Δ)²), so the noise
//    multiplier σ keeps its usual meaning for the accountant (ε depends only on q, σ, steps).
//    The per-pack clipping alone (Δ = C) would over-state the guarantee whenever pac > 1.
//  - The auxiliary classifier C (models with a classifierColumn) reads the same real rows. Its
//    per-example gradient (cross-entropy of the row's own label) is clipped per group with D's
//    (McMahan et al. 2018, per-layer clipping): ‖∇D_r‖ ≤ C·√(1−s) and ‖∇C_r‖ ≤ C·√s, s the
//    classifier's share, so ‖(∇D_r, ∇C_r)‖ ≤ C. The noise N(0, (σC)²) covers both parameter sets, so
//    the pair of updates is one sampled Gaussian mechanism with the same sensitivity, accounted
//    exactly as D alone. Separate budgets matter: one joint norm lets D's much larger per-example
//    gradient take nearly all of it, and C, whose labels the sampler uses, learns nothing under the
//    noise. C trains on real rows only; the generator's classifier term is post-processing. Needs
//    pac = 1 (D's per-example gradient is per pack, C's per record).
//  - Generated ("fake") rows. Their gradient term does not depend on the private records: G's
//    weights are themselves outputs of this DP process (post-processing), their cond vectors come
//    from the DP-noised category counts (or uniform weights), and their number is fixed (the
//    configured batch size, not the sampled real count). So the fake term needs no noise; it is
//    computed in the same backward pass with weight 1/(fake packs). It IS clipped, to the same norm
//    as the real packs' D gradients, for the optimisation's sake, not privacy's. With only the real
//    term clipped, a fake pack's gradient at the start (norm ≈ 8-10 on bank-marketing) outweighs a
//    clipped real one (≤ 0.87) about tenfold, so D pushes every logit down until σ(D(fake)) has
//    shrunk the fake gradients to the clipped real ones' size: bench/privacy-utility.ts at ε = 1
//    showed D(real) ≈ D(fake) ≈ −3.4 and D's ns loss ≈ 3.4 (chance: 2·ln 2 ≈ 1.39), a D that tells
//    the generator little beyond a constant. Clipping both (in Opacus' DP-GAN example every example of
//    D's batch passes the clipping too) kept the logits near 0 and D's loss at 1.6-1.7 in the same run.
//  - Randomness other than the noise. The coupling above compares S and S ∪ {x} under the same
//    per-position randomness, and the fake term must not depend on the sample size |S|. So the
//    real packs' dropout masks come from fresh per-step, per-layer streams (row r always gets the
//    r-th draws, whatever |S| is), seeded from the trainer's Rng by a fixed number of draws per
//    step; the fake packs' masks come from the trainer's Rng itself, a fixed amount per step. (With
//    one stream over concat(real, fake), |S| would shift every later mask and every later fake row.)
//  - The divisor (expected packs q·n/pac) and q itself use the bank's released row count
//    (DpSgdOptions.publicRows: n plus Gaussian noise, charged to the ledger, client-node/dp-row-count.ts),
//    never the exact one, so neither depends on the private records beyond that release.
//  - WGAN-GP is refused: the gradient penalty differentiates ‖∇ₓD(x̂)‖ at interpolates of real
//    and fake rows, a second-order term whose per-example parameter gradient is not rank-one per
//    layer, so it cannot be clipped exactly with this vectorised scheme (it would need a
//    per-example double backward). DP-SGD supports the 'ns' loss only.
//  - The D loss computed here includes real rows without noise: it is for local divergence checks
//    only and must not be released (client-node drops it from the metrics it sends in DP mode).
import * as tf from '@tensorflow/tfjs';
import { CryptoRandom, secureGaussian } from '../privacy/secure-noise';
import { Rng } from '../tensor/random';
import type { DiscriminatorOutput, DLayerTrace, GanModel } from './model';
import { labelCrossEntropy, leakyRelu, linear, softplus } from './layers';

export interface DpSgdOptions {
  /** σ: noise standard deviation in units of the record-level sensitivity Δ (see recordSensitivity). */
  noiseMultiplier: number;
  /** C: per-example (per packed input) L2 clipping norm over all discriminator parameters. */
  maxGradNorm: number;
  /** q: Poisson sampling rate of local records per D update, in (0, 1]. */
  sampleRate: number;
  /**
   * n in the divisor q·n/pac: the bank's released (DP-noised) row count, so that the noisy mean
   * depends on the exact count only through the clipped sum (client-node/dp-row-count.ts). Absent:
   * the local row count (in-process runs that release nothing).
   */
  publicRows?: number;
  /**
   * s: models with a classifier, the share of C² that bounds C's per-example gradient (‖∇C_r‖ ≤ C√s,
   * ‖∇D_r‖ ≤ C√(1−s)); in (0, 1), default DEFAULT_CLASSIFIER_CLIP_SHARE.
   */
  classifierClipShare?: number;
  /**
   * R: where C's per-example gradient is clipped, in the units of C's own cross-entropy gradient
   * (default C√s: clipped where it stands, no rescaling). The gradient is clipped to R and then
   * scaled by C√s/R, so its sensitivity stays C√s (the scale is data-independent, and Adam's step
   * does not depend on it). See the note above parseDpSgdOptions.
   */
  classifierClipNorm?: number;
}

/**
 * Default classifierClipShare: C clips at C·√3/2, D at C/2. Was 0.5 (each at C/√2) until
 * 2026-12-07: with C's labels what the TSTR classifier learns, C's share of the noise matters more
 * than D's; single runs at ε = 1 (BENCHMARKS.md, bench:privacy utility notes of 2026-12-07) gave
 * PR-AUC simulated-96k 0.18-0.35 at 0.5, 0.39-0.42 at 0.75, 0.38-0.45 at 0.9, and bank-marketing
 * 0.53-0.55 at all three, but at 0.9 its column shapes fell from 0.93-0.94 to 0.90-0.91.
 * Before that, 0.25 (C at C/2, D at C·√3/2) until 2026-12-06; with C at classifierLrDp 5e-2, medians of three runs of bench:privacy at ε = 1
 * (`--classifier-clip-share 0.5`), TSTR AUC ratio / PR-AUC, 0.25 → 0.5: bank-marketing 0.932 /
 * 0.495 → 0.951 / 0.527, simulated-96k 0.944 / 0.322 → 0.946 / 0.315, credit-default 0.964 /
 * 0.530 → 0.967 / 0.524, simulated 0.826 / 0.014 → 0.862 / 0.060 (C's own holdout AUC on
 * bank-marketing 0.845-0.861 → 0.858-0.879; median column shapes within 0.02 of before).
 */
export const DEFAULT_CLASSIFIER_CLIP_SHARE = 0.75;

// Why classifierClipNorm R exists, and why it is off by default (R = C√s: no rescaling).
// Clipping C where most minority rows are clipped biases C against a rare class: a clipped row
// pulls with the same norm however wrong C is, while the many well-classified majority rows stay
// below the norm, so C settles where the majority's small unclipped gradients balance the
// minority's capped ones, far below the class's share (unit test in test/model/classifier.test.ts).
// bench:privacy --classifier-holdout at ε = 1, C = 1, s = 0.25 (so R = 0.5; share and rate before 2026-12-06), classifierLrDp 1.5e-2:
// C's per-example gradient norm on the real holdout is ~10-15 for minority rows (~20 at 5e-2);
// C's mean P(minority) is 0.009-0.012 against a share of 0.117 on bank-marketing, 0.0002-0.0003
// against 0.0044 on simulated-96k; with R = 10, 0.086-0.107 and 0.003-0.005. But a larger R also
// shrinks every row's share of the noised sum (the noise stays σC), and the sampler's prior shift
// already moves C's class prior to the consortium's share: medians of three runs, TSTR AUC ratio
// for R = 0.5 / 2 / 10: bank-marketing 0.938 / 0.924 / 0.917 (recall 0.53 / 0.56 / 0.59, precision
// 0.50 / 0.46 / 0.42), simulated-96k 0.913 / 0.894 / 0.882. Recall bought with precision, not a
// better ranking; R stays an option for experiments (BENCHMARKS.md, bench:privacy utility).

/** Validates DP-SGD options (throws naming the bad field); returns a copy. */
export function parseDpSgdOptions(dp: unknown, where = 'dp'): DpSgdOptions {
  if (!dp || typeof dp !== 'object') throw new Error(`${where}: expected { noiseMultiplier, maxGradNorm, sampleRate }`);
  const o = dp as Record<string, unknown>;
  const num = (k: string, ok: (v: number) => boolean, want: string): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new Error(`${where}.${k} must be ${want}, got ${JSON.stringify(v)}`);
    return v;
  };
  return {
    noiseMultiplier: num('noiseMultiplier', (v) => v >= 0, 'a finite number ≥ 0'),
    maxGradNorm: num('maxGradNorm', (v) => v > 0, 'a finite number > 0'),
    sampleRate: num('sampleRate', (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    ...(o.publicRows !== undefined ? { publicRows: num('publicRows', (v) => Number.isSafeInteger(v) && v >= 1, 'an integer ≥ 1') } : {}),
    ...(o.classifierClipShare !== undefined ? { classifierClipShare: num('classifierClipShare', (v) => v > 0 && v < 1, 'a number in (0, 1)') } : {}),
    ...(o.classifierClipNorm !== undefined ? { classifierClipNorm: num('classifierClipNorm', (v) => v > 0, 'a finite number > 0') } : {}),
  };
}

/**
 * Throws unless a model with a classifier packs one row per discriminator input: C's per-example
 * gradient is per record and D's per pack, and DP-SGD clips them jointly per record.
 */
export function checkClassifierPacking(model: GanModel, where: string): void {
  if (model.labelSpan && model.config.pac !== 1) {
    throw new Error(
      `${where}: DP-SGD with a classifier needs pac = 1 (this model packs ${model.config.pac} rows): D's per-example gradient is per ` +
        "pack and C's per record, and they are clipped jointly per record. Use architecture 'mlp', or classifierColumn null.",
    );
  }
}

/** Record-level L2 sensitivity of the clipped gradient sum: C for pac = 1, 2C for pac > 1 (see the header). */
export function recordSensitivity(pac: number, maxGradNorm: number): number {
  return pac > 1 ? 2 * maxGradNorm : maxGradNorm;
}

/** Expected number of packed real inputs per D update, q·n/pac (the divisor of the noisy sum). */
export function expectedPacks(n: number, sampleRate: number, pac: number): number {
  return (sampleRate * n) / pac;
}

/** Poisson sample of [0, n): each index independently with probability q, CSPRNG 53-bit uniforms. */
export function poissonSample(n: number, q: number, rng: CryptoRandom): Int32Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`poissonSample: n must be a non-negative integer, got ${n}`);
  if (!(q >= 0 && q <= 1)) throw new Error(`poissonSample: q must be in [0, 1], got ${q}`);
  const out: number[] = [];
  if (q === 1) for (let i = 0; i < n; i++) out.push(i);
  else for (let i = 0; i < n; i++) if (rng.uniform() < q) out.push(i);
  return Int32Array.from(out);
}

/** Shuffles (CSPRNG Fisher–Yates) and drops the remainder so the length is a multiple of pac. */
export function packSample(indices: Int32Array, pac: number, rng: CryptoRandom): Int32Array {
  const a = Int32Array.from(indices);
  if (pac > 1) {
    for (let i = a.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
  }
  return a.subarray(0, a.length - (a.length % pac));
}

/**
 * Dropout masks (one per hidden layer, [realRows + fakeRows, h]; undefined without dropout) for a
 * DP step: the real rows' part from fresh per-layer streams seeded from `rng` (a fixed number of
 * draws), the fake rows' part from `rng` (fakeRows·h draws per layer). Nothing drawn from `rng`
 * depends on realRows (see the header).
 */
export function dpDropoutMasks(model: GanModel, realRows: number, fakeRows: number, rng: Rng): (tf.Tensor2D | undefined)[] {
  const cfg = model.config;
  if (cfg.dropout <= 0) return cfg.discriminatorDims.map(() => undefined);
  const seeds = cfg.discriminatorDims.map(() => rng.seed());
  return cfg.discriminatorDims.map((h, l) => {
    const real = new Rng(seeds[l]!).dropoutMask(realRows * h, cfg.dropout);
    const fake = rng.dropoutMask(fakeRows * h, cfg.dropout);
    const all = new Float32Array((realRows + fakeRows) * h);
    all.set(real, 0);
    all.set(fake, realRows * h);
    return tf.tensor2d(all, [realRows + fakeRows, h]);
  });
}

/** model.discriminatorForward in training mode, with the given dropout masks. */
export function discriminatorForwardWithMasks(model: GanModel, x: tf.Tensor2D, masks: readonly (tf.Tensor2D | undefined)[]): DiscriminatorOutput {
  const cfg = model.config;
  if (x.shape[1] !== model.dims.discInputDim) throw new Error(`discriminator input has ${x.shape[1]} columns, expected ${model.dims.discInputDim}`);
  const layers: DLayerTrace[] = [];
  let a = x;
  cfg.discriminatorDims.forEach((_, i) => {
    const z = linear(a, model.variable(`D/${i}/kernel`), model.variable(`D/${i}/bias`));
    let out = leakyRelu(z, cfg.leakySlope) as tf.Tensor2D;
    const trace: DLayerTrace = { name: `D/${i}`, a, z };
    const mask = masks[i];
    if (mask) {
      trace.dropoutMask = mask;
      out = tf.mul(out, mask) as tf.Tensor2D;
    }
    layers.push(trace);
    a = out;
  });
  const logits = linear(a, model.variable('D/out/kernel'), model.variable('D/out/bias'));
  layers.push({ name: 'D/out', a, z: logits });
  return { logits, layers };
}

/** d leaky(z)/dz in the same algebraic form as layers.leakyRelu: (1+s)/2 + (1−s)/2 · step(z, −1). */
function leakyDerivative(z: tf.Tensor2D, slope: number): tf.Tensor2D {
  if (slope === 0) return tf.step(z, 0) as tf.Tensor2D;
  return tf.add((1 + slope) / 2, tf.mul(tf.step(z, -1), (1 - slope) / 2)) as tf.Tensor2D;
}

/**
 * δ = ∂ℓ_r/∂z per row for every traced layer (same order as `layers`), from ∂ℓ_r/∂logits
 * ([rows, 1]). Handles LeakyReLU and the recorded dropout masks.
 */
export function discriminatorDeltas(model: GanModel, layers: readonly DLayerTrace[], dLogits: tf.Tensor2D): tf.Tensor2D[] {
  const slope = model.config.leakySlope;
  const deltas: tf.Tensor2D[] = new Array(layers.length);
  let delta = dLogits;
  deltas[layers.length - 1] = delta;
  for (let l = layers.length - 2; l >= 0; l--) {
    const next = layers[l + 1]!;
    const wT = tf.transpose(model.variable(`${next.name}/kernel`)) as tf.Tensor2D;
    let d = tf.matMul(delta, wT) as tf.Tensor2D;
    const t = layers[l]!;
    if (t.dropoutMask) d = tf.mul(d, t.dropoutMask) as tf.Tensor2D;
    delta = tf.mul(d, leakyDerivative(t.z, slope)) as tf.Tensor2D;
    deltas[l] = delta;
  }
  return deltas;
}

/** Per-row squared gradient norms over all D parameters: Σ_layers (‖a_r‖² + 1)·‖δ_r‖², shape [rows]. */
export function perExampleSquaredNorms(layers: readonly DLayerTrace[], deltas: readonly tf.Tensor2D[]): tf.Tensor1D {
  const terms = layers.map((t, l) => tf.mul(tf.add(tf.sum(tf.square(t.a), 1), 1), tf.sum(tf.square(deltas[l]!), 1)));
  return (terms.length === 1 ? terms[0]! : tf.addN(terms)) as tf.Tensor1D;
}

/** c_r = min(1, C/‖g_r‖) (1 where the norm is 0). */
export function clipFactors(sqNorms: tf.Tensor1D, maxGradNorm: number): tf.Tensor1D {
  return tf.minimum(1, tf.div(maxGradNorm, tf.sqrt(tf.maximum(sqNorms, 1e-30)))) as tf.Tensor1D;
}

/**
 * Σ_r w_r ∇ℓ_r for every D parameter, in model.discriminatorParamNames() order:
 * kernel = aᵀ·(w ⊙ δ), bias = Σ_r w_r δ_r. `weights` [rows] (null: all 1).
 */
export function weightedGradientSum(
  model: GanModel,
  layers: readonly DLayerTrace[],
  deltas: readonly tf.Tensor2D[],
  weights: tf.Tensor1D | null,
  names: readonly string[] = model.discriminatorParamNames(),
): tf.Tensor[] {
  const byName = new Map<string, tf.Tensor>();
  const w = weights ? tf.expandDims(weights, 1) : null;
  layers.forEach((t, l) => {
    const d = w ? tf.mul(deltas[l]!, w) : deltas[l]!;
    byName.set(`${t.name}/kernel`, tf.matMul(tf.transpose(t.a) as tf.Tensor2D, d as tf.Tensor2D));
    byName.set(`${t.name}/bias`, tf.sum(d, 0));
  });
  return names.map((name) => {
    const g = byName.get(name);
    if (!g) throw new Error(`dp-sgd: no gradient for parameter '${name}' (unexpected layer layout)`);
    return g;
  });
}

/** ∂ℓ_r/∂logit_r of the 'ns' loss per row: real ℓ = softplus(−l) → σ(l) − 1; fake ℓ = softplus(l) → σ(l). */
export function nsLogitGradients(logits: tf.Tensor2D, realRows: number): tf.Tensor2D {
  const s = tf.sigmoid(logits);
  const rows = logits.shape[0];
  if (realRows === 0) return s as tf.Tensor2D;
  const shift = tf.concat([tf.fill([realRows, 1], -1), tf.zeros([rows - realRows, 1])], 0);
  return tf.add(s, shift) as tf.Tensor2D;
}

export interface DpGradientResult {
  /** Noisy gradient estimate, in model.discriminatorParamNames() order (caller owns). */
  grads: tf.Tensor[];
  /** ns loss on this batch (real part un-noised: local use only, never release). */
  loss: number;
  /** Packed real inputs in this step. */
  realPacks: number;
  /** Fraction of real packs whose gradient was clipped (local diagnostic; not private). */
  clippedFraction: number;
  /** With a classifier: C's noisy gradient estimate (model.classifierParamNames() order) and its real-row loss (local only). */
  classifierGrads?: tf.Tensor[];
  classifierLoss?: number;
}

export interface DpGradientOptions {
  dp: DpSgdOptions;
  /** Divisor of the noisy real sum: expected packed real inputs (expectedPacks(n, q, pac)). */
  expectedRealPacks: number;
  /** Source of the dropout masks (see dpDropoutMasks; not privacy noise). */
  rng: Rng;
  /** Privacy noise source; default the shared node:crypto stream. */
  noiseRng?: CryptoRandom;
  /** Noise drawn ahead on a worker thread (same sampler); used when its size matches D's parameters. */
  noiseSource?: { readonly n: number; take(sigma: number): Float32Array };
  /** Tests only: skip the noise (σ is then irrelevant). */
  noNoise?: boolean;
  /**
   * Models with a classifier: the real rows unpacked ([realPacks, outputDim]; pac must be 1). C's
   * per-example gradient is clipped to C√s and D's to C√(1−s), so ‖(∇D_r, ∇C_r)‖ ≤ C, and both get
   * noise: one sampled Gaussian mechanism over the concatenated parameters, accounted as D alone.
   */
  realRows?: tf.Tensor2D;
}

/**
 * One DP-SGD gradient for D's 'ns' loss on packed real rows (a Poisson sample) and packed fake rows
 * (fixed count): (Σ_real clip_C(∇ℓ_r) + N(0, (σΔ)² I)) / E[real packs] + mean_fake clip_C(∇ℓ_f).
 */
export function dpDiscriminatorGradients(model: GanModel, real: tf.Tensor2D, fake: tf.Tensor2D, o: DpGradientOptions): DpGradientResult {
  const cfg = model.config;
  if (cfg.loss !== 'ns') {
    throw new Error(
      `DP-SGD supports the 'ns' loss only, this model uses '${cfg.loss}': the WGAN-GP gradient penalty is a second-order term ` +
        `whose per-example gradients cannot be clipped exactly here. Use loss 'ns' (e.g. architecture 'ctgan' with loss 'ns') for DP training.`,
    );
  }
  const dp = o.dp;
  if (!(o.expectedRealPacks > 0) || !Number.isFinite(o.expectedRealPacks)) throw new Error(`dp-sgd: expected real packs must be > 0, got ${o.expectedRealPacks}`);
  const rr = real.shape[0];
  const rf = fake.shape[0];
  if (rf === 0) throw new Error('dp-sgd: need at least one packed fake row');
  const names = model.discriminatorParamNames();
  const vars = model.discriminatorVariables();
  const withClassifier = model.labelSpan !== null;
  if (withClassifier) {
    checkClassifierPacking(model, 'dp-sgd');
    if (!o.realRows || o.realRows.shape[0] !== rr) throw new Error(`dp-sgd: a model with a classifier needs realRows with ${rr} rows (the real rows unpacked)`);
  }
  let loss = 0;
  let clippedFraction = 0;
  let classifierLoss: number | undefined;
  let classifierGrads: tf.Tensor[] | undefined;
  const grads = tf.tidy(() => {
    const x = rr > 0 ? tf.concat([real, fake], 0) : fake;
    const out = discriminatorForwardWithMasks(model, x, dpDropoutMasks(model, rr, rf, o.rng));
    const logits = out.logits;
    const deltas = discriminatorDeltas(model, out.layers, nsLogitGradients(logits, rr));
    // Weights: real rows c_r / E, fake rows c_f / rf (both clipped to D's norm; see the header).
    let w: tf.Tensor1D;
    const share = withClassifier ? (dp.classifierClipShare ?? DEFAULT_CLASSIFIER_CLIP_SHARE) : 0;
    const dNorm = dp.maxGradNorm * Math.sqrt(1 - share);
    const sq = perExampleSquaredNorms(out.layers, deltas);
    const fakeW = tf.div(clipFactors(rr > 0 ? (tf.slice(sq, [rr], [rf]) as tf.Tensor1D) : sq, dNorm), rf) as tf.Tensor1D;
    let lossT: tf.Tensor = tf.mean(softplus(rr > 0 ? tf.slice(logits, [rr, 0], [rf, 1]) : logits));
    if (rr > 0) {
      const sqReal = tf.slice(sq, [0], [rr]) as tf.Tensor1D;
      if (withClassifier) {
        // C on the real rows, cross-entropy against each row's own label: ∂ℓ/∂logits = softmax − label,
        // with classifierClipNorm R scaled by C√s/R, so that clipping at C√s is clipping the unscaled
        // gradient at R (without R, no extra op on this per-step path).
        const cl = model.classifierForward(o.realRows!);
        const label = model.labelOf(o.realRows!);
        const cNorm = dp.maxGradNorm * Math.sqrt(share);
        const dLogits = tf.sub(tf.softmax(cl.logits), label) as tf.Tensor2D;
        const cDeltas = discriminatorDeltas(model, cl.layers, dp.classifierClipNorm !== undefined ? (tf.mul(dLogits, cNorm / dp.classifierClipNorm) as tf.Tensor2D) : dLogits);
        const cClip = clipFactors(perExampleSquaredNorms(cl.layers, cDeltas), cNorm);
        classifierGrads = weightedGradientSum(model, cl.layers, cDeltas, tf.div(cClip, o.expectedRealPacks) as tf.Tensor1D, model.classifierParamNames()).map((g) => tf.keep(g));
        classifierLoss = labelCrossEntropy(cl.logits, label).dataSync()[0]!;
      }
      const c = clipFactors(sqReal, dNorm);
      clippedFraction = tf.mean(tf.cast(tf.less(c, 1), 'float32')).dataSync()[0]!;
      w = tf.concat([tf.div(c, o.expectedRealPacks), fakeW]) as tf.Tensor1D;
      lossT = tf.add(lossT, tf.mean(softplus(tf.neg(tf.slice(logits, [0, 0], [rr, 1])))));
    } else {
      w = fakeW;
      // No real rows in this sample: C's clipped sum is zero (noise is still added below).
      if (withClassifier) classifierGrads = model.classifierVariables().map((v) => tf.keep(tf.zerosLike(v)));
    }
    loss = lossT.dataSync()[0]!;
    return weightedGradientSum(model, out.layers, deltas, w);
  });
  if (!o.noNoise) {
    const std = (dp.noiseMultiplier * recordSensitivity(cfg.pac, dp.maxGradNorm)) / o.expectedRealPacks;
    const total = vars.reduce((s, v) => s + v.size, 0);
    addNoise(grads, o.noiseSource && o.noiseSource.n === total ? o.noiseSource.take(std) : secureGaussian(total, std, o.noiseRng));
    if (classifierGrads) addNoise(classifierGrads, secureGaussian(classifierGrads.reduce((s, g) => s + g.size, 0), std, o.noiseRng));
  }
  if (grads.length !== names.length) throw new Error('dp-sgd: gradient count mismatch');
  const result: DpGradientResult = { grads, loss, realPacks: rr, clippedFraction };
  if (classifierGrads) result.classifierGrads = classifierGrads;
  if (classifierLoss !== undefined) result.classifierLoss = classifierLoss;
  return result;
}

/** grads[i] += the matching slice of `noise` (in order); replaces and disposes the old tensors. */
function addNoise(grads: tf.Tensor[], noise: Float32Array): void {
  let off = 0;
  for (let i = 0; i < grads.length; i++) {
    const g = grads[i]!;
    const nz = tf.tensor(noise.subarray(off, off + g.size), g.shape);
    off += g.size;
    grads[i] = tf.add(g, nz);
    g.dispose();
    nz.dispose();
  }
}
