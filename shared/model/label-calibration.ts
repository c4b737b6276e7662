// Calibrating the classifier C's probability of one class (the target's rarest) from binned counts.
//
// Why: under DP-SGD, C's probabilities are distorted, and not by a single slope. Clipping caps the
// gradient of every row C gets badly wrong, so on bank-marketing's real holdout the rows C puts in
// its top 5% (mean p 0.91 after the prior shift) are positive 67% of the time, while its middle is
// under-confident (0.11 → 0.18; bench:privacy --classifier-holdout, BENCHMARKS.md). The sampler
// draws the target's labels from C, and a classifier trained on those rows picks its operating
// threshold where C's own labels put it: on the low-recall side. Histogram binning (Zadrozny &
// Elkan 2001) made monotone by pool-adjacent-violators (isotonic regression, Zadrozny & Elkan
// 2002; centred, Oron & Flournoy 2017) corrects a distortion of any shape from per-bin (rows,
// positives) counts.
//
// Privacy: the counts are a statistic of real rows. Each bank bins its own rows and releases the
// counts with Gaussian noise, charged to its ledger (client-node); one row adds 1 to one bin's
// row count and at most 1 to its positive count, so the L2 sensitivity is √2. The bin edges come
// from C's scores on generated rows (post-processing of released weights), and the fit below is
// post-processing of the noisy counts. All pure functions.

/** L2 sensitivity of one bank's counts: one record adds 1 to one bin's row count and at most 1 to its class count. */
export const CALIBRATION_SENSITIVITY = Math.SQRT2;

/** A monotone map from C's logit z of `classIndex` (log p_c − log(1 − p_c)) to a calibrated logit, piecewise linear between knots. */
export interface LabelCalibration {
  /** The label span's class the map calibrates. */
  classIndex: number;
  /** Increasing z values: one per pooled block of bins, its bins' row-weighted mean knot (a bin's knot is the median reference score in it). */
  knots: number[];
  /** Calibrated logit at each knot (non-decreasing); beyond the end knots, C's logit shifted (calibratedLogit). */
  logits: number[];
}

/** Per-bin counts a bank releases (after noise) for the calibration of one class. */
export interface CalibrationCounts {
  rows: number[];
  positives: number[];
}

/** The logit of class c from a row of class probabilities: log p_c − log(1 − p_c), finite. */
export function classLogit(p: number): number {
  const q = Math.min(1 - 1e-12, Math.max(1e-12, p));
  return Math.log(q) - Math.log1p(-q);
}

/**
 * Default bins: 8 equal-frequency bins of the reference scores, the top one split at the 95th to
 * 99.8th percentiles (a 0.5% class such as fraud lives there). Few enough that the banks' noise
 * (sd ≈ 28 per count per bank at noise multiplier 20) is small against most bins' counts.
 */
export const CALIBRATION_BINS = 8;
export const CALIBRATION_TAIL: readonly number[] = Object.freeze([0.95, 0.98, 0.99, 0.995, 0.998]);
/** The fit merges bins until each holds this many times the merged counts' noise sd in rows. */
export const CALIBRATION_MIN_ROWS_PER_NOISE_SD = 10;
/** The map starts at the first merged bin with this many times the noise sd in class rows. */
export const CALIBRATION_MIN_POSITIVES_PER_NOISE_SD = 3;

/**
 * Bin edges from reference scores (C's logits on generated rows: public). Quantile levels are
 * 1/K … (K−1)/K plus finer levels in the upper tail, where a rare class lives; duplicate edges
 * are dropped, so there may be fewer bins than levels + 1.
 */
