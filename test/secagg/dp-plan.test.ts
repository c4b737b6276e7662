import { describe, expect, it } from 'vitest';
import { DEFAULT_ROUNDING_BETA, planSkellam, skellamLogTailBound, skellamPlanEpsilon, skellamPlanRdp } from '../../shared/secagg/dp-plan';
import { RING_MAX_SIGNED, dequantise, encodeUpdate, ringAddInPlace, ringL2Sensitivity, ringParams, worstCaseSumMagnitude } from '../../shared/secagg/ring';
import { SecAggError } from '../../shared/secagg/errors';
import { DEFAULT_ORDERS, rdpGaussian, rdpToEpsilon } from '../../shared/privacy/rdp';
import { noiseMultiplierFor } from '../../shared/privacy/calibrate';
import { MAX_SKELLAM_MU } from '../../shared/privacy/secure-noise';
import { randomUpdate } from './helpers';

const threshold = (n: number) => Math.floor(n / 2) + 1; // protocol.ts defaultThreshold

describe('planSkellam: scale, per-bank μ and conditional rounding for the 32-bit ring', () => {
  for (const d of [215_000, 800_000]) {
    for (const n of [3, 10, 100]) {
      it(`d = ${d}, n = ${n}, t = ${threshold(n)}, z = 1: no overflow, ≤ 1% inflation, noise ≥ z·Δ2 from t banks`, () => {
        const t = threshold(n);
        const z = 1;
        const plan = planSkellam({ clipNorm: 0.5, dimension: d, maxBanks: n, minBanks: t, noiseMultiplier: z });
        // (i) ring.ts's no-overflow bound (with 14 σ of noise tail), and ringParams accepts the plan as is.
        expect(worstCaseSumMagnitude(plan.ring)).toBeLessThanOrEqual(RING_MAX_SIGNED);
        expect(ringParams({ clipNorm: 0.5, maxBanks: n, scale: plan.scale, noise: plan.ring.noise, roundingBeta: plan.beta })).toEqual(plan.ring);
        expect(Math.log2(plan.scale) % 1).toBe(0);
        // The scale is the largest power of two: doubling it breaks overflow safety or the sampler's μ cap.
        const doubled = planSkellamAt(plan.scale * 2, d, n, t, z);
        expect(doubled.worst > RING_MAX_SIGNED || doubled.mu > MAX_SKELLAM_MU).toBe(true);
        expect(plan.log2OverflowProbability).toBeLessThan(-100);
        // (ii) Δ2 after conditional rounding is within 1% of S·scale (here far less).
        expect(plan.bankL2Bound).toBe(ringL2Sensitivity(plan.ring, d));
        expect(plan.inflation).toBeLessThanOrEqual(0.01);
        expect(plan.bankL2Bound).toBeGreaterThan(0.5 * plan.scale);
        expect(plan.delta1).toBeLessThanOrEqual(Math.sqrt(d) * plan.delta2);
        // (iii) noise of the t guaranteed banks: Sk(t·μ), std √(2tμ) ≥ z·Δ2 — accounted with t, not n.
        expect(plan.muTotal).toBeCloseTo(t * plan.mu, 0);
        expect(Math.sqrt(2 * t * plan.mu)).toBeGreaterThanOrEqual(z * plan.delta2);
        expect(plan.noiseMultiplier).toBeLessThan(z * (1 + 1e-9));
        expect(plan.noiseStd).toBeCloseTo((z * plan.delta2) / plan.scale, 6);
        expect(plan.mu).toBeLessThanOrEqual(MAX_SKELLAM_MU);
        // The per-round RDP curve is the Skellam bound, ≥ and ≈ the Gaussian's at noise multiplier z.
        const rdp = skellamPlanRdp(plan);
        const gauss = rdpGaussian(z, 1);
        rdp.forEach((r, i) => {
          const ceilGauss = (Math.ceil(DEFAULT_ORDERS[i]) / DEFAULT_ORDERS[i]) * gauss[i];
          expect(r).toBeGreaterThanOrEqual(ceilGauss * (1 - 1e-9));
          expect(r).toBeLessThan(ceilGauss * 1.001);
        });
      });
    }
  }

  it('target mode: calibrated μ meets (ε, δ) over R rounds within 1%, and matches the Gaussian calibration', () => {
    const target = { epsilon: 4, delta: 1e-6, rounds: 200 };
    const plan = planSkellam({ clipNorm: 1, dimension: 800_000, maxBanks: 10, minBanks: 6, target });
    const eps = skellamPlanEpsilon(plan, target.rounds, target.delta).epsilon;
    expect(eps).toBeLessThanOrEqual(target.epsilon);
    expect(eps).toBeGreaterThan(0.99 * target.epsilon);
    // At μ this large Skellam ≈ Gaussian: the implied noise multiplier is the Gaussian one (q = 1).
    const zGauss = noiseMultiplierFor({ targetEpsilon: target.epsilon, delta: target.delta, sampleRate: 1, steps: target.rounds, relativeTolerance: 1e-5, epsilonTolerance: 1e-6 });
    expect(Math.abs(plan.noiseMultiplier / zGauss - 1)).toBeLessThan(0.01);
    expect(worstCaseSumMagnitude(plan.ring)).toBeLessThanOrEqual(RING_MAX_SIGNED);
    // Composition: R rounds = R × the per-round curve.
    const perRound = skellamPlanRdp(plan);
    expect(rdpToEpsilon(DEFAULT_ORDERS, perRound.map((r) => r * target.rounds), target.delta).epsilon).toBeCloseTo(eps, 12);
  });

  it("'replace' neighbouring doubles the sensitivities and so the noise", () => {
    const a = planSkellam({ clipNorm: 1, dimension: 215_000, maxBanks: 10, minBanks: 6, noiseMultiplier: 1 });
    const b = planSkellam({ clipNorm: 1, dimension: 215_000, maxBanks: 10, minBanks: 6, noiseMultiplier: 1, neighbouring: 'replace' });
    expect(b.delta2 / b.bankL2Bound).toBe(2);
    expect(b.noiseStd / (a.noiseStd * (b.bankL2Bound * a.scale) / (a.bankL2Bound * b.scale))).toBeCloseTo(2, 6);
  });

  it('end to end at small d: banks encode with the plan, the decoded sum carries noise of std ≈ noiseStd', () => {
    const d = 4000;
    const n = 5;
    const plan = planSkellam({ clipNorm: 1, dimension: d, maxBanks: n, minBanks: n, noiseMultiplier: 0.5, beta: DEFAULT_ROUNDING_BETA });
    const ups = Array.from({ length: n }, (_, i) => randomUpdate(d, 2, 40 + i));
    const sum = new Uint32Array(d);
    for (const u of ups) {
      const r = encodeUpdate(u, plan.ring);
      expect(r.roundingTries).toBeLessThan(50);
      ringAddInPlace(sum, r.ring);
    }
    const got = dequantise(sum, plan.scale);
    // Float sum of the clipped updates (each norm 2 → clipped to 1).
    let s2 = 0;
    for (let i = 0; i < d; i++) {
      let want = 0;
      for (const u of ups) want += u[i] / 2;
      s2 += (got[i] - want) ** 2;
    }
    const sd = Math.sqrt(s2 / d);
    expect(Math.abs(sd / plan.noiseStd - 1)).toBeLessThan(5 / Math.sqrt(2 * d) + 0.01);
  });

  it('throws a clear error when no scale fits the 32-bit ring, or rounding inflation is too large', () => {
    const fail = (o: Partial<Parameters<typeof planSkellam>[0]>) => () =>
      planSkellam({ clipNorm: 1, dimension: 800_000, maxBanks: 100, minBanks: 51, noiseMultiplier: 1, ...o });
    expect(fail({ noiseMultiplier: 1e6 })).toThrow(/no fixed-point scale fits the 32-bit ring.*Lower maxBanks/);
    expect(fail({ maxBanks: 1_000_000, minBanks: 500_001 })).toThrow(/inflating Δ2 by .*% > 1\.00%/);
    expect(fail({ maxBanks: 1_000_000, minBanks: 500_001, maxInflation: 0.5 })).not.toThrow();
    expect(fail({ minBanks: 101 })).toThrow(SecAggError);
    expect(fail({ noiseMultiplier: undefined })).toThrow(/exactly one of noiseMultiplier or target/);
    expect(fail({ target: { epsilon: 1, delta: 1e-6, rounds: 10 } })).toThrow(/exactly one/);
  });

  it('Chernoff tail of Sk(M): Gaussian exponent −h²/(4M) for h ≪ M (minus My⁴/12, y = h/2M), super-Gaussian far out', () => {
    const M = 1e8;
    const h = 14 * Math.sqrt(2 * M);
    const y = h / (2 * M);
    expect(skellamLogTailBound(M, h)).toBeCloseTo(-(h * h) / (4 * M) + (M * y ** 4) / 12, 6);
    expect(skellamLogTailBound(1, 50)).toBeLessThan(-100);
    expect(skellamLogTailBound(5, 0)).toBe(0);
  });
});

// The plan's quantities at a given scale, recomputed independently of planSkellam's scan.
function planSkellamAt(scale: number, d: number, n: number, t: number, z: number): { worst: number; mu: number } {
  const p = { clipNorm: 0.5, scale, roundingBeta: DEFAULT_ROUNDING_BETA };
  const delta2 = ringL2Sensitivity(p, d);
  const mu = (z * delta2) ** 2 / (2 * t);
  return { mu, worst: worstCaseSumMagnitude({ ...p, maxBanks: n, noise: { mechanism: 'skellam', mu } }) };
}
