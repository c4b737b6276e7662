import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { agree } from '../../shared/secagg/keys';
import { boxKey, decodeBundle, encodeBundle, generateKeyPair, open, pairwiseSeed, publicKeyOf, seal, SecAggError } from '../../shared/secagg';

const eq = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe('key agreement and pairwise seeds', () => {
  it('s_uv = s_vu, and it changes with the round id and the ids', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    const ab = pairwiseSeed(a.secretKey, b.publicKey, 7, 'bank-a', 'bank-b');
    const ba = pairwiseSeed(b.secretKey, a.publicKey, 7, 'bank-b', 'bank-a');
    expect(ab.length).toBe(32);
    expect(eq(ab, ba)).toBe(true);
    expect(eq(ab, pairwiseSeed(a.secretKey, b.publicKey, 8, 'bank-a', 'bank-b'))).toBe(false);
    expect(eq(ab, pairwiseSeed(a.secretKey, b.publicKey, 7, 'bank-a', 'bank-c'))).toBe(false);
    expect(eq(publicKeyOf(a.secretKey), a.publicKey)).toBe(true);
  });

  it('native X25519 and the box key agree with tweetnacl (scalarMult, box.before), also for a reused peer key whose bytes change', () => {
    const a = generateKeyPair();
    for (let i = 0; i < 5; i++) {
      const b = generateKeyPair();
      expect(eq(agree(a.secretKey, b.publicKey), nacl.scalarMult(a.secretKey, b.publicKey))).toBe(true);
      expect(eq(boxKey(a.secretKey, b.publicKey), nacl.box.before(b.publicKey, a.secretKey))).toBe(true);
    }
    // The public-key cache is keyed by the array: overwriting its bytes must not return the old key.
    const peer = generateKeyPair();
    const pk = peer.publicKey.slice();
    expect(eq(agree(a.secretKey, pk), nacl.scalarMult(a.secretKey, peer.publicKey))).toBe(true);
    const other = generateKeyPair();
    pk.set(other.publicKey);
    expect(eq(agree(a.secretKey, pk), nacl.scalarMult(a.secretKey, other.publicKey))).toBe(true);
  });

  it('refuses a small-order public key', () => {
    const a = generateKeyPair();
    expect(() => pairwiseSeed(a.secretKey, new Uint8Array(32), 1, 'a', 'b')).toThrow(/small order/);
  });
});

describe('share bundles', () => {
  const bundle = { roundId: 2 ** 40 + 5, from: 'bank-ä', to: 'bank-b', x: 3, secretKeyShare: new Uint8Array(32).fill(1), selfMaskShare: new Uint8Array(32).fill(2) };

  it('round-trip through encode/decode and seal/open', () => {
    const u = generateKeyPair();
    const v = generateKeyPair();
    const ct = seal(encodeBundle(bundle), boxKey(u.secretKey, v.publicKey));
    const back = decodeBundle(open(ct, boxKey(v.secretKey, u.publicKey), 'test'));
    expect(back).toEqual(bundle);
  });

  it('tampered ciphertexts, and bundles sealed for someone else, are rejected', () => {
    const u = generateKeyPair();
    const v = generateKeyPair();
    const w = generateKeyPair();
    const ct = seal(encodeBundle(bundle), boxKey(u.secretKey, v.publicKey));
    for (const i of [0, 30, ct.length - 1]) {
      const bad = ct.slice();
      bad[i] ^= 0x40;
      expect(() => open(bad, boxKey(v.secretKey, u.publicKey), 'test')).toThrow(SecAggError);
    }
    expect(() => open(ct, boxKey(w.secretKey, u.publicKey), 'test')).toThrow(/DECRYPT_FAILED/);
    expect(() => decodeBundle(encodeBundle(bundle).subarray(0, 40))).toThrow(/DECRYPT_FAILED/);
  });
});
