import { describe, expect, it } from 'vitest';
import {
  applyLabelCalibration,
  binCounts,
  binOf,
  calibratedLogit,
  calibrationEdges,
  classLogit,
  fitFromNoisyCounts,
  calibrationNoiseStd,
  fitLabelCalibration,
  parseLabelCalibration,
  tooRareToCalibrate,
  calibrationSkipReason,
  type LabelCalibration,
} from '../../shared/model/label-calibration';
import { Rng } from '../../shared/tensor/random';

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** fitLabelCalibration where the counts must yield a map. */
function fitted(...args: Parameters<typeof fitLabelCalibration>): LabelCalibration {
  const fit = fitLabelCalibration(...args);
  if (!fit) throw new Error('expected a calibration map, got none');
  return fit;
}

/** Scores z ~ N(−2, 1.5²) and labels drawn from a known, non-affine P(y | z). */
function world(n: number, truth: (z: number) => number, seed = 5): { z: Float64Array; y: Uint8Array } {
  const rng = new Rng(seed);
  const normal = (): number => Math.sqrt(-2 * Math.log(rng.nextOpen())) * Math.cos(2 * Math.PI * rng.next());
  const z = Float64Array.from({ length: n }, () => -2 + 1.5 * normal());
  const y = Uint8Array.from(z, (v) => (rng.next() < truth(v) ? 1 : 0));
  return { z, y };
}

