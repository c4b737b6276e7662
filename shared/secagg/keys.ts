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
//
// Signed adverts (the PKI of Bonawitz et al.'s active variant): each bank signs its two public keys
// with its long-term Ed25519 identity key; the coordinator relays the signature in the key list and
// cannot forge one for keys it invented. Canonical signing input (advertSigningInput):
//     "fedsynth/secagg/v1/advertise-keys" 0x00 ‖ round (u64 BE) ‖ t (u16 BE) ‖ d (u32 BE)
//     ‖ bank id (u16 BE length ‖ UTF-8) ‖ c_pk (32) ‖ s_pk (32) ‖ session (32)
// where `session` is a 32-byte digest the transport binds in (the socket.io layer: coordinator key,
// round deadline, cohort and ring parameters, see client-node/secagg-client.ts), all-zero if none.
// A bank checks every entry against its consortium directory (bank id → Ed25519 public key).
import { createHash, createPrivateKey, createPublicKey, diffieHellman, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
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

// X25519 (RFC 7748) runs in node:crypto's OpenSSL binding: the same function as tweetnacl's
// scalarMult (clamped scalar, u-coordinate in and out; checked in test/secagg/keys.test.ts), much
// faster once both KeyObjects exist (tweetnacl's scalarMult is pure JS). A round needs ~3 agreements per peer per
// bank, and the coordinator one per (survivor, dropped bank) pair, so this is most of secure
// aggregation's key cost at 100 banks. Building a private KeyObject from DER is itself slow (OpenSSL's
// decoders; X25519 public keys come in as JWK, far cheaper), so every KeyObject (X25519 and the advert
// signatures' Ed25519, secret and public) is cached per Uint8Array: a bank uses its c_sk and s_sk
// ~100 times a round, the coordinator a dropped bank's reconstructed key once per survivor. An entry is
// used only while the array still holds the same bytes (checked by a SHA-256 fingerprint, so no copy
// of a secret is kept in the JS heap) and goes with the array when it is garbage-collected.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
// DER wrappers of raw Ed25519 keys (RFC 8410), for the advert signatures below.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
type KeyKind = 'x25519-private' | 'x25519-public' | 'ed25519-private' | 'ed25519-public';
const keyObjects = new WeakMap<Uint8Array, { fingerprint: string; key: KeyObject }>();

/** The node:crypto KeyObject of a raw key (Ed25519 secret keys: tweetnacl's 64 bytes or the 32-byte seed), cached per array. */
function cachedKeyObject(raw: Uint8Array, kind: KeyKind): KeyObject {
  const fingerprint = createHash('sha256').update(kind).update(raw).digest('base64');
  const hit = keyObjects.get(raw);
  if (hit && hit.fingerprint === fingerprint) return hit.key;
  let key: KeyObject;
  if (kind === 'x25519-public') {
    // JWK import builds the key from its raw bytes, ~8x cheaper than OpenSSL's DER decoder.
    key = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url') }, format: 'jwk' });
  } else if (kind === 'ed25519-public') {
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
  } else {
    const der = Buffer.concat([kind === 'x25519-private' ? PKCS8_X25519 : PKCS8_ED25519, raw.subarray(0, 32)]);
    try {
      key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } finally {
      der.fill(0);
    }
  }
  keyObjects.set(raw, { fingerprint, key });
  return key;
}

/** Raw X25519 shared secret; refuses the all-zero output of a small-order public key. */
export function agree(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  checkKey('secret key', secretKey);
  checkKey('public key', publicKey);
  let shared: Uint8Array;
  try {
    shared = new Uint8Array(diffieHellman({ privateKey: cachedKeyObject(secretKey, 'x25519-private'), publicKey: cachedKeyObject(publicKey, 'x25519-public') }));
  } catch (err) {
    // OpenSSL refuses a small-order point (all-zero secret) itself.
    throw new SecAggError('INVALID_MESSAGE', `X25519 key agreement failed: ${(err as Error).message} (public key of small order?)`);
  }
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

const HSALSA_SIGMA = enc.encode('expand 32-byte k');
// tweetnacl's low-level core (present at run time, missing from its type declarations).
const hsalsa20 = (nacl as unknown as { lowlevel: { crypto_core_hsalsa20(out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array): number } }).lowlevel.crypto_core_hsalsa20;
const ZERO_16 = new Uint8Array(16);

/**
 * Precomputed box key between my c_sk and their c_pk: HSalsa20(X25519(c_sk, c_pk)), exactly
 * nacl.box.before (crypto_box_beforenm), with the X25519 step native.
 */
export function boxKey(mySecretKey: Uint8Array, theirPublicKey: Uint8Array): Uint8Array {
  const shared = agree(mySecretKey, theirPublicKey);
  const key = new Uint8Array(32);
  hsalsa20(key, ZERO_16, shared, HSALSA_SIGMA);
  shared.fill(0);
  return key;
}

// ------------------------------------------------------------------ signed adverts (PKI)

export const SIGNATURE_BYTES = 64;
export const SIGN_PUBLIC_KEY_BYTES = 32;
export const SESSION_BYTES = 32;
const ADVERT_LABEL = enc.encode('fedsynth/secagg/v1/advertise-keys\0');
const ZERO_SESSION = new Uint8Array(SESSION_BYTES);

/** Bank id → the bank's long-term Ed25519 public key (32 bytes), distributed out of band. */
export type ConsortiumDirectory = ReadonlyMap<string, Uint8Array>;

/** What a bank's advert signature covers. */
export interface AdvertBinding {
  roundId: number;
  threshold: number;
  vectorLength: number;
  bankId: string;
  cPk: Uint8Array;
  sPk: Uint8Array;
  /** 32-byte transport session digest (default all-zero). */
  session?: Uint8Array;
}

/** The canonical, domain-separated bytes a bank signs for its advertised keys. */
export function advertSigningInput(a: AdvertBinding): Uint8Array {
  checkKey('c_pk', a.cPk);
  checkKey('s_pk', a.sPk);
  if (!Number.isSafeInteger(a.threshold) || a.threshold < 0 || a.threshold > 0xffff) throw new SecAggError('INVALID_PARAMS', `threshold must fit in u16, got ${String(a.threshold)}`);
  if (!Number.isSafeInteger(a.vectorLength) || a.vectorLength < 0 || a.vectorLength > 0xffffffff) throw new SecAggError('INVALID_PARAMS', `vector length must fit in u32, got ${String(a.vectorLength)}`);
  const session = a.session ?? ZERO_SESSION;
  if (!(session instanceof Uint8Array) || session.length !== SESSION_BYTES) throw new SecAggError('INVALID_PARAMS', `session binding must be ${SESSION_BYTES} bytes`);
  const id = lp16(a.bankId);
  const out = new Uint8Array(ADVERT_LABEL.length + 8 + 2 + 4 + id.length + 2 * KEY_BYTES + SESSION_BYTES);
  const dv = new DataView(out.buffer);
  let o = 0;
  out.set(ADVERT_LABEL, o);
  o += ADVERT_LABEL.length;
  out.set(u64(a.roundId), o);
  o += 8;
  dv.setUint16(o, a.threshold);
  o += 2;
  dv.setUint32(o, a.vectorLength);
  o += 4;
  out.set(id, o);
  o += id.length;
  out.set(a.cPk, o);
  out.set(a.sPk, o + KEY_BYTES);
  out.set(session, o + 2 * KEY_BYTES);
  return out;
}

/** Ed25519 signature of an advert; `signSecretKey` is tweetnacl's 64-byte secret key (seed ‖ public) or the 32-byte seed. */
export function signAdvert(a: AdvertBinding, signSecretKey: Uint8Array): Uint8Array {
  if (!(signSecretKey instanceof Uint8Array) || (signSecretKey.length !== 64 && signSecretKey.length !== 32)) {
    throw new SecAggError('INVALID_PARAMS', 'the signing key must be an Ed25519 secret key (64 bytes, or its 32-byte seed)');
  }
  // Ed25519 in node:crypto: byte-identical to tweetnacl's signatures, far faster than its pure JS.
  return new Uint8Array(edSign(null, advertSigningInput(a), cachedKeyObject(signSecretKey, 'ed25519-private')));
}

/** Whether `signature` is the advert's Ed25519 signature under `signPublicKey`; false for malformed inputs. */
export function verifyAdvert(a: AdvertBinding, signature: Uint8Array | undefined, signPublicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false;
  if (!(signPublicKey instanceof Uint8Array) || signPublicKey.length !== SIGN_PUBLIC_KEY_BYTES) return false;
  try {
    return edVerify(null, advertSigningInput(a), cachedKeyObject(signPublicKey, 'ed25519-public'), signature);
  } catch {
    return false;
  }
}
