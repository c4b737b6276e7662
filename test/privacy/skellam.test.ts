import { describe, expect, it } from 'vitest';
import { CryptoRandom, MAX_SKELLAM_MU, PTRS_MIN_MU, logPoissonPmf, poissonSample, skellam } from '../../shared/privacy/secure-noise';
import { integerL1Bound, skellamEpsilon, skellamMuFor, skellamRdp, skellamRdpCurve, type SkellamMechanism } from '../../shared/privacy/skellam';
import { DEFAULT_ORDERS, logNormalCdf, rdpGaussian, rdpToEpsilon } from '../../shared/privacy/rdp';
import { ImpossibleBudgetError } from '../../shared/privacy/calibrate';

const rng = new CryptoRandom();

function logSumExp(xs: readonly number[]): number {
  const m = Math.max(...xs);
  if (m === -Infinity) return m;
  let s = 0;
  for (const x of xs) s += Math.exp(x - m);
  return m + Math.log(s);
}

// log k! by cumulative sums of logs: independent of the sampler's Stirling/bd0 evaluation.
function logFactorials(n: number): Float64Array {
  const t = new Float64Array(n + 1);
  for (let i = 1; i <= n; i++) t[i] = t[i - 1] + Math.log(i);
  return t;
}

// Chi-square critical value at upper-tail probability 1e-6 (Wilson–Hilferty, z = 4.753): a correct
// sampler fails this once in a million runs, a wrong pmf (bias of a few % in any cell) fails it surely.
function chiSquareCritical(dof: number): number {
  const z = 4.753;
  const c = 2 / (9 * dof);
  return dof * (1 - c + z * Math.sqrt(c)) ** 3;
}

