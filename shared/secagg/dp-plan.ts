// Planning distributed Skellam noise for secure aggregation in Z_{2^32}: pick the fixed-point scale and
// each bank's Skellam parameter μ so that
//   (i)  the masked sum cannot overflow: ring.ts's bound (*) n·(S·scale + 1) + 14·√n·√(2μ) ≤ 2^31 − 1
//        with n = maxBanks (every bank that might be summed contributes data and noise);
//   (ii) conditional randomized rounding (Kairouz, Liu & Steinke 2021, Thm 1) keeps each bank's ring
//        vector within Δ2(β) = conditionalRoundingBound(S·scale, d, β), at most `maxInflation` above
//        S·scale. The scale is the largest power of two that satisfies (i) with μ ≤ maxMu (the
//        sampler's cap, 1e12), which keeps the inflation tiny: (d/4 + S·scale)/(2·(S·scale)²);
//  (iii) the noise that is guaranteed to be in the sum — only the t = minBanks banks that the secure
//        aggregation threshold guarantees survive; Sk(t·μ) exactly, since Skellam is closed under
//        sums — has std √(2·t·μ) ≥ z·Δ2 (noise multiplier mode), or meets a target (ε, δ) after R
//        rounds under the Skellam RDP bound (shared/privacy/skellam.ts, Agarwal, Kairouz & Liu 2021,
//        Thm 3.5).
// Account with t, never with n: banks that drop out after sharing keys take their noise with them.
// If some banks might collude with the coordinator, their noise is known to it: pass as minBanks the
// number of honest survivors you want to rely on.
//
// Neighbouring datasets are at the level of a whole bank's contribution. 'addRemove' (default, the
// repo's DP-FedAvg convention, noise std = z·S): one bank's vector is present or replaced by zeros, the
// sum moves by that bank's integer vector q, ‖q‖₂ ≤ Δ2, ‖q‖₁ ≤ min(Δ2², √d·Δ2). 'replace': by q − q',
// ‖·‖₂ ≤ 2Δ2 and ‖·‖₁ ≤ 2·min(Δ2², √d·Δ2).
//
// An overflow would not break privacy (wrapping mod 2^32 is post-processing of the exact noisy sum),
// only the decoded average; `log2OverflowProbability` is a Chernoff bound on it per round.
import { DEFAULT_ORDERS, type PrivacySpent, checkOrders } from '../privacy/rdp';
import { MAX_SKELLAM_MU } from '../privacy/secure-noise';
import { type SkellamMechanism, skellamEpsilon, skellamMuFor, skellamRdpCurve } from '../privacy/skellam';
import { SecAggError } from './errors';
import { RING_MAX_SIGNED, type RingParams, conditionalRoundingBound, ringL1Sensitivity, ringParams, worstCaseSumMagnitude } from './ring';

/** β = e^{-1/2}, the value Kairouz, Liu & Steinke 2021 use in their experiments: √(2 ln(1/β)) = 1. */
export const DEFAULT_ROUNDING_BETA = Math.exp(-0.5);
/** Default cap on Δ2(β)/(S·scale) − 1. */
export const DEFAULT_MAX_INFLATION = 0.01;

export interface SkellamPlanOptions {
  /** L2 clipping norm S of each bank's update (float units). */
  clipNorm: number;
  /** Length d of the flattened update. */
  dimension: number;
  /** n: most banks whose inputs can be summed in one round (overflow). */
  maxBanks: number;
  /** t: fewest banks whose noise is guaranteed to be in the sum (the secure-aggregation threshold). */
  minBanks: number;
  /** z: std of the guaranteed noise on the sum ≥ z·Δ2. Give this or `target`. */
  noiseMultiplier?: number;
  /** Calibrate μ so that `rounds` rounds cost at most (ε, δ). Give this or `noiseMultiplier`. */
  target?: { epsilon: number; delta: number; rounds: number };
  /** Conditional rounding β ∈ [0, 1); default DEFAULT_ROUNDING_BETA. */
  beta?: number;
  /** Cap on the ℓ2 inflation Δ2(β)/(S·scale) − 1; default 0.01. */
  maxInflation?: number;
  /** Cap on each bank's μ (ring units²); default and maximum MAX_SKELLAM_MU. */
  maxMu?: number;
  neighbouring?: 'addRemove' | 'replace';
  /** Rényi orders for `target` calibration; default DEFAULT_ORDERS. */
  orders?: readonly number[];
}

