// The DP summary a bank keeps in its state directory (client-node/dp-summary.ts readCachedSummary):
// re-sent after a restart only if it is the release the ledger charged, never an edited copy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCachedSummary, releaseNoisyCounts, type NoisyCounts } from '../../client-node/dp-summary';
import { PrivacyLedger, releaseDigest } from '../../client-node/ledger';
import { writeReleaseCache } from '../../client-node/release-cache';

let dir: string;
let k = 0;
const fresh = (): string => join(dir, `case-${k++}`);
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedsynth-summary-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spans = [
  { column: 'channel', dim: 3 },
  { column: 'is_fraud', dim: 2 },
];
const raw = [
  [600, 300, 100],
  [990, 10],
];
const budget = { epsilonMax: 1, delta: 1e-5 };

function released(ledgerPath: string): NoisyCounts {
  return releaseNoisyCounts(raw, spans, { epsilon: 0.4, delta: 1e-5, ledger: PrivacyLedger.open(ledgerPath), budget, target: 'is_fraud' });
}

describe('the cached DP summary', () => {
  it('is charged with the digest of the noisy counts it releases, and read back unchanged for the same columns', () => {
    const base = fresh();
    const summary = released(`${base}.jsonl`);
    const [entry] = PrivacyLedger.open(`${base}.jsonl`).entries();
    expect(entry!.release).toBe(releaseDigest(summary.counts));
    writeReleaseCache(`${base}.json`, summary);
    expect(statSync(`${base}.json`).mode & 0o777).toBe(0o600);
    expect(readCachedSummary(`${base}.json`, spans, PrivacyLedger.open(`${base}.jsonl`))).toEqual(summary);
    // Other columns requested: not this release (a new one is made and charged by the caller).
    expect(readCachedSummary(`${base}.json`, [spans[0]!], PrivacyLedger.open(`${base}.jsonl`))).toBeUndefined();
    expect(readCachedSummary(`${base}.missing.json`, spans, PrivacyLedger.open(`${base}.jsonl`))).toBeUndefined();
  });

  it('is refused when edited (e.g. to the exact counts) or charged under another ledger, and when it is not a summary', () => {
    const base = fresh();
    const summary = released(`${base}.jsonl`);
    const edited = { ...summary, counts: summary.counts.map((c, i) => ({ ...c, values: raw[i]! })) };
    writeReleaseCache(`${base}.json`, edited);
    expect(() => readCachedSummary(`${base}.json`, spans, PrivacyLedger.open(`${base}.jsonl`))).toThrow(
      /cached DP summary matches no charge in the privacy ledger .* delete it to release \(and charge\) the summary again/,
    );
    writeReleaseCache(`${base}.json`, summary);
    expect(() => readCachedSummary(`${base}.json`, spans, PrivacyLedger.open(`${fresh()}.jsonl`))).toThrow(/matches no charge .*records no release digests: it was written by an older agent/);
    writeFileSync(`${base}.json`, JSON.stringify({ ...summary, counts: [{ column: 'channel', values: [1, 'x', 3], noiseStd: 2 }] }));
    expect(() => readCachedSummary(`${base}.json`, spans, PrivacyLedger.open(`${base}.jsonl`))).toThrow(/cached DP summary is malformed/);
    writeFileSync(`${base}.json`, readFileSync(`${base}.json`, 'utf8').slice(0, 20));
    expect(() => readCachedSummary(`${base}.json`, spans, PrivacyLedger.open(`${base}.jsonl`))).toThrow(/cached DP summary is not valid JSON/);
  });
});