// Pearson chi-square of integer samples against cell probabilities; cells merge from the left until
// each expects ≥ 20 draws, the two tails go into the outer cells.
function chiSquare(samples: ArrayLike<number>, lo: number, hi: number, prob: (k: number) => number): { stat: number; dof: number } {
  const counts = new Map<number, number>();
  for (let i = 0; i < samples.length; i++) {
    const k = Math.min(hi, Math.max(lo, samples[i]));
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const n = samples.length;
  const cells: { e: number; o: number }[] = [];
  let e = 0;
  let o = 0;
  let pLeft = 0;
  for (let k = lo; k <= hi; k++) {
    const p = prob(k);
    pLeft += p;
    e += p * n;
    o += counts.get(k) ?? 0;
    if (e >= 20) {
      cells.push({ e, o });
      e = 0;
      o = 0;
    }
  }
  // Whatever probability is outside [lo, hi] plus the unfinished last cell joins the last cell.
  const last = cells[cells.length - 1]!;
  last.e += e + Math.max(0, 1 - pLeft) * n;
  last.o += o;
  let stat = 0;
  for (const c of cells) stat += (c.o - c.e) ** 2 / c.e;
  return { stat, dof: cells.length - 1 };
}

describe('Skellam sampler (Knuth below μ = 10, Hörmann PTRS above)', () => {
  it.each([1, 50, 1e4, 1e8, 1e12])('Sk(%d): mean ≈ 0 and variance ≈ 2μ within 5 standard errors', (mu) => {
    const n = 200_000;
    const x = skellam(n, mu, rng);
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      s += x[i];
      s2 += x[i] * x[i];
    }
    const v = 2 * mu;
    expect(Math.abs(s / n)).toBeLessThan(5 * Math.sqrt(v / n));
    // Known mean 0: Σx²/n estimates V with variance (E x⁴ − V²)/n = V²(2 + κ)/n, κ = 1/V the
    // Skellam excess kurtosis.
    expect(Math.abs(s2 / n / v - 1)).toBeLessThan(5 * Math.sqrt((2 + 1 / v) / n));
  });

  it('Sk(a) + Sk(b) has the variance of Sk(a + b) (two-sample test, across the Knuth/PTRS switch)', () => {
    const n = 200_000;
    for (const [a, b] of [[3, 40], [7.5, 2.5], [1e6, 3e6]] as const) {
      const xa = skellam(n, a, rng);
      const xb = skellam(n, b, rng);
      const xc = skellam(n, a + b, rng);
      let sSum = 0;
      let sDirect = 0;
      for (let i = 0; i < n; i++) {
        sSum += (xa[i] + xb[i]) ** 2;
        sDirect += xc[i] ** 2;
      }
      const v = 2 * (a + b);
      const se = v * Math.sqrt((2 * (2 + 1 / v)) / n); // SE of the difference of two independent estimates
      expect(Math.abs(sSum / n - sDirect / n)).toBeLessThan(5 * se);
      expect(Math.abs(sDirect / n / v - 1)).toBeLessThan(5 * Math.sqrt((2 + 1 / v) / n));
    }
  });

  it.each([3, PTRS_MIN_MU, 37.5, 1e4])('Poisson(%d) passes a chi-square test against the exact pmf', (mu) => {
    const n = 1_000_000;
    const x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = poissonSample(mu, rng);
    const hi = Math.ceil(mu + 12 * Math.sqrt(mu) + 30);
    const lf = logFactorials(hi);
    const { stat, dof } = chiSquare(x, 0, hi, (k) => Math.exp(k * Math.log(mu) - mu - lf[k]));
    expect(dof).toBeGreaterThan(5);
    expect(stat).toBeLessThan(chiSquareCritical(dof));
  });

  it('Poisson(1e9) is exactly centred and matches the normal shape at n = 1M (its skewness 3e-5 is invisible there)', () => {
    const mu = 1e9;
    const sd = Math.sqrt(mu);
    const n = 1_000_000;
    const x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.floor((poissonSample(mu, rng) - mu) / (sd / 8)); // bins of sd/8
    const cdf = (b: number) => Math.exp(logNormalCdf((b * sd) / 8 / sd));
    const { stat, dof } = chiSquare(x, -40, 40, (b) => (b === -40 ? cdf(-39) : cdf(b + 1) - cdf(b)));
    expect(stat).toBeLessThan(chiSquareCritical(dof));
  });

  it('Skellam(5) passes a chi-square test against the pmf of Poisson(5) − Poisson(5) by convolution', () => {
    const mu = 5;
    const lf = logFactorials(200);
    const lp = (j: number) => j * Math.log(mu) - mu - lf[j];
    const pmf = (k: number) => {
      const a = Math.abs(k);
      let s = 0;
      for (let j = 0; j + a <= 200; j++) s += Math.exp(lp(j) + lp(j + a));
      return s;
    };
    const x = skellam(200_000, mu, rng);
    const { stat, dof } = chiSquare(x, -30, 30, pmf);
    expect(stat).toBeLessThan(chiSquareCritical(dof));
  });

  it('log Poisson pmf (Stirling + bd0) agrees with Σ log i, normalises at μ = 1e8, keeps exact ratios at μ = 1e12', () => {
    for (const mu of [10, 20, 1e4]) {
      const lf = logFactorials(Math.ceil(mu * 2 + 100));
      for (let k = 0; k < mu * 2 + 100; k += k < 40 ? 1 : 7) {
        expect(Math.abs(logPoissonPmf(k, mu) - (k * Math.log(mu) - mu - lf[k]))).toBeLessThan(1e-9 * Math.max(1, Math.abs(lf[k])));
      }
    }
    const mu = 1e8;
    const sd = 1e4;
    let total = 0;
    let mean = 0;
    for (let k = mu - 40 * sd; k <= mu + 40 * sd; k++) {
      const p = Math.exp(logPoissonPmf(k, mu));
      total += p;
      mean += p * (k - mu);
    }
    expect(Math.abs(total - 1)).toBeLessThan(1e-9);
    expect(Math.abs(mean)).toBeLessThan(1e-5);
    // At μ = 1e12 (where the naive k·log μ − μ − log k! loses ~1e-2): consecutive ratios
    // p(k+1)/p(k) = μ/(k+1) hold to 1e-12 over ±8 sd, also for a non-integer μ.
    for (const big of [1e12, 1e12 + 0.37]) {
      const s = Math.sqrt(big);
      for (let j = -8; j <= 8; j += 0.05) {
        const k = Math.floor(big + j * s);
        expect(Math.abs(logPoissonPmf(k + 1, big) - logPoissonPmf(k, big) - Math.log(big / (k + 1)))).toBeLessThan(1e-12);
      }
      expect(logPoissonPmf(Math.floor(big), big)).toBeCloseTo(-0.5 * Math.log(2 * Math.PI * big), 6);
    }
    expect(logPoissonPmf(-1, 5)).toBe(-Infinity);
    expect(logPoissonPmf(0, 0)).toBe(0);
  });

  it('rejects μ outside [0, MAX_SKELLAM_MU] and is not reproducible', () => {
    expect(() => skellam(10, -1)).toThrow(/μ must be a finite number/);
    expect(() => skellam(10, MAX_SKELLAM_MU * 2)).toThrow(/μ must be a finite number/);
    expect(() => skellam(10, NaN)).toThrow(/μ must be a finite number/);
    expect(Array.from(skellam(5, 0))).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(skellam(64, 1e6))).not.toEqual(Array.from(skellam(64, 1e6)));
  });
});

