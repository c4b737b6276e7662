import { describe, expect, it } from 'vitest';
import {
  dequantise,
  effectiveNoiseMultiplier,
  encodeUpdate,
  quantisationErrorBound,
  quantise,
  RING_MAX_SIGNED,
  ringAddInPlace,
  ringL2Sensitivity,
  ringParams,
  sampleRingNoise,
  SecAggError,
  worstCaseSumMagnitude,
} from '../../shared/secagg';
import { conditionalRoundingBound, MAX_ROUNDING_TRIES, quantiseConditional, ringL1Sensitivity } from '../../shared/secagg/ring';
import { floatSum, randomUpdate } from './helpers';

/** Signed L2 norm² of a ring vector. */
function normSq(q: Uint32Array): number {
  let s = 0;
  for (const v of q) s += (v | 0) ** 2;
  return s;
}

describe('ring parameters', () => {
  it('picks the largest power-of-two scale that cannot overflow', () => {
    for (const [S, n] of [[1, 3], [0.5, 10], [10, 100], [1, 255]] as const) {
      const p = ringParams({ clipNorm: S, maxBanks: n });
      expect(Math.log2(p.scale) % 1).toBe(0);
      expect(worstCaseSumMagnitude(p)).toBeLessThanOrEqual(RING_MAX_SIGNED);
      expect(worstCaseSumMagnitude({ ...p, scale: 2 * p.scale })).toBeGreaterThan(RING_MAX_SIGNED);
    }
  });

  it('rejects an explicit scale that could overflow, and leaves headroom for DP noise', () => {
    expect(() => ringParams({ clipNorm: 1, maxBanks: 3, scale: 2 ** 30 })).toThrow(SecAggError);
    const plain = ringParams({ clipNorm: 1, maxBanks: 10 });
    const noisy = ringParams({ clipNorm: 1, maxBanks: 10, scale: plain.scale / 4, noise: { mechanism: 'discreteGaussian', sigma: 1000 } });
    expect(worstCaseSumMagnitude(noisy)).toBeLessThanOrEqual(RING_MAX_SIGNED);
    expect(() => ringParams({ clipNorm: 1, maxBanks: 3, noise: { mechanism: 'discreteGaussian', sigma: 1e5 } })).toThrow(/exact sampler/);
    // The largest σ we accept really is sampleable by shared/privacy's exact sampler.
    expect(sampleRingNoise({ mechanism: 'discreteGaussian', sigma: 1400 }, 2000).length).toBe(2000);
  });

  it('worst case: n banks all at +S (or −S) on one coordinate decode exactly, no wrap-around', () => {
    for (const n of [3, 10, 100]) {
      const p = ringParams({ clipNorm: 2, maxBanks: n });
      for (const sign of [1, -1]) {
        const x = new Float32Array([sign * 2, 0, 0]);
        const sum = new Uint32Array(3);
        for (let i = 0; i < n; i++) ringAddInPlace(sum, encodeUpdate(x, p).ring);
        const got = dequantise(sum, p.scale)[0];
        expect(Math.sign(got)).toBe(sign);
        expect(Math.abs(got - sign * 2 * n)).toBeLessThan(quantisationErrorBound(p, n) + 2 * n * 1e-6);
      }
    }
  });
});

describe('stochastic rounding', () => {
  it('is unbiased: the mean of many roundings of 0.3 at scale 1 is 0.3', () => {
    const x = new Float64Array(200_000).fill(0.3);
    const q = quantise(x, 1);
    let ones = 0;
    let other = 0;
    for (const v of q) {
      if (v !== 0 && v !== 1) other++;
      ones += v;
    }
    expect(other).toBe(0);
    // binomial sd = sqrt(0.21/200000) ≈ 0.001; 6 sd
    expect(Math.abs(ones / x.length - 0.3)).toBeLessThan(0.0062);
  });

  it('negative values use two\'s complement and round to the neighbours', () => {
    const q = quantise(new Float64Array([-2.5, -0.25, 7]), 1);
    const s = Array.from(q, (v) => v | 0);
    expect([-3, -2]).toContain(s[0]);
    expect([-1, 0]).toContain(s[1]);
    expect(s[2]).toBe(7);
  });

  it('a deliberately biased rounder is caught by the unbiasedness check', () => {
    const x = new Float64Array(200_000).fill(0.3);
    const q = quantise(x, 1, (out) => out.fill(0)); // r = 0 always → always rounds up
    const mean = q.reduce((a, b) => a + b, 0) / x.length;
    expect(Math.abs(mean - 0.3)).toBeGreaterThan(0.5);
  });
});

