import { describe, expect, it } from 'vitest';
import { DEFAULT_ORDERS, composeRdp, computeRdp, dpSgdEpsilon, logGamma, logNormalCdf, rdpGaussian, rdpSampledGaussian, rdpToEpsilon } from '../../shared/privacy/rdp';
import { ImpossibleBudgetError, epsilonFor, noiseMultiplierFor } from '../../shared/privacy/calibrate';

// Independent check: A_α = E_{z~N(0,σ²)} [(1 − q + q·exp((2z − 1)/(2σ²)))^α] (Mironov-Talwar-Zhang
// 2019 eq. for the sampled Gaussian; the same integral google/differential-privacy's
// rdp_privacy_accountant_test evaluates with mpmath) by composite Simpson quadrature in log space.
function rdpByQuadrature(q: number, sigma: number, alpha: number): number {
  const lo = -40 * sigma - 20 * alpha;
  const hi = 40 * sigma + 20 * alpha;
  const n = 200_000;
  const h = (hi - lo) / n;
  const logf = (z: number) => {
    const logMu0 = -(z * z) / (2 * sigma * sigma) - Math.log(sigma * Math.sqrt(2 * Math.PI));
    const t = (2 * z - 1) / (2 * sigma * sigma) + Math.log(q);
    const a = Math.log1p(-q);
    const m = Math.max(a, t);
    return logMu0 + alpha * (m + Math.log(Math.exp(a - m) + Math.exp(t - m)));
  };
  let peak = -Infinity;
  for (let i = 0; i <= n; i++) peak = Math.max(peak, logf(lo + i * h));
  let s = 0;
  for (let i = 0; i <= n; i++) {
    const w = i === 0 || i === n ? 1 : i % 2 ? 4 : 2;
    s += w * Math.exp(logf(lo + i * h) - peak);
  }
  return (peak + Math.log((s * h) / 3)) / (alpha - 1);
}

describe('RDP of the sampled Gaussian', () => {
  it('matches Opacus published value (opacus/tests/accountants_test.py: σ=1.5, q=0.04, 2250 steps, δ=1e-5 → ε=7.32911117143)', () => {
    expect(dpSgdEpsilon(0.04, 1.5, 2250, 1e-5).epsilon).toBeCloseTo(7.32911117143, 6);
  });

  it.each([
    [0.01, 1.1, 2],
    [0.01, 1.1, 7.5],
    [0.04, 1.5, 3.9],
    [0.1, 0.8, 2.5],
    [0.2, 2, 16],
    [0.004, 1.0, 32.3],
  ])('agrees with numerical integration within 1%% (q=%f, σ=%f, α=%f)', (q, sigma, alpha) => {
    const closed = rdpSampledGaussian(q, sigma, alpha);
    const numeric = rdpByQuadrature(q, sigma, alpha);
    expect(Math.abs(closed - numeric) / numeric).toBeLessThan(0.01);
  });

  it('handles q=0, q=1 and extreme inputs without NaN', () => {
    expect(rdpSampledGaussian(0, 1, 5)).toBe(0);
    expect(rdpSampledGaussian(1, 2, 5)).toBeCloseTo(5 / 8, 12);
    for (const a of DEFAULT_ORDERS) {
      const r = rdpSampledGaussian(0.999, 0.05, a);
      expect(Number.isNaN(r)).toBe(false);
      expect(r).toBeGreaterThan(0);
    }
    expect(Number.isFinite(dpSgdEpsilon(1e-9, 100, 10, 1e-12).epsilon)).toBe(true);
  });

  it('RDP is increasing in α and composes linearly in steps', () => {
    const one = computeRdp(0.05, 1.2, 1);
    const many = computeRdp(0.05, 1.2, 37);
    for (let i = 0; i < one.length; i++) {
      expect(many[i]).toBeCloseTo(37 * one[i], 9);
      if (i > 0) expect(one[i]).toBeGreaterThanOrEqual(one[i - 1] * (1 - 1e-9));
    }
  });

  it('conversion uses the improved bound (never worse than the classic rdp + log(1/δ)/(α−1))', () => {
    const rdp = computeRdp(0.02, 1, 1000);
    const improved = rdpToEpsilon(DEFAULT_ORDERS, rdp, 1e-5).epsilon;
    const classic = Math.min(...DEFAULT_ORDERS.map((a, i) => rdp[i] + Math.log(1e5) / (a - 1)));
    expect(improved).toBeLessThan(classic);
  });

  it('special functions are accurate', () => {
    expect(logGamma(11)).toBeCloseTo(Math.log(3628800), 11);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
    expect(logNormalCdf(0)).toBeCloseTo(Math.log(0.5), 14);
    // Φ(−1.96) = 0.0249978951482204 (standard table value)
    expect(Math.exp(logNormalCdf(-1.96))).toBeCloseTo(0.0249978951482204, 12);
    // Far tail: log Φ(−x) = −x²/2 − log(x√(2π)) + log(1 − 1/x² + 3/x⁴ − 15/x⁶ + …) (A&S 26.2.12)
    const x = 40;
    expect(logNormalCdf(-x)).toBeCloseTo(-800 - Math.log(x * Math.sqrt(2 * Math.PI)) + Math.log(1 - 1 / x ** 2 + 3 / x ** 4 - 15 / x ** 6), 9);
  });

  it('rejects invalid inputs with specific messages', () => {
    expect(() => computeRdp(1.5, 1, 10)).toThrow(/sample rate q must lie in \[0, 1\]/);
    expect(() => computeRdp(0.1, 0, 10)).toThrow(/noise multiplier σ must be > 0/);
    expect(() => computeRdp(0.1, 1, -1)).toThrow(/steps must be a non-negative integer/);
    expect(() => dpSgdEpsilon(0.1, 1, 10, 1)).toThrow(/δ must lie in \(0, 1\)/);
  });
});

