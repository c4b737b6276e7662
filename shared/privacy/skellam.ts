// Rényi-DP accountant for the (distributed) multi-dimensional Skellam mechanism.
//
// Reference: Agarwal, Kairouz & Liu, "The Skellam Mechanism for Differentially Private Federated
// Learning" (NeurIPS 2021, arXiv:2110.04995), Theorem 3.5 (multi-dimensional Skellam mechanism; the
// one-dimensional shifted-Skellam Rényi divergence bound it is built from is Theorem 3.4).
//
// Convention (this file and shared/privacy/secure-noise.ts, shared/secagg/ring.ts): Sk(μ) means
// Poisson(μ) − Poisson(μ), variance V = 2μ per coordinate. The paper parameterises the symmetric
// Skellam by its variance (its "μ" is our 2μ), so its bound reads, for integer α > 1, integer-valued
// query f with ℓ2 sensitivity Δ2 and ℓ1 sensitivity Δ1, noise of variance V on each coordinate:
//
//     ε(α) ≤ α·Δ2²/(2V) + min( ((2α − 1)·Δ2² + 6·Δ1) / (4V²),  3·Δ1/(2V) ).          (Thm 3.5)
//
// The first term is the Gaussian mechanism's α·Δ2²/(2V) (Mironov 2017 Prop. 7); the min{…} is the
// price of discreteness and vanishes relative to it as V → ∞. The bound grows with Δ1 and Δ2, so any
// upper bounds on the sensitivities may be plugged in (for an integer vector with ‖·‖₂ ≤ Δ2,
// ‖·‖₁ ≤ min(Δ2², √d·Δ2): |x| ≤ x² on the integers, and Cauchy–Schwarz).
//
// Orders: the theorem is proved for integer α only. Rényi divergence is non-decreasing in the order
// (van Erven & Harremoës 2014, "Rényi divergence and Kullback-Leibler divergence", Thm 3), so at a
// fractional order α of the repo's DEFAULT_ORDERS we use the bound at ⌈α⌉, which is valid (slightly
// loose there; the optimum order for realistic budgets is an integer on the grid anyway).
//
// Distributed use: with k banks each adding Sk(μ_bank), the sum carries exactly Sk(k·μ_bank) (Poisson
// is closed under sums), so account with μ = (guaranteed number of noise contributions)·μ_bank; extra
// contributions are independent extra noise (post-processing) and only help. Composition over rounds
// adds RDP (Mironov 2017 Prop. 1); (ε, δ) via rdp.ts's rdpToEpsilon (Balle et al. 2020 Thm 21).
import { DEFAULT_ORDERS, type PrivacySpent, checkDelta, checkOrders, checkSteps, rdpToEpsilon } from './rdp';
import { ImpossibleBudgetError, bisectToTarget } from './calibrate';

/** Sensitivities of the integer-valued query (ring units) and the total Skellam parameter of its noise. */
export interface SkellamMechanism {
  /** ℓ1 sensitivity Δ1 (an upper bound). */
  l1Sensitivity: number;
  /** ℓ2 sensitivity Δ2 (an upper bound). */
  l2Sensitivity: number;
  /** Total Skellam parameter μ of the noise on each coordinate: Poisson(μ) − Poisson(μ), variance 2μ. */
  mu: number;
}