describe('encode / dequantise the sum', () => {
  it('dequantised sum equals the float sum within n/scale per coordinate', () => {
    const d = 5000;
    for (const n of [3, 10]) {
      const p = ringParams({ clipNorm: 1, maxBanks: n });
      const ups = Array.from({ length: n }, (_, i) => randomUpdate(d, i % 2 ? 0.7 : 3, 100 + i)); // half of them need clipping
      const sum = new Uint32Array(d);
      for (const u of ups) ringAddInPlace(sum, encodeUpdate(u, p).ring);
      const got = dequantise(sum, p.scale);
      const want = floatSum(ups, 1);
      const bound = quantisationErrorBound(p, n);
      let worst = 0;
      for (let i = 0; i < d; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      expect(worst).toBeLessThan(bound);
      expect(worst).toBeGreaterThan(0); // it really is rounded
    }
  });

  it('clips before quantising (norm reported)', () => {
    const p = ringParams({ clipNorm: 1, maxBanks: 3 });
    const r = encodeUpdate(randomUpdate(100, 5, 7), p);
    expect(r.clipped).toBe(true);
    expect(r.norm).toBeCloseTo(5, 4);
    const x = dequantise(r.ring, p.scale);
    expect(Math.hypot(...x)).toBeLessThanOrEqual(1 + 10 / p.scale);
  });

  it('adds integer DP noise in the ring with the configured variance', () => {
    const d = 20_000;
    const sigma = 40;
    const p = ringParams({ clipNorm: 1, maxBanks: 3, scale: 1024, noise: { mechanism: 'discreteGaussian', sigma } });
    const zero = new Float32Array(d);
    const q = encodeUpdate(zero, p).ring;
    let s2 = 0;
    for (const v of q) s2 += (v | 0) ** 2;
    const sd = Math.sqrt(s2 / d);
    expect(sd).toBeGreaterThan(sigma * 0.95);
    expect(sd).toBeLessThan(sigma * 1.05);
    const sk = ringParams({ clipNorm: 1, maxBanks: 3, scale: 1024, noise: { mechanism: 'skellam', mu: 50 } });
    const q2 = encodeUpdate(new Float32Array(d), sk).ring;
    let v2 = 0;
    for (const v of q2) v2 += (v | 0) ** 2;
    expect(Math.sqrt(v2 / d)).toBeCloseTo(10, 0); // sqrt(2·50)
    expect(ringL2Sensitivity(p, d)).toBeCloseTo(1024 + Math.sqrt(d), 6);
    expect(effectiveNoiseMultiplier(p, d, 3)).toBeCloseTo((40 * Math.sqrt(3)) / (1024 + Math.sqrt(d)), 9);
  });
});

describe('conditional randomized rounding (Kairouz, Liu & Steinke 2021, Thm 1)', () => {
  it('bound: min{c + √d, √(c² + d/4 + √(2 ln 1/β)(c + √d/2))}, = c + √d at β = 0', () => {
    // c = 1000, d = 10⁴, β = e^{-1/2}: √(10⁶ + 2500 + 1·(1000 + 50)) = √1003550.
    expect(conditionalRoundingBound(1000, 10_000, Math.exp(-0.5))).toBeCloseTo(Math.sqrt(1_003_550), 9);
    expect(conditionalRoundingBound(1000, 10_000, 0)).toBe(1100);
    // Tiny c, tiny β: the second expression exceeds c + √d and the min takes the worst case.
    expect(conditionalRoundingBound(1, 4, 1e-12)).toBe(3);
    // d = 800k at S·scale = 2^20: inflation ~6e-7 instead of √d/(S·scale) ≈ 8.5e-4 unconditionally.
    const c = 2 ** 20;
    expect(conditionalRoundingBound(c, 800_000, Math.exp(-0.5)) / c - 1).toBeLessThan(1e-6);
    expect(() => conditionalRoundingBound(1, 10, 1)).toThrow(SecAggError);
    expect(() => conditionalRoundingBound(1, 0, 0.5)).toThrow(SecAggError);
    expect(() => ringParams({ clipNorm: 1, maxBanks: 3, roundingBeta: -0.1 })).toThrow(/β must lie in \[0, 1\)/);
  });

  // Worst case for the variance of the rounded norm: every coordinate halfway between integers.
  const d = 10_000;
  const x = new Float64Array(d).fill(2.5); // ‖x‖ = 250 = c at scale 1
  const c = 250;

  it('plain stochastic rounding exceeds the bound with probability ≤ β (so redraws are rare)', () => {
    const runs = 300;
    for (const beta of [0.5, 0.9]) {
      const limit = conditionalRoundingBound(c, d, beta) ** 2;
      let over = 0;
      for (let r = 0; r < runs; r++) if (normSq(quantise(x, 1)) > limit) over++;
      // Binomial(runs, ≤ β): 5 standard deviations of slack.
      expect(over / runs).toBeLessThan(beta + 5 * Math.sqrt((beta * (1 - beta)) / runs));
    }
  });

  it('conditional rounding always lands inside the bound, redraws when needed, biases the mean only slightly', () => {
    const beta = 0.9; // bound² only ≈ 0.55 sd above E‖q‖²: about 3 in 10 first draws are rejected
    const bound = conditionalRoundingBound(c, d, beta);
    let redraws = 0;
    let sum = 0;
    const runs = 100;
    for (let r = 0; r < runs; r++) {
      const { ring, tries } = quantiseConditional(x, 1, bound);
      expect(Math.sqrt(normSq(ring))).toBeLessThanOrEqual(bound);
      let outside = 0;
      for (const v of ring) {
        if (v !== 2 && v !== 3) outside++;
        sum += v;
      }
      expect(outside).toBe(0);
      redraws += tries - 1;
    }
    expect(redraws).toBeGreaterThan(0);
    // Conditioning favours shorter vectors: here the number of 3s is Binomial(d, ½) truncated at
    // ≈ +0.55 sd, which lowers the mean by ≈ 50·φ(0.55)/Φ(0.55)/d ≈ 2.4e-3 (KLS 2021 bound this bias).
    const bias = sum / (runs * d) - 2.5;
    expect(bias).toBeLessThan(0);
    expect(bias).toBeGreaterThan(-5e-3);
    expect(() => quantiseConditional(x, 1, 200, undefined, 5)).toThrow(/after 5 tries/);
    expect(MAX_ROUNDING_TRIES).toBeGreaterThanOrEqual(100);
  });

  it('encodeUpdate: option or RingParams.roundingBeta enforce Δ2; sensitivities follow; default unchanged', () => {
    const dd = 20_000;
    const plain = ringParams({ clipNorm: 1, maxBanks: 3, scale: 64 });
    const cond = ringParams({ clipNorm: 1, maxBanks: 3, scale: 64, roundingBeta: 0.5 });
    expect(cond.roundingBeta).toBe(0.5);
    expect(plain.roundingBeta).toBeUndefined();
    const u = randomUpdate(dd, 5, 11); // clipped to S = 1 → c = 64, d/4 = 5000 ≫ c²: rounding dominates
    const bound = ringL2Sensitivity(cond, dd);
    expect(bound).toBeCloseTo(conditionalRoundingBound(64, dd, 0.5), 12);
    expect(bound).toBeLessThan(ringL2Sensitivity(plain, dd));
    expect(ringL1Sensitivity(cond, dd)).toBeCloseTo(Math.min(bound * bound, Math.sqrt(dd) * bound), 6);
    for (const r of [encodeUpdate(u, cond), encodeUpdate(u, plain, undefined, { roundingBeta: 0.5 })]) {
      expect(Math.sqrt(normSq(r.ring))).toBeLessThanOrEqual(bound);
      expect(r.roundingTries).toBeGreaterThanOrEqual(1);
      expect(r.clipped).toBe(true);
    }
    const p = encodeUpdate(u, plain);
    expect(p.roundingTries).toBe(1);
    // Empty update: nothing to round.
    expect(encodeUpdate(new Float32Array(0), cond).ring.length).toBe(0);
  });

  it('accepts large Skellam μ now that sampling is O(1), and refuses μ beyond the sampler', () => {
    const p = ringParams({ clipNorm: 1, maxBanks: 3, scale: 2 ** 12, noise: { mechanism: 'skellam', mu: 1e9 } });
    const q = encodeUpdate(new Float32Array(50_000), p).ring;
    expect(Math.sqrt(normSq(q) / q.length) / Math.sqrt(2e9) - 1).toBeLessThan(0.02);
    expect(() => ringParams({ clipNorm: 1, maxBanks: 3, scale: 1, noise: { mechanism: 'skellam', mu: 1e13 } })).toThrow(/skellam μ must be in/);
  });
});
