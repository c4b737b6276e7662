import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { combine, gfDiv, gfMul, gfPolyEval, SecAggError, split } from '../../shared/secagg';
import { byteChiSquare, CHI2_255_P1E6 } from './helpers';

const eq = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe('GF(256)', () => {
  it('multiplication is a field: every non-zero element has an inverse, 0x53·0xCA = 1 (AES)', () => {
    expect(gfMul(0x53, 0xca)).toBe(1);
    for (let a = 1; a < 256; a++) expect(gfMul(a, gfDiv(1, a))).toBe(1);
    expect(gfMul(0x57, 0x83)).toBe(0xc1); // FIPS-197 §4.2 example
  });
});

describe('Shamir t-of-n over GF(256)', () => {
  it('any t shares recover the secret, in any order and subset', () => {
    for (const [t, n] of [[2, 3], [3, 5], [6, 10], [51, 100]] as const) {
      const secret = new Uint8Array(randomBytes(32));
      const shares = split(secret, t, n);
      for (let trial = 0; trial < 5; trial++) {
        const pick = [...shares].sort(() => Math.random() - 0.5).slice(0, t);
        expect(eq(combine(pick, t), secret)).toBe(true);
      }
      expect(eq(combine(shares, t), secret)).toBe(true); // all n, extras checked
    }
  });

  it('t − 1 shares are refused, and interpolating them does not give the secret', () => {
    const secret = new Uint8Array(randomBytes(32));
    const shares = split(secret, 4, 7);
    expect(() => combine(shares.slice(0, 3), 4)).toThrow(SecAggError);
    expect(eq(combine(shares.slice(0, 3), 3), secret)).toBe(false);
  });

  it('t − 1 shares do not determine the secret: every candidate byte fits exactly one polynomial', () => {
    // t = 3: two shares at x = 1, 2. For each candidate secret s, count the (a1, a2) ∈ GF(256)²
    // with f(1), f(2) equal to the observed values: perfect secrecy means exactly one for every s.
    const secret = new Uint8Array([0x9c]);
    const [s1, s2] = split(secret, 3, 5);
    const y1 = s1.y[0];
    const y2 = s2.y[0];
    const counts = new Uint32Array(256);
    for (let s = 0; s < 256; s++) {
      for (let a1 = 0; a1 < 256; a1++) {
        for (let a2 = 0; a2 < 256; a2++) {
          if (gfPolyEval([s, a1, a2], 1) === y1 && gfPolyEval([s, a1, a2], 2) === y2) counts[s]++;
        }
      }
    }
    expect(Array.from(counts).every((c) => c === 1)).toBe(true);
  });

  it('t − 1 shares look uniform whatever the secret (chi-square)', () => {
    const zero = new Uint8Array(32);
    const bytes: number[] = [];
    for (let i = 0; i < 1024; i++) {
      const sh = split(zero, 3, 5);
      bytes.push(...sh[0].y, ...sh[1].y);
    }
    const words = new Uint32Array(new Uint8Array(bytes).buffer);
    expect(byteChiSquare(words)).toBeLessThan(CHI2_255_P1E6);
  });

  it('a corrupted extra share is detected', () => {
    const secret = new Uint8Array(randomBytes(32));
    const shares = split(secret, 3, 5);
    shares[4].y[7] ^= 1;
    expect(() => combine(shares, 3)).toThrow(/SHARE_MISMATCH/);
    expect(eq(combine(shares.slice(0, 4), 3), secret)).toBe(true);
  });

  it('validates parameters', () => {
    expect(() => split(new Uint8Array(32), 4, 3)).toThrow(SecAggError);
    expect(() => split(new Uint8Array(32), 2, 256)).toThrow(SecAggError);
    const sh = split(new Uint8Array(32), 2, 3);
    expect(() => combine([sh[0], { ...sh[0] }], 2)).toThrow(/distinct/);
  });
});
