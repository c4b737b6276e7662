import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { applyMask, expandMask, SecAggError } from '../../shared/secagg';
import { byteChiSquare, CHI2_255_P1E6 } from './helpers';

describe('PRG mask expansion (AES-128-CTR, zero initial counter)', () => {
  it('is the AES-128 keystream: block 0 under the all-zero key is AES_0(0^128) = 66e94bd4 ef8a2c3b …', () => {
    // The well-known AES-128 encryption of the zero block under the zero key (FIPS-197 arithmetic).
    const m = expandMask(new Uint8Array(32), 4);
    expect(Buffer.from(m.buffer).toString('hex')).toBe('66e94bd4ef8a2c3b884cfa59ca342b2e');
  });

  it('keys the stream with the seed: seeds differing only in the first 16 bytes give different masks', () => {
    const a = new Uint8Array(32);
    const b = new Uint8Array(32);
    b[15] = 1;
    expect(expandMask(a, 4)).not.toEqual(expandMask(b, 4));
  });

  it('is deterministic per seed, differs across seeds, and is consistent across chunk boundaries', () => {
    const seed = new Uint8Array(randomBytes(32));
    const a = expandMask(seed, 200_001);
    const b = expandMask(seed, 200_001);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    const prefix = expandMask(seed, 70_000);
    expect(Buffer.from(prefix.buffer).equals(Buffer.from(a.buffer, 0, 70_000 * 4))).toBe(true);
    const other = expandMask(new Uint8Array(randomBytes(32)), 200_001);
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === other[i]) same++;
    expect(same).toBeLessThan(5);
  });

  it('output bytes are uniform (chi-square)', () => {
    expect(byteChiSquare(expandMask(new Uint8Array(randomBytes(32)), 1 << 16))).toBeLessThan(CHI2_255_P1E6);
  });

  it('applyMask(+1) then applyMask(−1) restores the vector (mod 2^32)', () => {
    const seed = new Uint8Array(randomBytes(32));
    const x = Uint32Array.from({ length: 100_003 }, (_, i) => (i * 2654435761) >>> 0);
    const y = applyMask(x.slice(), seed, 1);
    expect(y.some((v, i) => v !== x[i])).toBe(true);
    expect(Buffer.from(applyMask(y, seed, -1).buffer).equals(Buffer.from(x.buffer))).toBe(true);
  });

  it('rejects short seeds', () => {
    expect(() => expandMask(new Uint8Array(16), 4)).toThrow(SecAggError);
  });
});
