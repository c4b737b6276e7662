// The bank's differentially private data summary: per discrete column, category counts with
// Gaussian noise (Dwork & Roth 2014, §3.5; accounted in RDP, Mironov 2017), charged to the privacy
// ledger BEFORE release. The coordinator merges these into the category weights that drive
// training-by-sampling and unconditional sampling, so no raw count ever leaves the bank.
import { noiseMultiplierFor } from '../shared/privacy/calibrate';
import { secureGaussian } from '../shared/privacy/secure-noise';
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
  counts: { column: string; values: number[] }[];
  epsilon: number;
  delta: number;
  noiseStd: number;
}

/**
 * Adds N(0, σ²) to every count, σ = z·√k where k = number of columns: adding or removing one
 * record changes one count per column by 1, so the L2 sensitivity is √k. z is calibrated so the
 * release alone costs `epsilon` at `delta`; the ledger refuses the charge if it would exceed the
 * bank's budget, and then nothing is released.
 */
export function releaseNoisyCounts(
  raw: number[][],
  spans: readonly { column: string }[],
  opts: { epsilon: number; delta: number; ledger: PrivacyLedger; budget: Budget },
): NoisyCounts {
  if (raw.length === 0) throw new Error('no discrete columns to summarise');
  const sensitivity = Math.sqrt(raw.length);
  const z = noiseMultiplierFor({ targetEpsilon: opts.epsilon, delta: opts.delta, sampleRate: 1, steps: 1 });
  const noiseStd = z * sensitivity;
  opts.ledger.charge({ kind: 'counts', params: { sigma: noiseStd, sensitivity }, note: `category counts of ${raw.length} columns` }, opts.budget);
  const counts = raw.map((values, k) => {
    const noise = secureGaussian(values.length, noiseStd);
    return { column: spans[k]!.column, values: values.map((v, j) => v + noise[j]!) };
  });
  return { counts, epsilon: opts.epsilon, delta: opts.delta, noiseStd };
}