export interface SkellamPlan {
  /** Public ring parameters for every bank and the server: scale, Skellam noise {mu}, roundingBeta. */
  ring: RingParams;
  scale: number;
  /** Each bank's Skellam parameter: it adds Poisson(mu) − Poisson(mu) per coordinate (variance 2·mu). */
  mu: number;
  /** Skellam parameter of the guaranteed noise in the sum: minBanks·mu. */
  muTotal: number;
  /** Per-bank ℓ2 bound enforced by conditional rounding (ring units). */
  bankL2Bound: number;
  /** ℓ2 / ℓ1 sensitivities of the sum for the chosen neighbouring relation (ring units). */
  delta2: number;
  delta1: number;
  beta: number;
  /** bankL2Bound/(S·scale) − 1. */
  inflation: number;
  /** √(2·muTotal)/delta2. */
  noiseMultiplier: number;
  /** Std of the guaranteed noise in the decoded sum, float units: √(2·muTotal)/scale. */
  noiseStd: number;
  /** ring.ts's worst-case |sum| (≤ 2^31 − 1). */
  worstCaseSum: number;
  /** log2 of a Chernoff/union bound on P(some coordinate of the sum overflows) in one round. */
  log2OverflowProbability: number;
  clipNorm: number;
  dimension: number;
  maxBanks: number;
  minBanks: number;
  neighbouring: 'addRemove' | 'replace';
}

function bad(msg: string): never {
  throw new SecAggError('INVALID_PARAMS', msg);
}

function positiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) bad(`${name} must be an integer ≥ 1, got ${String(v)}`);
}

/**
 * log P(Sk(M) ≥ h) ≤ −(h·λ − 2M(cosh λ − 1)) at the optimal λ = asinh(h/(2M)) (Chernoff: the log-MGF of
 * Poisson(M) − Poisson(M) is 2M(cosh λ − 1)). Natural log; for h ≪ M it is ≈ −h²/(4M) (Gaussian).
 */
export function skellamLogTailBound(M: number, h: number): number {
  if (!(h > 0)) return 0;
  if (!(M > 0)) return -Infinity;
  const y = h / (2 * M);
  const coshMinus1 = (y * y) / (Math.sqrt(1 + y * y) + 1); // √(1+y²) − 1 without cancellation
  return -(h * Math.asinh(y) - 2 * M * coshMinus1);
}

