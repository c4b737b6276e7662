// The bank's side of one secure-aggregation round (issue #6): drives shared/secagg's SecAggClient
// from decoded frames. The bank's update leaves this process only masked; the coordinator learns
// the sum over the round's banks. See coordinator/secagg-round.ts for the step order and the FedAvg
// weighting: the bank masks (m/W)·update with m = min(sampleCount, W) and reports m in clear.
//
// Key-list verification (active coordinator): the bank signs its advertised keys with its long-term
// Ed25519 identity key, over a session digest (secAggSessionDigest: the coordinator's key, the round
// id, the attempt's deadline, the cohort and the ring parameters), and, given a consortium directory
// (the operator's allow-list file, readConsortiumDirectory), refuses any key list with an entry that
// is not a directory bank's signature over exactly these keys for this session.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SecAggClient, SecAggError, encodeUpdate, flatten, ringParams, type RingParams } from '../shared/secagg';
import type { ConsortiumDirectory } from '../shared/secagg/keys';
import { roundMechanism } from '../shared/secagg/dp-plan';
import { parsePublicIdentity } from '../protocol';
import type {
  SecAggCiphertext,
  SecAggForwardedSharesMessage,
  SecAggKeyListMessage,
  SecAggParams,
  SecAggShare,
  SecAggUnmaskRequestMessage,
  TensorSpec,
  WireRingTensor,
} from '../protocol';

/** Sensitivities (ring units), guaranteed Skellam μ of the sum and the resulting noise multiplier. */
export type DistributedDpMechanism = ReturnType<typeof roundMechanism>;

export type Tensors = { name: string; shape: number[]; data: Float32Array }[];

/** What a test hook sees of the bank's own input just before masking (it never leaves the bank). */
export interface SecAggInputInfo {
  roundId: number;
  /** The clipped plaintext update. */
  update: Tensors;
  /** m = min(sampleCount, weightCap), the FedAvg weight reported in clear. */
  sampleCount: number;
  /** The quantised ring input (m/W)·update before masking. */
  ring: Uint32Array;
}

type Forwarded = { roundId: number; ciphertexts: SecAggCiphertext[] };

export class SecAggSessionError extends Error {
  override name = 'SecAggSessionError';
}

export class SecAggSession {
  readonly roundId: number;
  readonly params: SecAggParams;
  private readonly ring: RingParams;
  /** The round's distributed-DP mechanism (Skellam in the ring), when the coordinator asked for it. */
  readonly distributedDp: DistributedDpMechanism | undefined;
  private readonly client: SecAggClient;
  private forwarded: Forwarded | null = null;
  private waiter: { resolve: (f: Forwarded) => void; reject: (e: Error) => void } | null = null;
  private cancelled: Error | null = null;

  constructor(
    private readonly o: {
      bankId: string;
      roundId: number;
      params: SecAggParams;
      layout: readonly TensorSpec[];
      onInput?: (info: SecAggInputInfo) => void;
      /** The bank's long-term Ed25519 secret key: its advertised keys are signed with it (else unsigned). */
      signingKey?: Uint8Array;
      /** The consortium directory: when set, every key-list entry is verified against it. */
      directory?: ConsortiumDirectory;
      /**
       * Called with the round's distributed-DP mechanism (re-derived from the public parameters)
       * before the update is noised, masked and sent; throw to refuse (e.g. the ledger's budget).
       */
      chargeDistributedDp?: (c: { roundId: number; mechanism: DistributedDpMechanism }) => void;
      /** Bound into the session digest: the coordinator's Ed25519 key and the attempt's RoundStart deadline. */
      coordinatorKey?: Uint8Array;
      deadlineMs?: number;
    },
  ) {
    this.roundId = o.roundId;
    this.params = o.params;
    if (!o.params.cohort.includes(o.bankId)) throw new SecAggSessionError(`round ${o.roundId}: this bank is not in the secure-aggregation cohort`);
    const d = o.layout.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    if (d !== o.params.vectorLength) throw new SecAggSessionError(`round ${o.roundId}: vector length ${o.params.vectorLength} differs from the model's ${d} parameters`);
    // Re-derives and checks the no-overflow bound for the coordinator's scale, with the round's
    // distributed-DP noise if any (throws if unsafe).
    const dp = o.params.skellamMu !== undefined && o.params.roundingBeta !== undefined ? { mu: o.params.skellamMu, beta: o.params.roundingBeta } : undefined;
    this.ring = ringParams({
      clipNorm: o.params.clipNorm,
      maxBanks: o.params.maxBanks,
      scale: o.params.scale,
      ...(dp ? { noise: { mechanism: 'skellam' as const, mu: dp.mu }, roundingBeta: dp.beta } : {}),
    });
    this.distributedDp = dp
      ? roundMechanism({ clipNorm: o.params.clipNorm, scale: o.params.scale, roundingBeta: dp.beta, skellamMu: dp.mu, threshold: o.params.threshold, vectorLength: d })
      : undefined;
    this.client = new SecAggClient({
      id: o.bankId,
      roundId: o.roundId,
      threshold: o.params.threshold,
      vectorLength: d,
      ring: this.ring,
      session: secAggSessionDigest({ roundId: o.roundId, params: o.params, coordinatorKey: o.coordinatorKey, deadlineMs: o.deadlineMs ?? 0 }),
      ...(o.signingKey ? { signingKey: o.signingKey } : {}),
      ...(o.directory ? { directory: o.directory } : {}),
    });
  }

