// Secure aggregation (Bonawitz, Ivanov, Kreuter, Marcedone, McMahan, Patel, Ramage, Segal &
// Seth, "Practical Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017), the
// semi-honest variant (§4, Fig. 4 without the signature / consistency-check round), as two pure
// state machines with no I/O: the transport calls a method with the received message and sends
// what it returns. See messages.ts for the message flow and the sets U1 ⊇ U2 ⊇ U3 ⊇ U4.
//
// What the server learns: Σ_{u∈U3} x_u (the quantised, noised inputs of the banks whose masked
// input arrived) and nothing about any single x_u, as long as fewer than t parties collude with it
// and it does not get both kinds of share for one bank. Clients enforce the latter themselves:
// an unmask request that names a bank as survivor and as dropped, or that contradicts an earlier
// request, is refused with BOTH_SHARES_REQUESTED; each bank answers one view per round.
//
// Threshold: default t = ⌊n/2⌋ + 1 (a strict majority, min 2). Because a bank answers one
// consistent view only, a server that shows different views to different banks needs 2t
// answering banks, i.e. 2t ≤ |U3| ≤ n, impossible for t > n/2 — so both clients and server refuse
// t ≤ |U1|/2. With c banks colluding with the server use t > (n + c)/2; Bonawitz et al.'s active
// model (server may also forge clients) uses t > 2n/3 with signatures and a consistency round.
//
// Signed key lists (the active variant's PKI, implemented): with `signingKey` a client signs its
// advertised keys with its long-term Ed25519 key (keys.ts advertSigningInput binds round, t, d, id,
// both keys and a transport session digest); with `directory` (bank id → Ed25519 public key of every
// consortium bank) it verifies every key-list entry before sharing anything and refuses the round
// with KEY_LIST_UNKNOWN_BANK / KEY_LIST_UNSIGNED / KEY_LIST_BAD_SIGNATURE / KEY_LIST_OWN_KEYS_CHANGED.
// So a server can no longer substitute a bank's keys (man-in-the-middle on the pairwise seeds and
// the sealed shares) or replay an advert from another round. The consistency round (signed U3
// lists) is NOT implemented: a server may still show different survivor sets to different banks,
// which the one-view-per-bank rule and t > n/2 above bound but do not detect.
import { randomBytes } from 'node:crypto';
import { SecAggError } from './errors';
import {
  SESSION_BYTES,
  SIGNATURE_BYTES,
  boxKey,
  bundleShares,
  checkKey,
  decodeBundle,
  encodeBundle,
  generateKeyPair,
  open,
  pairwiseSeed,
  publicKeyOf,
  seal,
  signAdvert,
  verifyAdvert,
  type ConsortiumDirectory,
  type KeyPair,
} from './keys';
import type {
  AdvertiseKeysMessage,
  AdvertisedKeys,
  ForwardedSharesMessage,
  KeyListMessage,
  MaskedInputMessage,
  ShareKeysMessage,
  UnmaskRequestMessage,
  UnmaskResponseMessage,
} from './messages';
import { applyMask, SEED_BYTES } from './prg';
import { encodeUpdate, type RandomWords, type RingParams } from './ring';
import { combine, MAX_SHARES, split, type Share } from './shamir';

/** Default threshold for n banks: a strict majority, at least 2 (and at most n). */
export function defaultThreshold(n: number): number {
  if (!Number.isSafeInteger(n) || n < 2 || n > MAX_SHARES) throw new SecAggError('INVALID_PARAMS', `secure aggregation needs 2..${MAX_SHARES} banks, got ${String(n)}`);
  return Math.min(n, Math.max(2, Math.floor(n / 2) + 1));
}

export interface RoundConfig {
  roundId: number;
  /** t: shares needed to reconstruct; also the minimum number of banks at every step. */
  threshold: number;
  /** Length d of every (flattened) input vector. */
  vectorLength: number;
}