/** Plans scale, per-bank Skellam μ and conditional rounding for one secure-aggregation round (see file header). */
export function planSkellam(o: SkellamPlanOptions): SkellamPlan {
  if (typeof o.clipNorm !== 'number' || !Number.isFinite(o.clipNorm) || o.clipNorm <= 0) bad(`clipNorm must be a finite number > 0, got ${String(o.clipNorm)}`);
  positiveInt('dimension', o.dimension);
  positiveInt('maxBanks', o.maxBanks);
  positiveInt('minBanks', o.minBanks);
  if (o.minBanks > o.maxBanks) bad(`minBanks (${o.minBanks}) cannot exceed maxBanks (${o.maxBanks})`);
  const hasZ = o.noiseMultiplier !== undefined;
  if (hasZ === (o.target !== undefined)) bad('give exactly one of noiseMultiplier or target {epsilon, delta, rounds}');
  if (hasZ && !(typeof o.noiseMultiplier === 'number' && Number.isFinite(o.noiseMultiplier) && o.noiseMultiplier > 0)) {
    bad(`noiseMultiplier must be a finite number > 0, got ${String(o.noiseMultiplier)}`);
  }
  const beta = o.beta ?? DEFAULT_ROUNDING_BETA;
  const maxInflation = o.maxInflation ?? DEFAULT_MAX_INFLATION;
  if (!(maxInflation >= 0)) bad(`maxInflation must be ≥ 0, got ${String(maxInflation)}`);
  const maxMu = Math.min(o.maxMu ?? MAX_SKELLAM_MU, MAX_SKELLAM_MU);
  if (!(maxMu > 0)) bad(`maxMu must be > 0, got ${String(o.maxMu)}`);
  const neighbouring = o.neighbouring ?? 'addRemove';
  if (neighbouring !== 'addRemove' && neighbouring !== 'replace') bad(`neighbouring must be 'addRemove' or 'replace', got ${String(neighbouring)}`);
  const orders = o.orders ?? DEFAULT_ORDERS;
  checkOrders(orders);
  const { clipNorm: S, dimension: d, maxBanks: n, minBanks: t } = o;
  const factor = neighbouring === 'replace' ? 2 : 1;

  // For one scale: sensitivities and the per-bank μ that meets the noise requirement.
  const evaluate = (scale: number) => {
    const bank = bankSensitivities(S, scale, beta, d);
    const bankL2Bound = bank.l2;
    const delta2 = factor * bankL2Bound;
    const delta1 = factor * bank.l1;
    let muTotal: number;
    if (hasZ) {
      const z = o.noiseMultiplier!;
      muTotal = ((z * delta2) ** 2 / 2) * (1 + 1e-12); // 2·muTotal ≥ z²Δ2² despite rounding
    } else {
      const { epsilon, delta, rounds } = o.target!;
      muTotal = skellamMuFor({ targetEpsilon: epsilon, delta, rounds, l1Sensitivity: delta1, l2Sensitivity: delta2, orders });
    }
    const mu = muTotal / t;
    const ring: RingParams = { clipNorm: S, maxBanks: n, scale, noise: { mechanism: 'skellam', mu }, roundingBeta: beta };
    return { bankL2Bound, delta2, delta1, muTotal, mu, ring, worst: worstCaseSumMagnitude(ring) };
  };

  // Largest power-of-two scale (exact scaling of float32 inputs) meeting (i) and the sampler's μ cap:
  // both sides grow with the scale, so scan downwards.
  let chosen: ReturnType<typeof evaluate> | undefined;
  let firstTried: ReturnType<typeof evaluate> | undefined;
  const top = Math.floor(Math.log2(RING_MAX_SIGNED / (n * S)));
  for (let e = top; e >= top - 80; e--) {
    const c = evaluate(2 ** e);
    firstTried ??= c;
    if (c.worst <= RING_MAX_SIGNED && c.mu <= maxMu) {
      chosen = c;
      break;
    }
  }
  const what = hasZ ? `noise multiplier z = ${o.noiseMultiplier}` : `target ε = ${o.target!.epsilon} at δ = ${o.target!.delta} over ${o.target!.rounds} rounds`;
  if (!chosen) {
    bad(
      `no fixed-point scale fits the 32-bit ring: ${n} banks each adding Skellam noise for ${what} with only ${t} guaranteed ` +
        `(noise std per bank ≈ ${Math.sqrt(2 * firstTried!.mu).toExponential(2)} ring units at the largest scale) overflow 2^31 − 1 at every scale. ` +
        `Lower maxBanks (n) or raise minBanks (t, the secure-aggregation threshold), lower z / raise the ε budget, or shorten the update (d = ${d}).`,
    );
  }
  const inflation = chosen.bankL2Bound / (S * chosen.ring.scale) - 1;
  if (inflation > maxInflation) {
    bad(
      `the largest safe scale ${chosen.ring.scale} (S·scale = ${(S * chosen.ring.scale).toExponential(3)}) leaves conditional rounding ` +
        `inflating Δ2 by ${(100 * inflation).toFixed(2)}% > ${(100 * maxInflation).toFixed(2)}% for d = ${d}: the 32-bit ring is too small for ` +
        `${n} banks with ${what}. Lower maxBanks, raise minBanks, lower z / raise ε, shorten d, raise β toward 1, or accept it with maxInflation.`,
    );
  }
  // Validate exactly as every bank and the server will.
  const ring = ringParams({ clipNorm: S, maxBanks: n, scale: chosen.ring.scale, noise: chosen.ring.noise, roundingBeta: beta });
  const headroom = RING_MAX_SIGNED - n * (S * ring.scale + 1);
  const logTail = skellamLogTailBound(n * chosen.mu, headroom + 1);
  return {
    ring,
    scale: ring.scale,
    mu: chosen.mu,
    muTotal: chosen.muTotal,
    bankL2Bound: chosen.bankL2Bound,
    delta2: chosen.delta2,
    delta1: chosen.delta1,
    beta,
    inflation,
    noiseMultiplier: Math.sqrt(2 * chosen.muTotal) / chosen.delta2,
    noiseStd: Math.sqrt(2 * chosen.muTotal) / ring.scale,
    worstCaseSum: chosen.worst,
    log2OverflowProbability: Math.min(0, (Math.log(2 * d) + logTail) / Math.LN2),
    clipNorm: S,
    dimension: d,
    maxBanks: n,
    minBanks: t,
    neighbouring,
  };
}

