// Key agreement, pairwise mask seeds and authenticated encryption of share bundles.
//
// Every bank holds two X25519 key pairs per round (Bonawitz et al. 2017 §4): (c_pk, c_sk) to
// encrypt share bundles to each other through the server, and (s_pk, s_sk) to agree the pairwise
// mask seeds. Pairwise seed between banks u and v in round r:
//     s_uv = SHA-256("fedsynth/secagg/v1/pairwise" ‖ X25519(s_sk_u, s_pk_v) ‖ r (u64 BE) ‖ ids)
// where ids = the two bank ids sorted, each length-prefixed (u16 BE) UTF-8, so s_uv = s_vu and
// seeds differ across rounds even if a key were reused. Share bundles are sealed with nacl.box
// (X25519 + XSalsa20-Poly1305, authenticated) under c keys, with a random 24-byte nonce prepended;
// the plaintext names round, sender and recipient, so the server can neither tamper with a
// bundle nor re-route it to another bank or round without the recipient noticing.
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { SecAggError } from './errors';
import type { Share } from './shamir';

export const KEY_BYTES = 32;
const PAIRWISE_LABEL = new TextEncoder().encode('fedsynth/secagg/v1/pairwise');
const BUNDLE_MAGIC = 0x53414231; // 'SAB1'
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** Fresh X25519 key pair from the CSPRNG (tweetnacl uses node:crypto's randomBytes). */
export function generateKeyPair(): KeyPair {
  const kp = nacl.box.keyPair();
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/** X25519 public key of a secret key. */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  checkKey('secret key', secretKey);
  return nacl.scalarMult.base(secretKey);
}

export function checkKey(what: string, k: unknown): asserts k is Uint8Array {
  if (!(k instanceof Uint8Array) || k.length !== KEY_BYTES) throw new SecAggError('INVALID_MESSAGE', `${what} must be a ${KEY_BYTES}-byte Uint8Array`);
}

/** Raw X25519 shared secret; refuses the all-zero output of a small-order public key. */
export function agree(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  checkKey('secret key', secretKey);
  checkKey('public key', publicKey);
  const shared = nacl.scalarMult(secretKey, publicKey);
  let acc = 0;
  for (let i = 0; i < shared.length; i++) acc |= shared[i];
  if (acc === 0) throw new SecAggError('INVALID_MESSAGE', 'public key has small order (all-zero shared secret)');
  return shared;
}

function u64(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new SecAggError('INVALID_MESSAGE', `round id must be a safe non-negative integer, got ${String(n)}`);
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, Math.floor(n / 2 ** 32));
  dv.setUint32(4, n >>> 0);
  return b;
}

function lp16(s: string): Uint8Array {
  const b = enc.encode(s);
  if (b.length > 0xffff) throw new SecAggError('INVALID_MESSAGE', 'bank id too long');
  const out = new Uint8Array(2 + b.length);
  out[0] = b.length >>> 8;
  out[1] = b.length & 0xff;
  out.set(b, 2);
  return out;
}

/** Pairwise mask seed s_uv (symmetric in u, v). */
export function pairwiseSeed(mySecretKey: Uint8Array, theirPublicKey: Uint8Array, roundId: number, idA: string, idB: string): Uint8Array {
  const shared = agree(mySecretKey, theirPublicKey);
  const [lo, hi] = idA < idB ? [idA, idB] : [idB, idA];
  const h = createHash('sha256');
  h.update(PAIRWISE_LABEL);
  h.update(shared);
  h.update(u64(roundId));
  h.update(lp16(lo));
  h.update(lp16(hi));
  shared.fill(0);
  return new Uint8Array(h.digest());
}

// ------------------------------------------------------------------ share bundles

/** What bank `from` sends bank `to` in round 1: its share of s_sk_from and of b_from, both at x. */
export interface ShareBundle {
  roundId: number;
  from: string;
  to: string;
  /** Evaluation point of both shares: the recipient's position in the key list + 1. */
  x: number;
  /** Share of the sender's mask secret key s_sk (32 bytes). */
  secretKeyShare: Uint8Array;
  /** Share of the sender's self-mask seed b (32 bytes). */
  selfMaskShare: Uint8Array;
}