describe('calibration', () => {
  it('noiseMultiplierFor inverts epsilonFor, on the safe side, within tolerance', () => {
    for (const [eps, q, steps] of [[1, 0.01, 1000], [8, 0.04, 2250], [0.5, 0.001, 5000]] as const) {
      const sigma = noiseMultiplierFor({ targetEpsilon: eps, delta: 1e-5, sampleRate: q, steps });
      const reached = epsilonFor({ sampleRate: q, noiseMultiplier: sigma, steps, delta: 1e-5 });
      expect(reached).toBeLessThanOrEqual(eps);
      expect(eps - reached).toBeLessThanOrEqual(Math.max(0.01, 1e-3 * eps) + 1e-12);
    }
  });

  it('calibrates against a prior RDP curve: the composition reaches the total, with less noise than splitting ε', () => {
    const delta = 1e-5;
    const q = 0.07;
    const steps = 320;
    // A DP summary that costs ε = 0.2 on its own (Gaussian, sensitivity 1).
    const z = noiseMultiplierFor({ targetEpsilon: 0.2, delta, sampleRate: 1, steps: 1 });
    const prior = rdpGaussian(z, 1);
    const sigma = noiseMultiplierFor({ targetEpsilon: 1, delta, sampleRate: q, steps, priorRdp: prior });
    const total = rdpToEpsilon(DEFAULT_ORDERS, composeRdp(prior, computeRdp(q, sigma, steps)), delta).epsilon;
    expect(total).toBeLessThanOrEqual(1);
    expect(total).toBeGreaterThan(0.99);
    // Splitting ε (0.2 + 0.8) needs a larger σ, and the parts compose to well under 1.
    const split = noiseMultiplierFor({ targetEpsilon: 0.8, delta, sampleRate: q, steps });
    expect(split).toBeGreaterThan(sigma * 1.1);
    expect(rdpToEpsilon(DEFAULT_ORDERS, composeRdp(prior, computeRdp(q, split, steps)), delta).epsilon).toBeLessThan(0.9);
    // Nothing left: a prior that already spends the total.
    expect(() => noiseMultiplierFor({ targetEpsilon: 0.2, delta, sampleRate: q, steps, priorRdp: rdpGaussian(z / 2, 1) })).toThrow(/already spent/);
    expect(() => noiseMultiplierFor({ targetEpsilon: 1, delta, sampleRate: q, steps, priorRdp: [1, 2] })).toThrow(/one non-negative value per order/);
  });

  it('refuses an impossible budget loudly', () => {
    expect(() => noiseMultiplierFor({ targetEpsilon: 1e-4, delta: 1e-5, sampleRate: 0.5, steps: 100_000 })).toThrow(ImpossibleBudgetError);
    expect(() => noiseMultiplierFor({ targetEpsilon: 0, delta: 1e-5, sampleRate: 0.5, steps: 10 })).toThrow(/target ε must be/);
  });
});
