// The bank's side of the protocol: frames it sends are signed with the bank's identity; frames it
// receives must be signed by the pinned coordinator key, fresh (replay guard), and decoded by
// protocol/ alone.
import {
  ProtocolError,
  ReplayGuard,
  decodeFrame,
  encodeFrame,
  keyFingerprint,
  type DecodedMessage,
  type Identity,
  type PairTable,
  type SecAggCiphertext,
  type SecAggShare,
  type TensorSpec,
  type TrainingConfig,
  type WireRingTensor,
} from '../protocol';

export type TrainingPlan = TrainingConfig;
export type Decoded =
  | { ok: true; message: DecodedMessage }
  | {
      ok: false;
      rejection: { code: string; message: string };
      /** A Welcome signed by a key other than the pinned one: the coordinator's identity changed (or an impostor). */
      keyChanged?: { pinned: string; presented: string };
    };

const COORDINATOR_ID = 'coordinator';

export interface AgentWireOptions {
  bankId: string;
  identity: Identity;
  maxFrameBytes: number;
  /** The coordinator's signing key, from the consortium's configuration. Without it the first key seen is pinned. */
  coordinatorKey?: Uint8Array;
  /** Told when a key is pinned on first use, so the agent can persist it. */
  onPinned?: (key: Uint8Array, fingerprint: string) => void;
}

export class AgentWire {
  // The bank's only peer is the coordinator, so the highest round seen is the current one.
  private readonly guard = new ReplayGuard({ autoAdvanceRound: true });
  private coordinatorKey: Uint8Array | undefined;
  private modelSpec: TensorSpec[] | undefined;
  private readonly signer;

  constructor(private readonly opts: AgentWireOptions) {
    this.coordinatorKey = opts.coordinatorKey;
    this.signer = { id: opts.bankId, secretKey: opts.identity.sign.secretKey };
  }

  setModelSpec(spec: TensorSpec[]): void {
    this.modelSpec = spec;
  }

  decode(payload: unknown): Decoded {
    if (!(payload instanceof Uint8Array)) return { ok: false, rejection: { code: 'MALFORMED', message: 'non-binary frame' } };
    try {
      const message = decodeFrame(payload, {
        maxFrameBytes: this.opts.maxFrameBytes,
        modelSpec: this.modelSpec,
        verify: (sender) => (sender === COORDINATOR_ID ? this.coordinatorKey ?? this.welcomeKey(payload) : undefined),
        guard: this.guard,
      });
      if (message.type === 'welcome' && !this.coordinatorKey) this.pin(message.coordinatorSignKey);
      return { ok: true, message };
    } catch (err) {
      if (err instanceof ProtocolError) {
        const presented = err.code === 'BAD_SIGNATURE' && this.coordinatorKey ? this.welcomeKey(payload) : undefined;
        const keyChanged = presented && !Buffer.from(presented).equals(Buffer.from(this.coordinatorKey!)) ? { pinned: keyFingerprint(this.coordinatorKey!), presented: keyFingerprint(presented) } : undefined;
        return { ok: false, rejection: { code: err.code, message: err.message }, ...(keyChanged ? { keyChanged } : {}) };
      }
      throw err;
    }
  }

  /**
   * The key a Welcome frame announces, read without verifying it (undefined for any other frame).
   * Trust on first use: only a Welcome may introduce the coordinator's key, and only if none is pinned.
   */
  private welcomeKey(payload: Uint8Array): Uint8Array | undefined {
    try {
      const peek = decodeFrame(payload, { maxFrameBytes: this.opts.maxFrameBytes });
      if (peek.type === 'welcome') return peek.coordinatorSignKey;
    } catch {
      /* fall through: unknown sender */
    }
    return undefined;
  }

  private pin(key: Uint8Array): void {
    this.coordinatorKey = key;
    this.opts.onPinned?.(key, keyFingerprint(key));
  }

  private encode(msg: Parameters<typeof encodeFrame>[0]): Uint8Array {
    return encodeFrame(msg, { signer: this.signer, maxFrameBytes: this.opts.maxFrameBytes, modelSpec: this.modelSpec });
  }

  register(schemaHash: string): Uint8Array {
    return this.encode({
      type: 'register',
      bankId: this.opts.bankId,
      signPublicKey: this.opts.identity.sign.publicKey,
      boxPublicKey: this.opts.identity.box.publicKey,
      schemaHash,
    });
  }

  summary(m: { counts: { column: string; values: number[] }[]; epsilon: number; delta: number; noiseStd: number }): Uint8Array {
    return this.encode({ type: 'summary', ...m });
  }

  calibrationCounts(m: { modelVersion: number; rows: number[]; positives: number[]; noiseStd: number; epsilon: number; delta: number; epsilonSpent: number }): Uint8Array {
    return this.encode({ type: 'calibrationCounts', ...m });
  }

  update(m: {
    roundId: number;
    modelVersion: number;
    sampleCount: number;
    tensors: { name: string; shape: number[]; data: Float32Array }[];
    /** Secure aggregation: the masked update (then `tensors` is empty). */
    maskedTensors?: WireRingTensor[];
    metrics: Record<string, number>;
    epsilonSpent: number;
    delta: number;
    /** The bank's DP-noised two-way counts (client-node/dp-pair-counts.ts), re-sent unchanged with every update. */
    pairCounts?: { noiseStd: number; tables: PairTable[] };
  }): Uint8Array {
    return this.encode({ type: 'clientUpdate', ...m });
  }

  secaggAdvertiseKeys(m: { roundId: number; cPk: Uint8Array; sPk: Uint8Array }): Uint8Array {
    return this.encode({ type: 'secaggAdvertiseKeys', ...m });
  }

  secaggShareKeys(m: { roundId: number; ciphertexts: SecAggCiphertext[] }): Uint8Array {
    return this.encode({ type: 'secaggShareKeys', ...m });
  }

  secaggUnmaskResponse(m: { roundId: number; selfMaskShares: SecAggShare[]; secretKeyShares: SecAggShare[] }): Uint8Array {
    return this.encode({ type: 'secaggUnmaskResponse', ...m });
  }

  secaggAbort(m: { roundId: number; code: string; message: string }): Uint8Array {
    return this.encode({ type: 'secaggAbort', ...m });
  }
}
