// The bank's side of one secure-aggregation round (issue #6): drives shared/secagg's SecAggClient
// from decoded frames. The bank's update leaves this process only masked; the coordinator learns
// the sum over the round's banks. See coordinator/secagg-round.ts for the step order and the FedAvg
// weighting: the bank masks (m/W)·update with m = min(sampleCount, W) and reports m in clear.
import { SecAggClient, SecAggError, encodeUpdate, flatten, ringParams, type RingParams } from '../shared/secagg';
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
  private readonly client: SecAggClient;
  private forwarded: Forwarded | null = null;
  private waiter: { resolve: (f: Forwarded) => void; reject: (e: Error) => void } | null = null;
  private cancelled: Error | null = null;

  constructor(
    private readonly o: { bankId: string; roundId: number; params: SecAggParams; layout: readonly TensorSpec[]; onInput?: (info: SecAggInputInfo) => void },
  ) {
    this.roundId = o.roundId;
    this.params = o.params;
    if (!o.params.cohort.includes(o.bankId)) throw new SecAggSessionError(`round ${o.roundId}: this bank is not in the secure-aggregation cohort`);
    const d = o.layout.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    if (d !== o.params.vectorLength) throw new SecAggSessionError(`round ${o.roundId}: vector length ${o.params.vectorLength} differs from the model's ${d} parameters`);
    // Re-derives and checks the no-overflow bound for the coordinator's scale (throws if unsafe).
    this.ring = ringParams({ clipNorm: o.params.clipNorm, maxBanks: o.params.maxBanks, scale: o.params.scale });
    this.client = new SecAggClient({ id: o.bankId, roundId: o.roundId, threshold: o.params.threshold, vectorLength: d, ring: this.ring });
  }

  /** Round 0: fresh keys for this round. */
  advertise(): { roundId: number; cPk: Uint8Array; sPk: Uint8Array } {
    const m = this.client.advertise();
    return { roundId: m.roundId, cPk: m.cPk, sPk: m.sPk };
  }

  /** Round 1: shares of this bank's mask secrets, sealed to each other bank of the key list. */
  onKeyList(m: SecAggKeyListMessage): { roundId: number; ciphertexts: SecAggCiphertext[] } {
    this.live();
    const out = this.client.shareKeys({ type: 'secaggKeyList', roundId: m.roundId, keys: m.keys.map((k) => ({ id: k.bankId, cPk: k.cPk, sPk: k.sPk })) });
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

export function isSecAggFailure(err: unknown): boolean {
  return err instanceof SecAggError || err instanceof SecAggSessionError;
}
