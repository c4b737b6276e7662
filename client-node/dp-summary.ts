// The bank's differentially private data summary: per discrete column, category counts with
// Gaussian noise (Dwork & Roth 2014, §3.5; accounted in RDP, Mironov 2017), charged to the privacy
// ledger BEFORE release. The coordinator merges these into the category weights that drive
// training-by-sampling and unconditional sampling, so no raw count ever leaves the bank.
import { noiseMultiplierFor } from '../shared/privacy/calibrate';
import { secureGaussian } from '../shared/privacy/secure-noise';
import { DEFAULT_SUMMARY_TARGET_SHARE, summaryNoise } from '../shared/privacy/summary-noise';
import { releaseDigest, type PrivacyLedger, type Budget } from './ledger';
import { malformedReleaseCache, readReleaseCache, requireChargedRelease } from './release-cache';

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
  // Noise first, so the ledger records the digest of what is released; nothing leaves unless the charge succeeds.
  const counts = raw.map((values, k) => {
    const sd = plan.columnStd[k]!;
    const noise = secureGaussian(values.length, sd);
    return { column: columns[k]!, values: values.map((v, j) => v + noise[j]!), noiseStd: sd };
  });
  opts.ledger.charge(
    { kind: 'counts', params: { sigma: plan.sigma, sensitivity: plan.sensitivity }, note: `category counts of ${raw.length} columns`, release: releaseDigest(counts) },
    opts.budget,
  );
  return { counts, epsilon: opts.epsilon, delta: opts.delta, noiseStd: Math.max(...plan.columnStd) };
}

/**
 * The summary released before, cached at `path` (writeReleaseCache), if it is the release of the
 * columns now requested (names and dimensions); undefined when there is none or it is of other
 * columns (a new release). Throws when the file is not a summary, or is not what the ledger charged.
 */
export function readCachedSummary(path: string, spans: readonly { column: string; dim: number }[], ledger: PrivacyLedger): NoisyCounts | undefined {
  const what = 'DP summary';
  const it = 'the summary';
  const s = readReleaseCache(path, what, it) as Partial<NoisyCounts> | undefined;
  if (s === undefined) return undefined;
  const countsOk =
    Array.isArray(s.counts) &&
    s.counts.every((c) => c && typeof c.column === 'string' && Array.isArray(c.values) && c.values.every((v) => Number.isFinite(v)) && typeof c.noiseStd === 'number' && c.noiseStd > 0);
  if (!countsOk || typeof s.epsilon !== 'number' || typeof s.delta !== 'number' || typeof s.noiseStd !== 'number') throw malformedReleaseCache(path, what, it);
  const counts = s.counts!;
  const same = counts.length === spans.length && counts.every((c, i) => c.column === spans[i]!.column && c.values.length === spans[i]!.dim);
  if (!same) return undefined;
  requireChargedRelease(ledger, counts, path, what, it);
  return s as NoisyCounts;
}