describe('label calibration maths', () => {
  it('places strictly increasing edges at the quantiles, finer in the upper tail', () => {
    const ref = Float64Array.from({ length: 10_000 }, (_, i) => i);
    const edges = calibrationEdges(ref, 8, [0.95, 0.99]);
    expect(edges).toEqual([1250, 2500, 3750, 5000, 6250, 7500, 8750, 9500, 9900]);
    // Ties collapse: a reference of 3 distinct values gives 3 edges, not 7.
    expect(calibrationEdges(Float64Array.from({ length: 300 }, (_, i) => i % 3), 8, [])).toEqual([0, 1, 2]);
    expect(() => calibrationEdges([1, 2, 3], 8)).toThrow(/at least 8/);
  });

  it('bins by edge, counting rows and class rows per bin', () => {
    const edges = [0, 1];
    expect([-5, 0, 0.5, 1, 7].map((z) => binOf(edges, z))).toEqual([0, 1, 1, 2, 2]);
    expect(binCounts(edges, [-1, 0.5, 0.7, 3], [1, 0, 1, 1])).toEqual({ rows: [1, 2, 1], positives: [1, 1, 1] });
    expect(() => binCounts(edges, [1, 2], [1])).toThrow(/2 scores but 1 labels/);
  });

  it('recovers an S-shaped distortion from exact counts (the DP-SGD classifier is over-confident at the top)', () => {
    // True P(y | z): flat in the middle, capped at 0.65 at the top, as bank-marketing's C on its holdout.
    const truth = (z: number): number => 0.65 * sigmoid(1.6 * (z + 1.5));
    const { z, y } = world(60_000, truth);
    const edges = calibrationEdges(z);
    const fit = fitted(edges, z, binCounts(edges, z, y), 1);
    expect(fit.classIndex).toBe(1);
    for (let i = 1; i < fit.logits.length; i++) expect(fit.logits[i]!).toBeGreaterThanOrEqual(fit.logits[i - 1]!);
    for (const at of [-3, -2, -1, 0, 1]) expect(sigmoid(calibratedLogit(fit, at))).toBeCloseTo(truth(at), 1);
    // The uncalibrated score says P = 0.73 at z = 1; the map brings it to the true ~0.63.
    expect(Math.abs(sigmoid(calibratedLogit(fit, 1)) - truth(1))).toBeLessThan(0.06);
    expect(sigmoid(1)).toBeGreaterThan(truth(1) + 0.08);
  });

  it('merges bins until each holds minRows rows, so no rate is mostly noise', () => {
    const edges = [0, 1, 2, 3];
    const counts = { rows: [5000, 4000, 300, 40, 10], positives: [50, 200, 100, 30, 9] };
    const fit = fitted(edges, [-1, 0.5, 1.5, 2.5, 3.5, -2, 0.2], counts, 0, { minRows: 500 });
    // The top three bins (350 rows) join into one group at or above 500 rows with the bin below them.
    expect(fit.knots.length).toBe(2);
    expect(sigmoid(fit.logits[1]!)).toBeCloseTo((200 + 100 + 30 + 9) / (4000 + 300 + 40 + 10), 6);
    expect(sigmoid(fit.logits[0]!)).toBeCloseTo(50 / 5000, 6);
  });

  it("starts the map at the first bin with enough class rows: a rare class's noisy lower bins do not flatten C's ranking", () => {
    const edges = [0, 1, 2];
    // Three lower bins with a handful of class rows (noise sd ~50 would swamp them), one top bin with 300.
    const counts = { rows: [30_000, 20_000, 10_000, 1000], positives: [3, -20, 12, 300] };
    const fit = fitted(edges, [-1, 0.5, 1.5, 2.5], counts, 1, { minPositives: 150 });
    expect(fit.knots).toEqual([2.5]);
    expect(sigmoid(fit.logits[0]!)).toBeCloseTo(0.3, 10);
    // C's ranking below the top bin survives: one unit of C's logit is one unit of the map's.
    expect(calibratedLogit(fit, -1) - calibratedLogit(fit, -2)).toBeCloseTo(1, 12);
    // Without the floor the noisy lower bins pool into one block (0.0001 ≥ 0: a violation), one knot.
    const pooled = fitted(edges, [-1, 0.5, 1.5, 2.5], counts, 1);
    expect(pooled.knots).toHaveLength(3);
  });

  it('publishes no map when no bin holds enough class rows for the noise, instead of a shift fitted from noise', () => {
    const edges = [0, 1];
    // A class of ~11 rows under merged noise sd 49: the noisy class counts, clamped at 0, would
    // have made a one-knot map far above the class's true rate.
    const counts = { rows: [20_000, 3000, 600], positives: [-40, 30, 55] };
    expect(fitLabelCalibration(edges, [-3, 0.5, 2], counts, 0, { minRows: 490, minPositives: 147 })).toBeNull();
    const noisy = [{ ...counts, noiseStd: 49 }];
    expect(fitFromNoisyCounts(edges, [-3, 0.5, 2], 0, noisy).calibration).toBeNull();
    // The same counts with enough class rows in the top bin do make a map.
    expect(fitFromNoisyCounts(edges, [-3, 0.5, 2], 0, [{ ...counts, positives: [-40, 30, 200], noiseStd: 49 }]).calibration?.knots).toEqual([2]);
  });

  it('skips the request for a class too rare for the calibration noise (the banks spend nothing)', () => {
    // z = 20 at 3 banks: merged sd 20·√2·√3 ≈ 49, so a class needs ≥ 3 × 49 ≈ 147 rows.
    const sd = calibrationNoiseStd(20, 3);
    expect(sd).toBeCloseTo(20 * Math.sqrt(6), 12);
    expect(tooRareToCalibrate(11, sd)).toBe(true);
    expect(tooRareToCalibrate(146, sd)).toBe(true);
    expect(tooRareToCalibrate(434, sd)).toBe(false);
    expect(tooRareToCalibrate(Number.NaN, sd)).toBe(true);
  });

  it('decides before training, from the merged target counts, whether the release will be asked for', () => {
    // The rarest class with a positive count is the one calibrated: 120 rows against 3 × 49 = 147 at z = 20, 3 banks.
    expect(calibrationSkipReason([23_000, 120], 20, 3)).toMatch(/^class 1 has about 120 rows .*fewer than 3 noise sds \(49 each\) of the calibration counts of 3 bank\(s\)/);
    expect(calibrationSkipReason([23_000, 480], 20, 3)).toBeNull();
    // A class with a negative noisy count is not calibrated; the next rarest is ...
    expect(calibrationSkipReason([-4, 23_000, 480], 20, 3)).toBeNull();
    // ... but in a binary target that would be the common class, whose rate is the rare one's
    // complement: measured from as few rows (here none), so nothing is asked.
    expect(calibrationSkipReason([1800, -30], 100, 2)).toMatch(/^the classes other than 0 have about 0 rows/);
    expect(calibrationSkipReason([23_000, 100], 20, 3)).toMatch(/^class 1 has about 100 rows/);
    expect(calibrationSkipReason([-4, 0], 20, 3)).toMatch(/no class of the target has a positive noisy count/);
    expect(calibrationSkipReason(undefined, 20, 3)).toMatch(/no merged counts/);
    // Fewer banks, less merged noise: 120 rows suffice at 1 bank (3 × 28.3 = 85).
    expect(calibrationSkipReason([23_000, 120], 20, 1)).toBeNull();
  });

  it("fits the banks' releases summed, with thresholds from their merged noise sd", () => {
    const edges = [0, 1];
    const ref = [-1, 0.5, 2];
    const a = { rows: [3000, 2000, 900], positives: [30, 200, 400], noiseStd: 30 };
    const b = { rows: [1000, 1000, 300], positives: [10, 100, 150], noiseStd: 40 };
    const { calibration, noiseStd } = fitFromNoisyCounts(edges, ref, 1, [a, b]);
    expect(noiseStd).toBeCloseTo(50, 12);
    // 10 × 50 rows and 3 × 50 class rows: the lowest bin (40 class rows) is below the floor.
    expect(calibration).toEqual(fitted(edges, ref, { rows: [4000, 3000, 1200], positives: [40, 300, 550] }, 1, { minRows: 500, minPositives: 150 }));
    expect(calibration!.knots).toHaveLength(2);
    expect(() => fitFromNoisyCounts(edges, ref, 1, [])).toThrow(/no bank/);
    expect(() => fitFromNoisyCounts(edges, ref, 1, [{ ...a, rows: [1, 2] }])).toThrow(/2 \/ 3 counts for 3 bins/);
  });

  it('clamps noisy counts (negative, class rows above rows) and pools violators into a monotone map', () => {
    const edges = [0, 1];
    const fit = fitted(edges, [-1, 0.5, 2], { rows: [100, -20, 50], positives: [-3, 10, 80] }, 1);
    // Bin 0: 0/100 (clamped); bin 1: no rows (clamped to 0), rate 0; bin 2: 50/50 (class rows capped at rows).
    expect(sigmoid(fit.logits[0]!)).toBeLessThan(1e-4);
    expect(sigmoid(fit.logits[fit.logits.length - 1]!)).toBeGreaterThan(0.9999);
    const decreasing = fitted(edges, [-1, 0.5, 2], { rows: [100, 100, 100], positives: [30, 10, 50] }, 1);
    // Pooled: (30 + 10) / 200, one knot at the block's row-weighted mean knot (centred isotonic
    // regression), so the map still rises strictly through the pooled stretch.
    expect(decreasing.knots).toEqual([(-1 + 0.5) / 2, 2]);
    expect(sigmoid(decreasing.logits[0]!)).toBeCloseTo(0.2, 10);
    expect(sigmoid(decreasing.logits[1]!)).toBeCloseTo(0.5, 10);
    expect(calibratedLogit(decreasing, 0.5)).toBeGreaterThan(calibratedLogit(decreasing, -0.25));
  });

  it('applies the map to one class and rescales the others, rows still summing to 1', () => {
    const c = { classIndex: 2, knots: [-1, 1], logits: [Math.log(0.1 / 0.9), Math.log(0.5 / 0.5)] };
    const probs = new Float32Array([0.2, 0.3, 0.5, 0.6, 0.3, 0.1]);
    applyLabelCalibration(probs, 3, c);
    // Row 0: p = 0.5 → z = 0 → halfway between the knots' logits → P = σ(mean) = 0.25 (in logit terms).
    const q0 = sigmoid((Math.log(0.1 / 0.9) + 0) / 2);
    expect(probs[2]).toBeCloseTo(q0, 6);
    expect(probs[0]! / probs[1]!).toBeCloseTo(0.2 / 0.3, 5);
    expect(probs[0]! + probs[1]! + probs[2]!).toBeCloseTo(1, 6);
    // Row 1: p = 0.1 → z = −2.197, below the first knot: C's own logit shifted to the first knot's.
    expect(probs[5]).toBeCloseTo(sigmoid(Math.log(0.1 / 0.9) + (Math.log(0.1 / 0.9) + 1)), 6);
    expect(calibratedLogit(c, 5) - calibratedLogit(c, 3)).toBeCloseTo(2, 12); // above the last knot too
    // Beyond the end knots C's own slope, whatever the map's end segment does: the counts say nothing there.
    expect(calibratedLogit({ classIndex: 0, knots: [0, 2], logits: [-1, 0] }, 4)).toBeCloseTo(2, 12);
    expect(calibratedLogit({ classIndex: 0, knots: [0, 2], logits: [-1, 0] }, 1)).toBeCloseTo(-0.5, 12);
    expect(calibratedLogit({ classIndex: 0, knots: [0, 2], logits: [-1, 0] }, -2)).toBeCloseTo(-3, 12);
    expect(calibratedLogit({ classIndex: 0, knots: [3], logits: [-1] }, 5)).toBeCloseTo(1, 12); // one knot: a shift
    expect(classLogit(1)).toBeLessThan(Infinity);
    expect(classLogit(0)).toBeGreaterThan(-Infinity);
  });

  it('refuses a malformed map from a checkpoint with a clear error', () => {
    expect(() => parseLabelCalibration(null, 2)).toThrow(/must be an object/);
    expect(() => parseLabelCalibration({ classIndex: 2, knots: [0], logits: [0] }, 2)).toThrow(/classIndex/);
    expect(() => parseLabelCalibration({ classIndex: 1, knots: [0, 1], logits: [0] }, 2)).toThrow(/same non-zero length/);
    expect(() => parseLabelCalibration({ classIndex: 1, knots: [0, Number.NaN], logits: [0, 1] }, 2)).toThrow(/finite/);
    expect(() => parseLabelCalibration({ classIndex: 1, knots: [1, 0], logits: [0, 1] }, 2)).toThrow(/knots must be non-decreasing/);
    expect(() => parseLabelCalibration({ classIndex: 1, knots: [0, 1], logits: [1, 0] }, 2)).toThrow(/logits must be non-decreasing/);
    expect(parseLabelCalibration({ classIndex: 1, knots: [0, 1], logits: [-1, 2] }, 2)).toEqual({ classIndex: 1, knots: [0, 1], logits: [-1, 2] });
  });
});