  /** Whether key lists are verified against a consortium directory in this round. */
  get verifiesKeyList(): boolean {
    return this.client.verifiesKeyList;
  }

  /** Round 0: fresh keys for this round, signed with the bank's identity key when it has one. */
  advertise(): { roundId: number; cPk: Uint8Array; sPk: Uint8Array; signature?: Uint8Array } {
    const m = this.client.advertise();
    return { roundId: m.roundId, cPk: m.cPk, sPk: m.sPk, ...(m.signature ? { signature: m.signature } : {}) };
  }

  /** Round 1: shares of this bank's mask secrets, sealed to each other bank of the key list. */
  onKeyList(m: SecAggKeyListMessage): { roundId: number; ciphertexts: SecAggCiphertext[] } {
    this.live();
    const keys = m.keys.map((k) => ({ id: k.bankId, cPk: k.cPk, sPk: k.sPk, ...(k.signature ? { signature: k.signature } : {}) }));
    const out = this.client.shareKeys({ type: 'secaggKeyList', roundId: m.roundId, keys });
    return { roundId: out.roundId, ciphertexts: out.ciphertexts.map((c) => ({ bankId: c.to, data: c.data })) };
  }

  /** The bundles addressed to this bank; masking waits for them. */
  onForwarded(m: SecAggForwardedSharesMessage): void {
    this.live();
    if (this.forwarded) throw new SecAggSessionError(`round ${this.roundId}: forwarded shares arrived twice`);
    this.forwarded = { roundId: m.roundId, ciphertexts: m.ciphertexts };
    this.waiter?.resolve(this.forwarded);
  }

  /**
   * Round 2: weights the (already clipped) update by m/W, quantises it in the ring and masks it.
   * Waits for the forwarded shares until `deadlineMs`.
   */
  async mask(update: Tensors, sampleCount: number, deadlineMs: number): Promise<{ sampleCount: number; maskedTensors: WireRingTensor[] }> {
    const fwd = await this.waitForShares(deadlineMs);
    const W = this.params.weightCap;
    const m = Math.max(1, Math.min(sampleCount, W));
    const flat = flatten(update);
    const weighted = new Float64Array(flat.length);
    for (let i = 0; i < flat.length; i++) weighted[i] = (flat[i]! * m) / W;
    // The privacy charge comes first: if the ledger refuses (budget), nothing is encoded or sent.
    if (this.distributedDp) this.o.chargeDistributedDp?.({ roundId: this.roundId, mechanism: this.distributedDp });
    const { ring } = encodeUpdate(weighted, this.ring);
    this.o.onInput?.({ roundId: this.roundId, update, sampleCount: m, ring: ring.slice() });
    const masked = this.client.maskInput({ type: 'secaggForwardedShares', roundId: fwd.roundId, to: this.o.bankId, ciphertexts: fwd.ciphertexts.map((c) => ({ from: c.bankId, data: c.data })) }, ring);
    ring.fill(0);
    let at = 0;
    const maskedTensors = this.o.layout.map((t) => {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const data = masked.masked.slice(at, at + n);
      at += n;
      return { name: t.name, shape: [...t.shape], data };
    });
    return { sampleCount: m, maskedTensors };
  }

  /** Round 3: shares of the survivors' self-mask seeds and the dropped banks' mask keys (never both for one bank). */
  onUnmaskRequest(m: SecAggUnmaskRequestMessage): { roundId: number; selfMaskShares: SecAggShare[]; secretKeyShares: SecAggShare[] } {
    this.live();
    const r = this.client.unmask({ type: 'secaggUnmaskRequest', roundId: m.roundId, survivors: m.survivors, dropped: m.dropped });
    const shares = (l: { of: string; y: Uint8Array }[]) => l.map((s) => ({ bankId: s.of, y: s.y }));
    return { roundId: r.roundId, selfMaskShares: shares(r.selfMaskShares), secretKeyShares: shares(r.secretKeyShares) };
  }

  /** The round is over for this bank (failed, replaced by a retry, or shutting down). */
  cancel(reason: string): void {
    if (this.cancelled) return;
    this.cancelled = new SecAggSessionError(`round ${this.roundId}: ${reason}`);
    this.waiter?.reject(this.cancelled);
  }