export function calibrationEdges(reference: ArrayLike<number>, bins = CALIBRATION_BINS, tail: readonly number[] = CALIBRATION_TAIL): number[] {
  if (!Number.isInteger(bins) || bins < 2) throw new Error(`calibrationEdges: bins must be an integer ≥ 2, got ${bins}`);
  const s = Float64Array.from(reference).filter(Number.isFinite).sort();
  if (s.length < bins) throw new Error(`calibrationEdges: need at least ${bins} finite reference scores, got ${s.length}`);
  const levels = [...Array.from({ length: bins - 1 }, (_, i) => (i + 1) / bins), ...tail.filter((l) => l > (bins - 1) / bins && l < 1)];
  const edges: number[] = [];
  for (const l of levels) {
    const e = s[Math.min(s.length - 1, Math.floor(l * s.length))]!;
    if (edges.length === 0 || e > edges[edges.length - 1]!) edges.push(e);
  }
  return edges;
}

/** Index of z's bin: 0 below edges[0], i where edges[i−1] ≤ z < edges[i], edges.length at or above the last. */
export function binOf(edges: readonly number[], z: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if (z >= edges[m]!) lo = m + 1;
    else hi = m;
  }
  return lo;
}

/** Exact per-bin counts of scored rows (at the bank, before noise). */
export function binCounts(edges: readonly number[], scores: ArrayLike<number>, positive: ArrayLike<number>): CalibrationCounts {
  if (scores.length !== positive.length) throw new Error(`binCounts: ${scores.length} scores but ${positive.length} labels`);
  const rows = new Array<number>(edges.length + 1).fill(0);
  const positives = new Array<number>(edges.length + 1).fill(0);
  for (let i = 0; i < scores.length; i++) {
    const b = binOf(edges, scores[i]!);
    rows[b]!++;
    if (positive[i]) positives[b]!++;
  }
  return { rows, positives };
}

/**
 * The calibration map from the consortium's merged noisy counts, or null when no group of bins
 * holds `minPositives` class rows: the counts then say nothing about the class the noise does not
 * (a class of 11 rows under noise sd 49 once came out as a shift of +2.7 in logit, lifting the
 * class 15x wherever labels are drawn without class quotas). Adjacent bins are first merged
 * until each holds at least `minRows` rows by its noisy count (the caller passes a multiple of the
 * merged noise sd, so no bin's rate is mostly noise), from the top down, then a last small bin
 * joins its neighbour. Each bin's rate is positives / rows (noisy counts clamped to
 * 0 ≤ positives ≤ rows), made non-decreasing in z by pool-adjacent-violators weighted by the bins'
 * row counts, one knot per pooled block (centred isotonic regression); a bin's knot is the median
 * reference score in it. The map starts at the first group
 * (from the bottom) with at least `minPositives` class rows by its noisy count (a multiple of the
 * noise sd, from the caller); the groups below are noise for a rare class. `minRate` keeps logits finite.
 */
