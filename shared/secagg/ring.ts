// Fixed-point encoding of model updates in the ring Z_{2^32} for secure aggregation.
//
// Each bank clips its float update x to L2 norm ≤ S, multiplies by a public `scale` and rounds
// each coordinate *stochastically* (up with probability equal to the fractional part, using the OS
// CSPRNG), so the integer q satisfies E[q] = scale·x exactly and |q − scale·x| < 1. The integers
// live in Z_{2^32} as two's complement (Uint32Array, arithmetic wraps mod 2^32); masking and
// summation are plain wrap-around additions, and the sum is read back as a signed 32-bit integer.
//
// No-overflow bound (why the scale is chosen the way it is). After clipping ‖x‖₂ ≤ S, so every
// coordinate has |x_i| ≤ S and |q_i| ≤ S·scale + 1 (strictly < S·scale + 1). With n banks at most
// and optional per-bank integer DP noise of standard deviation σ_z (ring units), the true integer
// sum of one coordinate satisfies
//     |Σ_u q_u,i + Σ_u z_u,i| ≤ n·(S·scale + 1) + k·√n·σ_z                      (*)
// where the noise term holds except with probability ≈ 2·exp(−k²/2) (k = NOISE_TAIL_SIGMAS = 14,
// ≈ 2^-140, sub-Gaussian tails of the discrete Gaussian, CKS 2020; Skellam with μ ≥ 1 is within a
// small factor). `ringParams` requires (*) ≤ 2^31 − 1, so the wrapped sum decodes to the exact
// integer sum. By default it takes the largest power-of-two scale that satisfies (*): a power of two
// makes scale·x exact in float64 (x is float32), so the rounding is exactly unbiased.
//
// Quantisation error bound (no DP noise): per coordinate
//     |dequantise(Σ_u q_u)_i − Σ_u x_u,i| < n_s / scale
// with n_s the number of summed banks (each bank's rounding error is in (−1, 1) ring units), and
// each bank's error has mean 0 and variance ≤ 1/4, so the RMS error per coordinate is ≤ √n_s/(2·scale).
// `quantisationErrorBound(params, n_s)` returns n_s/scale. With DP noise the decoded sum additionally
// carries Σ_u z_u/scale, which is the intended privacy noise (std √n_s·σ_z/scale), not an error.
//
// DP sensitivity note: stochastic rounding can lengthen a vector: ‖q‖₂ ≤ S·scale + √d in the worst
// case (each coordinate moves by < 1). Calibrate the noise against that (`ringL2Sensitivity`,
// `effectiveNoiseMultiplier`); choose the scale so S·scale ≫ √d to make the inflation negligible.
// Conditional randomized rounding (`RingParams.roundingBeta` = β, Kairouz, Liu & Steinke 2021, "The
// Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation", ICML,
// Thm 1 / §4.1): redraw the stochastic rounding until ‖q‖₂ ≤ Δ2(β), the bound below that an
// unconditional rounding already meets with probability ≥ 1 − β. The rejection makes Δ2(β)
// a deterministic ℓ2 sensitivity, ≈ √((S·scale)² + d/4 + √(2 ln(1/β))·(S·scale + √d/2)), far below
// S·scale + √d; β only costs a small bias and ≤ 1/(1 − β) expected redraws, never privacy.
import { randomFillSync } from 'node:crypto';
import { clipInPlace } from '../privacy/clip';
import { CryptoRandom, MAX_SKELLAM_MU, discreteGaussian, skellam } from '../privacy/secure-noise';
import { integerL1Bound } from '../privacy/skellam';
import { SecAggError } from './errors';

/** Largest magnitude of a decodable signed sum. */
export const RING_MAX_SIGNED = 2 ** 31 - 1;
/** Standard deviations of the summed DP noise reserved as overflow headroom (tail ≈ 2^-140). */
export const NOISE_TAIL_SIGMAS = 14;