function checkConfig(c: RoundConfig): void {
  if (!Number.isSafeInteger(c.roundId) || c.roundId < 0) throw new SecAggError('INVALID_PARAMS', `roundId must be a safe integer ≥ 0, got ${String(c.roundId)}`);
  if (!Number.isSafeInteger(c.threshold) || c.threshold < 2 || c.threshold > MAX_SHARES) throw new SecAggError('INVALID_PARAMS', `threshold must be an integer in [2, ${MAX_SHARES}], got ${String(c.threshold)}`);
  if (!Number.isSafeInteger(c.vectorLength) || c.vectorLength < 1) throw new SecAggError('INVALID_PARAMS', `vectorLength must be an integer ≥ 1, got ${String(c.vectorLength)}`);
}

function checkRound(what: string, got: unknown, want: number): void {
  if (got !== want) throw new SecAggError('INVALID_MESSAGE', `${what} is for round ${String(got)}, this is round ${want}`);
}

function checkId(what: string, id: unknown): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw new SecAggError('INVALID_MESSAGE', `${what} must be a non-empty bank id string`);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Refuses sets that are too small to reconstruct, or too small relative to t for safety. */
function checkSetSize(step: string, size: number, t: number): void {
  if (size < t) throw new SecAggError('BELOW_THRESHOLD', `${step}: only ${size} bank(s), threshold t=${t}`);
}

/** Validates a key list (sorted, unique ids and keys, size within [t, 2t−1]). */
function checkKeyList(keys: readonly AdvertisedKeys[], t: number, roundStep: string): void {
  if (!Array.isArray(keys)) throw new SecAggError('INVALID_MESSAGE', 'key list must be an array');
  checkSetSize(roundStep, keys.length, t);
  if (keys.length > MAX_SHARES) throw new SecAggError('INVALID_MESSAGE', `at most ${MAX_SHARES} banks per round, got ${keys.length}`);
  if (2 * t <= keys.length) throw new SecAggError('INVALID_PARAMS', `threshold t=${t} is insecure for ${keys.length} banks (need t > n/2)`);
  const pks = new Set<string>();
  keys.forEach((k, i) => {
    checkId(`keys[${i}].id`, k.id);
    if (i > 0 && !(keys[i - 1].id < k.id)) throw new SecAggError('INVALID_MESSAGE', 'key list must be sorted by id without duplicates');
    checkKey(`keys[${i}].cPk`, k.cPk);
    checkKey(`keys[${i}].sPk`, k.sPk);
    for (const pk of [k.cPk, k.sPk]) {
      const h = hex(pk);
      if (pks.has(h)) throw new SecAggError('INVALID_MESSAGE', `public key of ${k.id} repeats another key in the list`);
      pks.add(h);
    }
  });
}

// =============================================================================== client

export type ClientStep = 'advertise' | 'shareKeys' | 'maskInput' | 'unmask' | 'done';

export interface SecAggClientOptions extends RoundConfig {
  /** This bank's id (as the server lists it). */
  id: string;
  /** Quantisation (+ DP noise) parameters for maskUpdate; not needed for maskInput. */
  ring?: RingParams;
  /** Stochastic-rounding randomness for maskUpdate (tests only; default OS CSPRNG). */
  random?: RandomWords;
  /** This bank's long-term Ed25519 secret key (tweetnacl 64 bytes, or the 32-byte seed): advertise() signs its keys. */
  signingKey?: Uint8Array;
  /**
   * The consortium directory (bank id → Ed25519 public key). When set, shareKeys() verifies every
   * key-list entry (known bank, valid signature, own entry unchanged) and refuses the list otherwise.
   */
  directory?: ConsortiumDirectory;
  /** 32-byte digest of the transport session, bound into every advert signature (default all-zero). */
  session?: Uint8Array;
}

interface Peer {
  id: string;
  index: number;
  cPk: Uint8Array;
  sPk: Uint8Array;
}

/** One bank's side of a round. Methods must be called in protocol order; each returns the message to send. */
export class SecAggClient {
  readonly id: string;
  readonly config: RoundConfig;
  private readonly ring?: RingParams;
  private readonly random?: RandomWords;
  private readonly signingKey?: Uint8Array;
  private readonly directory?: ConsortiumDirectory;
  private readonly session?: Uint8Array;
  private ownSignature: Uint8Array | null = null;
  private step: ClientStep = 'advertise';
  private cKeys: KeyPair | null = null;
  private sKeys: KeyPair | null = null;
  private selfMaskSeed: Uint8Array | null = null;
  private peers = new Map<string, Peer>();
  private myIndex = -1;
  /** My own shares of my s_sk and b (x = myIndex + 1). */
  private ownShares: { secretKey: Share; selfMask: Share } | null = null;
  /** Shares received from the other banks of U2 (decrypted at round 2). */
  private received = new Map<string, { secretKey: Share; selfMask: Share }>();
  /** U2 as this bank saw it (senders of forwarded bundles, plus itself). */
  private u2 = new Set<string>();
  /** Which kind of share was revealed for which bank: never both. */
  private revealed = new Map<string, 'selfMask' | 'secretKey'>();