export function fitLabelCalibration(edges: readonly number[], reference: ArrayLike<number>, counts: CalibrationCounts, classIndex: number, o: { minRows?: number; minPositives?: number; minRate?: number } = {}): LabelCalibration | null {
  const k = edges.length + 1;
  if (counts.rows.length !== k || counts.positives.length !== k) throw new Error(`fitLabelCalibration: ${edges.length} edges make ${k} bins, got ${counts.rows.length} row and ${counts.positives.length} positive counts`);
  const minRate = o.minRate ?? 1e-5;
  const minRows = o.minRows ?? 0;
  const n0 = counts.rows.map((v) => (Number.isFinite(v) ? Math.max(0, v) : 0));
  const p0 = counts.positives.map((v, b) => (Number.isFinite(v) ? Math.min(Math.max(0, v), n0[b]!) : 0));
  // Groups of consecutive bins [from, to], merged from the top down while too small.
  const groups: { from: number; to: number; n: number; pos: number }[] = [];
  let cur: { from: number; to: number; n: number; pos: number } | null = null;
  for (let b = k - 1; b >= 0; b--) {
    cur = cur ? { from: b, to: cur.to, n: cur.n + n0[b]!, pos: cur.pos + p0[b]! } : { from: b, to: b, n: n0[b]!, pos: p0[b]! };
    if (cur.n >= minRows) {
      groups.unshift(cur);
      cur = null;
    }
  }
  if (cur) {
    if (groups.length > 0) {
      const g = groups[0]!;
      groups[0] = { from: cur.from, to: g.to, n: g.n + cur.n, pos: g.pos + cur.pos };
    } else groups.push(cur);
  }
  const sorted = Float64Array.from(reference).filter(Number.isFinite).sort();
  const knots = groups.map((g) => {
    const lo = g.from === 0 ? -Infinity : edges[g.from - 1]!;
    const hi = g.to === k - 1 ? Infinity : edges[g.to]!;
    const from = lowerBound(sorted, lo);
    const to = lowerBound(sorted, hi);
    return to > from ? sorted[(from + to) >> 1]! : Number.isFinite(lo) && Number.isFinite(hi) ? (lo + hi) / 2 : Number.isFinite(lo) ? lo : hi;
  });
  // Groups at the bottom with fewer class rows than minPositives say nothing the noise does not: a
  // rare class's lower bins would pool into one flat stretch and erase C's ranking there. The map
  // starts at the first informative group; below it C's own logit continues (calibratedLogit).
  const minPositives = o.minPositives ?? 0;
  const first = groups.findIndex((g) => g.pos >= minPositives);
  if (first < 0) return null;
  const used = groups.slice(first);
  const usedKnots = knots.slice(first);
  // Pool adjacent violators over the groups in z order.
  const blocks: { rate: number; weight: number; from: number; to: number }[] = [];
  used.forEach((g, i) => {
    blocks.push({ rate: g.n > 0 ? g.pos / g.n : 0, weight: g.n, from: i, to: i });
    while (blocks.length > 1 && blocks[blocks.length - 2]!.rate >= blocks[blocks.length - 1]!.rate) {
      const y = blocks.pop()!;
      const x = blocks.pop()!;
      const w = x.weight + y.weight;
      blocks.push({ rate: w > 0 ? (x.rate * x.weight + y.rate * y.weight) / w : (x.rate + y.rate) / 2, weight: w, from: x.from, to: y.to });
    }
  });
  // Centred isotonic regression (Oron & Flournoy 2017): one knot per pooled block, at its groups'
  // row-weighted mean knot, so the map rises strictly from block to block and keeps C's ranking
  // inside a pooled block instead of a flat stretch of ties.
  const kk: number[] = [];
  const ll: number[] = [];
  for (const bl of blocks) {
    let w = 0;
    let zw = 0;
    for (let i = bl.from; i <= bl.to; i++) {
      w += used[i]!.n;
      zw += used[i]!.n * usedKnots[i]!;
    }
    const z = w > 0 ? zw / w : usedKnots.slice(bl.from, bl.to + 1).reduce((a, b) => a + b, 0) / (bl.to - bl.from + 1);
    const r = Math.min(1 - minRate, Math.max(minRate, bl.rate));
    const logit = Math.log(r) - Math.log1p(-r);
    // Knots must increase for the interpolation (a block of empty reference ranges can repeat one).
    if (kk.length === 0 || z > kk[kk.length - 1]!) {
      kk.push(z);
      ll.push(logit);
    } else ll[ll.length - 1] = Math.max(ll[ll.length - 1]!, logit);
  }
  return { classIndex, knots: kk, logits: ll };
}

/**
 * The coordinator's fit from the banks' noisy releases: counts summed per bin, the merged noise
 * sd √Σ sd², and the merging and floor thresholds set from it (CALIBRATION_MIN_*_PER_NOISE_SD).
 * calibration is null when no merged bin holds enough class rows (fitLabelCalibration).
 */
