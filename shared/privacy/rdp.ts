// Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism (DP-SGD) and the plain
// Gaussian mechanism (noisy counts / histograms), with conversion to (ε, δ).
//
// References:
//  - Mironov 2017, "Rényi Differential Privacy" (composition, Gaussian RDP α/(2σ²)).
//  - Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism",
//    arXiv:1908.10530: §3.2 (integer α, binomial expansion) and §3.3 (fractional α, series with erfc).
//  - Balle, Barthe, Gaboardi, Hsu & Sato 2020, "Hypothesis testing interpretations and Rényi DP",
//    Thm 21; Canonne, Kamath & Steinke 2020 Prop. 12: the improved RDP→(ε,δ) conversion that
//    Opacus `get_privacy_spent` and TF-Privacy use.
// Everything is computed in log space so no intermediate overflows; all functions are pure.

/** Opacus's default order grid: 1.1, 1.2, …, 10.9, then 12 … 63, extended with larger orders
 *  (useful at tiny ε or huge step counts, where the optimum moves to large α). */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
  80, 96, 128, 160, 192, 256, 384, 512, 768, 1024,
]);

// ---------------------------------------------------------------- validation

function checkFinite(name: string, v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${name} must be a finite number, got ${String(v)}`);
}
export function checkSampleRate(q: number): void {
  checkFinite('sample rate q', q);
  if (q < 0 || q > 1) throw new RangeError(`sample rate q must lie in [0, 1], got ${q}`);
}
export function checkNoiseMultiplier(sigma: number): void {
  if (typeof sigma !== 'number' || Number.isNaN(sigma) || sigma <= 0) {
    throw new RangeError(`noise multiplier σ must be > 0, got ${String(sigma)}`);
  }
}
export function checkDelta(delta: number): void {
  checkFinite('δ', delta);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`δ must lie in (0, 1), got ${delta}`);
}
export function checkSteps(steps: number): void {
  checkFinite('steps', steps);
  if (steps < 0 || !Number.isInteger(steps)) throw new RangeError(`steps must be a non-negative integer, got ${steps}`);
}
export function checkOrders(orders: readonly number[]): void {
  if (!Array.isArray(orders) || orders.length === 0) throw new RangeError('orders must be a non-empty list of Rényi orders α > 1');
  for (const a of orders) {
    if (typeof a !== 'number' || Number.isNaN(a) || !(a > 1)) throw new RangeError(`every Rényi order α must be > 1, got ${String(a)}`);
  }
}

// ---------------------------------------------------------------- special functions

/** log(exp(a) + exp(b)) without overflow. */
export function logAdd(a: number, b: number): number {
  const hi = Math.max(a, b);
  const lo = Math.min(a, b);
  if (lo === -Infinity) return hi;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/** log(exp(a) − exp(b)) for a ≥ b; −∞ when equal. */
export function logSub(a: number, b: number): number {
  if (a < b) throw new RangeError(`logSub: result would be negative (log ${a} < log ${b})`);
  if (b === -Infinity) return a;
  if (a === b) return -Infinity;
  const d = b - a; // ≤ 0
  // log(1 − e^d): use log(−expm1(d)) near 0, log1p(−e^d) further out (Mächler 2012).
  return a + (d > -Math.LN2 ? Math.log(-Math.expm1(d)) : Math.log1p(-Math.exp(d)));
}

// Lanczos approximation, g = 7, n = 9 (Numerical Recipes 3rd ed. §6.1 / Godfrey's coefficients),
// relative error ~1e-15 for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** log|Γ(x)| for real x that is not a non-positive integer (reflection for x < 0.5). */
export function logGamma(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x <= 0 && Number.isInteger(x)) return Infinity; // poles
  if (x < 0.5) {
    // Γ(x)Γ(1−x) = π / sin(πx)
    return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  }
  const y = x - 1;
  let s = LANCZOS[0];
  const t = y + 7.5;
  for (let i = 1; i < 9; i++) s += LANCZOS[i] / (y + i);
  return HALF_LOG_2PI + (y + 0.5) * Math.log(t) - t + Math.log(s);
}

/** log C(n, k) for integers 0 ≤ k ≤ n, via lgamma (exact small cases to avoid rounding). */
export function logBinomial(n: number, k: number): number {
  if (k < 0 || k > n) return -Infinity;
  if (k === 0 || k === n) return 0;
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
}

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

/** log Φ(x), Φ the standard normal CDF, accurate in the far tails (no underflow to −∞). */
export function logNormalCdf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return 0;
  if (x === -Infinity) return -Infinity;
  if (x < -3) return logMillsTail(-x);
  if (x > 3) return Math.log1p(-Math.exp(logMillsTail(x)));
  // |x| ≤ 3: erf by its all-positive series erf(z) = 2/√π e^{−z²} Σ 2ⁿ z^{2n+1} / (2n+1)!!
  // (Abramowitz & Stegun 7.1.6): no cancellation inside the sum.
  const z = Math.abs(x) / Math.SQRT2;
  let term = z;
  let sum = z;
  for (let n = 1; n < 200; n++) {
    term *= (2 * z * z) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  const erf = (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * sum;
  return x >= 0 ? Math.log(0.5 + 0.5 * erf) : Math.log(0.5 * (1 - erf));
}

/** log Φ(−t) for t > 3 via the Laplace continued fraction of the Mills ratio
 *  Φ(−t) = φ(t) / (t + 1/(t + 2/(t + 3/(t + …)))) (A&S 26.2.14), evaluated by modified Lentz. */
function logMillsTail(t: number): number {
  const tiny = 1e-300;
  let f = t;
  let c = t;
  let d = 0;
  for (let k = 1; k < 5000; k++) {
    d = t + k * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = t + k / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return -0.5 * t * t - LOG_SQRT_2PI - Math.log(f);
}

// ---------------------------------------------------------------- sampled Gaussian

/** log A_α for integer α (Mironov-Talwar-Zhang 2019 §3.2):
 *  A_α = Σ_{k=0}^{α} C(α,k) (1−q)^{α−k} q^k exp((k²−k)/(2σ²)). */
export function logAIntegerOrder(q: number, sigma: number, alpha: number): number {
  const lq = Math.log(q);
  const l1q = Math.log1p(-q);
  let logA = -Infinity;
  for (let k = 0; k <= alpha; k++) {
    const s = logBinomial(alpha, k) + k * lq + (alpha - k) * l1q + (k * k - k) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
  }
  return logA;
}

/** log A_α for fractional α (Mironov-Talwar-Zhang 2019 §3.3): two convergent series split at
 *  z₀ = σ² log(1/q − 1) + ½, with signed generalised binomial coefficients C(α, i). */
export function logAFractionalOrder(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const lq = Math.log(q);
  const l1q = Math.log1p(-q);
  // |C(α, i)| and its sign by the recurrence C(α, i) = C(α, i−1)(α − i + 1)/i: for fractional α
  // lgamma would need signed arguments; the recurrence is exact up to rounding and cheap.
  let logAbsCoef = 0;
  let sign = 1;
  for (let i = 0; i < 100_000; i++) {
    if (i > 0) {
      const f = alpha - i + 1;
      logAbsCoef += Math.log(Math.abs(f)) - Math.log(i);
      if (f < 0) sign = -sign;
    }
    const j = alpha - i;
    const logT0 = logAbsCoef + i * lq + j * l1q;
    const logT1 = logAbsCoef + j * lq + i * l1q;
    // ½ erfc((i − z₀)/(√2σ)) = Φ((z₀ − i)/σ)
    const logE0 = logNormalCdf((z0 - i) / sigma);
    const logE1 = logNormalCdf((j - z0) / sigma);
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (sign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      // Alternating tail terms are tiny against the leading ones; guard rounding at the floor.
      logA0 = logS0 > logA0 ? logA0 : logSub(logA0, logS0);
      logA1 = logS1 > logA1 ? logA1 : logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
  }
  return logAdd(logA0, logA1);
}

/** RDP ε(α) of ONE step of the Poisson-subsampled Gaussian mechanism with sampling rate q and
 *  noise multiplier σ (noise std / clipping norm). q = 0 releases nothing; q = 1 is the plain
 *  Gaussian mechanism α/(2σ²). */
export function rdpSampledGaussian(q: number, sigma: number, alpha: number): number {
  checkSampleRate(q);
  checkNoiseMultiplier(sigma);
  if (!(alpha > 1)) throw new RangeError(`Rényi order α must be > 1, got ${alpha}`);
  if (q === 0) return 0;
  if (sigma === Infinity) return 0;
  if (alpha === Infinity) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  const logA = Number.isInteger(alpha) ? logAIntegerOrder(q, sigma, alpha) : logAFractionalOrder(q, sigma, alpha);
  // A_α ≥ 1 mathematically; clamp rounding below 0 and map overflow to +∞ (never NaN).
  const r = logA / (alpha - 1);
  if (Number.isNaN(r)) return Infinity;
  return Math.max(0, r);
}

/** RDP curve of `steps` compositions of the sampled Gaussian (RDP composes additively, Mironov 2017 Prop. 1). */
export function computeRdp(q: number, sigma: number, steps: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  checkSampleRate(q);
  checkNoiseMultiplier(sigma);
  checkSteps(steps);
  checkOrders(orders);
  return orders.map((a) => (steps === 0 ? 0 : rdpSampledGaussian(q, sigma, a) * steps));
}

/** RDP of the Gaussian mechanism with L2 sensitivity Δ and noise std σ_abs: α Δ² / (2 σ_abs²)
 *  (Mironov 2017, Prop. 7). For a noisy histogram/count vector where one record changes one
 *  bin by 1, Δ = 1 (replace-one changes two bins: Δ = √2 — the caller states which). */
export function rdpGaussian(noiseStd: number, sensitivity: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  checkNoiseMultiplier(noiseStd);
  checkFinite('sensitivity', sensitivity);
  if (sensitivity < 0) throw new RangeError(`sensitivity must be ≥ 0, got ${sensitivity}`);
  checkOrders(orders);
  return orders.map((a) => (a * sensitivity * sensitivity) / (2 * noiseStd * noiseStd));
}

/** Per-order sum of RDP curves (composition). */
export function composeRdp(...curves: readonly (readonly number[])[]): number[] {
  if (curves.length === 0) throw new RangeError('composeRdp needs at least one RDP curve');
  const n = curves[0].length;
  for (const c of curves) if (c.length !== n) throw new RangeError(`RDP curves over different order grids (${c.length} vs ${n} orders)`);
  const out = new Array<number>(n).fill(0);
  for (const c of curves) for (let i = 0; i < n; i++) out[i] += c[i];
  return out;
}

export interface PrivacySpent {
  epsilon: number;
  /** The Rényi order at which the bound is tightest. */
  bestOrder: number;
}

/** (ε, δ) from an RDP curve with the improved conversion (Balle et al. 2020 Thm 21; as Opacus
 *  `get_privacy_spent`): ε = rdp(α) − (log δ + log α)/(α − 1) + log((α − 1)/α), minimised over α. */
export function rdpToEpsilon(orders: readonly number[], rdp: readonly number[], delta: number): PrivacySpent {
  checkOrders(orders);
  checkDelta(delta);
  if (rdp.length !== orders.length) throw new RangeError(`rdp has ${rdp.length} values for ${orders.length} orders`);
  let best = Infinity;
  let bestOrder = NaN;
  const logDelta = Math.log(delta);
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i];
    const r = rdp[i];
    if (Number.isNaN(r)) throw new RangeError(`rdp value at order ${a} is NaN`);
    if (r < 0) throw new RangeError(`rdp value at order ${a} is negative (${r})`);
    const eps = r - (logDelta + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
    if (eps < best) {
      best = eps;
      bestOrder = a;
    }
  }
  // The conversion can go slightly negative when rdp ≈ 0; ε is never below 0.
  return { epsilon: Math.max(0, best), bestOrder };
}

/** ε of `steps` DP-SGD steps at (q, σ) for a given δ. */
export function dpSgdEpsilon(q: number, sigma: number, steps: number, delta: number, orders: readonly number[] = DEFAULT_ORDERS): PrivacySpent {
  checkDelta(delta);
  return rdpToEpsilon(orders, computeRdp(q, sigma, steps, orders), delta);
}