  constructor(o: SecAggClientOptions) {
    checkConfig(o);
    checkId('client id', o.id);
    this.id = o.id;
    this.config = { roundId: o.roundId, threshold: o.threshold, vectorLength: o.vectorLength };
    this.ring = o.ring;
    this.random = o.random;
    if (o.session !== undefined && (!(o.session instanceof Uint8Array) || o.session.length !== SESSION_BYTES)) {
      throw new SecAggError('INVALID_PARAMS', `session binding must be a ${SESSION_BYTES}-byte Uint8Array`);
    }
    this.session = o.session?.slice();
    this.signingKey = o.signingKey;
    if (o.directory) {
      if (!(o.directory instanceof Map)) throw new SecAggError('INVALID_PARAMS', 'directory must be a Map of bank id → Ed25519 public key');
      this.directory = new Map([...o.directory].map(([id, pk]) => [id, pk.slice()]));
    }
  }

  /** Whether this client verifies key lists against a consortium directory. */
  get verifiesKeyList(): boolean {
    return this.directory !== undefined;
  }

  get currentStep(): ClientStep {
    return this.step;
  }

  private expect(step: ClientStep, method: string): void {
    if (this.step !== step) throw new SecAggError('WRONG_STATE', `${this.id}: ${method}() called at step '${this.step}'`);
  }

  /** Round 0: fresh key pairs (c for encryption, s for masking); advertise the public halves. */
  advertise(): AdvertiseKeysMessage {
    this.expect('advertise', 'advertise');
    this.cKeys = generateKeyPair();
    this.sKeys = generateKeyPair();
    const m: AdvertiseKeysMessage = { type: 'secaggAdvertiseKeys', roundId: this.config.roundId, id: this.id, cPk: this.cKeys.publicKey.slice(), sPk: this.sKeys.publicKey.slice() };
    if (this.signingKey) {
      this.ownSignature = signAdvert(this.binding(m), this.signingKey);
      m.signature = this.ownSignature.slice();
    }
    this.step = 'shareKeys';
    return m;
  }

  private binding(k: AdvertisedKeys) {
    const { roundId, threshold, vectorLength } = this.config;
    return { roundId, threshold, vectorLength, bankId: k.id, cPk: k.cPk, sPk: k.sPk, ...(this.session ? { session: this.session } : {}) };
  }

  /**
   * Checks a (structurally valid) key list against the consortium directory: this bank's own entry
   * unchanged (keys, and signature if it signed), every entry a directory bank whose long-term key
   * signed exactly these keys for this round and session.
   */
  private verifyKeyList(keys: readonly AdvertisedKeys[], me: number): void {
    const mine = keys[me];
    const sameSig = (a: Uint8Array | undefined, b: Uint8Array | null) => (b === null ? true : a instanceof Uint8Array && hex(a) === hex(b));
    const dir = this.directory;
    // Without a directory only the keys are compared (an older server may not relay signatures).
    if (hex(mine.cPk) !== hex(this.cKeys!.publicKey) || hex(mine.sPk) !== hex(this.sKeys!.publicKey) || (dir && !sameSig(mine.signature, this.ownSignature))) {
      throw new SecAggError('KEY_LIST_OWN_KEYS_CHANGED', `${this.id}: the key list carries different keys (or another signature) for this bank`);
    }
    if (!dir) return;
    for (const k of keys) {
      const pk = dir.get(k.id);
      if (!pk) throw new SecAggError('KEY_LIST_UNKNOWN_BANK', `${this.id}: key list names bank '${k.id}', which is not in this bank's consortium directory`);
      if (k.signature === undefined || k.signature.length === 0) throw new SecAggError('KEY_LIST_UNSIGNED', `${this.id}: the keys of '${k.id}' carry no signature by its identity key`);
      if (k.signature.length !== SIGNATURE_BYTES || !verifyAdvert(this.binding(k), k.signature, pk)) {
        throw new SecAggError(
          'KEY_LIST_BAD_SIGNATURE',
          `${this.id}: the keys of '${k.id}' are not signed by its directory key for round ${this.config.roundId} of this session (substituted keys, or an advert replayed from another round)`,
        );
      }
    }
  }