export function fitFromNoisyCounts(
  edges: readonly number[],
  reference: ArrayLike<number>,
  classIndex: number,
  releases: readonly (CalibrationCounts & { noiseStd: number })[],
): { calibration: LabelCalibration | null; noiseStd: number } {
  if (releases.length === 0) throw new Error('fitFromNoisyCounts: no bank released counts');
  const bins = edges.length + 1;
  const merged: CalibrationCounts = { rows: new Array<number>(bins).fill(0), positives: new Array<number>(bins).fill(0) };
  for (const r of releases) {
    if (r.rows.length !== bins || r.positives.length !== bins) throw new Error(`fitFromNoisyCounts: a release has ${r.rows.length} / ${r.positives.length} counts for ${bins} bins`);
    for (let b = 0; b < bins; b++) {
      merged.rows[b]! += r.rows[b]!;
      merged.positives[b]! += r.positives[b]!;
    }
  }
  const noiseStd = Math.sqrt(releases.reduce((a, r) => a + r.noiseStd ** 2, 0));
  const calibration = fitLabelCalibration(edges, reference, merged, classIndex, {
    minRows: CALIBRATION_MIN_ROWS_PER_NOISE_SD * noiseStd,
    minPositives: CALIBRATION_MIN_POSITIVES_PER_NOISE_SD * noiseStd,
  });
  return { calibration, noiseStd };
}

/**
 * The calibrated logit at z: linear between knots, and beyond the end knots C's own logit shifted
 * to meet the map (slope 1). The counts say nothing about how the rate changes beyond the centre
 * of the end blocks, so there C's ranking and its own steepness stay: the top block is where a
 * rare class lives, and a map flattened or compressed there gives every fraud-like row about the
 * same label probability (simulated-96k: TSTR recall 0.25 against 0.46 without the map, one run
 * at 847ce21 with the end segment's slope; BENCHMARKS.md).
 */
export function calibratedLogit(c: LabelCalibration, z: number): number {
  const { knots, logits } = c;
  const last = knots.length - 1;
  if (z <= knots[0]!) return logits[0]! + (z - knots[0]!);
  if (z >= knots[last]!) return logits[last]! + (z - knots[last]!);
  let lo = 0;
  let hi = last;
  while (hi - lo > 1) {
    const m = (lo + hi) >> 1;
    if (knots[m]! <= z) lo = m;
    else hi = m;
  }
  const span = knots[hi]! - knots[lo]!;
  const t = span > 0 ? (z - knots[lo]!) / span : 0;
  return logits[lo]! + t * (logits[hi]! - logits[lo]!);
}

/**
 * Applies the map in place to rows of k class probabilities: p_c becomes σ(map(logit p_c)) and the
 * other classes share 1 − p_c in their old proportions.
 */
export function applyLabelCalibration(probs: Float32Array, k: number, c: LabelCalibration): void {
  const ci = c.classIndex;
  for (let r = 0; r < probs.length / k; r++) {
    const o = r * k;
    const p = probs[o + ci]!;
    const q = 1 / (1 + Math.exp(-calibratedLogit(c, classLogit(p))));
    const rest = 1 - p;
    for (let j = 0; j < k; j++) {
      if (j === ci) probs[o + j] = q;
      else probs[o + j] = rest > 0 ? (probs[o + j]! * (1 - q)) / rest : (1 - q) / (k - 1);
    }
  }
}