export function encodeBundle(b: ShareBundle): Uint8Array {
  const from = lp16(b.from);
  const to = lp16(b.to);
  const out = new Uint8Array(4 + 8 + from.length + to.length + 1 + 2 * KEY_BYTES);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, BUNDLE_MAGIC);
  out.set(u64(b.roundId), 4);
  let o = 12;
  out.set(from, o);
  o += from.length;
  out.set(to, o);
  o += to.length;
  out[o++] = b.x;
  checkKey('secret-key share', b.secretKeyShare);
  checkKey('self-mask share', b.selfMaskShare);
  out.set(b.secretKeyShare, o);
  out.set(b.selfMaskShare, o + KEY_BYTES);
  return out;
}

export function decodeBundle(bytes: Uint8Array): ShareBundle {
  const bad = (why: string): never => {
    throw new SecAggError('DECRYPT_FAILED', `malformed share bundle: ${why}`);
  };
  if (bytes.length < 12) bad('too short');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0) !== BUNDLE_MAGIC) bad('bad magic');
  const roundId = dv.getUint32(4) * 2 ** 32 + dv.getUint32(8);
  let o = 12;
  const str = (): string => {
    if (o + 2 > bytes.length) bad('truncated id');
    const n = (bytes[o] << 8) | bytes[o + 1];
    if (o + 2 + n > bytes.length) bad('truncated id');
    try {
      const s = dec.decode(bytes.subarray(o + 2, o + 2 + n));
      o += 2 + n;
      return s;
    } catch {
      return bad('id is not UTF-8');
    }
  };
  const from = str();
  const to = str();
  if (o + 1 + 2 * KEY_BYTES !== bytes.length) bad('wrong length');
  const x = bytes[o++];
  return { roundId, from, to, x, secretKeyShare: bytes.slice(o, o + KEY_BYTES), selfMaskShare: bytes.slice(o + KEY_BYTES, o + 2 * KEY_BYTES) };
}

export function bundleShares(b: ShareBundle): { secretKey: Share; selfMask: Share } {
  return { secretKey: { x: b.x, y: b.secretKeyShare }, selfMask: { x: b.x, y: b.selfMaskShare } };
}

/** nacl.box under a precomputed key (nacl.box.before): nonce(24) ‖ box. */
export function seal(plaintext: Uint8Array, sharedKey: Uint8Array): Uint8Array {
  const nonce = nacl.randomBytes(nacl.box.nonceLength);
  const boxed = nacl.box.after(plaintext, nonce, sharedKey);
  const out = new Uint8Array(nonce.length + boxed.length);
  out.set(nonce);
  out.set(boxed, nonce.length);
  return out;
}

/** Opens a sealed bundle; DECRYPT_FAILED when it was tampered with or sealed under another key. */
export function open(ciphertext: Uint8Array, sharedKey: Uint8Array, what: string): Uint8Array {
  if (!(ciphertext instanceof Uint8Array) || ciphertext.length < nacl.box.nonceLength + nacl.box.overheadLength) {
    throw new SecAggError('DECRYPT_FAILED', `${what}: ciphertext too short`);
  }
  const plain = nacl.box.open.after(ciphertext.subarray(nacl.box.nonceLength), ciphertext.subarray(0, nacl.box.nonceLength), sharedKey);
  if (!plain) throw new SecAggError('DECRYPT_FAILED', `${what}: authentication failed (tampered, or not sealed for this bank)`);
  return plain;
}

/** Precomputed box key between my c_sk and their c_pk (one X25519 + HSalsa20). */
export function boxKey(mySecretKey: Uint8Array, theirPublicKey: Uint8Array): Uint8Array {
  checkKey('secret key', mySecretKey);
  checkKey('public key', theirPublicKey);
  return nacl.box.before(theirPublicKey, mySecretKey);
}