/** Per-bank integer noise, in ring units, added to the quantised update before masking. */
export type RingNoise =
  /** Skellam(μ) = Poisson(μ) − Poisson(μ), variance 2μ (Agarwal et al. 2021), μ ≤ MAX_SKELLAM_MU (1e12).
   *  O(1) expected sampling cost per coordinate (Hörmann's PTRS for μ ≥ 10). Plan μ with dp-plan.ts. */
  | { mechanism: 'skellam'; mu: number }
  /** Discrete Gaussian N_Z(0, σ²) (Canonne, Kamath & Steinke 2020), exact sampler. */
  | { mechanism: 'discreteGaussian'; sigma: number };

/** Public quantisation parameters; every bank and the server must use identical values. */
export interface RingParams {
  /** L2 clipping norm S applied to each bank's whole update (float units). */
  clipNorm: number;
  /** Upper bound on the number of banks whose inputs are summed. */
  maxBanks: number;
  /** Fixed-point scale: ring value = round(scale · x). */
  scale: number;
  /** Optional per-bank distributed DP noise (ring units). */
  noise?: RingNoise;
  /** Conditional randomized rounding with this β ∈ [0, 1) (KLS 2021): every bank's rounded vector
   *  has ‖q‖₂ ≤ conditionalRoundingBound(S·scale, d, β). Absent: plain stochastic rounding. */
  roundingBeta?: number;
}

export interface RingParamsOptions {
  clipNorm: number;
  maxBanks: number;
  /** Explicit scale; default: largest power of two satisfying the no-overflow bound. */
  scale?: number;
  noise?: RingNoise;
  /** Turns on conditional randomized rounding with this β ∈ [0, 1) (see RingParams.roundingBeta). */
  roundingBeta?: number;
}

function positive(name: string, v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new SecAggError('INVALID_PARAMS', `${name} must be a finite number > 0, got ${String(v)}`);
}

/** Standard deviation (ring units) of one bank's noise (an upper bound for the discrete Gaussian). */
export function noiseStd(noise: RingNoise | undefined): number {
  if (!noise) return 0;
  return noise.mechanism === 'skellam' ? Math.sqrt(2 * noise.mu) : noise.sigma;
}

// Mirrors shared/privacy/secure-noise's rational representation of σ² so we can reject σ values
// its exact sampler cannot handle: it draws CryptoRandom.int(den·k) with den = 2·σ²·(⌊σ⌋+1)²
// (k = a small loop counter), which throws once den·k > 2^48 — in practice for σ ≳ 2000 ring
// units (σ = 3000 fails), although its doc says 1e6. We require den·32 ≤ 2^48 (σ ≤ ~1400);
// P(k > 32) is below 1e-35.
function discreteGaussianSupported(sigma: number): boolean {
  if (sigma === 0) return true;
  if (sigma > 1e6) return false;
  const s2 = sigma * sigma;
  let sDen = 1;
  while (sDen < 2 ** 20 && !Number.isInteger(s2 * sDen) && s2 * sDen * 2 < 2 ** 40) sDen *= 2;
  const sNum = Math.round(s2 * sDen);
  const t = Math.floor(sigma) + 1;
  return 2 * sNum * t * t * sDen * 32 <= 2 ** 48;
}

function checkNoise(noise: RingNoise | undefined): void {
  if (noise === undefined) return;
  if (noise.mechanism === 'skellam') {
    if (typeof noise.mu !== 'number' || !Number.isFinite(noise.mu) || noise.mu < 0 || noise.mu > MAX_SKELLAM_MU) {
      throw new SecAggError('INVALID_PARAMS', `skellam μ must be in [0, ${MAX_SKELLAM_MU}] ring units², got ${String(noise.mu)}`);
    }
  } else if (noise.mechanism === 'discreteGaussian') {
    if (typeof noise.sigma !== 'number' || !Number.isFinite(noise.sigma) || noise.sigma < 0) {
      throw new SecAggError('INVALID_PARAMS', `discrete Gaussian σ must be a finite number ≥ 0, got ${String(noise.sigma)}`);
    }
    if (!discreteGaussianSupported(noise.sigma)) {
      throw new SecAggError('INVALID_PARAMS', `discrete Gaussian σ = ${noise.sigma} ring units is beyond the exact sampler's integer range (keep σ ≤ ~1400; lower the scale instead)`);
    }
  } else {
    throw new SecAggError('INVALID_PARAMS', `unknown noise mechanism ${JSON.stringify((noise as { mechanism?: unknown }).mechanism)}`);
  }
}