/** Checks a map read from a checkpoint or a file (clear errors, never NaN downstream). */
export function parseLabelCalibration(v: unknown, classes: number): LabelCalibration {
  const o = v as Partial<LabelCalibration> | null;
  const fail = (why: string): never => {
    throw new Error(`label calibration: ${why}`);
  };
  if (!o || typeof o !== 'object') fail('must be an object');
  const ci = o!.classIndex;
  if (!Number.isInteger(ci) || ci! < 0 || ci! >= classes) fail(`classIndex must be an integer in [0, ${classes}), got ${String(ci)}`);
  const knots = o!.knots;
  const logits = o!.logits;
  if (!Array.isArray(knots) || !Array.isArray(logits) || knots.length < 1 || knots.length !== logits.length) fail('knots and logits must be arrays of the same non-zero length');
  if (!knots!.every((x) => typeof x === 'number' && Number.isFinite(x)) || !logits!.every((x) => typeof x === 'number' && Number.isFinite(x))) fail('knots and logits must be finite numbers');
  for (let i = 1; i < knots!.length; i++) {
    if (!(knots![i]! >= knots![i - 1]!)) fail('knots must be non-decreasing');
    if (!(logits![i]! >= logits![i - 1]!)) fail('logits must be non-decreasing');
  }
  return { classIndex: ci!, knots: [...knots!], logits: [...logits!] };
}

function lowerBound(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if (sorted[m]! < x) lo = m + 1;
    else hi = m;
  }
  return lo;
}

/** The merged noise sd of the calibration counts of `banks` banks, each adding sd z·√2 (client-node/dp-calibration). */
export function calibrationNoiseStd(noiseMultiplier: number, banks: number): number {
  return noiseMultiplier * CALIBRATION_SENSITIVITY * Math.sqrt(banks);
}

/**
 * Whether a class of about `classRows` rows (the consortium's noisy count, public) is too rare to
 * calibrate under merged noise sd `noiseStd`: even all its rows in one bin would fall short of the
 * fit's floor (CALIBRATION_MIN_POSITIVES_PER_NOISE_SD noise sds), so the fit could only return
 * null. The coordinator then asks for nothing and the banks spend nothing.
 */
export function tooRareToCalibrate(classRows: number, noiseStd: number): boolean {
  return !(classRows >= CALIBRATION_MIN_POSITIVES_PER_NOISE_SD * noiseStd);
}

/**
 * The class whose labels are calibrated: the target's rarest class with a positive noisy count
 * (public), or null. `rows` is what its rate per bin is measured from: its rows, or the other
 * classes' where fewer (a class's rate is as noisy as its complement's). So a binary target whose
 * rare class's noisy count fell to 0 or below does not pass for a calibration of the common one.
 */
export function calibrationClass(values: readonly number[]): { classIndex: number; rows: number } | null {
  let classIndex = -1;
  values.forEach((v, c) => {
    if (v > 0 && (classIndex < 0 || v < values[classIndex]!)) classIndex = c;
  });
  if (classIndex < 0) return null;
  const others = values.reduce((sum, v, c) => (c === classIndex ? sum : sum + Math.max(0, v)), 0);
  return { classIndex, rows: Math.min(values[classIndex]!, others) };
}

/**
 * Why the consortium will not ask for the calibration release, decided from public figures alone
 * (the target's merged noisy counts and how many banks merged them) when the category weights are
 * frozen, before the first round: the banks then leave its ε to DP-SGD instead of reserving it.
 * Null when the release will be asked for (it may still be skipped after the last round, when
 * fewer banks are connected: that only leaves planned ε unspent).
 */
export function calibrationSkipReason(targetCounts: readonly number[] | undefined, noiseMultiplier: number, banks: number): string | null {
  if (!targetCounts) return "no merged counts of the target's classes";
  const c = calibrationClass(targetCounts);
  if (!c) return "no class of the target has a positive noisy count";
  const noiseStd = calibrationNoiseStd(noiseMultiplier, banks);
  if (!tooRareToCalibrate(c.rows, noiseStd)) return null;
  const whose = c.rows < targetCounts[c.classIndex]! ? `the classes other than ${c.classIndex} have` : `class ${c.classIndex} has`;
  return `${whose} about ${Math.round(c.rows)} rows by the consortium's noisy counts, fewer than ${CALIBRATION_MIN_POSITIVES_PER_NOISE_SD} noise sds (${Math.round(noiseStd)} each) of the calibration counts of ${banks} bank(s): its bins would be noise`;
}
