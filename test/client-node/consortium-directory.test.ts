// The bank's consortium directory (issue #6): the operator's allow-list file, read by the bank to
// verify secure-aggregation key lists, and the session digest bound into each advert signature.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateIdentity, publicIdentity, type SecAggParams } from '../../protocol';
import { parseConsortiumDirectory, readConsortiumDirectory, secAggSessionDigest } from '../../client-node/secagg-client';
import { readAllowList } from '../../coordinator/run-coordinator';

const banks = ['bank-1', 'bank-2', 'bank-3'].map((id) => generateIdentity(id));
const allowList = banks.map((b) => publicIdentity(b));

describe('consortium directory (allow-list format)', () => {
  it('reads the same file the coordinator takes as --allow-list: bank id → Ed25519 signing key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedsynth-directory-'));
    try {
      const path = join(dir, 'allow.json');
      writeFileSync(path, JSON.stringify(allowList, null, 2));
      const directory = readConsortiumDirectory(path);
      expect([...directory.keys()]).toEqual(['bank-1', 'bank-2', 'bank-3']);
      banks.forEach((b) => expect(directory.get(b.id!)).toEqual(b.sign.publicKey));
      const coordinatorView = readAllowList(path);
      for (const [id, pk] of directory) expect(coordinatorView.get(id)!.signPublicKey).toEqual(pk);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('skips a coordinator entry, refuses duplicates, entries without id, wrong fingerprints and non-arrays', () => {
    const coordinator = publicIdentity(generateIdentity('coordinator'));
    expect([...parseConsortiumDirectory([coordinator, ...allowList]).keys()]).toEqual(['bank-1', 'bank-2', 'bank-3']);
    expect(() => parseConsortiumDirectory([...allowList, allowList[0]])).toThrow(/names bank 'bank-1' twice/);
    expect(() => parseConsortiumDirectory([{ ...allowList[0], id: undefined }])).toThrow(/has no bank id/);
    expect(() => parseConsortiumDirectory([{ ...allowList[0], fingerprint: allowList[1]!.fingerprint }])).toThrow(/fingerprint/);
    expect(() => parseConsortiumDirectory({ banks: allowList })).toThrow(/JSON array/);
    expect(() => parseConsortiumDirectory([coordinator])).toThrow(/lists no bank/);
  });
});

describe('session digest bound into advert signatures', () => {
  const params: SecAggParams = { threshold: 3, scale: 2 ** 20, clipNorm: 5, maxBanks: 4, cohort: ['bank-1', 'bank-2', 'bank-3', 'bank-4'], weightCap: 1 << 20, vectorLength: 100 };
  const base = { roundId: 4, params, coordinatorKey: new Uint8Array(32).fill(9), deadlineMs: 1_800_000_000_000 };
  it('is 32 bytes, deterministic, and changes with every bound field', () => {
    const d = secAggSessionDigest(base);
    expect(d.length).toBe(32);
    expect(secAggSessionDigest({ ...base, params: { ...params, cohort: [...params.cohort] } })).toEqual(d);
    const variants = [
      { roundId: 5 },
      { deadlineMs: base.deadlineMs + 1 }, // a retried attempt of the same round id
      { coordinatorKey: new Uint8Array(32).fill(8) },
      { coordinatorKey: undefined },
      { params: { ...params, threshold: 4 } },
      { params: { ...params, scale: 2 ** 21 } },
      { params: { ...params, clipNorm: 4 } },
      { params: { ...params, maxBanks: 5 } },
      { params: { ...params, weightCap: 1 << 19 } },
      { params: { ...params, vectorLength: 101 } },
      { params: { ...params, cohort: ['bank-1', 'bank-2', 'bank-3'] } },
      { params: { ...params, cohort: ['bank-1', 'bank-2', 'bank-3', 'bank-5'] } },
    ];
    const seen = new Set([Buffer.from(d).toString('hex')]);
    for (const v of variants) seen.add(Buffer.from(secAggSessionDigest({ ...base, ...v })).toString('hex'));
    expect(seen.size).toBe(variants.length + 1);
  });
});
