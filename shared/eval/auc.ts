// Classification metrics on scores: AUC-ROC, PR-AUC, threshold choice and thresholded metrics.
// Labels are 0/1 (1 = positive / minority class); higher score = more likely positive.

function checkInputs(scores: ArrayLike<number>, labels: ArrayLike<number>, what: string): void {
  if (scores.length !== labels.length) {
    throw new Error(`${what}: ${scores.length} scores but ${labels.length} labels`);
  }
}

/** Indices sorted by descending score. */
function orderDesc(scores: ArrayLike<number>): Uint32Array {
  const idx = new Uint32Array(scores.length);
  for (let i = 0; i < idx.length; i++) idx[i] = i;
  const s = Float64Array.from(scores as ArrayLike<number>);
  return idx.sort((a, b) => s[b]! - s[a]!);
}

function countPositives(labels: ArrayLike<number>): number {
  let nPos = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) nPos++;
  return nPos;
}

/**
 * Lowers the threshold from the highest score down, one group of tied scores at a time; after
 * each group calls `visit` with the cumulative true and false positives, the group's score and the
 * number of rows predicted positive so far.
 */
function sweepDescending(scores: ArrayLike<number>, labels: ArrayLike<number>, visit: (tp: number, fp: number, score: number, consumed: number) => void): void {
  const idx = orderDesc(scores);
  const n = idx.length;
  let tp = 0;
  let fp = 0;
  let i = 0;
  while (i < n) {
    const sc = scores[idx[i]!]!;
    while (i < n && scores[idx[i]!]! === sc) {
      if (labels[idx[i]!] === 1) tp++;
      else fp++;
      i++;
    }
    visit(tp, fp, sc, i);
  }
}

/**
 * Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(tie) (Mann-Whitney U / (n+ n-)),
 * computed in O(n log n) with tied scores sharing their average rank. NaN when one class is absent.
 */
export function aucRoc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkInputs(scores, labels, 'aucRoc');
  const n = scores.length;
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const s = Float64Array.from(scores as ArrayLike<number>);
  idx.sort((a, b) => s[a]! - s[b]!);
  let rankSumPos = 0;
  let nPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && s[idx[j + 1]!]! === s[idx[i]!]!) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (labels[idx[k]!]! === 1) {
      rankSumPos += avgRank;
      nPos++;
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * PR-AUC as average precision: sum over thresholds of (R_k - R_{k-1}) * P_k, tied scores grouped
 * (the step-wise estimator of sklearn's average_precision_score). NaN without positives.
 */
export function prAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkInputs(scores, labels, 'prAuc');
  const nPos = countPositives(labels);
  if (nPos === 0) return Number.NaN;
  let ap = 0;
  let prevRecall = 0;
  sweepDescending(scores, labels, (tp, fp) => {
    const recall = tp / nPos;
    ap += (recall - prevRecall) * (tp / (tp + fp));
    prevRecall = recall;
  });
  return ap;
}

/** ROC curve points (fpr, tpr), downsampled to at most `maxPoints` for plotting. */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<number>, maxPoints = 200): { fpr: number[]; tpr: number[] } {
  checkInputs(scores, labels, 'rocCurve');
  const nPos = countPositives(labels);
  const nNeg = labels.length - nPos;
  const n = scores.length;
  const fpr = [0];
  const tpr = [0];
  const step = Math.max(1, Math.floor(n / maxPoints));
  let emittedAt = 0;
  sweepDescending(scores, labels, (tp, fp, _score, consumed) => {
    if (consumed - emittedAt >= step || consumed === n) {
      fpr.push(nNeg ? fp / nNeg : 0);
      tpr.push(nPos ? tp / nPos : 0);
      emittedAt = consumed;
    }
  });
  return { fpr, tpr };
}

export interface ThresholdMetrics {
  threshold: number;
  precision: number;
  recall: number;
  f1: number;
}

/** Precision, recall and F1 of the positive class when predicting positive for score >= threshold. */
export function metricsAt(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): ThresholdMetrics {
  checkInputs(scores, labels, 'metricsAt');
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const p = scores[i]! >= threshold;
    const y = labels[i] === 1;
    if (p && y) tp++;
    else if (p) fp++;
    else if (y) fn++;
  }
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { threshold, precision, recall, f1 };
}

/**
 * The threshold maximising F1 on (validation) scores. Use it on a split of the TRAINING data, never
 * on the evaluation holdout. Returns 0.5 when the validation set has no positives.
 */
export function bestF1Threshold(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkInputs(scores, labels, 'bestF1Threshold');
  const nPos = countPositives(labels);
  if (nPos === 0) return 0.5;
  let best = -1;
  let bestT = 0.5;
  sweepDescending(scores, labels, (tp, fp, score) => {
    const f1 = (2 * tp) / (tp + fp + nPos);
    if (f1 > best) {
      best = f1;
      bestT = score;
    }
  });
  return bestT;
}