/** Left-hand side of the no-overflow bound (*) for the given parameters. */
export function worstCaseSumMagnitude(p: Pick<RingParams, 'clipNorm' | 'maxBanks' | 'scale' | 'noise'>): number {
  return p.maxBanks * (p.clipNorm * p.scale + 1) + NOISE_TAIL_SIGMAS * Math.sqrt(p.maxBanks) * noiseStd(p.noise);
}

/** Validates or derives the public ring parameters so the sum of up to `maxBanks` inputs cannot overflow. */
export function ringParams(o: RingParamsOptions): RingParams {
  positive('clipNorm', o.clipNorm);
  if (!Number.isSafeInteger(o.maxBanks) || o.maxBanks < 1) throw new SecAggError('INVALID_PARAMS', `maxBanks must be an integer ≥ 1, got ${String(o.maxBanks)}`);
  checkNoise(o.noise);
  if (o.roundingBeta !== undefined) checkBeta(o.roundingBeta);
  const headroom = RING_MAX_SIGNED - o.maxBanks - NOISE_TAIL_SIGMAS * Math.sqrt(o.maxBanks) * noiseStd(o.noise);
  const maxScale = headroom / (o.maxBanks * o.clipNorm);
  if (!(maxScale > 0)) throw new SecAggError('INVALID_PARAMS', `no scale fits: noise headroom ${RING_MAX_SIGNED - headroom} exceeds the ring`);
  let scale: number;
  if (o.scale === undefined) {
    scale = 2 ** Math.floor(Math.log2(maxScale));
    if (scale > maxScale) scale /= 2; // guard against log2 rounding
  } else {
    positive('scale', o.scale);
    scale = o.scale;
  }
  const p: RingParams = {
    clipNorm: o.clipNorm,
    maxBanks: o.maxBanks,
    scale,
    ...(o.noise ? { noise: o.noise } : {}),
    ...(o.roundingBeta !== undefined ? { roundingBeta: o.roundingBeta } : {}),
  };
  if (worstCaseSumMagnitude(p) > RING_MAX_SIGNED) {
    throw new SecAggError('INVALID_PARAMS', `scale ${scale} can overflow: worst-case |sum| ${worstCaseSumMagnitude(p).toExponential(3)} > 2^31 − 1 (max safe scale ${maxScale.toExponential(3)})`);
  }
  return p;
}

/** Per-coordinate bound on |dequantise(sum) − Σ x| for `summed` banks without DP noise: summed/scale. */
export function quantisationErrorBound(p: Pick<RingParams, 'scale'>, summed: number): number {
  return summed / p.scale;
}

function checkBeta(beta: number): void {
  if (typeof beta !== 'number' || !(beta >= 0 && beta < 1)) throw new SecAggError('INVALID_PARAMS', `conditional rounding β must lie in [0, 1), got ${String(beta)}`);
}

/**
 * ℓ2 bound (ring units) that conditional randomized rounding enforces on a vector of norm ≤ c = S·scale
 * and length d (Kairouz, Liu & Steinke 2021, Thm 1, at granularity 1):
 *     Δ2(β)² = min{ (c + √d)²,  c² + d/4 + √(2·ln(1/β))·(c + √d/2) },
 * β = 0 gives the unconditional worst case c + √d. Unconditional stochastic rounding lands inside
 * the second bound with probability ≥ 1 − β, so each redraw is accepted with at least that probability.
 */
export function conditionalRoundingBound(c: number, d: number, beta: number): number {
  if (typeof c !== 'number' || !Number.isFinite(c) || c < 0) throw new SecAggError('INVALID_PARAMS', `norm bound must be a finite number ≥ 0, got ${String(c)}`);
  if (!Number.isSafeInteger(d) || d < 1) throw new SecAggError('INVALID_PARAMS', `dimension d must be an integer ≥ 1, got ${String(d)}`);
  checkBeta(beta);
  const worst = c + Math.sqrt(d);
  if (beta === 0) return worst;
  const sq = c * c + d / 4 + Math.sqrt(2 * Math.log(1 / beta)) * (c + Math.sqrt(d) / 2);
  return Math.min(worst, Math.sqrt(sq));
}