  /**
   * Round 1: checks the key list (≥ t banks, own keys present and unaltered), draws the self-mask
   * seed b, splits s_sk and b into t-of-|U1| shares and seals each bank's pair of shares to it.
   */
  shareKeys(list: KeyListMessage): ShareKeysMessage {
    this.expect('shareKeys', 'shareKeys');
    const { roundId, threshold: t } = this.config;
    checkRound('key list', list?.roundId, roundId);
    checkKeyList(list.keys, t, `${this.id}: key list`);
    const me = list.keys.findIndex((k) => k.id === this.id);
    if (me < 0) throw new SecAggError('INVALID_MESSAGE', `${this.id}: not in the key list`);
    try {
      this.verifyKeyList(list.keys, me);
    } catch (err) {
      this.step = 'done'; // a forged key list ends this bank's round: nothing of it is ever shared
      throw err;
    }
    this.myIndex = me;
    list.keys.forEach((k, index) => this.peers.set(k.id, { id: k.id, index, cPk: k.cPk.slice(), sPk: k.sPk.slice() }));
    const n = list.keys.length;
    const xs = list.keys.map((_, i) => i + 1);
    this.selfMaskSeed = new Uint8Array(randomBytes(SEED_BYTES));
    const sShares = split(this.sKeys!.secretKey, t, n, xs);
    const bShares = split(this.selfMaskSeed, t, n, xs);
    this.ownShares = { secretKey: sShares[me], selfMask: bShares[me] };
    const ciphertexts: { to: string; data: Uint8Array }[] = [];
    for (const peer of this.peers.values()) {
      if (peer.id === this.id) continue;
      const plain = encodeBundle({ roundId, from: this.id, to: peer.id, x: peer.index + 1, secretKeyShare: sShares[peer.index].y, selfMaskShare: bShares[peer.index].y });
      const key = boxKey(this.cKeys!.secretKey, peer.cPk);
      ciphertexts.push({ to: peer.id, data: seal(plain, key) });
      plain.fill(0);
      key.fill(0);
    }
    this.step = 'maskInput';
    return { type: 'secaggShareKeys', roundId, from: this.id, ciphertexts };
  }

  /**
   * Round 2: opens the bundles from the other banks of U2 (any tampering → DECRYPT_FAILED, and the
   * bank aborts), then masks its ring input: y = x + PRG(b) + Σ_{v∈U2, v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv).
   * `input` (length d, already quantised) is not modified.
   */
  maskInput(forwarded: ForwardedSharesMessage, input: Uint32Array): MaskedInputMessage {
    this.expect('maskInput', 'maskInput');
    const { roundId, threshold: t, vectorLength: d } = this.config;
    checkRound('forwarded shares', forwarded?.roundId, roundId);
    if (forwarded.to !== this.id) throw new SecAggError('INVALID_MESSAGE', `${this.id}: forwarded shares are addressed to ${String(forwarded.to)}`);
    if (!(input instanceof Uint32Array) || input.length !== d) throw new SecAggError('INVALID_PARAMS', `${this.id}: input must be a Uint32Array of length ${d}`);
    if (!Array.isArray(forwarded.ciphertexts)) throw new SecAggError('INVALID_MESSAGE', 'forwarded ciphertexts must be an array');
    const u2 = new Set<string>([this.id]);
    const received = new Map<string, { secretKey: Share; selfMask: Share }>();
    for (const c of forwarded.ciphertexts) {
      const peer = this.peers.get(c?.from);
      if (!peer || peer.id === this.id) throw new SecAggError('INVALID_MESSAGE', `${this.id}: bundle from unknown bank ${String(c?.from)}`);
      if (u2.has(peer.id)) throw new SecAggError('INVALID_MESSAGE', `${this.id}: two bundles from ${peer.id}`);
      const key = boxKey(this.cKeys!.secretKey, peer.cPk);
      const plain = open(c.data, key, `${this.id}: bundle from ${peer.id}`);
      key.fill(0);
      const b = decodeBundle(plain);
      if (b.roundId !== roundId || b.from !== peer.id || b.to !== this.id || b.x !== this.myIndex + 1) {
        throw new SecAggError('DECRYPT_FAILED', `${this.id}: bundle from ${peer.id} is bound to round ${b.roundId}, ${b.from} → ${b.to} (x=${b.x})`);
      }
      u2.add(peer.id);
      received.set(peer.id, bundleShares(b));
    }
    checkSetSize(`${this.id}: banks that shared keys (U2)`, u2.size, t);
    this.u2 = u2;
    this.received = received;
    const y = input.slice();
    applyMask(y, this.selfMaskSeed!, 1);
    for (const v of u2) {
      if (v === this.id) continue;
      const peer = this.peers.get(v)!;
      const seed = pairwiseSeed(this.sKeys!.secretKey, peer.sPk, roundId, this.id, v);
      applyMask(y, seed, this.myIndex < peer.index ? 1 : -1);
      seed.fill(0);
    }
    this.step = 'unmask';
    return { type: 'secaggMaskedInput', roundId, from: this.id, masked: y };
  }

