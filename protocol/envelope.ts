// Message authentication for frames (Ed25519 signatures) and replay protection.
//
// The signature covers a canonical signing input, never the protobuf bytes of the Frame itself
// (protobuf encodings are not canonical). Every variable-length field is length-prefixed and every
// integer has a fixed width, so no two different headers produce the same input and nothing can be
// spliced between fields. The body enters as its SHA-256 digest, so verification costs one hash of
// the body plus one Ed25519 verification of ~110 bytes, whatever the tensor payload. SHA-256 rather
// than SHA-512 (v1 of this format): with the CPU's SHA extensions it hashes an update faster, and
// hashing every update is the coordinator's largest per-byte cost under load (bench:load); 128-bit collision resistance matches Ed25519's security level.
//
// Keys are tweetnacl's (identity.ts); the Ed25519 (RFC 8032) arithmetic runs in Node's OpenSSL
// binding, which produces byte-identical signatures, verifies far faster than tweetnacl's pure JS
// and rejects non-canonical (malleable) signatures.

import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { ProtocolError } from './errors';

export const SIGNATURE_DOMAIN = 'fedsynth/frame-signature/v2';
export const NONCE_BYTES = 16;
export const SIGNATURE_BYTES = nacl.sign.signatureLength; // 64
export const SIGN_PUBLIC_KEY_BYTES = nacl.sign.publicKeyLength; // 32
export const SIGN_SECRET_KEY_BYTES = nacl.sign.secretKeyLength; // 64

/** The Frame fields a signature binds, besides the body. `type` is the wire MessageType number. */
export interface SignedHeader {
  version: number;
  type: number;
  sender: string;
  roundId: number;
  nonce: Uint8Array;
  timestampMs: number;
}

export interface Signer {
  /** The sender id written into the frame (bank id or the coordinator's id). */
  id: string;
  /** Ed25519 secret key, 64 bytes (tweetnacl layout: seed ‖ public key). */
  secretKey: Uint8Array;
}

const DOMAIN_BYTES = new TextEncoder().encode(SIGNATURE_DOMAIN);
const textEncoder = new TextEncoder();

/** The exact bytes that are signed: lp(domain) ‖ u32 version ‖ u32 type ‖ lp(sender) ‖ u32 round ‖ lp(nonce) ‖ u64 timestamp ‖ lp(SHA-256(body)); all big-endian, lp = u32 length prefix. */
export function signingInput(header: SignedHeader, body: Uint8Array): Uint8Array {
  const sender = textEncoder.encode(header.sender);
  const digest = createHash('sha256').update(body).digest();
  const size = 4 + DOMAIN_BYTES.length + 4 + 4 + 4 + sender.length + 4 + 4 + header.nonce.length + 8 + 4 + digest.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  const u32 = (v: number): void => {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ProtocolError('INVALID_FIELD', `signed header value ${v} is not a uint32`);
    view.setUint32(at, v, false);
    at += 4;
  };
  const lp = (b: Uint8Array): void => {
    u32(b.length);
    out.set(b, at);
    at += b.length;
  };
  lp(DOMAIN_BYTES);
  u32(header.version);
  u32(header.type);
  lp(sender);
  u32(header.roundId);
  lp(header.nonce);
  if (!Number.isSafeInteger(header.timestampMs) || header.timestampMs < 0) {
    throw new ProtocolError('INVALID_FIELD', `signed header timestamp ${header.timestampMs} is not a non-negative safe integer`);
  }
  view.setBigUint64(at, BigInt(header.timestampMs), false);
  at += 8;
  lp(digest);
  return out;
}

// DER prefixes wrapping a raw 32-byte Ed25519 key (RFC 8410).
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const KEY_CACHE_MAX = 1024;
const publicKeyCache = new Map<string, KeyObject>();
// Keyed by the caller's secret-key array itself, so no copy of the secret is kept as a string.
const privateKeyCache = new WeakMap<Uint8Array, KeyObject>();

function cachedPublic(cache: Map<string, KeyObject>, raw: Uint8Array, make: () => KeyObject): KeyObject {
  const k = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
  let key = cache.get(k);
  if (!key) {
    key = make();
    if (cache.size >= KEY_CACHE_MAX) cache.delete(cache.keys().next().value!);
    cache.set(k, key);
  }
  return key;
}

/** Ed25519 detached signature (64 bytes) over `signingInput(header, body)`. */
export function signFrame(header: SignedHeader, body: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== SIGN_SECRET_KEY_BYTES) {
    throw new ProtocolError('INVALID_FIELD', `signing secret key must be ${SIGN_SECRET_KEY_BYTES} bytes (got ${secretKey?.length ?? typeof secretKey})`);
  }
  // tweetnacl's secret key is seed ‖ public key; OpenSSL wants the seed.
  let key = privateKeyCache.get(secretKey);
  if (!key) {
    key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
    privateKeyCache.set(secretKey, key);
  }
  return new Uint8Array(cryptoSign(null, signingInput(header, body), key));
}

/** True when `signature` is a valid Ed25519 signature by `publicKey` over this header and body. */
export function verifyFrame(header: SignedHeader, body: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || !(publicKey instanceof Uint8Array)) return false;
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== SIGN_PUBLIC_KEY_BYTES) return false;
  let key: KeyObject;
  try {
    key = cachedPublic(publicKeyCache, publicKey, () => createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }));
  } catch {
    return false; // not a valid curve point
  }
  return cryptoVerify(null, signingInput(header, body), key, signature);
}

