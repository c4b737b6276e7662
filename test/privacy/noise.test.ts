import { describe, expect, it } from 'vitest';
import { discreteGaussian, secureGaussian, skellam } from '../../shared/privacy/secure-noise';
import { clientLevelEpsilon, clipInPlace, dpFedAvgNoiseShare, l2Norm } from '../../shared/privacy/clip';
import { dpSgdEpsilon } from '../../shared/privacy/rdp';

function normalCdf(x: number): number {
  // Φ via erf series/continued fraction is in rdp.ts; here an independent A&S 7.1.26-free route:
  // numerical integration of the density (Simpson), accurate to ~1e-9 for |x| ≤ 8.
  const a = -8;
  if (x <= a) return 0;
  const n = 400;
  const h = (x - a) / n;
  let s = 0;
  for (let i = 0; i <= n; i++) {
    const z = a + i * h;
    const w = i === 0 || i === n ? 1 : i % 2 ? 4 : 2;
    s += w * Math.exp(-z * z / 2);
  }
  return (s * h) / 3 / Math.sqrt(2 * Math.PI);
}

describe('secure Gaussian noise', () => {
  it('has mean 0 and std σ within statistical bounds, and passes KS against N(0, σ²)', () => {
    const n = 200_000;
    const sigma = 2.5;
    const x = secureGaussian(n, sigma);
    let m = 0;
    for (const v of x) m += v;
    m /= n;
    let v2 = 0;
    for (const v of x) v2 += (v - m) ** 2;
    const sd = Math.sqrt(v2 / (n - 1));
    expect(Math.abs(m)).toBeLessThan((5 * sigma) / Math.sqrt(n)); // 5 standard errors
    expect(Math.abs(sd / sigma - 1)).toBeLessThan(5 / Math.sqrt(2 * n));
    const sub = Array.from(x.subarray(0, 50_000)).sort((a, b) => a - b);
    let d = 0;
    sub.forEach((v, i) => {
      const f = normalCdf(v / sigma);
      d = Math.max(d, Math.abs(f - i / sub.length), Math.abs(f - (i + 1) / sub.length));
    });
    // KS critical value sqrt(−ln(α/2)/2)/√n at α = 1e-6, so the test is not flaky yet catches a 5% error in σ.
    expect(d).toBeLessThan(Math.sqrt(-Math.log(0.5e-6) / 2) / Math.sqrt(sub.length));
  });

  it('is not reproducible across calls (not seeded)', () => {
    const a = secureGaussian(64, 1);
    const b = secureGaussian(64, 1);
    expect(Array.from(a)).not.toEqual(Array.from(b));
  });

  it('rejects bad parameters', () => {
    expect(() => secureGaussian(10, -1)).toThrow(/σ must be a finite number ≥ 0/);
    expect(() => secureGaussian(1.5, 1)).toThrow(/sample count/);
  });

  it('discrete Gaussian and Skellam have the right mean and variance', () => {
    const n = 20_000;
    const d = discreteGaussian(n, 3);
    const s = skellam(n, 20);
    for (const [arr, variance] of [[d, 9], [s, 40]] as const) {
      let m = 0;
      for (const v of arr) m += v;
      m /= n;
      let v2 = 0;
      for (const v of arr) v2 += (v - m) ** 2;
      v2 /= n - 1;
      expect(Number.isInteger(arr[0])).toBe(true);
      expect(Math.abs(m)).toBeLessThan(5 * Math.sqrt(variance / n));
      expect(Math.abs(v2 / variance - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    }
  });
});

describe('clipping and DP-FedAvg', () => {
  it('clips a split update as one vector to norm ≤ S and leaves small ones alone', () => {
    const a = new Float32Array([3, 0]);
    const b = [0, 4];
    const r = clipInPlace(1, a, b);
    expect(r.norm).toBeCloseTo(5, 6);
    expect(l2Norm(a, b)).toBeLessThanOrEqual(1);
    expect(l2Norm(a, b)).toBeGreaterThan(0.999);
    const c = new Float32Array([0.1, 0.2]);
    expect(clipInPlace(1, c).clipped).toBe(false);
    expect(Array.from(c)).toEqual([Math.fround(0.1), Math.fround(0.2)]);
    expect(() => l2Norm(new Float32Array([NaN]))).toThrow(/NaN or infinite/);
  });

  it('noise shares sum to N(0, z²S²) across banks', () => {
    const S = 0.5, z = 1.2, banks = 8, n = 50_000;
    const share = dpFedAvgNoiseShare(S, z, banks);
    const sum = new Float64Array(n);
    for (let b = 0; b < banks; b++) {
      const x = secureGaussian(n, share);
      for (let i = 0; i < n; i++) sum[i] += x[i];
    }
    let v = 0;
    for (const s of sum) v += s * s;
    const sd = Math.sqrt(v / n);
    expect(Math.abs(sd / (z * S) - 1)).toBeLessThan(5 / Math.sqrt(2 * n));
  });

  it('client-level accountant equals the sampled Gaussian at q = sampled/total', () => {
    const c = clientLevelEpsilon({ banksPerRound: 5, totalBanks: 20, noiseMultiplier: 1, rounds: 50, delta: 1e-5 });
    expect(c.epsilon).toBeCloseTo(dpSgdEpsilon(0.25, 1, 50, 1e-5).epsilon, 10);
    expect(() => clientLevelEpsilon({ banksPerRound: 30, totalBanks: 20, noiseMultiplier: 1, rounds: 5, delta: 1e-5 })).toThrow(/banksPerRound/);
  });
});
