// The bank's differentially private data summary: per discrete column, category counts with
// Gaussian noise (Dwork & Roth 2014, §3.5; accounted in RDP, Mironov 2017), charged to the privacy
// ledger BEFORE release. The coordinator merges these into the category weights that drive
// training-by-sampling and unconditional sampling, so no raw count ever leaves the bank.
import { noiseMultiplierFor } from '../shared/privacy/calibrate';
import { secureGaussian } from '../shared/privacy/secure-noise';
import { DEFAULT_SUMMARY_TARGET_SHARE, summaryNoise } from '../shared/privacy/summary-noise';
import type { PrivacyLedger, Budget } from './ledger';

export interface CountSpan {
  column: string;
  offset: number;
  dim: number;
}

/** Raw category counts from the one-hot encoded matrix (argmax per span). Stays inside the bank. */
export function countCategories(encoded: Float32Array, rows: number, dim: number, spans: readonly CountSpan[]): number[][] {
  const counts = spans.map((s) => new Array<number>(s.dim).fill(0));
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    spans.forEach((s, k) => {
      let best = 0;
      let bestV = -Infinity;
      for (let j = 0; j < s.dim; j++) {
        const v = encoded[base + s.offset + j]!;
        if (v > bestV) {
          bestV = v;
          best = j;
        }
      }
      counts[k]![best]! += 1;
    });
  }
  return counts;
}

export interface NoisyCounts {
  /** Per column: the noisy counts and the Gaussian noise sd on each of them. */
  counts: { column: string; values: number[]; noiseStd: number }[];
  epsilon: number;
  delta: number;
  /** The largest per-column noise sd (all columns' when the noise is split evenly). */
  noiseStd: number;
}

/**
 * One Gaussian mechanism over all columns (shared/privacy/summary-noise): adding or removing one
 * record changes one count per column by 1. z is calibrated so the release alone costs `epsilon`
 * at `delta`; without `target` every count gets sd z·√k (k columns), with it the target column
 * takes `targetShare` of the privacy loss (sd z/√share) and the others share the rest. The ledger
 * refuses the charge if it would exceed the bank's budget, and then nothing is released.
 */
export function releaseNoisyCounts(
  raw: number[][],
  spans: readonly { column: string }[],
  opts: { epsilon: number; delta: number; ledger: PrivacyLedger; budget: Budget; target?: string; targetShare?: number },
): NoisyCounts {
  if (raw.length === 0) throw new Error('no discrete columns to summarise');
  if (raw.length !== spans.length) throw new Error(`summary: ${raw.length} count vectors for ${spans.length} columns`);
  const z = noiseMultiplierFor({ targetEpsilon: opts.epsilon, delta: opts.delta, sampleRate: 1, steps: 1 });
  const columns = spans.map((s) => s.column);
  const plan = summaryNoise(columns, z, opts.target !== undefined ? { column: opts.target, share: opts.targetShare ?? DEFAULT_SUMMARY_TARGET_SHARE } : undefined);
  opts.ledger.charge({ kind: 'counts', params: { sigma: plan.sigma, sensitivity: plan.sensitivity }, note: `category counts of ${raw.length} columns` }, opts.budget);
  const counts = raw.map((values, k) => {
    const sd = plan.columnStd[k]!;
    const noise = secureGaussian(values.length, sd);
    return { column: columns[k]!, values: values.map((v, j) => v + noise[j]!), noiseStd: sd };
  });
  return { counts, epsilon: opts.epsilon, delta: opts.delta, noiseStd: Math.max(...plan.columnStd) };
}