// ------------------------------------------------------------------------------------------ accountant

// Exact log pmf of Poisson(m) − Poisson(m) on [−K, K]: P(k) = Σ_j Pois(j) Pois(j + |k|), in log space.
function skellamLogPmf(m: number, K: number): Float64Array {
  const J = Math.ceil(m + 60 * Math.sqrt(m) + 200);
  const lf = logFactorials(J + K + 1);
  const lp = (j: number) => j * Math.log(m) - m - lf[j];
  const out = new Float64Array(2 * K + 1);
  for (let k = 0; k <= K; k++) {
    const terms: number[] = [];
    for (let j = 0; j <= J; j++) terms.push(lp(j) + lp(j + k));
    out[K + k] = out[K - k] = logSumExp(terms);
  }
  return out;
}

// D_α(Sk(m) + Δ ‖ Sk(m)) = 1/(α−1) · log Σ_k P(k − Δ)^α P(k)^{1−α} (symmetric in ±Δ), truncated to [−K, K].
function exactRenyi(logPmf: Float64Array, shift: number, alpha: number): number {
  const K = (logPmf.length - 1) / 2;
  const terms: number[] = [];
  for (let k = -K + shift; k <= K; k++) terms.push(alpha * logPmf[K + k - shift] + (1 - alpha) * logPmf[K + k]);
  return logSumExp(terms) / (alpha - 1);
}

