// How the DP summary's noise is spread over its columns.
//
// The summary releases one count vector per column (category counts, or histogram bins of a
// numeric column). Adding or removing one record changes one count in every column by 1. Release
// column j's counts scaled by a weight w_j, plus N(0, (z·S)²) on every scaled count, S = √Σ_j w_j²:
// that is one Gaussian mechanism of L2 sensitivity S and noise sd z·S, whose RDP is α/(2z²)
// (Mironov 2017, Prop. 7) whatever the weights are. Dividing column j back by w_j is
// post-processing and leaves noise sd z·S/w_j on its counts. Equal weights give z·√k on every
// count (k columns); weighting one column spends more of the same budget on its counts.
//
// Why the target column gets such a weight (the default share 0.5): its counts set the class
// quotas of every stratified sample and the cond weights of the rare class in training, and a
// fraud class of a few dozen rows per bank is lost under z·√k (k = 9 columns and ε = 0.2 gave
// sd 56 per bank against ~34 fraud rows per bank). With share s of the privacy loss on the target,
// w_t² / S² = s, its noise is z/√s (z·√2 at s = 0.5) whatever k is, and every other column's is
// z·√((k−1)/(1−s)) (z·√(2(k−1)), ≈ 1.3-1.4x the equal split, at s = 0.5).

/** Default share of the summary's privacy loss spent on the target column's counts. */
export const DEFAULT_SUMMARY_TARGET_SHARE = 0.5;

export interface SummaryNoise {
  /** Per column (the given order): the Gaussian noise sd on each of its counts. */
  columnStd: number[];
  /** L2 sensitivity S of the weighted release and its noise sd z·S: the ledger's charge (RDP α/(2z²)). */
  sensitivity: number;
  sigma: number;
}

/**
 * Per-column noise sd of a summary of `columns` at noise multiplier z. With `emphasis`, the named
 * column takes `share` ∈ (0, 1) of the privacy loss (ignored when it is the only column or not
 * among the columns: then every column gets z·√k).
 */
export function summaryNoise(columns: readonly string[], z: number, emphasis?: { column: string; share: number }): SummaryNoise {
  if (columns.length === 0) throw new Error('summaryNoise: no columns');
  if (!(z > 0 && Number.isFinite(z))) throw new Error(`summaryNoise: noise multiplier must be positive and finite, got ${z}`);
  const k = columns.length;
  const weights = columns.map(() => 1);
  if (emphasis) {
    const { share } = emphasis;
    if (!(share > 0 && share < 1)) throw new Error(`summaryNoise: the target's share must be in (0, 1), got ${share}`);
    const t = columns.indexOf(emphasis.column);
    if (t >= 0 && k > 1) weights[t] = Math.sqrt((share * (k - 1)) / (1 - share));
  }
  const sensitivity = Math.sqrt(weights.reduce((s, w) => s + w * w, 0));
  const sigma = z * sensitivity;
  return { columnStd: weights.map((w) => sigma / w), sensitivity, sigma };
}
