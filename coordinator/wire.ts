// The coordinator's side of the protocol: every frame it sends is signed with its identity, every
// frame it receives is size-checked, signature-verified against the bank's pinned key, replay-checked
// and decoded against the model spec, by protocol/ alone. Failures become (code, message) pairs.
import {
  ERROR_CODES,
  ProtocolError,
  ReplayGuard,
  decodeFrame,
  encodeFrame,
  type ColumnCounts,
  type DecodedMessage,
  type ErrorCode,
  type Identity,
  type Message,
  type PairTable,
  type SecAggBankKeys,
  type SecAggCiphertext,
  type SecAggParams,
  type TensorSpec,
} from '../protocol';
import type { TrainingPlan } from './rounds';
import type { Tensors } from './strategy/types';

export const COORDINATOR_ID = 'coordinator';

export type WireRejection = { code: ErrorCode | string; message: string };
export type Decoded = { ok: true; message: DecodedMessage } | { ok: false; rejection: WireRejection };

export interface CoordinatorWireOptions {
  identity: Identity;
  maxFrameBytes: number;
  modelSpec: TensorSpec[];
  schemaHash: string;
  /** The pinned signing key of a bank, if known (allow-list or an earlier registration). */
  keyOf: (bankId: string) => Uint8Array | undefined;
  /** Accept a self-signed Register from an unknown bank (trust on first use; development only). */
  openRegistration: boolean;
  /** Secure aggregation is on: plaintext updates are refused before their tensors are parsed. */
  refusePlainUpdates?: boolean;
}

export class CoordinatorWire {
  private readonly guard = new ReplayGuard();
  private readonly signer;

  constructor(private readonly opts: CoordinatorWireOptions) {
    this.signer = { id: COORDINATOR_ID, secretKey: opts.identity.sign.secretKey };
  }

  get publicSignKey(): Uint8Array {
    return this.opts.identity.sign.publicKey;
  }

  /** Frames for earlier rounds are rejected as STALE_ROUND from now on. */
  advanceRound(roundId: number): void {
    this.guard.advanceRound(roundId);
  }

  decode(bytes: Uint8Array): Decoded {
    try {
      const message = decodeFrame(bytes, {
        maxFrameBytes: this.opts.maxFrameBytes,
        modelSpec: this.opts.modelSpec,
        verify: (sender) => this.opts.keyOf(sender),
        allowSelfSignedRegister: this.opts.openRegistration,
        guard: this.guard,
        refusePlainUpdates: this.opts.refusePlainUpdates,
      });
      return { ok: true, message };
    } catch (err) {
      if (err instanceof ProtocolError) return { ok: false, rejection: { code: err.code, message: err.message } };
      throw err;
    }
  }

  private encode(msg: Message): Uint8Array {
    return encodeFrame(msg, { signer: this.signer, maxFrameBytes: this.opts.maxFrameBytes, modelSpec: this.opts.modelSpec });
  }

  welcome(m: { bankId: string; modelConfigJson: string; currentRound: number }): Uint8Array {
    return this.encode({ type: 'welcome', coordinatorSignKey: this.publicSignKey, schemaHash: this.opts.schemaHash, ...m });
  }

  roundStart(m: {
    roundId: number;
    modelVersion: number;
    weights: Tensors;
    plan: TrainingPlan;
    deadlineMs: number;
    seed: number;
    dp: DpPlan;
    categoryWeights?: ColumnCounts[];
    /** The generator's pair targets, merged from the banks' DP-noised pair counts (absent: none yet). */
    pairTargets?: PairTable[];
    transformerJson?: string;
    secagg?: SecAggParams;
    /** Decided when the category weights froze (shared/model/label-calibration.ts, calibrationSkipReason). */
    labelCalibrationSkipped?: boolean;
  }): Uint8Array {
    return this.encode({
      type: 'roundStart',
      roundId: m.roundId,
      modelVersion: m.modelVersion,
      weights: m.weights,
      deadlineMs: m.deadlineMs,
      config: {
        localSteps: m.plan.localSteps,
        batchSize: m.plan.batchSize,
        lrGenerator: m.plan.lrGenerator,
        lrDiscriminator: m.plan.lrDiscriminator,
        dSteps: m.plan.dSteps,
        gSteps: m.plan.gSteps ?? 1,
        loss: m.plan.loss,
        seed: m.seed,
        updateClipNorm: m.plan.updateClipNorm,
        dp: m.dp,
        ...(m.labelCalibrationSkipped ? { labelCalibrationSkipped: true } : {}),
      },
      ...(m.categoryWeights && m.categoryWeights.length > 0 ? { categoryWeights: m.categoryWeights } : {}),
      ...(m.pairTargets && m.pairTargets.length > 0 ? { pairTargets: m.pairTargets } : {}),
      ...(m.transformerJson ? { transformerJson: m.transformerJson } : {}),
      ...(m.secagg ? { secagg: m.secagg } : {}),
    });
  }

  secaggKeyList(m: { roundId: number; keys: SecAggBankKeys[] }): Uint8Array {
    return this.encode({ type: 'secaggKeyList', ...m });
  }

  secaggForwardedShares(m: { roundId: number; ciphertexts: SecAggCiphertext[] }): Uint8Array {
    return this.encode({ type: 'secaggForwardedShares', ...m });
  }

  secaggUnmaskRequest(m: { roundId: number; survivors: string[]; dropped: string[] }): Uint8Array {
    return this.encode({ type: 'secaggUnmaskRequest', ...m });
  }

  calibrationRequest(m: { modelVersion: number; classIndex: number; edges: number[]; classifier: Tensors }): Uint8Array {
    return this.encode({ type: 'calibrationRequest', ...m });
  }

  roundResult(m: { roundId: number; modelVersion: number; banksAggregated: number; status: string; message: string }): Uint8Array {
    return this.encode({ type: 'roundResult', ...m });
  }

  error(code: ErrorCode | string, message: string, roundId: number): Uint8Array {
    const known = (ERROR_CODE_SET.has(code) ? code : 'INVALID_FIELD') as ErrorCode;
    return this.encode({ type: 'error', code: known, message: message.slice(0, 1000), roundId });
  }
}

export interface DpPlan {
  enabled: boolean;
  noiseMultiplier: number;
  maxGradNorm: number;
  targetEpsilon: number;
  delta: number;
  epsilonMax: number;
}

const ERROR_CODE_SET = new Set<string>(ERROR_CODES);
