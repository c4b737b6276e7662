// A DP release cached in the bank's state directory, so that a restarted agent re-sends the same
// noisy values instead of releasing (and charging) again. Written atomically and readable by the
// agent's user only; a file that is not JSON is an error to resolve by hand, never a new release.
// Before a cached value is re-sent it must match a charge in the privacy ledger (the entry's
// `release` digest): a cache edited to hold other values, e.g. the exact counts, is refused.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../shared/fs/atomic-write';
import { releaseDigest, type PrivacyLedger } from './ledger';

/**
 * The cached value at `path`, or undefined when there is none. `what` names the release in the
 * message and `it` what would be released again, e.g. 'row-count release' and 'the count'.
 */
export function readReleaseCache(path: string, what: string, it: string): unknown {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (err) {
    throw new Error(`${path}: the cached ${what} is not valid JSON (${(err as Error).message}); restore it from backup, or delete it to release (and charge) ${it} again`);
  }
}

/** The error for a cached release that parsed but cannot be used: the same remedy as for one that does not parse. */
export function malformedReleaseCache(path: string, what: string, it: string): Error {
  return new Error(`${path}: the cached ${what} is malformed; restore it from backup, or delete it to release (and charge) ${it} again`);
}

/** Writes the cache, mode 0600, atomically and durably: a crash leaves the old file or the new, never a torn one. */
export function writeReleaseCache(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value) + '\n', { mode: 0o600 });
}

/** Throws unless the ledger holds the charge of exactly `released` (releaseDigest): only what was charged is re-sent. */
export function requireChargedRelease(ledger: PrivacyLedger, released: unknown, path: string, what: string, it: string): void {
  if (!ledger.hasRelease(releaseDigest(released))) {
    // A ledger without any digest was written by an agent from before they were recorded: say so, the file may be fine.
    const why = ledger.entries().some((e) => e.release !== undefined)
      ? 'the file was edited, or belongs to another ledger'
      : 'this ledger records no release digests: it was written by an older agent, or the file belongs to another ledger';
    throw new Error(`${path}: the cached ${what} matches no charge in the privacy ledger (${why}); nothing was sent. Restore it from backup, or delete it to release (and charge) ${it} again`);
  }
}