  /** Round 2 from a float update: clip, quantise and add DP noise with the client's `ring` params, then mask. */
  maskUpdate(forwarded: ForwardedSharesMessage, update: ArrayLike<number>): MaskedInputMessage {
    if (!this.ring) throw new SecAggError('INVALID_PARAMS', `${this.id}: maskUpdate needs ring params (option 'ring')`);
    this.expect('maskInput', 'maskUpdate');
    if (update.length !== this.config.vectorLength) throw new SecAggError('INVALID_PARAMS', `${this.id}: update has ${update.length} entries, expected ${this.config.vectorLength}`);
    const { ring } = encodeUpdate(update, this.ring, this.random);
    return this.maskInput(forwarded, ring);
  }

  /**
   * Round 3: for each survivor v reveal the share of b_v, for each dropped v the share of s_sk_v.
   * Refuses (BOTH_SHARES_REQUESTED) when a bank is named in both lists or when the request
   * contradicts an earlier one; refuses when this bank is not a survivor, when fewer than t
   * survivors remain, or when a listed bank is not in this bank's U2. A repeated consistent
   * request (transport retry) gets the same answer.
   */
  unmask(req: UnmaskRequestMessage): UnmaskResponseMessage {
    if (this.step !== 'unmask' && this.step !== 'done') throw new SecAggError('WRONG_STATE', `${this.id}: unmask() called at step '${this.step}'`);
    const { roundId, threshold: t } = this.config;
    checkRound('unmask request', req?.roundId, roundId);
    if (!Array.isArray(req.survivors) || !Array.isArray(req.dropped)) throw new SecAggError('INVALID_MESSAGE', 'unmask request lists must be arrays');
    const survivors = new Set<string>();
    const dropped = new Set<string>();
    for (const v of req.survivors) {
      if (survivors.has(v)) throw new SecAggError('INVALID_MESSAGE', `${this.id}: survivor ${v} listed twice`);
      survivors.add(v);
    }
    for (const v of req.dropped) {
      if (survivors.has(v)) throw new SecAggError('BOTH_SHARES_REQUESTED', `${this.id}: bank ${v} is listed as survivor and as dropped; refusing to reveal both of its shares`);
      if (dropped.has(v)) throw new SecAggError('INVALID_MESSAGE', `${this.id}: dropped bank ${v} listed twice`);
      dropped.add(v);
    }
    for (const v of [...survivors, ...dropped]) {
      const before = this.revealed.get(v);
      const now = survivors.has(v) ? 'selfMask' : 'secretKey';
      if (before !== undefined && before !== now) {
        throw new SecAggError('BOTH_SHARES_REQUESTED', `${this.id}: already revealed the ${before === 'selfMask' ? 'self-mask' : 'secret-key'} share of ${v}; refusing the other`);
      }
      if (!this.u2.has(v)) throw new SecAggError('INVALID_MESSAGE', `${this.id}: ${v} did not share keys with this bank this round`);
    }
    if (dropped.has(this.id) || !survivors.has(this.id)) throw new SecAggError('INVALID_MESSAGE', `${this.id}: this bank sent its masked input; it must be listed as a survivor`);
    checkSetSize(`${this.id}: unmask request survivors`, survivors.size, t);
    const shareOf = (v: string) => (v === this.id ? this.ownShares! : this.received.get(v)!);
    const selfMaskShares = [...survivors].map((v) => ({ of: v, y: shareOf(v).selfMask.y.slice() }));
    const secretKeyShares = [...dropped].map((v) => ({ of: v, y: shareOf(v).secretKey.y.slice() }));
    for (const v of survivors) this.revealed.set(v, 'selfMask');
    for (const v of dropped) this.revealed.set(v, 'secretKey');
    this.step = 'done';
    return { type: 'secaggUnmaskResponse', roundId, from: this.id, selfMaskShares, secretKeyShares };
  }
}