function checkMechanism(m: SkellamMechanism): void {
  for (const [name, v] of [['l1Sensitivity', m.l1Sensitivity], ['l2Sensitivity', m.l2Sensitivity]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a finite number ≥ 0, got ${String(v)}`);
  }
  if (typeof m.mu !== 'number' || Number.isNaN(m.mu) || !(m.mu > 0)) throw new RangeError(`Skellam μ must be > 0, got ${String(m.mu)}`);
}

/** ℓ1 bound of an integer vector of length d with ℓ2 norm ≤ Δ2: min(Δ2², √d·Δ2). */
export function integerL1Bound(l2Sensitivity: number, d: number): number {
  if (!Number.isSafeInteger(d) || d < 1) throw new RangeError(`dimension d must be an integer ≥ 1, got ${String(d)}`);
  return Math.min(l2Sensitivity * l2Sensitivity, Math.sqrt(d) * l2Sensitivity);
}

/** RDP ε(α) of ONE release of the Skellam mechanism (Agarwal, Kairouz & Liu 2021, Thm 3.5, with the
 *  paper's variance = 2μ); fractional α is bounded by the integer order ⌈α⌉ (monotonicity in α). */
export function skellamRdp(alpha: number, m: SkellamMechanism): number {
  checkMechanism(m);
  if (typeof alpha !== 'number' || Number.isNaN(alpha) || !(alpha > 1)) throw new RangeError(`Rényi order α must be > 1, got ${String(alpha)}`);
  if (alpha === Infinity) return m.l2Sensitivity === 0 ? 0 : Infinity;
  if (m.mu === Infinity) return 0;
  const a = Math.ceil(alpha);
  const v = 2 * m.mu;
  const d2sq = m.l2Sensitivity * m.l2Sensitivity;
  const d1 = m.l1Sensitivity;
  const gaussian = (a * d2sq) / (2 * v);
  const discrete = Math.min(((2 * a - 1) * d2sq + 6 * d1) / (4 * v * v), (3 * d1) / (2 * v));
  return gaussian + discrete;
}

/** RDP curve of `rounds` independent releases (composition adds RDP, Mironov 2017 Prop. 1). */
export function skellamRdpCurve(m: SkellamMechanism, rounds = 1, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  checkMechanism(m);
  checkSteps(rounds);
  checkOrders(orders);
  return orders.map((a) => (rounds === 0 ? 0 : skellamRdp(a, m) * rounds));
}

/** (ε, δ) after `rounds` releases of the Skellam mechanism. */
export function skellamEpsilon(m: SkellamMechanism, rounds: number, delta: number, orders: readonly number[] = DEFAULT_ORDERS): PrivacySpent {
  checkDelta(delta);
  return rdpToEpsilon(orders, skellamRdpCurve(m, rounds, orders), delta);
}

export interface SkellamMuForOptions {
  targetEpsilon: number;
  delta: number;
  rounds: number;
  l1Sensitivity: number;
  l2Sensitivity: number;
  orders?: readonly number[];
  /** Stop when the ε reached is within this relative tolerance below the target; default 1e-4. */
  relativeTolerance?: number;
  /** Largest total μ considered before declaring the budget impossible; default 1e30. */
  maxMu?: number;
}

/**
 * Smallest-found total Skellam parameter μ (the sum's Poisson(μ) − Poisson(μ)) with
 * ε(μ) ≤ targetEpsilon after `rounds` releases, always on the safe side. ε is decreasing in μ (every
 * term of Thm 3.5 is), so, as calibrate.ts does for σ, we grow μ geometrically until the target is
 * met and then bisect (on log μ, since μ spans many orders of magnitude).
 */
export function skellamMuFor(o: SkellamMuForOptions): number {
  const { targetEpsilon, delta, rounds } = o;
  if (typeof targetEpsilon !== 'number' || !Number.isFinite(targetEpsilon) || targetEpsilon <= 0) {
    throw new RangeError(`target ε must be a finite number > 0, got ${String(targetEpsilon)}`);
  }
  checkDelta(delta);
  checkSteps(rounds);
  if (rounds === 0) throw new RangeError('nothing is released in 0 rounds: no Skellam μ to calibrate');
  const orders = o.orders ?? DEFAULT_ORDERS;
  checkOrders(orders);
  const relTol = o.relativeTolerance ?? 1e-4;
  const cap = o.maxMu ?? 1e30;
  const mech = (mu: number): SkellamMechanism => ({ l1Sensitivity: o.l1Sensitivity, l2Sensitivity: o.l2Sensitivity, mu });
  checkMechanism(mech(1));
  if (o.l2Sensitivity === 0) throw new RangeError('ℓ2 sensitivity 0: the query releases nothing private, no noise is needed');
  const eps = (mu: number) => skellamEpsilon(mech(mu), rounds, delta, orders).epsilon;

  // Start at the Gaussian-equivalent scale so the bracket is found in a few doublings.
  let hi = Math.max(1e-6, (o.l2Sensitivity * o.l2Sensitivity) / 2);
  let epsHi = eps(hi);
  while (epsHi > targetEpsilon) {
    if (hi >= cap) {
      throw new ImpossibleBudgetError(
        `cannot reach ε = ${targetEpsilon} at δ = ${delta} over ${rounds} rounds with Skellam μ ≤ ${cap} ` +
          `(Δ2 = ${o.l2Sensitivity}, Δ1 = ${o.l1Sensitivity}): ε = ${epsHi.toPrecision(4)} there. Raise ε or run fewer rounds.`,
      );
    }
    hi = Math.min(hi * 4, cap);
    epsHi = eps(hi);
  }
  let lo = hi / 4;
  if (eps(lo) <= targetEpsilon) {
    // The starting point already met the target: walk down until it does not.
    while (lo > 1e-12 && eps(lo) <= targetEpsilon) {
      hi = lo;
      lo /= 4;
    }
    epsHi = eps(hi);
  }
  // Invariant: ε(hi) ≤ target < ε(lo); bisect on log μ.
  return bisectToTarget(eps, targetEpsilon, { lo, hi, epsHi }, { relTol, midpoint: (a, b) => Math.sqrt(a * b) });
}
