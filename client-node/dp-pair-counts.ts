// The bank's DP release of two-way counts, for the generator's pair targets: per pair of softmax
// spans of the consortium transformer's encoding (shared/transformer/pair-counts.ts), the bank's rows
// in each cell, with Gaussian noise, charged to the ledger BEFORE release. One record adds 1 to one
// cell of each of the P tables: L2 sensitivity √P, so noise sd z·√P per cell is the Gaussian
// mechanism at noise multiplier z whatever P (add/remove adjacency, as the ledger's other releases).
//
// Why: DP-SGD on the discriminator carries little of the columns' joint at ε ≈ 1 (BENCHMARKS.md,
// ninth session); these counts give the generator the joint directly, for a small share of the
// budget. Released once, before the bank's first round trains, and sent with each of its updates;
// the coordinator merges the banks' tables (mergePairTargets, post-processing) and sends the targets
// with the next rounds.
import { malformedReleaseCache, readReleaseCache, requireChargedRelease, writeReleaseCache } from './release-cache';
import { createHash, randomBytes } from 'node:crypto';
import { DEFAULT_ORDERS, rdpGaussian, rdpToEpsilon } from '../shared/privacy/rdp';
import { secureGaussian } from '../shared/privacy/secure-noise';
import { pairNoiseSd } from '../shared/transformer/pair-counts';
import { releaseDigest, type Budget, type PrivacyLedger } from './ledger';
import type { PairTable } from '../protocol';

export interface ReleasedPairCounts {
  tables: PairTable[];
  /** Noise sd on every cell (z·√pairs). */
  noiseSd: number;
  /** ε of this release on its own, at the budget's δ. */
  epsilon: number;
}

/** RDP of the release of `pairs` tables at noise multiplier z: what the agent plans into DP-SGD's noise. */
export function pairCountsRdp(noiseMultiplier: number, pairs: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  return rdpGaussian(pairNoiseSd(noiseMultiplier, pairs), Math.sqrt(pairs), orders);
}

/**
 * Draws the noise, then charges the ledger with the digest of the noisy tables (BudgetExceededError past
 * the budget: nothing released or cached).
 * With `cachePath`, a release made before for the same exact tables and noise multiplier (a restart)
 * is returned without a new charge: re-sending the same noisy counts is post-processing. Other
 * exact tables (the bank's file or the transformer changed) are a new release. The cache file holds
 * the noisy tables and a hash of what they were drawn for; it stays in the state directory.
 */
export function releasePairCounts(
  exact: readonly PairTable[],
  o: { noiseMultiplier: number; ledger: PrivacyLedger; budget: Budget; cachePath?: string },
): ReleasedPairCounts & { cached: boolean } {
  if (exact.length === 0) throw new Error('pair counts: no pair to release');
  const noiseSd = pairNoiseSd(o.noiseMultiplier, exact.length);
  const epsilon = rdpToEpsilon(DEFAULT_ORDERS, pairCountsRdp(o.noiseMultiplier, exact.length), o.budget.delta).epsilon;
  if (o.cachePath) {
    const hit = readCache(o.cachePath, (salt) => releaseKey(salt, exact, o.noiseMultiplier));
    if (hit) {
      requireChargedRelease(o.ledger, hit, o.cachePath, 'pair-count release', 'the counts');
      return { tables: hit, noiseSd, epsilon, cached: true };
    }
  }
  exact.forEach((t, i) => {
    if (t.values.length !== t.aDim * t.bDim || !t.values.every((v) => Number.isInteger(v) && v >= 0)) {
      throw new Error(`pair counts: table ${i} must hold ${t.aDim}×${t.bDim} non-negative whole counts`);
    }
  });
  // The noise is drawn before the charge so the ledger can record the digest of what is released;
  // nothing leaves (or is cached) unless the charge succeeds.
  const cells = exact.reduce((s, t) => s + t.values.length, 0);
  const noise = secureGaussian(cells, noiseSd);
  let k = 0;
  const tables = exact.map((t) => ({ ...t, values: t.values.map((v) => v + noise[k++]!) }));
  o.ledger.charge(
    {
      kind: 'counts',
      params: { sigma: noiseSd, sensitivity: Math.sqrt(exact.length) },
      note: `two-way counts of ${exact.length} pairs of encoded columns, noise multiplier ${o.noiseMultiplier}`,
      release: releaseDigest(tables),
    },
    o.budget,
  );
  if (o.cachePath) {
    // Salted, so the file says nothing about the exact counts beyond the noisy ones it holds.
    const salt = randomBytes(16).toString('hex');
    writeReleaseCache(o.cachePath, { salt, key: releaseKey(salt, exact, o.noiseMultiplier), tables });
  }
  return { tables, noiseSd, epsilon, cached: false };
}

function releaseKey(salt: string, tables: readonly PairTable[], noiseMultiplier: number): string {
  const h = createHash('sha256').update(`pair-counts v1 ${salt} z=${noiseMultiplier}\n`);
  for (const t of tables) h.update(`${t.aOffset}:${t.aDim}:${t.bOffset}:${t.bDim}=${t.values.join(',')}\n`);
  return h.digest('hex');
}

function readCache(path: string, keyFor: (salt: string) => string): PairTable[] | undefined {
  const c = readReleaseCache(path, 'pair-count release', 'the counts') as { salt?: unknown; key?: unknown; tables?: unknown } | undefined;
  if (c === undefined) return undefined;
  if (typeof c.salt !== 'string' || typeof c.key !== 'string') throw malformedReleaseCache(path, 'pair-count release', 'the counts');
  if (c.key !== keyFor(c.salt)) return undefined;
  const ok = Array.isArray(c.tables) && c.tables.every((t: Partial<PairTable>) => t && Array.isArray(t.values) && t.values.every((v) => Number.isFinite(v)));
  if (!ok) throw malformedReleaseCache(path, 'pair-count release', 'the counts');
  return c.tables as PairTable[];
}