// =============================================================================== server

export type ServerStep = 'collectKeys' | 'collectShares' | 'collectInputs' | 'collectUnmask' | 'done';

export interface SecAggServerOptions extends RoundConfig {
  /** If set, only these bank ids may take part. */
  allowed?: readonly string[];
}

export interface SecAggResult {
  /** Σ_{u∈U3} input_u mod 2^32 (dequantise with ring.ts). */
  sum: Uint32Array;
  /** U3: banks whose inputs are in the sum. */
  survivors: string[];
  /** U2 \ U3: banks that shared keys but whose masked input never arrived (their masks were removed). */
  dropped: string[];
  /** U4: banks whose unmask responses were used. */
  responders: string[];
  /** |U1|, |U2|, |U3|, |U4|. */
  counts: [number, number, number, number];
}

/** The coordinator's side: relays, tracks U1 ⊇ U2 ⊇ U3 ⊇ U4, sums masked inputs and unmasks the sum. */
export class SecAggServer {
  readonly config: RoundConfig;
  private readonly allowed?: Set<string>;
  private step: ServerStep = 'collectKeys';
  private advertised = new Map<string, AdvertisedKeys>();
  private keys: AdvertisedKeys[] = [];
  private index = new Map<string, number>();
  private shares = new Map<string, ShareKeysMessage>();
  private u2: string[] = [];
  private u3 = new Set<string>();
  private sum: Uint32Array | null = null;
  private survivors: string[] = [];
  private droppedList: string[] = [];
  private responses = new Map<string, UnmaskResponseMessage>();

  constructor(o: SecAggServerOptions) {
    checkConfig(o);
    this.config = { roundId: o.roundId, threshold: o.threshold, vectorLength: o.vectorLength };
    if (o.allowed) {
      if (2 * o.threshold <= o.allowed.length) throw new SecAggError('INVALID_PARAMS', `threshold t=${o.threshold} is insecure for ${o.allowed.length} banks (need t > n/2)`);
      this.allowed = new Set(o.allowed);
    }
  }

  get currentStep(): ServerStep {
    return this.step;
  }

  /** Sizes of U1..U4 so far. */
  counts(): [number, number, number, number] {
    return [this.step === 'collectKeys' ? this.advertised.size : this.keys.length, this.step === 'collectShares' ? this.shares.size : this.u2.length, this.u3.size, this.responses.size];
  }

  private expect(step: ServerStep, method: string): void {
    if (this.step !== step) throw new SecAggError('WRONG_STATE', `server: ${method}() called at step '${this.step}'`);
  }

  /** Round 0: records one bank's keys (once). */
  receiveAdvertise(m: AdvertiseKeysMessage): void {
    this.expect('collectKeys', 'receiveAdvertise');
    checkRound('advertised keys', m?.roundId, this.config.roundId);
    checkId('advertised id', m.id);
    if (this.allowed && !this.allowed.has(m.id)) throw new SecAggError('INVALID_MESSAGE', `bank ${m.id} is not part of this round`);
    if (this.advertised.has(m.id)) throw new SecAggError('INVALID_MESSAGE', `bank ${m.id} advertised keys twice`);
    checkKey(`${m.id}.cPk`, m.cPk);
    checkKey(`${m.id}.sPk`, m.sPk);
    const sig = m.signature;
    if (sig !== undefined && sig.length !== 0 && (!(sig instanceof Uint8Array) || sig.length !== SIGNATURE_BYTES)) {
      throw new SecAggError('INVALID_MESSAGE', `bank ${m.id}: advert signature must be ${SIGNATURE_BYTES} bytes`);
    }
    // The server relays the bank's signature untouched (it cannot make one for other keys).
    this.advertised.set(m.id, { id: m.id, cPk: m.cPk.slice(), sPk: m.sPk.slice(), ...(sig && sig.length ? { signature: sig.slice() } : {}) });
  }