/** The Skellam mechanism one round of the plan releases (guaranteed noise Sk(muTotal), plan sensitivities). */
export function planMechanism(plan: Pick<SkellamPlan, 'delta1' | 'delta2' | 'muTotal'>): SkellamMechanism {
  return { l1Sensitivity: plan.delta1, l2Sensitivity: plan.delta2, mu: plan.muTotal };
}

/** Per-round RDP curve of the plan (Agarwal, Kairouz & Liu 2021, Thm 3.5); multiply by rounds to compose. */
export function skellamPlanRdp(plan: Pick<SkellamPlan, 'delta1' | 'delta2' | 'muTotal'>, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  return skellamRdpCurve(planMechanism(plan), 1, orders);
}

/** (ε, δ) after `rounds` rounds of the plan. */
export function skellamPlanEpsilon(plan: Pick<SkellamPlan, 'delta1' | 'delta2' | 'muTotal'>, rounds: number, delta: number, orders: readonly number[] = DEFAULT_ORDERS): PrivacySpent {
  return skellamEpsilon(planMechanism(plan), rounds, delta, orders);
}

/**
 * What one round releases about one bank, re-derived by that bank from the round's public
 * parameters alone (never trusting the coordinator's arithmetic): Δ2 = the conditional-rounding
 * bound of its ring input (add/remove of the bank's whole input), Δ1 from it, and the guaranteed
 * noise Sk(t·μ) of the t banks the secure-aggregation threshold guarantees in the sum.
 */
export function roundMechanism(p: { clipNorm: number; scale: number; roundingBeta: number; skellamMu: number; threshold: number; vectorLength: number }): SkellamMechanism & { noiseMultiplier: number } {
  positiveInt('threshold', p.threshold);
  positiveInt('vectorLength', p.vectorLength);
  if (!(p.skellamMu > 0) || !Number.isFinite(p.skellamMu)) bad(`skellamMu must be a finite number > 0, got ${String(p.skellamMu)}`);
  const { l1: l1Sensitivity, l2: l2Sensitivity } = bankSensitivities(p.clipNorm, p.scale, p.roundingBeta, p.vectorLength);
  const mu = p.threshold * p.skellamMu;
  return { l1Sensitivity, l2Sensitivity, mu, noiseMultiplier: Math.sqrt(2 * mu) / l2Sensitivity };
}

/** One bank's ring-unit L2 bound after conditional rounding (clip S, scale, β) and the L1 bound it implies: what the planner and every bank use. */
function bankSensitivities(clipNorm: number, scale: number, beta: number, d: number): { l2: number; l1: number } {
  return { l2: conditionalRoundingBound(clipNorm * scale, d, beta), l1: ringL1Sensitivity({ clipNorm, scale, roundingBeta: beta }, d) };
}
