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
import { floatSum, randomUpdate } from './helpers';

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
