// The DP-SGD noise prefetcher (shared/privacy/noise-prefetch.ts): a worker draws the next step's
// secure Gaussian noise ahead of time. Checks: draws from the worker have the right distribution,
// every draw is fresh (never handed out twice), and take() falls back to drawing inline.
import { afterEach, describe, expect, it } from 'vitest';
import { SecureNoisePrefetcher } from '../../shared/privacy/noise-prefetch';

const stats = (x: Float32Array) => {
  let s = 0;
  let q = 0;
  for (const v of x) {
    s += v;
    q += v * v;
  }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(q / x.length - mean * mean) };
};

let p: SecureNoisePrefetcher | undefined;
afterEach(() => p?.close());

describe('SecureNoisePrefetcher', () => {
  it('serves N(0, σ²) draws prepared by the worker, each one only once', () => {
    const n = 200_000;
    p = new SecureNoisePrefetcher(n);
    const draws: Float32Array[] = [];
    for (let i = 0; i < 4; i++) {
      expect(p.waitReady(20_000)).toBe(true);
      draws.push(p.take(i + 1));
    }
    expect(p.served.prefetched).toBe(4);
    draws.forEach((d, i) => {
      const { mean, std } = stats(d);
      const sigma = i + 1;
      // std error of the mean σ/√n ≈ 0.0022σ; of the std ≈ σ/√(2n) ≈ 0.0016σ: 6 standard errors.
      expect(Math.abs(mean)).toBeLessThan(6 * sigma / Math.sqrt(n));
      expect(Math.abs(std / sigma - 1)).toBeLessThan(6 / Math.sqrt(2 * n));
    });
    // Fresh every time: no two draws are correlated (a slot handed out twice would correlate at 1).
    for (let i = 0; i < draws.length; i++) {
      for (let k = i + 1; k < draws.length; k++) {
        let ab = 0;
        for (let j = 0; j < n; j++) ab += (draws[i]![j]! / (i + 1)) * (draws[k]![j]! / (k + 1));
        expect(Math.abs(ab / n)).toBeLessThan(6 / Math.sqrt(n));
      }
    }
  }, 60_000);

  it('draws inline when no prefetched draw is ready, and after close', () => {
    p = new SecureNoisePrefetcher(50_000);
    const first = p.take(2); // straight after start: the worker cannot have finished yet
    expect(p.served.inline).toBe(1);
    expect(Math.abs(stats(first).std / 2 - 1)).toBeLessThan(0.05);
    p.close();
    const after = p.take(1);
    expect(p.served.inline).toBe(2);
    expect(after.length).toBe(50_000);
    expect(Math.abs(stats(after).std - 1)).toBeLessThan(0.05);
  });
});