/** L2 sensitivity (ring units) of one bank's quantised, clipped update of length d: S·scale + √d,
 *  or the conditional-rounding bound when p.roundingBeta is set. */
export function ringL2Sensitivity(p: Pick<RingParams, 'clipNorm' | 'scale' | 'roundingBeta'>, d: number): number {
  if (p.roundingBeta !== undefined) return conditionalRoundingBound(p.clipNorm * p.scale, d, p.roundingBeta);
  return p.clipNorm * p.scale + Math.sqrt(d);
}

/** L1 sensitivity (ring units) of one bank's quantised update: min(Δ2², √d·Δ2), as it is an integer vector. */
export function ringL1Sensitivity(p: Pick<RingParams, 'clipNorm' | 'scale' | 'roundingBeta'>, d: number): number {
  return integerL1Bound(ringL2Sensitivity(p, d), d);
}

/** Noise multiplier of the aggregate against the worst-case ring sensitivity, with `summed` banks each adding p.noise. */
export function effectiveNoiseMultiplier(p: RingParams, d: number, summed: number): number {
  return (noiseStd(p.noise) * Math.sqrt(summed)) / ringL2Sensitivity(p, d);
}

/** Fills `out` with 32-bit words from the OS CSPRNG (default) — injectable for tests only. */
export type RandomWords = (out: Uint32Array) => void;
const osRandom: RandomWords = (out) => {
  randomFillSync(out);
};
const RANDOM_CHUNK = 1 << 15;

/**
 * Stochastic rounding of scale·x into the ring: q_i = ⌊v⌋ + [r < v − ⌊v⌋] with v = scale·x_i and r
 * a 53-bit CSPRNG uniform, so E[q_i] = v (bias ≤ 2^-53) and |q_i − v| < 1. Does not clip.
 */
export function quantise(x: ArrayLike<number>, scale: number, random: RandomWords = osRandom): Uint32Array {
  const out = new Uint32Array(x.length);
  roundInto(x, scale, random, out);
  return out;
}

// Stochastic rounding into `out`; returns Σ q_i² (float64) of the signed integers.
function roundInto(x: ArrayLike<number>, scale: number, random: RandomWords, out: Uint32Array): number {
  const d = x.length;
  const r = new Uint32Array(2 * Math.min(d, RANDOM_CHUNK));
  let sumSq = 0;
  for (let start = 0; start < d; start += RANDOM_CHUNK) {
    const len = Math.min(RANDOM_CHUNK, d - start);
    random(r);
    let chunkSq = 0;
    for (let i = 0; i < len; i++) {
      const v = x[start + i] * scale;
      const f = Math.floor(v);
      const u = ((r[2 * i] >>> 5) * 67108864 + (r[2 * i + 1] >>> 6)) / 9007199254740992;
      const q = u < v - f ? f + 1 : f;
      out[start + i] = q; // Uint32Array store = value mod 2^32 (two's complement)
      chunkSq += q * q;
    }
    sumSq += chunkSq;
  }
  return sumSq;
}

/** Redraws allowed before conditional rounding gives up; each succeeds with probability ≥ 1 − β. */
export const MAX_ROUNDING_TRIES = 1000;

export interface ConditionalQuantiseResult {
  ring: Uint32Array;
  /** Number of stochastic roundings drawn (the last one accepted). */
  tries: number;
}

/**
 * Conditional randomized rounding (Kairouz, Liu & Steinke 2021, §4.1): stochastic rounding of
 * scale·x, redrawn until the integer vector has ‖q‖₂ ≤ l2Bound. The accept test is
 * Σq² ≤ l2Bound²·(1 − d·2⁻⁵²), which absorbs float64 summation error, so the bound holds exactly.
 * Throws (INVALID_PARAMS) after maxTries rejections: l2Bound is below what x can round to.
 */
