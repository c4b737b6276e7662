// The bank's row count as it leaves the bank: n plus Gaussian noise, charged to the ledger once.
//
// Why: the accountant's neighbouring relation is add/remove-one record, under which the exact row
// count is itself a statistic of the records (n against n − 1 says whether a record is there).
// Everything the agent reports or uses that depends on its size is computed from this one release
// instead, so each is post-processing of a DP output (adaptive composition):
//   - the FedAvg weight it reports (ClientUpdate.sample_count; under secure aggregation min(n, cap)),
//   - DP-SGD's Poisson rate q = batch / n, the noise σ calibrated from q, the ε it reports, and the
//     divisor of the noisy gradient sum (expected packs q·n/pac),
//   - the default budget δ = min(1e-5, 1/(10·n)).
// Opacus and TF Privacy take n as public; a bank's customer count is not something a consortium
// may assume public.
//
// Sensitivity 1. At the default sd 100 the release alone costs ε ≈ 0.03 at δ = 1e-5 (`fedsynth privacy
// epsilon --sample-rate 1 --noise-multiplier 100 --steps 1 --delta 1e-5`). Composed in RDP with the
// rest of an ε = 1 budget it moved DP-SGD's σ on the 24k simulated data's banks from 8.50 to 8.63
// (bench/privacy-utility.ts --only simulated, one run; q moves with the released count too). At
// 10,000 rows the noise moves q by about 1%.
import { malformedReleaseCache, readReleaseCache, requireChargedRelease, writeReleaseCache } from './release-cache';
import { DEFAULT_ORDERS, rdpGaussian, rdpToEpsilon } from '../shared/privacy/rdp';
import { secureGaussian } from '../shared/privacy/secure-noise';
import { defaultDelta, releaseDigest, type Budget, type PrivacyLedger } from './ledger';

/** Default Gaussian noise sd on the released row count (sensitivity 1). */
export const ROW_COUNT_NOISE_SD = 100;

/** The row count as released: what every size-dependent figure of the bank is computed from. */
export interface ReleasedRowCount {
  /** max(1, round(n + noise)). */
  rows: number;
  noiseSd: number;
  /** ε of this release on its own, at the budget's δ. */
  epsilon: number;
}

/** RDP of one release at noise sd `noiseSd` (what the agent's ledger charges). */
export function rowCountRdp(noiseSd: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  return rdpGaussian(checkSd(noiseSd), 1, orders);
}

/** n + N(0, sd²) from node:crypto, rounded and floored at 1 (post-processing). Charges nothing: the agent reaches it through releaseRowCount. */
export function noisyRowCount(n: number, noiseSd: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`row count must be an integer ≥ 1, got ${String(n)}`);
  return Math.max(1, Math.round(n + secureGaussian(1, checkSd(noiseSd))[0]!));
}

/**
 * The bank's budget and released row count. The noise is drawn first, because the default δ is
 * computed from the released count; the ledger is then charged at that budget, and only if the
 * charge succeeds is anything kept or used (BudgetExceededError: nothing released). A release
 * cached in `cachePath` for the same local row count and sd is reused without a new charge (a
 * restart, like the DP summary's cache); a different count (the bank's file changed) is a new
 * release. The cache holds the exact count to compare with; it stays in the state directory.
 */
export function releaseRowCount(
  n: number,
  o: { noiseSd?: number; ledger: PrivacyLedger; epsilonMax: number; delta?: number; cachePath?: string },
): { released: ReleasedRowCount; budget: Budget; cached: boolean } {
  const noiseSd = checkSd(o.noiseSd ?? ROW_COUNT_NOISE_SD);
  const budgetFor = (rows: number): Budget => ({ epsilonMax: o.epsilonMax, delta: o.delta ?? defaultDelta(rows) });
  const epsilonOf = (budget: Budget): number => rdpToEpsilon(DEFAULT_ORDERS, rowCountRdp(noiseSd), budget.delta).epsilon;
  const cached = o.cachePath ? readCache(o.cachePath, n, noiseSd, o.ledger) : undefined;
  if (cached !== undefined) {
    const budget = budgetFor(cached);
    return { released: { rows: cached, noiseSd, epsilon: epsilonOf(budget) }, budget, cached: true };
  }
  const rows = noisyRowCount(n, noiseSd);
  const budget = budgetFor(rows);
  o.ledger.charge({ kind: 'counts', params: { sigma: noiseSd, sensitivity: 1 }, note: `row count, noise sd ${noiseSd}`, release: releaseDigest(sentRowCount(rows, noiseSd)) }, budget);
  if (o.cachePath) writeReleaseCache(o.cachePath, { exactRows: n, noiseSd, released: rows } satisfies RowCountCache);
  return { released: { rows, noiseSd, epsilon: epsilonOf(budget) }, budget, cached: false };
}

interface RowCountCache {
  /** The local count the release was drawn for (never sent). */
  exactRows: number;
  noiseSd: number;
  released: number;
}

/** What the ledger's digest of this release covers: the count as sent and its noise sd (never the exact count). */
function sentRowCount(released: number, noiseSd: number): { released: number; noiseSd: number } {
  return { released, noiseSd };
}

function readCache(path: string, n: number, noiseSd: number, ledger: PrivacyLedger): number | undefined {
  const c = readReleaseCache(path, 'row-count release', 'the count') as Partial<RowCountCache> | undefined;
  if (c === undefined) return undefined;
  if (!Number.isSafeInteger(c.released) || c.released! < 1 || typeof c.exactRows !== 'number' || typeof c.noiseSd !== 'number') {
    throw malformedReleaseCache(path, 'row-count release', 'the count');
  }
  if (c.exactRows !== n || c.noiseSd !== noiseSd) return undefined;
  requireChargedRelease(ledger, sentRowCount(c.released!, c.noiseSd), path, 'row-count release', 'the count');
  return c.released;
}

function checkSd(sd: number): number {
  if (!(typeof sd === 'number' && Number.isFinite(sd) && sd > 0)) throw new RangeError(`row count noise sd must be a finite number > 0, got ${String(sd)}`);
  return sd;
}