describe('Skellam RDP accountant (Agarwal, Kairouz & Liu 2021, Thm 3.5; variance = 2μ)', () => {
  it('approaches the Gaussian RDP α·Δ2²/(2·variance) as μ → ∞, from above', () => {
    const d = 10_000;
    const l2 = 1000;
    const l1 = integerL1Bound(l2, d);
    expect(l1).toBe(100 * l2);
    // Integer orders: the theorem's own; at a fractional α the accountant uses ⌈α⌉ (see below).
    const orders = DEFAULT_ORDERS.filter((a) => Number.isInteger(a));
    let prevExcess = Infinity;
    for (const mu of [1e6, 1e8, 1e10, 1e12]) {
      const sk = skellamRdpCurve({ l1Sensitivity: l1, l2Sensitivity: l2, mu }, 1, orders);
      const ga = rdpGaussian(Math.sqrt(2 * mu), l2, orders);
      let excess = 0;
      sk.forEach((r, i) => {
        expect(r).toBeGreaterThanOrEqual(ga[i]);
        excess = Math.max(excess, r / ga[i] - 1);
      });
      expect(excess).toBeLessThan(prevExcess);
      prevExcess = excess;
    }
    expect(prevExcess).toBeLessThan(1e-6);
    // …and so does (ε, δ).
    const mu = 1e12;
    const sigma = Math.sqrt(2 * mu);
    const eps = skellamEpsilon({ l1Sensitivity: l1, l2Sensitivity: l2, mu }, 50, 1e-6, orders).epsilon;
    const gaussEps = rdpToEpsilon(orders, rdpGaussian(sigma, l2, orders).map((r) => r * 50), 1e-6).epsilon;
    expect(eps).toBeGreaterThanOrEqual(gaussEps);
    expect(eps / gaussEps - 1).toBeLessThan(1e-5);
  });

  it('upper-bounds the exact Rényi divergence of shifted Skellam pmfs (Bessel-free: Poisson convolution), and is not loose for μ ≥ 20', () => {
    const K = 300;
    for (const m of [0.5, 1, 5, 20, 100]) {
      const pmf = skellamLogPmf(m, K);
      for (const shift of [1, 2, 4]) {
        for (const alpha of [2, 3, 8, 32]) {
          const exact = exactRenyi(pmf, shift, alpha);
          const bound = skellamRdp(alpha, { l1Sensitivity: shift, l2Sensitivity: shift, mu: m });
          expect(bound).toBeGreaterThanOrEqual(exact * (1 - 1e-9));
          // At m = 0.5, α = 32 the bound is ~20× the truth (the min{…} discreteness term dominates);
          // from m = 20 it is within a few % except at the largest order.
          expect(bound).toBeLessThan(25 * exact);
          if (m >= 20 && alpha <= 8) expect(bound).toBeLessThan(1.15 * exact);
          if (m >= 100) expect(bound).toBeLessThan(1.1 * exact);
        }
      }
    }
    // Two coordinates, shift (1, 2): product distributions, so the exact divergence adds over
    // coordinates; Thm 3.5 with Δ2 = √5, Δ1 = 3 must cover the sum.
    const pmf = skellamLogPmf(5, K);
    for (const alpha of [2, 5, 16]) {
      const exact = exactRenyi(pmf, 1, alpha) + exactRenyi(pmf, 2, alpha);
      const bound = skellamRdp(alpha, { l1Sensitivity: 3, l2Sensitivity: Math.sqrt(5), mu: 5 });
      expect(bound).toBeGreaterThanOrEqual(exact);
      expect(bound).toBeLessThan(3 * exact);
    }
  });

  it('bounds fractional orders by the next integer order, composes linearly, rejects bad input', () => {
    const m: SkellamMechanism = { l1Sensitivity: 40, l2Sensitivity: 10, mu: 200 };
    expect(skellamRdp(2.5, m)).toBe(skellamRdp(3, m));
    expect(skellamRdp(1.1, m)).toBe(skellamRdp(2, m));
    const one = skellamRdpCurve(m, 1);
    skellamRdpCurve(m, 7).forEach((r, i) => expect(r).toBeCloseTo(7 * one[i], 12));
    expect(skellamRdpCurve(m, 0).every((r) => r === 0)).toBe(true);
    expect(() => skellamRdp(1, m)).toThrow(/α must be > 1/);
    expect(() => skellamRdp(2, { ...m, mu: 0 })).toThrow(/μ must be > 0/);
    expect(() => skellamRdp(2, { ...m, l2Sensitivity: -1 })).toThrow(/l2Sensitivity/);
    expect(() => integerL1Bound(3, 0)).toThrow(/dimension/);
  });

  it.each([
    [0.5, 1],
    [2, 100],
    [8, 1000],
  ])('calibrates μ for ε = %d over %d rounds: ε at the calibrated μ is ≤ target and within 1%%', (target, rounds) => {
    const l2 = 4096 + 300;
    const m = { l1Sensitivity: integerL1Bound(l2, 215_000), l2Sensitivity: l2 };
    const mu = skellamMuFor({ targetEpsilon: target, delta: 1e-6, rounds, ...m });
    const eps = skellamEpsilon({ ...m, mu }, rounds, 1e-6).epsilon;
    expect(eps).toBeLessThanOrEqual(target);
    expect(eps).toBeGreaterThan(0.99 * target);
    expect(skellamEpsilon({ ...m, mu: mu * 0.98 }, rounds, 1e-6).epsilon).toBeGreaterThan(target);
  });

  it('calibration reports an impossible budget instead of looping', () => {
    expect(() => skellamMuFor({ targetEpsilon: 0.01, delta: 1e-6, rounds: 10_000, l1Sensitivity: 1, l2Sensitivity: 1, maxMu: 10 })).toThrow(ImpossibleBudgetError);
    expect(() => skellamMuFor({ targetEpsilon: 1, delta: 1e-6, rounds: 0, l1Sensitivity: 1, l2Sensitivity: 1 })).toThrow(/0 rounds/);
  });
});