  /** Closes U1 and returns the key list to send to every bank in it. */
  keyList(): KeyListMessage {
    this.expect('collectKeys', 'keyList');
    const keys = [...this.advertised.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    checkKeyList(keys, this.config.threshold, 'server: banks that advertised keys (U1)');
    this.keys = keys;
    keys.forEach((k, i) => this.index.set(k.id, i));
    this.step = 'collectShares';
    return { type: 'secaggKeyList', roundId: this.config.roundId, keys: keys.map((k) => ({ id: k.id, cPk: k.cPk, sPk: k.sPk, ...(k.signature ? { signature: k.signature } : {}) })) };
  }

  /** Round 1: stores one bank's sealed bundles; it must address every other bank of U1 exactly once. */
  receiveShares(m: ShareKeysMessage): void {
    this.expect('collectShares', 'receiveShares');
    checkRound('shared keys', m?.roundId, this.config.roundId);
    if (!this.index.has(m.from)) throw new SecAggError('INVALID_MESSAGE', `shares from ${String(m.from)}, which is not in U1`);
    if (this.shares.has(m.from)) throw new SecAggError('INVALID_MESSAGE', `bank ${m.from} sent its shares twice`);
    if (!Array.isArray(m.ciphertexts) || m.ciphertexts.length !== this.keys.length - 1) {
      throw new SecAggError('INVALID_MESSAGE', `bank ${m.from} must send ${this.keys.length - 1} bundles, sent ${Array.isArray(m.ciphertexts) ? m.ciphertexts.length : 'none'}`);
    }
    const to = new Set<string>();
    for (const c of m.ciphertexts) {
      if (!this.index.has(c?.to) || c.to === m.from || to.has(c.to)) throw new SecAggError('INVALID_MESSAGE', `bank ${m.from}: bundle addressed to ${String(c?.to)} is unknown, itself or repeated`);
      if (!(c.data instanceof Uint8Array)) throw new SecAggError('INVALID_MESSAGE', `bank ${m.from}: bundle data must be bytes`);
      to.add(c.to);
    }
    this.shares.set(m.from, m);
  }

  /** Closes U2; returns, per bank of U2, the bundles addressed to it by the other banks of U2. */
  forwardShares(): Map<string, ForwardedSharesMessage> {
    this.expect('collectShares', 'forwardShares');
    checkSetSize('server: banks that shared keys (U2)', this.shares.size, this.config.threshold);
    this.u2 = this.keys.map((k) => k.id).filter((id) => this.shares.has(id));
    const out = new Map<string, ForwardedSharesMessage>();
    for (const v of this.u2) out.set(v, { type: 'secaggForwardedShares', roundId: this.config.roundId, to: v, ciphertexts: [] });
    for (const u of this.u2) {
      for (const c of this.shares.get(u)!.ciphertexts) {
        const f = out.get(c.to);
        if (f) f.ciphertexts.push({ from: u, data: c.data });
      }
    }
    this.shares.clear();
    this.step = 'collectInputs';
    return out;
  }

  /** Round 2: adds one bank's masked input into the running sum (the input itself is not kept). */
  receiveMaskedInput(m: MaskedInputMessage): void {
    this.expect('collectInputs', 'receiveMaskedInput');
    checkRound('masked input', m?.roundId, this.config.roundId);
    if (!this.u2.includes(m.from)) throw new SecAggError('INVALID_MESSAGE', `masked input from ${String(m.from)}, which is not in U2`);
    if (this.u3.has(m.from)) throw new SecAggError('INVALID_MESSAGE', `bank ${m.from} sent its masked input twice`);
    if (!(m.masked instanceof Uint32Array) || m.masked.length !== this.config.vectorLength) {
      throw new SecAggError('INVALID_MESSAGE', `bank ${m.from}: masked input must be a Uint32Array of length ${this.config.vectorLength}`);
    }
    if (!this.sum) this.sum = new Uint32Array(this.config.vectorLength);
    const s = this.sum;
    const y = m.masked;
    for (let i = 0; i < s.length; i++) s[i] += y[i];
    this.u3.add(m.from);
  }

  /** Closes U3 (needs ≥ t) and returns the unmask request for every bank in it. */
  unmaskRequest(): UnmaskRequestMessage {
    this.expect('collectInputs', 'unmaskRequest');
    checkSetSize('server: banks whose masked input arrived (U3)', this.u3.size, this.config.threshold);
    this.survivors = this.u2.filter((id) => this.u3.has(id));
    this.droppedList = this.u2.filter((id) => !this.u3.has(id));
    this.step = 'collectUnmask';
    return { type: 'secaggUnmaskRequest', roundId: this.config.roundId, survivors: [...this.survivors], dropped: [...this.droppedList] };
  }

  /** Round 3: records one bank's shares (must cover exactly the request's survivors and dropped). */
  receiveUnmask(m: UnmaskResponseMessage): void {
    this.expect('collectUnmask', 'receiveUnmask');
    checkRound('unmask response', m?.roundId, this.config.roundId);
    if (!this.u3.has(m.from)) throw new SecAggError('INVALID_MESSAGE', `unmask response from ${String(m.from)}, which is not in U3`);
    if (this.responses.has(m.from)) throw new SecAggError('INVALID_MESSAGE', `bank ${m.from} answered twice`);
    const same = (list: { of: string; y: Uint8Array }[], want: string[]): boolean =>
      Array.isArray(list) && list.length === want.length && list.every((s, i) => s?.of === want[i] && s.y instanceof Uint8Array && s.y.length === SEED_BYTES);
    if (!same(m.selfMaskShares, this.survivors) || !same(m.secretKeyShares, this.droppedList)) {
      throw new SecAggError('INVALID_MESSAGE', `bank ${m.from}: unmask response does not match the request`);
    }
    this.responses.set(m.from, m);
  }

  /**
   * Closes U4 (needs ≥ t responders), reconstructs every survivor's b_u and every dropped bank's
   * s_sk_v (extra shares are checked for consistency; s_sk_v must match its advertised s_pk_v),
   * removes the self masks and the dropped banks' pairwise masks, and returns the sum.
   */
  finish(): SecAggResult {
    this.expect('collectUnmask', 'finish');
    const t = this.config.threshold;
    const responders = this.survivors.filter((id) => this.responses.has(id));
    checkSetSize('server: banks that answered the unmask request (U4)', responders.length, t);
    const sum = this.sum!;
    const x = (id: string): number => this.index.get(id)! + 1;
    const sharesFor = (i: number, kind: 'selfMaskShares' | 'secretKeyShares'): Share[] =>
      responders.map((r) => ({ x: x(r), y: this.responses.get(r)![kind][i].y }));
    this.survivors.forEach((u, i) => {
      const b = combine(sharesFor(i, 'selfMaskShares'), t);
      applyMask(sum, b, -1);
    });
    this.droppedList.forEach((v, i) => {
      const sk = combine(sharesFor(i, 'secretKeyShares'), t);
      const vKeys = this.keys[this.index.get(v)!];
      if (hex(publicKeyOf(sk)) !== hex(vKeys.sPk)) throw new SecAggError('SHARE_MISMATCH', `reconstructed mask key of ${v} does not match its advertised public key`);
      for (const u of this.survivors) {
        const uKeys = this.keys[this.index.get(u)!];
        const seed = pairwiseSeed(sk, uKeys.sPk, this.config.roundId, v, u);
        // u added +PRG(s_uv) if u sorts before v, −PRG(s_uv) otherwise: undo it.
        applyMask(sum, seed, this.index.get(u)! < this.index.get(v)! ? -1 : 1);
      }
      sk.fill(0);
    });
    this.step = 'done';
    const u1 = this.keys.length;
    return { sum, survivors: [...this.survivors], dropped: [...this.droppedList], responders, counts: [u1, this.u2.length, this.u3.size, responders.length] };
  }
}