  private live(): void {
    if (this.cancelled) throw this.cancelled;
  }

  private waitForShares(deadlineMs: number): Promise<Forwarded> {
    this.live();
    if (this.forwarded) return Promise.resolve(this.forwarded);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new SecAggSessionError(`round ${this.roundId}: no forwarded shares before the deadline`)), Math.max(0, deadlineMs - Date.now()));
      this.waiter = {
        resolve: (f) => {
          clearTimeout(timer);
          this.waiter = null;
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          this.waiter = null;
          reject(e);
        },
      };
    });
  }
}

const SESSION_LABEL = 'fedsynth/secagg/v1/session\0';
const DP_LABEL = 'fedsynth/secagg/v1/distributed-dp\0';

/**
 * 32-byte digest of what the bank knows of this secure-aggregation session, bound into its advert
 * signature: SHA-256(label ‖ coordinator key (u8 length ‖ bytes) ‖ round (u64) ‖ RoundStart deadline
 * (u64, unique per attempt: retries reuse the round id) ‖ t (u32) ‖ scale (f64) ‖ clip norm (f64) ‖
 * max banks (u32) ‖ weight cap (u64) ‖ d (u32) ‖ |cohort| (u16) ‖ cohort ids (u16 length ‖ UTF-8)),
 * all big-endian. Banks shown different parameters or cohorts by the coordinator compute different
 * digests, so their signatures do not verify for each other and the round is refused.
 */
export function secAggSessionDigest(s: { roundId: number; params: SecAggParams; coordinatorKey?: Uint8Array; deadlineMs: number }): Uint8Array {
  const p = s.params;
  const ck = s.coordinatorKey ?? new Uint8Array(0);
  const fixed = Buffer.alloc(1 + ck.length + 8 + 8 + 4 + 8 + 8 + 4 + 8 + 4 + 2);
  let o = fixed.writeUInt8(ck.length, 0);
  fixed.set(ck, o);
  o += ck.length;
  o = fixed.writeBigUInt64BE(BigInt(s.roundId), o);
  o = fixed.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(s.deadlineMs))), o);
  o = fixed.writeUInt32BE(p.threshold, o);
  o = fixed.writeDoubleBE(p.scale, o);
  o = fixed.writeDoubleBE(p.clipNorm, o);
  o = fixed.writeUInt32BE(p.maxBanks, o);
  o = fixed.writeBigUInt64BE(BigInt(p.weightCap), o);
  o = fixed.writeUInt32BE(p.vectorLength, o);
  fixed.writeUInt16BE(p.cohort.length, o);
  const h = createHash('sha256').update(SESSION_LABEL).update(fixed);
  for (const id of p.cohort) {
    const b = Buffer.from(id, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    h.update(len).update(b);
  }
  // Distributed DP parameters: a coordinator that showed banks different noise levels would leave
  // each bank trusting noise the others never add; bound here, the signed adverts would not verify.
  if (p.skellamMu !== undefined || p.roundingBeta !== undefined) {
    const dp = Buffer.alloc(16);
    dp.writeDoubleBE(p.skellamMu ?? 0, 0);
    dp.writeDoubleBE(p.roundingBeta ?? 0, 8);
    h.update(DP_LABEL).update(dp);
  }
  return new Uint8Array(h.digest());
}

/**
 * The consortium directory from the operator's allow-list format (the coordinator's --allow-list
 * file): a JSON array of public identities as `fedsynth keygen` prints them, each with its bank id.
 * Only `id` and `signPublicKey` are used; a `fingerprint`, if present, must match the key. An entry
 * with id "coordinator" (a file that also lists the coordinator) is skipped: it is not a bank.
 */
export function parseConsortiumDirectory(raw: unknown, where = 'consortium directory'): Map<string, Uint8Array> {
  if (!Array.isArray(raw)) throw new Error(`${where} must be a JSON array of public identities (the allow-list format)`);
  const out = new Map<string, Uint8Array>();
  raw.forEach((entry, i) => {
    const p = parsePublicIdentity(entry, `${where}[${i}]`);
    if (!p.id) throw new Error(`${where}[${i}] has no bank id`);
    if (p.id === 'coordinator') return;
    if (out.has(p.id)) throw new Error(`${where} names bank '${p.id}' twice`);
    out.set(p.id, p.signPublicKey);
  });
  if (out.size === 0) throw new Error(`${where} lists no bank`);
  return out;
}

export function readConsortiumDirectory(path: string): Map<string, Uint8Array> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`consortium directory ${path} is not readable JSON: ${(err as Error).message}`);
  }
  return parseConsortiumDirectory(raw, `consortium directory ${path}`);
}

export function isSecAggFailure(err: unknown): boolean {
  return err instanceof SecAggError || err instanceof SecAggSessionError;
}