export function quantiseConditional(x: ArrayLike<number>, scale: number, l2Bound: number, random: RandomWords = osRandom, maxTries = MAX_ROUNDING_TRIES): ConditionalQuantiseResult {
  const d = x.length;
  const out = new Uint32Array(d);
  const limit = l2Bound * l2Bound * (1 - d * Number.EPSILON);
  for (let tries = 1; tries <= maxTries; tries++) {
    if (roundInto(x, scale, random, out) <= limit) return { ring: out, tries };
  }
  throw new SecAggError('INVALID_PARAMS', `conditional rounding: no rounding of the update within ‖q‖₂ ≤ ${l2Bound} after ${maxTries} tries (is the update clipped to S and β < 1?)`);
}

/** Reads a ring vector as signed integers (two's complement) divided by the scale. */
export function dequantise(sum: Uint32Array, scale: number): Float64Array {
  const out = new Float64Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = (sum[i] | 0) / scale;
  return out;
}

/** Adds `b` into `a` in place, mod 2^32. */
export function ringAddInPlace(a: Uint32Array, b: Uint32Array): Uint32Array {
  if (a.length !== b.length) throw new SecAggError('INVALID_MESSAGE', `ring vectors differ in length: ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) a[i] += b[i];
  return a;
}

/** Draws one bank's integer DP noise (ring units) of length d. */
export function sampleRingNoise(noise: RingNoise, d: number, rng?: CryptoRandom): Int32Array {
  checkNoise(noise);
  return noise.mechanism === 'skellam' ? skellam(d, noise.mu, rng) : discreteGaussian(d, noise.sigma, rng);
}

export interface EncodeResult {
  /** The bank's quantised (and noised, when p.noise is set) update in Z_{2^32}. */
  ring: Uint32Array;
  /** L2 norm of the update before clipping. */
  norm: number;
  clipped: boolean;
  /** Stochastic roundings drawn (> 1 only with conditional rounding). */
  roundingTries: number;
}

export interface EncodeOptions {
  /** Conditional rounding β for this call; default p.roundingBeta (absent: plain stochastic rounding).
   *  Every bank of a round must use the same β: the accountant relies on the resulting Δ2. */
  roundingBeta?: number;
}

/**
 * One bank's input to secure aggregation: copy, clip to ‖x‖₂ ≤ S, stochastically round at the
 * public scale, and add the bank's share of the distributed DP noise in the ring (before masking,
 * so nobody, the server included, ever sees an un-noised sum).
 */
export function encodeUpdate(update: ArrayLike<number>, p: RingParams, random: RandomWords = osRandom, opts: EncodeOptions = {}): EncodeResult {
  const x = Float64Array.from(update as ArrayLike<number>);
  const { norm, clipped } = clipInPlace(p.clipNorm, x);
  const beta = opts.roundingBeta ?? p.roundingBeta;
  let ring: Uint32Array;
  let roundingTries = 1;
  if (beta === undefined || x.length === 0) {
    ring = quantise(x, p.scale, random);
  } else {
    ({ ring, tries: roundingTries } = quantiseConditional(x, p.scale, conditionalRoundingBound(p.clipNorm * p.scale, x.length, beta), random));
  }
  if (p.noise) {
    const z = sampleRingNoise(p.noise, ring.length);
    for (let i = 0; i < ring.length; i++) ring[i] += z[i];
  }
  return { ring, norm, clipped, roundingTries };
}

/** Flattens named tensors (in the given order) into one vector, and the inverse. */
export function flatten(parts: readonly { data: ArrayLike<number> }[]): Float32Array {
  const total = parts.reduce((s, t) => s + t.data.length, 0);
  const out = new Float32Array(total);
  let o = 0;
  for (const t of parts) {
    out.set(t.data, o);
    o += t.data.length;
  }
  return out;
}

export function unflatten<T extends { name: string; shape: number[] }>(flat: Float32Array | Float64Array, layout: readonly T[]): { name: string; shape: number[]; data: Float32Array }[] {
  let o = 0;
  const out = layout.map((t) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from(flat.subarray(o, o + n));
    o += n;
    return { name: t.name, shape: [...t.shape], data };
  });
  if (o !== flat.length) throw new SecAggError('INVALID_MESSAGE', `vector has ${flat.length} entries, layout needs ${o}`);
  return out;
}