// ---------------------------------------------------------------------------------------------
// Replay protection

/** What ReplayGuard needs from a decoded frame (a DecodedMessage's `frame` has all of it). */
export interface ReplayCheckInput {
  sender: string;
  roundId: number;
  nonce: Uint8Array;
  timestampMs: number;
}

export interface ReplayGuardOptions {
  /** Accept timestamps within ±maxSkewMs of the local clock (default 5 minutes). */
  maxSkewMs?: number;
  /** Most nonces remembered at once (default 65 536); memory is O(maxEntries). */
  maxEntries?: number;
  /** Clock, injectable for tests. */
  now?: () => number;
  /**
   * Raise the current round to the highest round id accepted. Right for a bank, whose only peer is
   * the coordinator; the coordinator should instead call advanceRound() from its round state, so no
   * single bank can push the round forward for everyone.
   */
  autoAdvanceRound?: boolean;
}

/**
 * Rejects a frame whose (sender, nonce) was already accepted (`REPLAY`), whose timestamp is outside
 * the skew window (`STALE`), or whose round id is older than the current round (`STALE_ROUND`).
 * Frames with round id 0 (handshake, status, round-less errors) skip the round check.
 *
 * Memory is bounded: a nonce is forgotten once its timestamp leaves the window (a replay of it is
 * then STALE anyway). If more than maxEntries nonces are live, the oldest is evicted and the
 * acceptance floor rises to its timestamp, so an evicted nonce can never be replayed either; the
 * cost is that honest frames older than the floor are rejected as STALE under such a flood.
 */
export class ReplayGuard {
  private readonly maxSkewMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly autoAdvance: boolean;
  private readonly seen = new Map<string, number>();
  private readonly heap: Array<[number, string]> = []; // min-heap on timestamp
  private floorMs = -Infinity;
  private round = 0;

  constructor(opts: ReplayGuardOptions = {}) {
    this.maxSkewMs = opts.maxSkewMs ?? 5 * 60_000;
    this.maxEntries = opts.maxEntries ?? 65_536;
    this.now = opts.now ?? Date.now;
    this.autoAdvance = opts.autoAdvanceRound ?? false;
    if (!(this.maxSkewMs > 0) || !Number.isFinite(this.maxSkewMs)) throw new RangeError(`ReplayGuard maxSkewMs must be a positive number (got ${opts.maxSkewMs})`);
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) throw new RangeError(`ReplayGuard maxEntries must be a positive integer (got ${opts.maxEntries})`);
  }

  get currentRound(): number {
    return this.round;
  }

  /** Number of nonces currently remembered. */
  get size(): number {
    return this.seen.size;
  }

  /** Frames for rounds below `roundId` are rejected from now on. Never moves backwards. */
  advanceRound(roundId: number): void {
    if (!Number.isInteger(roundId) || roundId < 0) throw new RangeError(`round id must be a non-negative integer (got ${roundId})`);
    if (roundId > this.round) this.round = roundId;
  }

  /** Throws ProtocolError (REPLAY, STALE, STALE_ROUND) or records the nonce and returns. */
  check(frame: ReplayCheckInput): void {
    const now = this.now();
    this.expire(now);
    const ts = frame.timestampMs;
    if (!Number.isFinite(ts) || ts < now - this.maxSkewMs || ts > now + this.maxSkewMs) {
      throw new ProtocolError('STALE', `frame from '${frame.sender}' has timestamp ${ts}, ${Math.round((ts - now) / 1000)} s from local time (allowed ±${this.maxSkewMs / 1000} s)`);
    }
    if (ts <= this.floorMs) {
      throw new ProtocolError('STALE', `frame from '${frame.sender}' is older than the replay window floor (${this.floorMs}); too many frames arrived within the window`);
    }
    if (frame.roundId !== 0 && frame.roundId < this.round) {
      throw new ProtocolError('STALE_ROUND', `frame from '${frame.sender}' is for round ${frame.roundId}, but the current round is ${this.round}`);
    }
    const key = `${frame.sender}\u0000${Buffer.from(frame.nonce.buffer, frame.nonce.byteOffset, frame.nonce.byteLength).toString('base64')}`;
    if (this.seen.has(key)) {
      throw new ProtocolError('REPLAY', `frame from '${frame.sender}' reuses a nonce already seen (replayed or duplicated frame)`);
    }
    while (this.seen.size >= this.maxEntries) {
      const [oldTs, oldKey] = this.pop()!;
      this.seen.delete(oldKey);
      this.floorMs = Math.max(this.floorMs, oldTs);
    }
    if (ts <= this.floorMs) {
      throw new ProtocolError('STALE', `frame from '${frame.sender}' is older than the replay window floor (${this.floorMs}); too many frames arrived within the window`);
    }
    this.seen.set(key, ts);
    this.push([ts, key]);
    if (this.autoAdvance && frame.roundId > this.round) this.round = frame.roundId;
  }

  private expire(now: number): void {
    const limit = now - this.maxSkewMs;
    while (this.heap.length > 0 && this.heap[0][0] < limit) {
      const [, key] = this.pop()!;
      this.seen.delete(key);
    }
  }

  private push(item: [number, string]): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p][0] <= h[i][0]) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  private pop(): [number, string] | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l][0] < h[m][0]) m = l;
        if (r < h.length && h[r][0] < h[m][0]) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}

export { generateIdentity, saveIdentity, loadIdentity, publicIdentity, keyFingerprint, parsePublicIdentity } from './identity';
export type { Identity, KeyPair, PublicIdentity } from './identity';
