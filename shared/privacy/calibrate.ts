// Calibration of the DP-SGD noise multiplier σ for a target (ε, δ) at sampling rate q over T steps.
// Same scheme as Opacus `accountants/utils.get_noise_multiplier`: grow σ by doubling until the
// target is met, then bisect; ε(σ) is monotone decreasing in σ, so bisection is sound.
import { DEFAULT_ORDERS, checkDelta, checkNoiseMultiplier, checkOrders, checkSampleRate, checkSteps, composeRdp, computeRdp, dpSgdEpsilon, rdpToEpsilon } from './rdp';

/** σ beyond this is useless for training (signal-to-noise ~ 0); asking for more is an impossible budget. */
export const MAX_NOISE_MULTIPLIER = 1e4;

export interface EpsilonForOptions {
  sampleRate: number;
  noiseMultiplier: number;
  steps: number;
  delta: number;
  orders?: readonly number[];
}

/** ε spent by `steps` DP-SGD steps (Poisson rate q, noise multiplier σ) at δ. */
export function epsilonFor(o: EpsilonForOptions): number {
  return dpSgdEpsilon(o.sampleRate, o.noiseMultiplier, o.steps, o.delta, o.orders ?? DEFAULT_ORDERS).epsilon;
}

export interface NoiseMultiplierForOptions {
  targetEpsilon: number;
  delta: number;
  sampleRate: number;
  steps: number;
  orders?: readonly number[];
  /** Stop when the ε reached is within this of the target (absolute); default 0.01. */
  epsilonTolerance?: number;
  /** …or within this relative tolerance; default 1e-3. */
  relativeTolerance?: number;
  /** Largest σ considered before declaring the budget impossible; default MAX_NOISE_MULTIPLIER. */
  maxNoiseMultiplier?: number;
  /**
   * RDP already spent (per order of `orders`, e.g. a bank ledger's rdp()): σ is then calibrated so
   * that the prior releases composed with the DP-SGD steps reach targetEpsilon (RDP composition,
   * Mironov 2017 Prop. 1). Splitting ε instead (prior ε + DP-SGD ε = target) wastes budget: the
   * conversion to (ε, δ) is paid once, not per part. At ε = 1, δ = 1e-5, a 0.2 summary plus 0.8 of
   * DP-SGD (q = 0.07, 320 steps) compose to only 0.83.
   */
  priorRdp?: readonly number[];
}

export class ImpossibleBudgetError extends Error {
  override name = 'ImpossibleBudgetError';
}

/** Smallest-found σ with ε(σ) ≤ targetEpsilon (within tolerance, always on the safe side). */
export function noiseMultiplierFor(o: NoiseMultiplierForOptions): number {
  const { targetEpsilon, delta, sampleRate: q, steps } = o;
  if (typeof targetEpsilon !== 'number' || !Number.isFinite(targetEpsilon) || targetEpsilon <= 0) {
    throw new RangeError(`target ε must be a finite number > 0, got ${String(targetEpsilon)}`);
  }
  checkDelta(delta);
  checkSampleRate(q);
  checkSteps(steps);
  const orders = o.orders ?? DEFAULT_ORDERS;
  checkOrders(orders);
  const absTol = o.epsilonTolerance ?? 0.01;
  const relTol = o.relativeTolerance ?? 1e-3;
  const cap = o.maxNoiseMultiplier ?? MAX_NOISE_MULTIPLIER;
  checkNoiseMultiplier(cap);
  if (q === 0 || steps === 0) {
    throw new RangeError(`nothing is released with sample rate ${q} and ${steps} steps: no noise multiplier to calibrate`);
  }
  const prior = o.priorRdp;
  if (prior) {
    if (prior.length !== orders.length || prior.some((r) => !(r >= 0))) throw new RangeError(`priorRdp must hold one non-negative value per order (${orders.length}), got ${prior.length}`);
    const spent = rdpToEpsilon(orders, prior, delta).epsilon;
    if (spent >= targetEpsilon) {
      throw new ImpossibleBudgetError(`ε = ${spent.toPrecision(4)} is already spent at δ = ${delta}: nothing is left for DP-SGD under a total of ε = ${targetEpsilon}`);
    }
  }
  const eps = prior
    ? (sigma: number) => rdpToEpsilon(orders, composeRdp(prior, computeRdp(q, sigma, steps, orders)), delta).epsilon
    : (sigma: number) => dpSgdEpsilon(q, sigma, steps, delta, orders).epsilon;

  let hi = 1;
  let epsHi = eps(hi);
  while (epsHi > targetEpsilon) {
    if (hi >= cap) {
      throw new ImpossibleBudgetError(
        `cannot reach ε = ${targetEpsilon} at δ = ${delta} with sample rate ${q} over ${steps} steps: ` +
          `even noise multiplier σ = ${cap} gives ε = ${epsHi.toPrecision(4)}. ` +
          `Raise ε, lower the sample rate, or train fewer steps.`,
      );
    }
    hi = Math.min(hi * 2, cap);
    epsHi = eps(hi);
  }
  // ε(0) = ∞, so lo = 0 brackets from below.
  return bisectToTarget(eps, targetEpsilon, { lo: 0, hi, epsHi }, { absTol, relTol, midpoint: (a, b) => (a + b) / 2 });
}

/**
 * Bisection for a noise parameter x of a mechanism whose ε(x) decreases in x, given a bracket with
 * ε(hi) ≤ target < ε(lo). Narrows it until ε(hi) is within tolerance below the target and returns hi,
 * so the answer is always on the safe side (ε ≤ target). `midpoint` is arithmetic for σ and
 * geometric for parameters that span many orders of magnitude (Skellam μ).
 */
export function bisectToTarget(
  eps: (x: number) => number,
  target: number,
  bracket: { lo: number; hi: number; epsHi: number },
  o: { relTol: number; absTol?: number; midpoint: (lo: number, hi: number) => number },
): number {
  let { lo, hi, epsHi } = bracket;
  for (let it = 0; it < 200; it++) {
    const gap = target - epsHi;
    if (gap <= (o.absTol ?? 0) || gap <= o.relTol * target) break;
    const mid = o.midpoint(lo, hi);
    if (mid <= lo || mid >= hi) break;
    const e = eps(mid);
    if (e <= target) {
      hi = mid;
      epsHi = e;
    } else {
      lo = mid;
    }
  }
  return hi;
}
