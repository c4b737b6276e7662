import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { applyMask, expandMask, SecAggError } from '../../shared/secagg';
import { byteChiSquare, CHI2_255_P1E6 } from './helpers';

describe('PRG mask expansion (ChaCha20, zero nonce)', () => {
  it('matches the RFC 8439 ChaCha20 keystream (all-zero key and nonce, block 0)', () => {
    // RFC 8439 §A.1 test vector #1: 76 b8 e0 ad a0 f1 3d 90 …
    const m = expandMask(new Uint8Array(32), 2);
    expect(m[0]).toBe(0xade0b876);
    expect(m[1]).toBe(0x903df1a0);
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

  it('expands 10M coordinates well under a second', () => {
    const seed = new Uint8Array(randomBytes(32));
    const target = new Uint32Array(10_000_000);
    applyMask(target, seed, 1); // warm-up
    const t0 = performance.now();
    applyMask(target, seed, 1);
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(1000);
  });
});
