// The only place that encodes or decodes fedsynth wire messages. Decoding treats every byte as
// hostile: size is checked before parsing, every field is range-checked, tensors are checked
// against their shapes (and the model spec when given), and the only exception that can escape
// decodeFrame is ProtocolError. encodeFrame runs the same validation, so a bug on the sending side
// fails loudly at the sender instead of as a rejection at the peer.

import { readFileSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import protobuf from 'protobufjs';
import { ProtocolError, type ProtocolErrorCode } from './errors';
import { NONCE_BYTES, SIGNATURE_BYTES, SIGN_PUBLIC_KEY_BYTES, signFrame, verifyFrame, type ReplayGuard, type SignedHeader, type Signer } from './envelope';

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_FRAME_BYTES = 32 * 1024 * 1024;

/** Bounds on everything that is not sized by the frame cap alone. */
export const LIMITS = {
  maxTensors: 4096,
  maxRank: 8,
  maxDim: 0x7fffffff,
  maxTensorNameLength: 128,
  maxTextLength: 4096,
  maxMetrics: 256,
  maxLocalSteps: 10_000_000,
  maxBatchSize: 1 << 20,
  maxDSteps: 100,
  maxGSteps: 100,
  maxLearningRate: 10,
  maxSummaryColumns: 256,
  /** Calibration of C's labels: bins of its score (shared/model/label-calibration.ts uses 13). */
  maxCalibrationBins: 256,
  maxCategories: 4096,
  /** The fitted transformer: schema + mixture parameters; far below this for any real schema. */
  maxTransformerJson: 4 * 1024 * 1024,
  /** Secure aggregation: banks per round (GF(256) Shamir x-coordinates 1..255). */
  maxSecAggBanks: 255,
  /** Largest per-bank Skellam μ a RoundStart may ask for (shared/privacy MAX_SKELLAM_MU). */
  maxSkellamMu: 1e12,
  /** One sealed share bundle (nacl.box of two 32-byte shares plus ids); ~220 bytes in practice. */
  maxSecAggCiphertextBytes: 1024,
  /** Pair tables (two-way counts of two softmax spans): tables per message, cells of one table, cells of all. */
  maxPairTables: 4096,
  maxPairCells: 65536,
  maxPairCellsTotal: 1 << 20,
} as const;

/** X25519 public keys and Shamir share values of the secure-aggregation messages. */
export const SECAGG_KEY_BYTES = 32;
/** Ed25519 signature of a bank's advertised keys (SecAggAdvertiseKeys / SecAggBankKeys.signature). */
export const SECAGG_SIGNATURE_BYTES = 64;
export const SECAGG_SHARE_BYTES = 32;
/** Largest decodable signed ring sum (two's complement in Z_2^32). */
const RING_MAX_SIGNED = 2 ** 31 - 1;

/** Bank ids and other sender ids. */
export const ID_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
export const TENSOR_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,127}$/;
export const SCHEMA_HASH_PATTERN = /^[A-Za-z0-9][A-Za-z0-9:_.+/=-]{0,127}$/;
const METRIC_KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_.:/-]{0,63}$/;
const WORD_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
/** A bank's reason code in secaggAbort: an upper-case word such as KEY_LIST_BAD_SIGNATURE. */
export const ABORT_CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;
// Control characters (except tab/newline/CR), U+FFFD (what invalid UTF-8 decodes to), lone surrogates.
const BAD_TEXT = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\uFFFD]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// ---------------------------------------------------------------------------------------------
// Public types

export interface TensorSpec {
  name: string;
  shape: number[];
}

/** Structurally identical to shared/tensor's NamedTensor. */
export interface WireTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Elements of Z_{2^32} (secure aggregation). */
export interface WireRingTensor {
  name: string;
  shape: number[];
  data: Uint32Array;
}

export interface DpConfig {
  enabled: boolean;
  noiseMultiplier: number;
  maxGradNorm: number;
  targetEpsilon: number;
  delta: number;
  epsilonMax: number;
}

export interface TrainingConfig {
  localSteps: number;
  batchSize: number;
  lrGenerator: number;
  lrDiscriminator: number;
  dSteps: number;
  loss: string;
  seed: number;
  dp: DpConfig;
  updateClipNorm: number;
  /** The coordinator will not ask for the label-calibration release (decided before round 1); absent = false. */
  labelCalibrationSkipped?: boolean;
  /** Generator updates per local step, 1..LIMITS.maxGSteps; encoded as 1 when absent, always set after decode (0 on the wire = 1). */
  gSteps?: number;
}

export const ERROR_CODES = [
  'UNSPECIFIED',
  'OVERSIZE',
  'MALFORMED',
  'UNSUPPORTED_VERSION',
  'UNKNOWN_TYPE',
  'MISSING_FIELD',
  'INVALID_FIELD',
  'SHAPE_MISMATCH',
  'NON_FINITE',
  'BAD_SIGNATURE',
  'REPLAY',
  'STALE',
  'STALE_ROUND',
  'UNKNOWN_SENDER',
  'NOT_REGISTERED',
  'SCHEMA_MISMATCH',
  'UNEXPECTED_MESSAGE',
  'ROUND_CLOSED',
  'DUPLICATE_UPDATE',
  'MODEL_VERSION_MISMATCH',
  'PRIVACY_BUDGET_EXHAUSTED',
  'RATE_LIMITED',
  'INTERNAL',
  'NOT_PARTICIPANT',
  'SECURE_AGGREGATION_REQUIRED',
] as const;
/** Codes an ErrorMessage can carry on the wire (the index is the proto enum number). */
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface RegisterMessage {
  type: 'register';
  /** Defaults to PROTOCOL_VERSION when encoding. */
  protocolVersion?: number;
  bankId: string;
  signPublicKey: Uint8Array;
  boxPublicKey: Uint8Array;
  schemaHash: string;
}
export interface WelcomeMessage {
  type: 'welcome';
  bankId: string;
  coordinatorSignKey: Uint8Array;
  /** Always a JSON object (checked). */
  modelConfigJson: string;
  schemaHash: string;
  currentRound: number;
}
/** Counts (or weights) per category of one discrete column, in the schema's category order. */
export interface ColumnCounts {
  column: string;
  values: number[];
  /** In a summary: the Gaussian noise sd on this column's counts (absent: the summary's noiseStd). */
  noiseStd?: number;
}
/**
 * Two softmax spans of the consortium transformer's encoding, by offset and width in the encoded row
 * (aOffset + aDim ≤ bOffset), and one value per cell, aDim × bDim, row-major.
 */
export interface PairTable {
  aOffset: number;
  aDim: number;
  bOffset: number;
  bDim: number;
  values: number[];
}
/**
 * Public parameters of a secure-aggregation round (RoundStart.secagg). Each bank of `cohort` clips
 * its update to `clipNorm`, multiplies it by min(n, weightCap)/weightCap (n = its sample count, sent
 * in clear as min(n, weightCap)), quantises at `scale` into Z_2^32 and masks it; the coordinator
 * learns only the sum. `maxBanks·(clipNorm·scale + 1) ≤ 2^31 − 1` so the sum cannot wrap.
 */
export interface SecAggParams {
  threshold: number;
  scale: number;
  clipNorm: number;
  maxBanks: number;
  cohort: string[];
  weightCap: number;
  vectorLength: number;
  /**
   * Distributed DP: each bank's Skellam noise parameter μ (ring units², variance 2μ per
   * coordinate) and the conditional-rounding β; both absent (0 on the wire) when off.
   */
  skellamMu?: number;
  roundingBeta?: number;
}
export interface RoundStartMessage {
  type: 'roundStart';
  roundId: number;
  modelVersion: number;
  weights: WireTensor[];
  config: TrainingConfig;
  deadlineMs: number;
  /** Category weights from DP-noised merged counts, per conditional column (absent: none yet). */
  categoryWeights?: ColumnCounts[];
  /** The fitted consortium transformer (JSON object), when it is not determined by the schema alone. */
  transformerJson?: string;
  /** Secure aggregation for this round (absent: plain updates). */
  secagg?: SecAggParams;
  /**
   * The generator's pair targets: merged DP-noised two-way counts shrunk towards independence
   * (post-processing); non-negative weights of each joint, each table's sum > 0 (absent: none yet).
   */
  pairTargets?: PairTable[];
}
export interface SummaryMessage {
  type: 'summary';
  /** DP-noised counts; values may be negative or fractional (noise). */
  counts: ColumnCounts[];
  epsilon: number;
  delta: number;
  noiseStd: number;
}
/** Coordinator → bank after the last round: calibrate the published C (see fedsynth.proto). */
export interface CalibrationRequestMessage {
  type: 'calibrationRequest';
  modelVersion: number;
  classIndex: number;
  /** Strictly increasing, finite; at most LIMITS.maxCalibrationBins − 1. */
  edges: number[];
  classifier: WireTensor[];
}
/** Bank → coordinator: DP-noised per-bin counts (values may be negative or fractional: noise). */
export interface CalibrationCountsMessage {
  type: 'calibrationCounts';
  modelVersion: number;
  rows: number[];
  positives: number[];
  noiseStd: number;
  epsilon: number;
  delta: number;
  /** The bank's total ε after this release (its ledger, at delta). */
  epsilonSpent: number;
}
export interface ClientUpdateMessage {
  type: 'clientUpdate';
  roundId: number;
  modelVersion: number;
  sampleCount: number;
  /** Plain update; empty when maskedTensors carries the update. */
  tensors: WireTensor[];
  /** Secure-aggregation update (masked, quantised); exactly one of tensors/maskedTensors is non-empty. */
  maskedTensors?: WireRingTensor[];
  metrics: Record<string, number>;
  /** ≥ 0; +Infinity means the bank trained without a DP guarantee. */
  epsilonSpent: number;
  delta: number;
  /**
   * The bank's two-way counts of its encoded rows, Gaussian noise of sd noiseStd (> 0) on every cell,
   * charged to its ledger; released once and re-sent unchanged with each update. Values may be negative or fractional
   * (noise). Allowed with maskedTensors: DP-noised counts travel in the clear (absent: none).
   */
  pairCounts?: { noiseStd: number; tables: PairTable[] };
}
export interface RoundResultMessage {
  type: 'roundResult';
  roundId: number;
  modelVersion: number;
  banksAggregated: number;
  /** Lower-case word, e.g. 'committed', 'failed', 'finished'. */
  status: string;
  message: string;
}
export interface ErrorWireMessage {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** 0 when the error concerns no particular round. */
  roundId: number;
}
/** Secure aggregation, round 0 (bank → coordinator); the bank is the signed frame sender. */
export interface SecAggAdvertiseKeysMessage {
  type: 'secaggAdvertiseKeys';
  roundId: number;
  cPk: Uint8Array;
  sPk: Uint8Array;
  /** Ed25519 by the bank's identity key over shared/secagg/keys.ts advertSigningInput (64 bytes); absent = unsigned. */
  signature?: Uint8Array;
}
export interface SecAggBankKeys {
  bankId: string;
  cPk: Uint8Array;
  sPk: Uint8Array;
  /** The bank's advert signature, relayed by the coordinator (absent = unsigned). */
  signature?: Uint8Array;
}
/** Coordinator → banks of U1: every advertised key pair, sorted by bank id. */
export interface SecAggKeyListMessage {
  type: 'secaggKeyList';
  roundId: number;
  keys: SecAggBankKeys[];
}
/** A sealed share bundle; `bankId` is the recipient (shareKeys) or the sender (forwardedShares). */
export interface SecAggCiphertext {
  bankId: string;
  data: Uint8Array;
}
export interface SecAggShareKeysMessage {
  type: 'secaggShareKeys';
  roundId: number;
  ciphertexts: SecAggCiphertext[];
}
export interface SecAggForwardedSharesMessage {
  type: 'secaggForwardedShares';
  roundId: number;
  ciphertexts: SecAggCiphertext[];
}
export interface SecAggUnmaskRequestMessage {
  type: 'secaggUnmaskRequest';
  roundId: number;
  survivors: string[];
  dropped: string[];
}
export interface SecAggShare {
  bankId: string;
  y: Uint8Array;
}
export interface SecAggUnmaskResponseMessage {
  type: 'secaggUnmaskResponse';
  roundId: number;
  selfMaskShares: SecAggShare[];
  secretKeyShares: SecAggShare[];
}
/** A bank refuses a secure-aggregation round; the coordinator drops it from the round at once and logs the code. */
export interface SecAggAbortMessage {
  type: 'secaggAbort';
  roundId: number;
  code: string;
  message: string;
}
export interface StatusRequestMessage {
  type: 'statusRequest';
}
export interface StatusResponseMessage {
  type: 'statusResponse';
  currentRound: number;
  modelVersion: number;
  phase: string;
  banksConnected: number;
  roundsCommitted: number;
}

export type Message =
  | RegisterMessage
  | WelcomeMessage
  | RoundStartMessage
  | ClientUpdateMessage
  | RoundResultMessage
  | ErrorWireMessage
  | StatusRequestMessage
  | StatusResponseMessage
  | SummaryMessage
  | CalibrationRequestMessage
  | CalibrationCountsMessage
  | SecAggAdvertiseKeysMessage
  | SecAggKeyListMessage
  | SecAggShareKeysMessage
  | SecAggForwardedSharesMessage
  | SecAggUnmaskRequestMessage
  | SecAggUnmaskResponseMessage
  | SecAggAbortMessage;

export type MessageType = Message['type'];

/** Envelope facts about a decoded frame; feed it to ReplayGuard.check(). */
export interface FrameMeta {
  version: number;
  type: MessageType;
  sender: string;
  roundId: number;
  nonce: Uint8Array;
  timestampMs: number;
  /** 'key': verified against the key the verify callback returned; 'self': a Register verified against its own signPublicKey; 'none': not verified. */
  verified: 'key' | 'self' | 'none';
  byteLength: number;
}

export type DecodedMessage = Message & { readonly frame: FrameMeta };

export interface EncodeOptions {
  /** Signs the frame and names the sender. */
  signer?: Signer;
  /** Sender id for an unsigned frame (default: signer.id, or the bankId of a Register). */
  sender?: string;
  maxFrameBytes?: number;
  modelSpec?: readonly TensorSpec[];
  /** Test hooks; leave unset in production (fresh random nonce, Date.now()). */
  nonce?: Uint8Array;
  timestampMs?: number;
}

export interface DecodeOptions {
  /** Frames larger than this are rejected before parsing (default 32 MiB). */
  maxFrameBytes?: number;
  /** When given, tensors of RoundStart.weights / ClientUpdate.tensors must match it: same names and shapes; they are returned in spec order. */
  modelSpec?: readonly TensorSpec[];
  /**
   * When given, every frame must be signed by the key this returns for its sender; undefined means
   * UNKNOWN_SENDER. `type` lets a caller, e.g., accept only Register from not-yet-known senders.
   */
  verify?: (senderId: string, type: MessageType) => Uint8Array | undefined;
  /**
   * With `verify`: a Register whose sender `verify` does not know is checked against the key inside
   * it (proof of possession only — the caller must pin that key, e.g. trust on first use).
   */
  allowSelfSignedRegister?: boolean;
  /** Run replay/staleness checks after a successful decode. */
  guard?: ReplayGuard;
  /**
   * Secure aggregation is on: a ClientUpdate carrying plain tensors is refused with
   * SECURE_AGGREGATION_REQUIRED on the raw bytes, before any of its tensors is parsed.
   */
  refusePlainUpdates?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Schema

const root = protobuf.parse(readFileSync(new URL('./schema/fedsynth.proto', import.meta.url), 'utf8'), { keepCase: false }).root;
const T = (name: string): protobuf.Type => root.lookupType(`fedsynth.v1.${name}`);
const FrameType = T('Frame');

interface TypeInfo {
  wire: number;
  proto: protobuf.Type;
}
const TYPES: Record<MessageType, TypeInfo> = {
  register: { wire: 1, proto: T('Register') },
  welcome: { wire: 2, proto: T('Welcome') },
  roundStart: { wire: 3, proto: T('RoundStart') },
  clientUpdate: { wire: 4, proto: T('ClientUpdate') },
  roundResult: { wire: 5, proto: T('RoundResult') },
  error: { wire: 6, proto: T('ErrorMessage') },
  statusRequest: { wire: 7, proto: T('StatusRequest') },
  statusResponse: { wire: 8, proto: T('StatusResponse') },
  summary: { wire: 9, proto: T('Summary') },
  calibrationRequest: { wire: 10, proto: T('CalibrationRequest') },
  calibrationCounts: { wire: 11, proto: T('CalibrationCounts') },
  secaggAdvertiseKeys: { wire: 20, proto: T('SecAggAdvertiseKeys') },
  secaggKeyList: { wire: 21, proto: T('SecAggKeyList') },
  secaggShareKeys: { wire: 22, proto: T('SecAggShareKeys') },
  secaggForwardedShares: { wire: 23, proto: T('SecAggForwardedShares') },
  secaggUnmaskRequest: { wire: 24, proto: T('SecAggUnmaskRequest') },
  secaggUnmaskResponse: { wire: 25, proto: T('SecAggUnmaskResponse') },
  secaggAbort: { wire: 26, proto: T('SecAggAbort') },
};
const TYPE_BY_WIRE = new Map<number, MessageType>(Object.entries(TYPES).map(([k, v]) => [v.wire, k as MessageType]));
export const MESSAGE_TYPES = Object.keys(TYPES) as MessageType[];

// The TS lists must mirror the .proto enums exactly; fail at load time rather than mis-map codes.
{
  const protoCodes = root.lookupEnum('fedsynth.v1.ErrorCode').values;
  ERROR_CODES.forEach((c, i) => {
    const key = c === 'UNSPECIFIED' ? 'ERROR_CODE_UNSPECIFIED' : c;
    if (protoCodes[key] !== i) throw new Error(`protocol: ErrorCode ${c} is ${protoCodes[key]} in fedsynth.proto, ${i} in codec.ts`);
  });
  const protoTypes = root.lookupEnum('fedsynth.v1.MessageType').values;
  if (Object.keys(protoTypes).length !== MESSAGE_TYPES.length + 1) throw new Error('protocol: MessageType enum and codec.ts disagree');
}

// ---------------------------------------------------------------------------------------------
// Encoding

export function encodeFrame(msg: Message, opts: EncodeOptions = {}): Uint8Array {
  const maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (typeof msg !== 'object' || msg === null) throw new ProtocolError('UNKNOWN_TYPE', 'encodeFrame needs a message object');
  const info = Object.hasOwn(TYPES, msg.type) ? TYPES[msg.type] : undefined;
  if (!info) throw new ProtocolError('UNKNOWN_TYPE', `unknown message type ${quote(String((msg as { type?: unknown }).type))}`);

  const proto = toProto(msg);
  // Same checks as the receiver, on exactly what will be written (floats already rounded to float32).
  fromProto(msg.type, proto, opts.modelSpec, true);
  const body = info.proto.encode(proto).finish();

  const sender = opts.signer?.id ?? opts.sender ?? (msg.type === 'register' ? msg.bankId : undefined);
  if (sender === undefined) throw new ProtocolError('MISSING_FIELD', `frame sender is missing: pass opts.signer or opts.sender to encode a '${msg.type}'`);
  if (opts.signer && opts.sender !== undefined && opts.sender !== opts.signer.id) {
    throw new ProtocolError('INVALID_FIELD', `opts.sender '${opts.sender}' differs from signer id '${opts.signer.id}'`);
  }
  checkId(sender, 'frame.sender');
  const nonce = opts.nonce ?? randomFillSync(new Uint8Array(NONCE_BYTES));
  if (nonce.length !== NONCE_BYTES) throw new ProtocolError('INVALID_FIELD', `frame.nonce must be ${NONCE_BYTES} bytes (got ${nonce.length})`);
  const timestampMs = opts.timestampMs ?? Date.now();
  if (!Number.isSafeInteger(timestampMs) || timestampMs <= 0) throw new ProtocolError('INVALID_FIELD', `frame.timestampMs must be a positive integer (got ${timestampMs})`);
  const header: SignedHeader = { version: PROTOCOL_VERSION, type: info.wire, sender, roundId: frameRoundId(msg), nonce, timestampMs };
  const signature = opts.signer ? signFrame(header, body, opts.signer.secretKey) : new Uint8Array(0);

  const bytes = FrameType.encode({
    version: header.version,
    type: header.type,
    body,
    sender,
    roundId: header.roundId,
    nonce,
    timestampMs,
    signature,
  }).finish();
  if (bytes.length > maxFrameBytes) {
    throw new ProtocolError('OVERSIZE', `encoded '${msg.type}' frame is ${bytes.length} bytes, over the ${maxFrameBytes}-byte frame limit`);
  }
  return bytes;
}

function frameRoundId(msg: Message): number {
  switch (msg.type) {
    case 'roundStart':
    case 'clientUpdate':
    case 'roundResult':
    case 'error':
    case 'secaggAdvertiseKeys':
    case 'secaggKeyList':
    case 'secaggShareKeys':
    case 'secaggForwardedShares':
    case 'secaggUnmaskRequest':
    case 'secaggUnmaskResponse':
    case 'secaggAbort':
      return msg.roundId;
    default:
      return 0;
  }
}

type PB = Record<string, unknown>;

function toProto(msg: Message): PB {
  switch (msg.type) {
    case 'register':
      return { protocolVersion: msg.protocolVersion ?? PROTOCOL_VERSION, bankId: msg.bankId, signPublicKey: msg.signPublicKey, boxPublicKey: msg.boxPublicKey, schemaHash: msg.schemaHash };
    case 'welcome':
      return { bankId: msg.bankId, coordinatorSignKey: msg.coordinatorSignKey, modelConfigJson: msg.modelConfigJson, schemaHash: msg.schemaHash, currentRound: msg.currentRound };
    case 'roundStart': {
      const c = msg.config;
      const dp = c?.dp;
      return {
        roundId: msg.roundId,
        modelVersion: msg.modelVersion,
        weights: tensorsToProto(msg.weights, 'roundStart.weights'),
        config: c && {
          localSteps: c.localSteps,
          batchSize: c.batchSize,
          lrGenerator: fround(c.lrGenerator),
          lrDiscriminator: fround(c.lrDiscriminator),
          dSteps: c.dSteps,
          loss: c.loss,
          seed: c.seed,
          dp: dp && {
            enabled: dp.enabled,
            noiseMultiplier: fround(dp.noiseMultiplier),
            maxGradNorm: fround(dp.maxGradNorm),
            targetEpsilon: fround(dp.targetEpsilon),
            delta: dp.delta,
            epsilonMax: fround(dp.epsilonMax),
          },
          updateClipNorm: fround(c.updateClipNorm),
          labelCalibrationSkipped: c.labelCalibrationSkipped === true,
          gSteps: c.gSteps ?? 1,
        },
        deadlineMs: msg.deadlineMs,
        categoryWeights: msg.categoryWeights ?? [],
        transformerJson: msg.transformerJson ?? '',
        pairTargets: msg.pairTargets ?? [],
        ...(msg.secagg ? { secagg: { enabled: true, ...msg.secagg } } : {}),
      };
    }
    case 'clientUpdate':
      return {
        roundId: msg.roundId,
        modelVersion: msg.modelVersion,
        sampleCount: msg.sampleCount,
        tensors: tensorsToProto(msg.tensors, 'clientUpdate.tensors'),
        maskedTensors: msg.maskedTensors === undefined ? [] : ringTensorsToProto(msg.maskedTensors, 'clientUpdate.maskedTensors'),
        metrics: metricsToProto(msg.metrics),
        epsilonSpent: msg.epsilonSpent,
        delta: msg.delta,
        pairCounts: msg.pairCounts?.tables ?? [],
        pairCountsNoiseStd: msg.pairCounts?.noiseStd ?? 0,
      };
    case 'roundResult':
      return { roundId: msg.roundId, modelVersion: msg.modelVersion, banksAggregated: msg.banksAggregated, status: msg.status, message: msg.message };
    case 'error': {
      const code = ERROR_CODES.indexOf(msg.code);
      if (code < 0) throw new ProtocolError('INVALID_FIELD', `error.code ${quote(String(msg.code))} is not one of ${ERROR_CODES.join(', ')}`);
      return { code, message: msg.message, roundId: msg.roundId };
    }
    case 'statusRequest':
      return {};
    case 'summary':
      return { counts: msg.counts, epsilon: msg.epsilon, delta: msg.delta, noiseStd: msg.noiseStd };
    case 'calibrationRequest':
      return { modelVersion: msg.modelVersion, classIndex: msg.classIndex, edges: msg.edges, classifier: tensorsToProto(msg.classifier, 'calibrationRequest.classifier') };
    case 'calibrationCounts':
      return { modelVersion: msg.modelVersion, rows: msg.rows, positives: msg.positives, noiseStd: msg.noiseStd, epsilon: msg.epsilon, delta: msg.delta, epsilonSpent: msg.epsilonSpent };
    case 'secaggAdvertiseKeys':
      return { roundId: msg.roundId, cPk: msg.cPk, sPk: msg.sPk, ...(msg.signature ? { signature: msg.signature } : {}) };
    case 'secaggKeyList':
      return { roundId: msg.roundId, keys: (msg.keys ?? []).map((k) => ({ bankId: k.bankId, cPk: k.cPk, sPk: k.sPk, ...(k.signature ? { signature: k.signature } : {}) })) };
    case 'secaggShareKeys':
    case 'secaggForwardedShares':
      return { roundId: msg.roundId, ciphertexts: msg.ciphertexts };
    case 'secaggUnmaskRequest':
      return { roundId: msg.roundId, survivors: msg.survivors, dropped: msg.dropped };
    case 'secaggUnmaskResponse':
      return { roundId: msg.roundId, selfMaskShares: msg.selfMaskShares, secretKeyShares: msg.secretKeyShares };
    case 'secaggAbort':
      return { roundId: msg.roundId, code: msg.code, message: msg.message };
    case 'statusResponse':
      return { currentRound: msg.currentRound, modelVersion: msg.modelVersion, phase: msg.phase, banksConnected: msg.banksConnected, roundsCommitted: msg.roundsCommitted };
  }
}

const fround = (v: unknown): unknown => (typeof v === 'number' ? Math.fround(v) : v);

function tensorsToProto(tensors: unknown, path: string): PB[] {
  if (!Array.isArray(tensors)) throw new ProtocolError('MISSING_FIELD', `${path} must be an array of tensors`);
  return tensors.map((t: WireTensor, i) => {
    if (!(t?.data instanceof Float32Array)) throw new ProtocolError('INVALID_FIELD', `${path}[${i}] ('${t?.name}') data must be a Float32Array`);
    return { name: t.name, shape: t.shape, data: toLittleEndianBytes(t.data) };
  });
}

function ringTensorsToProto(tensors: unknown, path: string): PB[] {
  if (!Array.isArray(tensors)) throw new ProtocolError('INVALID_FIELD', `${path} must be an array of ring tensors`);
  return tensors.map((t: WireRingTensor, i) => {
    if (!(t?.data instanceof Uint32Array)) throw new ProtocolError('INVALID_FIELD', `${path}[${i}] ('${t?.name}') data must be a Uint32Array`);
    return { name: t.name, shape: t.shape, data: toLittleEndianBytes(t.data) };
  });
}

function metricsToProto(metrics: unknown): PB {
  if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) throw new ProtocolError('INVALID_FIELD', 'clientUpdate.metrics must be an object of numbers');
  return { ...(metrics as PB) };
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function toLittleEndianBytes(a: Float32Array | Uint32Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const view = new DataView(out.buffer);
  const float = a instanceof Float32Array;
  for (let i = 0; i < a.length; i++) {
    if (float) view.setFloat32(i * 4, a[i], true);
    else view.setUint32(i * 4, a[i], true);
  }
  return out;
}

/** Always copies: the result must not alias the frame buffer (socket.io / Node may pool or reuse it), and a copy fixes alignment. */
function fromLittleEndianBytes(bytes: Uint8Array, kind: 'f32' | 'u32'): Float32Array | Uint32Array {
  const n = bytes.length / 4;
  const out = kind === 'f32' ? new Float32Array(n) : new Uint32Array(n);
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(out.buffer).set(bytes);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out[i] = kind === 'f32' ? view.getFloat32(i * 4, true) : view.getUint32(i * 4, true);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

export function decodeFrame(bytes: Uint8Array, opts: DecodeOptions = {}): DecodedMessage {
  try {
    return decodeFrameUnsafe(bytes, opts);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    // protobufjs throws plain Errors/RangeErrors on truncated or corrupt input.
    throw new ProtocolError('MALFORMED', `undecodable frame: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function decodeFrameUnsafe(bytes: Uint8Array, opts: DecodeOptions): DecodedMessage {
  const maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (!(bytes instanceof Uint8Array)) throw new ProtocolError('MALFORMED', `a frame must be binary (Uint8Array/Buffer), got ${describe(bytes)}`);
  if (bytes.length > maxFrameBytes) throw new ProtocolError('OVERSIZE', `frame is ${bytes.length} bytes, over the ${maxFrameBytes}-byte limit`);
  if (bytes.length === 0) throw new ProtocolError('MALFORMED', 'frame is empty');
  // A Buffer makes protobufjs decode strings with Node's UTF-8 decoder, which maps invalid
  // sequences to U+FFFD (rejected below) instead of inventing code points.
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  let frame: PB;
  try {
    frame = FrameType.decode(buf) as unknown as PB;
  } catch (err) {
    throw new ProtocolError('MALFORMED', `frame is not a valid protobuf Frame: ${(err as Error).message}`, { cause: err });
  }
  const version = u32(frame.version, 'frame.version', {});
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError('UNSUPPORTED_VERSION', `frame version ${version} is not supported (this peer speaks protocol version ${PROTOCOL_VERSION})`);
  }
  const wireType = u32(frame.type, 'frame.type', {});
  const type = TYPE_BY_WIRE.get(wireType);
  if (type === undefined) throw new ProtocolError('UNKNOWN_TYPE', `frame type ${wireType} is not a known message type`);
  const sender = str(frame.sender, 'frame.sender', { required: true, pattern: ID_PATTERN });
  const roundId = u32(frame.roundId, 'frame.roundId', {});
  const nonce = bytesField(frame.nonce, 'frame.nonce', { length: NONCE_BYTES, required: true });
  const timestampMs = u64(frame.timestampMs, 'frame.timestampMs', { required: true });
  const signature = bytesField(frame.signature, 'frame.signature', {});
  const body = bytesField(frame.body, 'frame.body', {});
  if (signature.length !== 0 && signature.length !== SIGNATURE_BYTES) {
    throw new ProtocolError('BAD_SIGNATURE', `frame.signature must be ${SIGNATURE_BYTES} bytes (got ${signature.length})`);
  }
  const header: SignedHeader = { version, type: wireType, sender, roundId, nonce, timestampMs };

  // Authenticate before parsing the body: forged frames never reach the body parser.
  let verified: FrameMeta['verified'] = 'none';
  let selfSigned = false;
  let knownKey: Uint8Array | undefined;
  if (opts.verify) {
    if (signature.length === 0) throw new ProtocolError('BAD_SIGNATURE', `'${type}' frame from '${sender}' is unsigned, but signatures are required`);
    const key = opts.verify(sender, type);
    knownKey = key;
    if (key === undefined) {
      if (!(type === 'register' && opts.allowSelfSignedRegister)) throw new ProtocolError('UNKNOWN_SENDER', `no signing key is known for sender '${sender}'`);
      selfSigned = true;
    } else {
      if (!verifyFrame(header, body, signature, key)) throw new ProtocolError('BAD_SIGNATURE', `signature on '${type}' frame from '${sender}' does not verify`);
      verified = 'key';
    }
  }

  if (opts.refusePlainUpdates && type === 'clientUpdate' && hasField(body, 4)) {
    throw new ProtocolError('SECURE_AGGREGATION_REQUIRED', `'${sender}' sent a plaintext update (clientUpdate.tensors); this round uses secure aggregation: send maskedTensors`);
  }
  preScanBody(type, body);
  let decodedBody: PB;
  try {
    decodedBody = TYPES[type].proto.decode(body) as unknown as PB;
  } catch (err) {
    throw new ProtocolError('MALFORMED', `frame body is not a valid ${TYPES[type].proto.name} message: ${(err as Error).message}`, { cause: err });
  }
  const msg = fromProto(type, decodedBody, opts.modelSpec, false);

  if (msg.type === 'register') {
    if (msg.bankId !== sender) throw new ProtocolError('INVALID_FIELD', `register.bankId '${msg.bankId}' differs from frame.sender '${sender}'`);
    if (knownKey && !Buffer.from(knownKey).equals(Buffer.from(msg.signPublicKey))) {
      // Key rotation is an operator action (new allow-list entry), never a side effect of Register.
      throw new ProtocolError('INVALID_FIELD', `register.signPublicKey of '${sender}' differs from the key this sender is known by`);
    }
    if (selfSigned) {
      if (!verifyFrame(header, body, signature, msg.signPublicKey)) throw new ProtocolError('BAD_SIGNATURE', `register from '${sender}' is not signed by the key it registers`);
      verified = 'self';
    }
  }
  const expectedRound = frameRoundId(msg);
  if (roundId !== expectedRound) throw new ProtocolError('INVALID_FIELD', `frame.roundId ${roundId} differs from the ${type} body's round ${expectedRound}`);

  const meta: FrameMeta = { version, type, sender, roundId, nonce: copyBytes(nonce), timestampMs, verified, byteLength: bytes.length };
  opts.guard?.check(meta);
  return Object.assign(msg, { frame: meta });
}

// ---------------------------------------------------------------------------------------------
// Pre-scan. protobufjs materialises every element of a repeated field before we could count them:
// a 32 MiB body of 2-byte empty tensors would become 16 M objects (gigabytes). So repeated fields
// are counted on the raw wire bytes first, and the body must be well-formed protobuf to get past.

/**
 * Repeated fields per message type: field number → [limit, nested rule for each element]. `doubles`:
 * a repeated double, counted as bytes / 8 when packed; `total`: a limit on the field's count summed
 * over all elements of the enclosing list (a bound per element alone would multiply by their number).
 */
interface ScanRule {
  [field: number]: { max: number; what: string; element?: ScanRule; doubles?: boolean; total?: { max: number; what: string } };
}
const TENSOR_RULE: ScanRule = { 2: { max: LIMITS.maxRank, what: 'tensor rank (shape length)' } };
const COLUMN_RULE: ScanRule = { 2: { max: LIMITS.maxCategories, what: 'categories per column', doubles: true } };
const pairTableRule = (path: string): ScanRule => ({
  5: { max: LIMITS.maxPairCells, what: `cells of one ${path} table`, doubles: true, total: { max: LIMITS.maxPairCellsTotal, what: `cells of all ${path} tables` } },
});
const SCAN_RULES: Partial<Record<MessageType, ScanRule>> = {
  roundStart: {
    3: { max: LIMITS.maxTensors, what: 'number of tensors in roundStart.weights', element: TENSOR_RULE },
    16: { max: LIMITS.maxSummaryColumns, what: 'number of roundStart.categoryWeights columns', element: COLUMN_RULE },
    18: { max: LIMITS.maxPairTables, what: 'number of roundStart.pairTargets tables', element: pairTableRule('roundStart.pairTargets') },
    // One SecAggParams, whose cohort protobufjs would otherwise materialise in full before the bound is checked.
    6: { max: 1, what: 'roundStart.secagg messages', element: { 6: { max: LIMITS.maxSecAggBanks, what: 'number of roundStart.secagg.cohort banks' } } },
  },
  summary: { 1: { max: LIMITS.maxSummaryColumns, what: 'number of summary.counts columns', element: COLUMN_RULE } },
  calibrationRequest: { 4: { max: LIMITS.maxTensors, what: 'number of tensors in calibrationRequest.classifier', element: TENSOR_RULE } },
  clientUpdate: {
    4: { max: LIMITS.maxTensors, what: 'number of tensors in clientUpdate.tensors', element: TENSOR_RULE },
    5: { max: LIMITS.maxMetrics, what: 'number of clientUpdate.metrics entries' },
    8: { max: LIMITS.maxTensors, what: 'number of tensors in clientUpdate.maskedTensors', element: TENSOR_RULE },
    16: { max: LIMITS.maxPairTables, what: 'number of clientUpdate.pairCounts tables', element: pairTableRule('clientUpdate.pairCounts') },
  },
  secaggKeyList: { 2: { max: LIMITS.maxSecAggBanks, what: 'number of secaggKeyList.keys' } },
  secaggShareKeys: { 2: { max: LIMITS.maxSecAggBanks, what: 'number of secaggShareKeys.ciphertexts' } },
  secaggForwardedShares: { 2: { max: LIMITS.maxSecAggBanks, what: 'number of secaggForwardedShares.ciphertexts' } },
  secaggUnmaskRequest: {
    2: { max: LIMITS.maxSecAggBanks, what: 'number of secaggUnmaskRequest.survivors' },
    3: { max: LIMITS.maxSecAggBanks, what: 'number of secaggUnmaskRequest.dropped' },
  },
  secaggUnmaskResponse: {
    2: { max: LIMITS.maxSecAggBanks, what: 'number of secaggUnmaskResponse.selfMaskShares' },
    3: { max: LIMITS.maxSecAggBanks, what: 'number of secaggUnmaskResponse.secretKeyShares' },
  },
};

/** Whether a top-level field occurs in a protobuf body (raw scan; nothing is materialised). Malformed bodies answer false and fail in preScanBody. */
function hasField(body: Uint8Array, wanted: number): boolean {
  let found = false;
  try {
    scanMessage(body, 0, body.length, {}, 0, 'body', (field) => {
      if (field === wanted) found = true;
    });
  } catch {
    return false;
  }
  return found;
}

/** Bodies made of a few packed double lists: capped in bytes, since protobufjs would materialise any count of doubles. */
const MAX_BODY_BYTES: Partial<Record<MessageType, number>> = {
  calibrationCounts: 2 * 9 * (LIMITS.maxCalibrationBins + 4) + 64,
};

function preScanBody(type: MessageType, body: Uint8Array): void {
  const cap = MAX_BODY_BYTES[type];
  if (cap !== undefined && body.length > cap) throw new ProtocolError('OVERSIZE', `${TYPES[type].proto.name} body is ${body.length} bytes (at most ${cap})`);
  scanMessage(body, 0, body.length, SCAN_RULES[type] ?? {}, 0, `${TYPES[type].proto.name} body`, undefined, TYPES[type].proto, new Map());
}

/**
 * The wire types protobufjs reads each known field of a type with, and the field's message type.
 * protobufjs does not check them: a scalar sent length-delimited would make it parse the payload as
 * fields of the enclosing message, which this scan skipped (and so never counted).
 */
const FIELD_WIRES = new WeakMap<protobuf.Type, Map<number, { wires: number[]; type?: protobuf.Type }>>();
function fieldWires(t: protobuf.Type): Map<number, { wires: number[]; type?: protobuf.Type }> {
  let m = FIELD_WIRES.get(t);
  if (m) return m;
  m = new Map();
  for (const f of t.fieldsArray) {
    const basic = (protobuf.types.basic as Record<string, number | undefined>)[f.type];
    const nested = basic === undefined && !f.map ? t.lookupTypeOrEnum(f.type) : undefined;
    const wire = f.map || nested instanceof protobuf.Type ? 2 : (basic ?? 0);
    // A repeated scalar may come packed (2) or one element per key.
    const packable = f.repeated && !f.map && wire !== 2;
    m.set(f.id, { wires: packable ? [wire, 2] : [wire], ...(nested instanceof protobuf.Type ? { type: nested } : {}) });
  }
  FIELD_WIRES.set(t, m);
  return m;
}

function scanMessage(
  buf: Uint8Array,
  start: number,
  end: number,
  rule: ScanRule,
  depth: number,
  label: string,
  onField?: (field: number) => void,
  type?: protobuf.Type,
  totals?: Map<object, number>,
): void {
  const counts = new Map<number, number>();
  const known = type ? fieldWires(type) : undefined;
  let at = start;
  const varint = (): number => {
    // Up to 10 bytes; values beyond 2^53 only matter as lengths, which are range-checked below.
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (at >= end) throw new ProtocolError('MALFORMED', `${label} ends inside a varint`);
      const b = buf[at++];
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
    throw new ProtocolError('MALFORMED', `${label} has a varint longer than 10 bytes`);
  };
  while (at < end) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (field === 0) throw new ProtocolError('MALFORMED', `${label} has a field number 0`);
    onField?.(field);
    const f = known?.get(field);
    if (f && !f.wires.includes(wire)) throw new ProtocolError('MALFORMED', `${label} field ${field} has wire type ${wire} (expected ${f.wires.join(' or ')})`);
    const r = rule[field];
    let count = 1;
    switch (wire) {
      case 0:
        varint();
        break;
      case 1:
        at += 8;
        break;
      case 5:
        at += 4;
        break;
      case 2: {
        const len = varint();
        if (len > end - at) throw new ProtocolError('MALFORMED', `${label} field ${field} claims ${len} bytes, past the end of its message`);
        if (r?.element && depth < 1) scanMessage(buf, at, at + len, r.element, depth + 1, `${label} ${r.what.replace(/^number of tensors in /, '')} entry`, undefined, f?.type, totals);
        else if (r?.doubles) {
          if (len % 8 !== 0) throw new ProtocolError('MALFORMED', `${label} field ${field} packs ${len} bytes, not a whole number of doubles`);
          count = len / 8;
        } else if (r && !r.element && depth > 0) {
          // A packed scalar list (tensor shape): count its varints.
          count = 0;
          for (let i = at; i < at + len; i++) if (buf[i] < 0x80) count++;
        }
        at += len;
        break;
      }
      default:
        throw new ProtocolError('MALFORMED', `${label} field ${field} uses unsupported wire type ${wire}`);
    }
    if (at > end) throw new ProtocolError('MALFORMED', `${label} field ${field} runs past the end of its message`);
    if (r) {
      const n = (counts.get(field) ?? 0) + count;
      if (n > r.max) throw new ProtocolError('INVALID_FIELD', `${r.what} exceeds the limit of ${r.max}`);
      counts.set(field, n);
      if (r.total && totals) {
        const sum = (totals.get(r) ?? 0) + count;
        if (sum > r.total.max) throw new ProtocolError('INVALID_FIELD', `${r.total.what} exceed the limit of ${r.total.max}`);
        totals.set(r, sum);
      }
    }
  }
}

/** Validates a protobufjs-shaped object and converts it to a Message. `encoding` relaxes nothing; it only avoids copying tensor data. */
function fromProto(type: MessageType, p: PB, spec: readonly TensorSpec[] | undefined, encoding: boolean): Message {
  switch (type) {
    case 'register': {
      const protocolVersion = u32(p.protocolVersion, 'register.protocolVersion', {});
      if (protocolVersion !== PROTOCOL_VERSION) {
        throw new ProtocolError('UNSUPPORTED_VERSION', `register.protocolVersion ${protocolVersion} is not supported (this peer speaks ${PROTOCOL_VERSION})`);
      }
      return {
        type,
        protocolVersion,
        bankId: str(p.bankId, 'register.bankId', { required: true, pattern: ID_PATTERN }),
        signPublicKey: copyBytes(bytesField(p.signPublicKey, 'register.signPublicKey', { required: true, length: SIGN_PUBLIC_KEY_BYTES })),
        boxPublicKey: copyBytes(bytesField(p.boxPublicKey, 'register.boxPublicKey', { required: true, length: 32 })),
        schemaHash: str(p.schemaHash, 'register.schemaHash', { required: true, pattern: SCHEMA_HASH_PATTERN }),
      };
    }
    case 'welcome': {
      const modelConfigJson = str(p.modelConfigJson, 'welcome.modelConfigJson', { required: true, maxLength: Infinity });
      let parsed: unknown;
      try {
        parsed = JSON.parse(modelConfigJson);
      } catch (err) {
        throw new ProtocolError('INVALID_FIELD', `welcome.modelConfigJson is not valid JSON: ${(err as Error).message}`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ProtocolError('INVALID_FIELD', 'welcome.modelConfigJson must be a JSON object');
      return {
        type,
        bankId: str(p.bankId, 'welcome.bankId', { required: true, pattern: ID_PATTERN }),
        coordinatorSignKey: copyBytes(bytesField(p.coordinatorSignKey, 'welcome.coordinatorSignKey', { required: true, length: SIGN_PUBLIC_KEY_BYTES })),
        modelConfigJson,
        schemaHash: str(p.schemaHash, 'welcome.schemaHash', { required: true, pattern: SCHEMA_HASH_PATTERN }),
        currentRound: u32(p.currentRound, 'welcome.currentRound', {}),
      };
    }
    case 'roundStart': {
      const roundId = u32(p.roundId, 'roundStart.roundId', { required: true });
      const modelVersion = u32(p.modelVersion, 'roundStart.modelVersion', {});
      const weights = tensorsFromProto(p.weights, 'roundStart.weights', spec, encoding, true);
      const out: RoundStartMessage = { type, roundId, modelVersion, weights, config: trainingConfig(p.config), deadlineMs: u64(p.deadlineMs, 'roundStart.deadlineMs', { required: true }) };
      const weightsByColumn = columnCounts(p.categoryWeights, 'roundStart.categoryWeights');
      if (weightsByColumn.length > 0) {
        weightsByColumn.forEach((c) => {
          if (c.values.some((v) => v < 0)) throw new ProtocolError('INVALID_FIELD', `roundStart.categoryWeights '${c.column}' has a negative weight`);
        });
        out.categoryWeights = weightsByColumn;
      }
      const transformerJson = str(p.transformerJson, 'roundStart.transformerJson', { maxLength: LIMITS.maxTransformerJson });
      if (transformerJson.length > 0) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(transformerJson);
        } catch (err) {
          throw new ProtocolError('INVALID_FIELD', `roundStart.transformerJson is not valid JSON: ${(err as Error).message}`);
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ProtocolError('INVALID_FIELD', 'roundStart.transformerJson must be a JSON object');
        out.transformerJson = transformerJson;
      }
      if (p.secagg !== undefined && p.secagg !== null) {
        out.secagg = secAggParams(p.secagg, weights.reduce((s, t) => s + t.data.length, 0));
      }
      const pairTargets = pairTables(p.pairTargets, 'roundStart.pairTargets');
      pairTargets.forEach((t, i) => {
        // Weights of a joint the trainer normalises: noise was clipped away by the shrinkage.
        const j = t.values.findIndex((x) => x < 0);
        if (j >= 0) throw new ProtocolError('INVALID_FIELD', `roundStart.pairTargets[${i}].values[${j}] is ${t.values[j]} (target weights must be ≥ 0)`);
        const sum = t.values.reduce((a, x) => a + x, 0);
        if (!(sum > 0 && Number.isFinite(sum))) throw new ProtocolError('INVALID_FIELD', `roundStart.pairTargets[${i}] sums to ${sum} (must be positive and finite to normalise)`);
      });
      if (pairTargets.length > 0) out.pairTargets = pairTargets;
      return out;
    }
    case 'summary': {
      const counts = columnCounts(p.counts, 'summary.counts');
      if (counts.length === 0) throw new ProtocolError('MISSING_FIELD', 'summary.counts is empty');
      const epsilon = f64(p.epsilon, 'summary.epsilon');
      if (!(epsilon > 0 && Number.isFinite(epsilon))) throw new ProtocolError('INVALID_FIELD', `summary.epsilon must be a positive finite number (got ${epsilon})`);
      const delta = f64(p.delta, 'summary.delta');
      if (!(delta >= 0 && delta < 1)) throw new ProtocolError('INVALID_FIELD', `summary.delta must be in [0, 1) (got ${delta})`);
      const noiseStd = f64(p.noiseStd, 'summary.noiseStd');
      if (!(noiseStd > 0 && Number.isFinite(noiseStd))) throw new ProtocolError('INVALID_FIELD', `summary.noiseStd must be positive: un-noised counts may not leave a bank (got ${noiseStd})`);
      return { type, counts, epsilon, delta, noiseStd };
    }
    case 'calibrationRequest': {
      const modelVersion = u32(p.modelVersion, 'calibrationRequest.modelVersion', {});
      const classIndex = u32(p.classIndex, 'calibrationRequest.classIndex', {});
      if (classIndex >= LIMITS.maxCategories) throw new ProtocolError('INVALID_FIELD', `calibrationRequest.classIndex ${classIndex} is past the ${LIMITS.maxCategories}-category limit`);
      const edges = finiteList(p.edges, 'calibrationRequest.edges', 1, LIMITS.maxCalibrationBins - 1);
      for (let i = 1; i < edges.length; i++) {
        if (!(edges[i]! > edges[i - 1]!)) throw new ProtocolError('INVALID_FIELD', `calibrationRequest.edges must be strictly increasing (edges[${i}] = ${edges[i]} after ${edges[i - 1]})`);
      }
      // No model spec here: the bank checks the tensors against its own model's C.
      const classifier = tensorsFromProto(p.classifier, 'calibrationRequest.classifier', undefined, encoding, false);
      if (classifier.length === 0) throw new ProtocolError('MISSING_FIELD', 'calibrationRequest.classifier is empty');
      return { type, modelVersion, classIndex, edges, classifier };
    }
    case 'calibrationCounts': {
      const modelVersion = u32(p.modelVersion, 'calibrationCounts.modelVersion', {});
      const rows = finiteList(p.rows, 'calibrationCounts.rows', 2, LIMITS.maxCalibrationBins);
      const positives = finiteList(p.positives, 'calibrationCounts.positives', 2, LIMITS.maxCalibrationBins);
      if (rows.length !== positives.length) throw new ProtocolError('SHAPE_MISMATCH', `calibrationCounts has ${rows.length} row counts but ${positives.length} positive counts`);
      const noiseStd = f64(p.noiseStd, 'calibrationCounts.noiseStd');
      if (!(noiseStd > 0 && Number.isFinite(noiseStd))) throw new ProtocolError('INVALID_FIELD', `calibrationCounts.noiseStd must be positive: un-noised counts may not leave a bank (got ${noiseStd})`);
      const epsilon = f64(p.epsilon, 'calibrationCounts.epsilon');
      if (!(epsilon > 0 && Number.isFinite(epsilon))) throw new ProtocolError('INVALID_FIELD', `calibrationCounts.epsilon must be a positive finite number (got ${epsilon})`);
      const delta = f64(p.delta, 'calibrationCounts.delta');
      if (!(delta >= 0 && delta < 1)) throw new ProtocolError('INVALID_FIELD', `calibrationCounts.delta must be in [0, 1) (got ${delta})`);
      const epsilonSpent = f64(p.epsilonSpent, 'calibrationCounts.epsilonSpent');
      if (!(epsilonSpent >= epsilon && Number.isFinite(epsilonSpent))) throw new ProtocolError('INVALID_FIELD', `calibrationCounts.epsilonSpent must be a finite number ≥ the release's ε ${epsilon} (got ${epsilonSpent})`);
      return { type, modelVersion, rows, positives, noiseStd, epsilon, delta, epsilonSpent };
    }
    case 'clientUpdate': {
      const roundId = u32(p.roundId, 'clientUpdate.roundId', { required: true });
      const modelVersion = u32(p.modelVersion, 'clientUpdate.modelVersion', {});
      const sampleCount = u64(p.sampleCount, 'clientUpdate.sampleCount', { required: true });
      const tensors = tensorsFromProto(p.tensors, 'clientUpdate.tensors', spec, encoding, false);
      const maskedTensors = ringTensorsFromProto(p.maskedTensors, 'clientUpdate.maskedTensors', spec, encoding);
      if (tensors.length === 0 && maskedTensors.length === 0) throw new ProtocolError('MISSING_FIELD', 'clientUpdate carries no tensors (neither tensors nor maskedTensors)');
      if (tensors.length > 0 && maskedTensors.length > 0) throw new ProtocolError('INVALID_FIELD', 'clientUpdate carries both plain tensors and maskedTensors; send exactly one');
      const epsilonSpent = f64(p.epsilonSpent, 'clientUpdate.epsilonSpent');
      if (Number.isNaN(epsilonSpent) || epsilonSpent < 0) throw new ProtocolError('INVALID_FIELD', `clientUpdate.epsilonSpent must be ≥ 0 or +Infinity (got ${epsilonSpent})`);
      const delta = f64(p.delta, 'clientUpdate.delta');
      if (!(delta >= 0 && delta < 1)) throw new ProtocolError('INVALID_FIELD', `clientUpdate.delta must be in [0, 1) (got ${delta})`);
      const out: ClientUpdateMessage = { type, roundId, modelVersion, sampleCount, tensors, metrics: metricsFromProto(p.metrics), epsilonSpent, delta };
      if (maskedTensors.length > 0) out.maskedTensors = maskedTensors;
      // DP-noised counts, so they may go with either kind of update (in the clear under secure aggregation).
      const pairCounts = pairTables(p.pairCounts, 'clientUpdate.pairCounts');
      const pairNoiseStd = f64(p.pairCountsNoiseStd, 'clientUpdate.pairCountsNoiseStd');
      if (pairCounts.length > 0) {
        if (pairNoiseStd === 0) throw new ProtocolError('MISSING_FIELD', 'clientUpdate.pairCountsNoiseStd is missing: un-noised pair counts may not leave a bank');
        if (!(pairNoiseStd > 0 && Number.isFinite(pairNoiseStd))) throw new ProtocolError('INVALID_FIELD', `clientUpdate.pairCountsNoiseStd must be a positive finite number (got ${pairNoiseStd})`);
        out.pairCounts = { noiseStd: pairNoiseStd, tables: pairCounts };
      } else if (pairNoiseStd !== 0) {
        throw new ProtocolError('INVALID_FIELD', `clientUpdate.pairCountsNoiseStd is ${pairNoiseStd} but clientUpdate.pairCounts is empty`);
      }
      return out;
    }
    case 'secaggAdvertiseKeys': {
      const signature = optionalSignature(p.signature, 'secaggAdvertiseKeys.signature');
      return {
        type,
        roundId: u32(p.roundId, 'secaggAdvertiseKeys.roundId', { required: true }),
        cPk: copyBytes(bytesField(p.cPk, 'secaggAdvertiseKeys.cPk', { required: true, length: SECAGG_KEY_BYTES })),
        sPk: copyBytes(bytesField(p.sPk, 'secaggAdvertiseKeys.sPk', { required: true, length: SECAGG_KEY_BYTES })),
        ...(signature ? { signature } : {}),
      };
    }
    case 'secaggKeyList': {
      const roundId = u32(p.roundId, 'secaggKeyList.roundId', { required: true });
      const raw = secAggList(p.keys, 'secaggKeyList.keys', true);
      const keys = raw.map((k, i): SecAggBankKeys => {
        const signature = optionalSignature(k?.signature, `secaggKeyList.keys[${i}].signature`);
        return {
          bankId: str(k?.bankId, `secaggKeyList.keys[${i}].bankId`, { required: true, pattern: ID_PATTERN }),
          cPk: copyBytes(bytesField(k?.cPk, `secaggKeyList.keys[${i}].cPk`, { required: true, length: SECAGG_KEY_BYTES })),
          sPk: copyBytes(bytesField(k?.sPk, `secaggKeyList.keys[${i}].sPk`, { required: true, length: SECAGG_KEY_BYTES })),
          ...(signature ? { signature } : {}),
        };
      });
      uniqueIds(keys.map((k) => k.bankId), 'secaggKeyList.keys', true);
      return { type, roundId, keys };
    }
    case 'secaggShareKeys':
    case 'secaggForwardedShares': {
      const roundId = u32(p.roundId, `${type}.roundId`, { required: true });
      const ciphertexts = secAggList(p.ciphertexts, `${type}.ciphertexts`, type === 'secaggShareKeys').map((c, i) => {
        const data = bytesField(c?.data, `${type}.ciphertexts[${i}].data`, { required: true });
        if (data.length > LIMITS.maxSecAggCiphertextBytes) throw new ProtocolError('INVALID_FIELD', `${type}.ciphertexts[${i}].data is ${data.length} bytes (at most ${LIMITS.maxSecAggCiphertextBytes})`);
        return { bankId: str(c?.bankId, `${type}.ciphertexts[${i}].bankId`, { required: true, pattern: ID_PATTERN }), data: copyBytes(data) };
      });
      uniqueIds(ciphertexts.map((c) => c.bankId), `${type}.ciphertexts`, false);
      return { type, roundId, ciphertexts };
    }
    case 'secaggUnmaskRequest': {
      const roundId = u32(p.roundId, 'secaggUnmaskRequest.roundId', { required: true });
      const ids = (v: unknown, path: string): string[] => secAggList(v, path, false).map((x, i) => str(x, `${path}[${i}]`, { required: true, pattern: ID_PATTERN }));
      const survivors = ids(p.survivors, 'secaggUnmaskRequest.survivors');
      const dropped = ids(p.dropped, 'secaggUnmaskRequest.dropped');
      if (survivors.length === 0) throw new ProtocolError('MISSING_FIELD', 'secaggUnmaskRequest.survivors is empty');
      uniqueIds([...survivors, ...dropped], 'secaggUnmaskRequest survivors and dropped', false);
      return { type, roundId, survivors, dropped };
    }
    case 'secaggUnmaskResponse': {
      const roundId = u32(p.roundId, 'secaggUnmaskResponse.roundId', { required: true });
      const shares = (v: unknown, path: string): SecAggShare[] => {
        const out = secAggList(v, path, false).map((x, i) => ({
          bankId: str(x?.bankId, `${path}[${i}].bankId`, { required: true, pattern: ID_PATTERN }),
          y: copyBytes(bytesField(x?.y, `${path}[${i}].y`, { required: true, length: SECAGG_SHARE_BYTES })),
        }));
        uniqueIds(out.map((x) => x.bankId), path, false);
        return out;
      };
      const selfMaskShares = shares(p.selfMaskShares, 'secaggUnmaskResponse.selfMaskShares');
      const secretKeyShares = shares(p.secretKeyShares, 'secaggUnmaskResponse.secretKeyShares');
      if (selfMaskShares.length === 0) throw new ProtocolError('MISSING_FIELD', 'secaggUnmaskResponse.selfMaskShares is empty');
      uniqueIds([...selfMaskShares, ...secretKeyShares].map((x) => x.bankId), 'secaggUnmaskResponse shares', false);
      return { type, roundId, selfMaskShares, secretKeyShares };
    }
    case 'secaggAbort':
      return {
        type,
        roundId: u32(p.roundId, 'secaggAbort.roundId', { required: true }),
        code: str(p.code, 'secaggAbort.code', { required: true, pattern: ABORT_CODE_PATTERN, maxLength: 64 }),
        message: str(p.message, 'secaggAbort.message', { maxLength: 2048 }),
      };
    case 'roundResult':
      return {
        type,
        roundId: u32(p.roundId, 'roundResult.roundId', { required: true }),
        modelVersion: u32(p.modelVersion, 'roundResult.modelVersion', {}),
        banksAggregated: u32(p.banksAggregated, 'roundResult.banksAggregated', {}),
        status: str(p.status, 'roundResult.status', { required: true, pattern: WORD_PATTERN }),
        message: str(p.message, 'roundResult.message', {}),
      };
    case 'error': {
      const n = u32(p.code, 'error.code', {});
      // Lenient on purpose: a newer peer's code must not make its error unreadable.
      const code = ERROR_CODES[n] ?? 'UNSPECIFIED';
      return { type, code, message: str(p.message, 'error.message', {}), roundId: u32(p.roundId, 'error.roundId', {}) };
    }
    case 'statusRequest':
      return { type };
    case 'statusResponse':
      return {
        type,
        currentRound: u32(p.currentRound, 'statusResponse.currentRound', {}),
        modelVersion: u32(p.modelVersion, 'statusResponse.modelVersion', {}),
        phase: str(p.phase, 'statusResponse.phase', { required: true, pattern: WORD_PATTERN }),
        banksConnected: u32(p.banksConnected, 'statusResponse.banksConnected', {}),
        roundsCommitted: u32(p.roundsCommitted, 'statusResponse.roundsCommitted', {}),
      };
  }
}

/** An optional advert signature: empty/absent → undefined, else exactly 64 bytes. */
function optionalSignature(v: unknown, path: string): Uint8Array | undefined {
  const b = bytesField(v, path, {});
  if (b.length === 0) return undefined;
  if (b.length !== SECAGG_SIGNATURE_BYTES) throw new ProtocolError('INVALID_FIELD', `${path} must be ${SECAGG_SIGNATURE_BYTES} bytes (got ${b.length})`);
  return copyBytes(b);
}

function secAggList(v: unknown, path: string, required: boolean): PB[] {
  const list = v === undefined || v === null ? [] : v;
  if (!Array.isArray(list)) throw new ProtocolError('INVALID_FIELD', `${path} must be a list`);
  if (required && list.length === 0) throw new ProtocolError('MISSING_FIELD', `${path} is empty`);
  if (list.length > LIMITS.maxSecAggBanks) throw new ProtocolError('INVALID_FIELD', `${path} has ${list.length} entries (at most ${LIMITS.maxSecAggBanks})`);
  return list as PB[];
}

function uniqueIds(ids: string[], path: string, sorted: boolean): void {
  const seen = new Set<string>();
  ids.forEach((id, i) => {
    if (seen.has(id)) throw new ProtocolError('INVALID_FIELD', `${path} names bank ${quote(id)} twice`);
    if (sorted && i > 0 && !(ids[i - 1]! < id)) throw new ProtocolError('INVALID_FIELD', `${path} must be sorted by bank id`);
    seen.add(id);
  });
}

function secAggParams(v: unknown, parameters: number): SecAggParams {
  const path = 'roundStart.secagg';
  if (typeof v !== 'object' || v === null) throw new ProtocolError('INVALID_FIELD', `${path} must be an object`);
  const p = v as PB;
  if (p.enabled !== true) throw new ProtocolError('INVALID_FIELD', `${path}.enabled must be true when ${path} is present`);
  const cohort = secAggList(p.cohort, `${path}.cohort`, true).map((x, i) => str(x, `${path}.cohort[${i}]`, { required: true, pattern: ID_PATTERN }));
  uniqueIds(cohort, `${path}.cohort`, true);
  const n = cohort.length;
  if (n < 2) throw new ProtocolError('INVALID_FIELD', `${path}.cohort has ${n} bank(s); secure aggregation needs at least 2`);
  const threshold = u32(p.threshold, `${path}.threshold`, { required: true });
  if (threshold < 2 || threshold > n || 2 * threshold <= n) {
    throw new ProtocolError('INVALID_FIELD', `${path}.threshold ${threshold} must satisfy 2 ≤ t ≤ ${n} and t > ${n}/2 (cohort of ${n})`);
  }
  const maxBanks = u32(p.maxBanks, `${path}.maxBanks`, { required: true, max: LIMITS.maxSecAggBanks });
  if (maxBanks < n) throw new ProtocolError('INVALID_FIELD', `${path}.maxBanks ${maxBanks} is below the cohort size ${n}`);
  const positive = (key: string): number => {
    const x = f64(p[key], `${path}.${key}`);
    if (!Number.isFinite(x) || !(x > 0)) throw new ProtocolError('INVALID_FIELD', `${path}.${key} must be a finite number > 0 (got ${x})`);
    return x;
  };
  const scale = positive('scale');
  const clipNorm = positive('clipNorm');
  if (maxBanks * (clipNorm * scale + 1) > RING_MAX_SIGNED) {
    throw new ProtocolError('INVALID_FIELD', `${path}: scale ${scale} with clipNorm ${clipNorm} and ${maxBanks} banks can overflow the 32-bit ring`);
  }
  const weightCap = u64(p.weightCap, `${path}.weightCap`, { required: true });
  const vectorLength = u32(p.vectorLength, `${path}.vectorLength`, { required: true });
  if (vectorLength !== parameters) throw new ProtocolError('SHAPE_MISMATCH', `${path}.vectorLength ${vectorLength} differs from the ${parameters} parameters of roundStart.weights`);
  const skellamMu = f64(p.skellamMu, `${path}.skellamMu`);
  const roundingBeta = f64(p.roundingBeta, `${path}.roundingBeta`);
  if (!Number.isFinite(skellamMu) || skellamMu < 0 || skellamMu > LIMITS.maxSkellamMu) {
    throw new ProtocolError('INVALID_FIELD', `${path}.skellamMu must be a finite number in [0, ${LIMITS.maxSkellamMu}] (got ${skellamMu})`);
  }
  if (!Number.isFinite(roundingBeta) || roundingBeta < 0 || roundingBeta >= 1) throw new ProtocolError('INVALID_FIELD', `${path}.roundingBeta must be in [0, 1) (got ${roundingBeta})`);
  if ((skellamMu > 0) !== (roundingBeta > 0)) throw new ProtocolError('INVALID_FIELD', `${path}: skellamMu and roundingBeta go together (distributed DP needs both, or neither)`);
  return { threshold, scale, clipNorm, maxBanks, cohort, weightCap, vectorLength, ...(skellamMu > 0 ? { skellamMu, roundingBeta } : {}) };
}

/** A list of finite doubles of length in [min, max]. */
function finiteList(v: unknown, path: string, min: number, max: number): number[] {
  const list = v === undefined || v === null ? [] : v;
  if (!Array.isArray(list)) throw new ProtocolError('INVALID_FIELD', `${path} must be a list`);
  if (list.length < min) throw new ProtocolError(list.length === 0 ? 'MISSING_FIELD' : 'INVALID_FIELD', `${path} has ${list.length} values (at least ${min})`);
  if (list.length > max) throw new ProtocolError('INVALID_FIELD', `${path} has ${list.length} values (at most ${max})`);
  return list.map((x: unknown, i: number) => {
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new ProtocolError('NON_FINITE', `${path}[${i}] is not a finite number`);
    return x;
  });
}

function columnCounts(v: unknown, path: string): ColumnCounts[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ProtocolError('INVALID_FIELD', `${path} must be a list`);
  if (v.length > LIMITS.maxSummaryColumns) throw new ProtocolError('INVALID_FIELD', `${path} has ${v.length} columns (at most ${LIMITS.maxSummaryColumns})`);
  const seen = new Set<string>();
  return v.map((raw: PB, i) => {
    const column = str(raw?.column, `${path}[${i}].column`, { required: true, maxLength: 256 });
    if (seen.has(column)) throw new ProtocolError('INVALID_FIELD', `${path} names column ${quote(column)} twice`);
    seen.add(column);
    const values = raw?.values;
    if (!Array.isArray(values) || values.length === 0) throw new ProtocolError('MISSING_FIELD', `${path}[${i}] (${quote(column)}) has no values`);
    if (values.length > LIMITS.maxCategories) throw new ProtocolError('INVALID_FIELD', `${path}[${i}] has ${values.length} categories (at most ${LIMITS.maxCategories})`);
    const out = values.map((x: unknown, j: number) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) throw new ProtocolError('NON_FINITE', `${path}[${i}].values[${j}] (${quote(column)}) is not a finite number`);
      return x;
    });
    const sd = raw?.noiseStd;
    if (sd === undefined || sd === null || sd === 0) return { column, values: out };
    if (typeof sd !== 'number' || !(sd > 0 && Number.isFinite(sd))) throw new ProtocolError('INVALID_FIELD', `${path}[${i}].noiseStd (${quote(column)}) must be a positive finite number (got ${String(sd)})`);
    return { column, values: out, noiseStd: sd };
  });
}

/** Pair tables: spans ordered and disjoint, one finite value per cell, each pair of spans once, within the cell limits. */
function pairTables(v: unknown, path: string): PairTable[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ProtocolError('INVALID_FIELD', `${path} must be a list of pair tables`);
  if (v.length > LIMITS.maxPairTables) throw new ProtocolError('INVALID_FIELD', `${path} has ${v.length} tables (at most ${LIMITS.maxPairTables})`);
  const seen = new Map<string, number>();
  let total = 0;
  return v.map((raw: unknown, i): PairTable => {
    const at = `${path}[${i}]`;
    if (typeof raw !== 'object' || raw === null) throw new ProtocolError('INVALID_FIELD', `${at} must be a pair table object`);
    const t = raw as PB;
    const aOffset = u32(t.aOffset, `${at}.aOffset`, {});
    const aDim = u32(t.aDim, `${at}.aDim`, { required: true });
    const bOffset = u32(t.bOffset, `${at}.bOffset`, {});
    const bDim = u32(t.bDim, `${at}.bDim`, { required: true });
    // One orientation per pair (a before b), so a pair cannot come twice as (a, b) and (b, a), nor a span with itself.
    if (aOffset + aDim > bOffset) throw new ProtocolError('INVALID_FIELD', `${at}: span a [${aOffset}, ${aOffset + aDim}) must end at or before span b's offset ${bOffset}`);
    const key = `${aOffset}:${bOffset}`;
    const first = seen.get(key);
    if (first !== undefined) throw new ProtocolError('INVALID_FIELD', `${at} repeats the pair of spans at offsets ${aOffset} and ${bOffset} (${path}[${first}])`);
    seen.set(key, i);
    const cells = aDim * bDim;
    if (cells > LIMITS.maxPairCells) throw new ProtocolError('INVALID_FIELD', `${at} has ${aDim} × ${bDim} = ${cells} cells (at most ${LIMITS.maxPairCells})`);
    total += cells;
    if (total > LIMITS.maxPairCellsTotal) throw new ProtocolError('INVALID_FIELD', `${path} has over ${LIMITS.maxPairCellsTotal} cells in all (at ${at})`);
    const values = t.values ?? [];
    if (!Array.isArray(values)) throw new ProtocolError('INVALID_FIELD', `${at}.values must be a list of numbers`);
    if (values.length !== cells) throw new ProtocolError('SHAPE_MISMATCH', `${at}.values has ${values.length} values, expected ${aDim} × ${bDim} = ${cells}`);
    const out = values.map((x: unknown, j: number) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) throw new ProtocolError('NON_FINITE', `${at}.values[${j}] is ${describe(x)} (must be finite)`);
      return x;
    });
    return { aOffset, aDim, bOffset, bDim, values: out };
  });
}

function trainingConfig(v: unknown): TrainingConfig {
  const path = 'roundStart.config';
  if (v === null || v === undefined) throw new ProtocolError('MISSING_FIELD', `${path} is missing`);
  if (typeof v !== 'object') throw new ProtocolError('INVALID_FIELD', `${path} must be an object`);
  const c = v as PB;
  const dpRaw = c.dp;
  if (dpRaw === null || dpRaw === undefined) throw new ProtocolError('MISSING_FIELD', `${path}.dp is missing (send enabled: false to train without DP)`);
  if (typeof dpRaw !== 'object') throw new ProtocolError('INVALID_FIELD', `${path}.dp must be an object`);
  const d = dpRaw as PB;
  if (typeof d.enabled !== 'boolean') throw new ProtocolError('INVALID_FIELD', `${path}.dp.enabled must be a boolean`);
  const enabled = d.enabled;
  // With DP on, every parameter must be meaningful; with it off they are ignored but must be sane.
  const dpNum = (key: string): number => {
    const x = f32(d[key], `${path}.dp.${key}`);
    if (enabled ? !(x > 0) : !(x >= 0)) throw new ProtocolError('INVALID_FIELD', `${path}.dp.${key} must be ${enabled ? '> 0 when DP is enabled' : '≥ 0'} (got ${x})`);
    return x;
  };
  const noiseMultiplier = dpNum('noiseMultiplier');
  const maxGradNorm = dpNum('maxGradNorm');
  const targetEpsilon = dpNum('targetEpsilon');
  const epsilonMax = dpNum('epsilonMax');
  const delta = f64(d.delta, `${path}.dp.delta`);
  if (enabled ? !(delta > 0 && delta < 1) : !(delta >= 0 && delta < 1)) {
    throw new ProtocolError('INVALID_FIELD', `${path}.dp.delta must be in ${enabled ? '(0, 1) when DP is enabled' : '[0, 1)'} (got ${delta})`);
  }
  const lr = (key: string): number => {
    const x = f32(c[key], `${path}.${key}`);
    if (!(x > 0 && x <= LIMITS.maxLearningRate)) throw new ProtocolError('INVALID_FIELD', `${path}.${key} must be in (0, ${LIMITS.maxLearningRate}] (got ${x})`);
    return x;
  };
  const updateClipNorm = f32(c.updateClipNorm, `${path}.updateClipNorm`);
  if (!(updateClipNorm > 0)) throw new ProtocolError('INVALID_FIELD', `${path}.updateClipNorm must be > 0 (got ${updateClipNorm}); updates are always clipped`);
  return {
    localSteps: u32(c.localSteps, `${path}.localSteps`, { required: true, max: LIMITS.maxLocalSteps }),
    batchSize: u32(c.batchSize, `${path}.batchSize`, { required: true, max: LIMITS.maxBatchSize }),
    lrGenerator: lr('lrGenerator'),
    lrDiscriminator: lr('lrDiscriminator'),
    dSteps: u32(c.dSteps, `${path}.dSteps`, { required: true, max: LIMITS.maxDSteps }),
    loss: str(c.loss, `${path}.loss`, { required: true, pattern: WORD_PATTERN }),
    seed: u32(c.seed, `${path}.seed`, {}),
    dp: { enabled, noiseMultiplier, maxGradNorm, targetEpsilon, delta, epsilonMax },
    updateClipNorm,
    ...(c.labelCalibrationSkipped === true ? { labelCalibrationSkipped: true } : {}),
    // Absent (0) from a peer that predates the field: one generator update per step, as it meant.
    gSteps: u32(c.gSteps, `${path}.gSteps`, { max: LIMITS.maxGSteps }) || 1,
  };
}

function tensorsFromProto(v: unknown, path: string, spec: readonly TensorSpec[] | undefined, encoding: boolean, required: boolean): WireTensor[] {
  const list = tensorList(v, path, required);
  const out = list.map((t, i) => {
    const { name, shape, data } = tensorParts(t, `${path}[${i}]`);
    const values = encoding ? new Float32Array(data.buffer, data.byteOffset, data.length / 4) : (fromLittleEndianBytes(data, 'f32') as Float32Array);
    if (encoding && !LITTLE_ENDIAN_HOST) {
      // On a big-endian host `data` is already converted; check the converted copy.
      checkFinite(fromLittleEndianBytes(data, 'f32') as Float32Array, name);
    } else {
      checkFinite(values, name);
    }
    return { name, shape, data: values };
  });
  return matchSpec(out, path, spec);
}

function ringTensorsFromProto(v: unknown, path: string, spec: readonly TensorSpec[] | undefined, encoding: boolean): WireRingTensor[] {
  const list = tensorList(v, path, false);
  if (list.length === 0) return [];
  const out = list.map((t, i) => {
    const { name, shape, data } = tensorParts(t, `${path}[${i}]`);
    const values = encoding ? new Uint32Array(0) : (fromLittleEndianBytes(data, 'u32') as Uint32Array);
    return { name, shape, data: values };
  });
  return matchSpec(out, path, spec);
}

function tensorList(v: unknown, path: string, required: boolean): PB[] {
  const list = v === undefined || v === null ? [] : v;
  if (!Array.isArray(list)) throw new ProtocolError('INVALID_FIELD', `${path} must be a list of tensors`);
  if (required && list.length === 0) throw new ProtocolError('MISSING_FIELD', `${path} is empty`);
  if (list.length > LIMITS.maxTensors) throw new ProtocolError('INVALID_FIELD', `${path} has ${list.length} tensors (at most ${LIMITS.maxTensors})`);
  const seen = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    const name = (list[i] as PB | null)?.name;
    if (typeof name === 'string') {
      if (seen.has(name)) throw new ProtocolError('INVALID_FIELD', `${path} has duplicate tensor name ${quote(name)}`);
      seen.add(name);
    }
  }
  return list as PB[];
}

function tensorParts(t: PB, path: string): { name: string; shape: number[]; data: Uint8Array } {
  if (typeof t !== 'object' || t === null) throw new ProtocolError('INVALID_FIELD', `${path} must be a tensor object`);
  const name = str(t.name, `${path}.name`, { required: true, pattern: TENSOR_NAME_PATTERN });
  const rawShape = t.shape;
  if (!Array.isArray(rawShape) || rawShape.length === 0) throw new ProtocolError('MISSING_FIELD', `tensor '${name}' has no shape`);
  if (rawShape.length > LIMITS.maxRank) throw new ProtocolError('INVALID_FIELD', `tensor '${name}' has rank ${rawShape.length} (at most ${LIMITS.maxRank})`);
  let elements = 1;
  const shape = rawShape.map((d, k) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > LIMITS.maxDim) {
      throw new ProtocolError('INVALID_FIELD', `tensor '${name}' shape[${k}] = ${String(d)} must be an integer in [1, ${LIMITS.maxDim}]`);
    }
    elements *= d;
    return d;
  });
  const data = asBytes(t.data);
  if (!(data instanceof Uint8Array)) throw new ProtocolError('INVALID_FIELD', `tensor '${name}' data must be bytes`);
  if (data.length !== elements * 4) {
    throw new ProtocolError('SHAPE_MISMATCH', `tensor '${name}' has ${data.length} data bytes, but shape [${shape.join(', ')}] needs ${elements * 4}`);
  }
  return { name, shape, data };
}

function checkFinite(values: Float32Array, name: string): void {
  // Exponent bits all ones ⇔ ±Infinity or NaN; one integer test per element, no float compare.
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & 0x7f800000) === 0x7f800000) {
      throw new ProtocolError('NON_FINITE', `tensor '${name}' element ${i} is ${values[i]} (all values must be finite)`);
    }
  }
}

function matchSpec<X extends { name: string; shape: number[] }>(tensors: X[], path: string, spec: readonly TensorSpec[] | undefined): X[] {
  if (!spec || tensors.length === 0) return tensors;
  const byName = new Map(tensors.map((t) => [t.name, t]));
  for (const t of tensors) {
    if (!spec.some((s) => s.name === t.name)) throw new ProtocolError('SHAPE_MISMATCH', `${path}: unexpected tensor '${t.name}' (not in the model spec)`);
  }
  return spec.map((s) => {
    const t = byName.get(s.name);
    if (!t) throw new ProtocolError('SHAPE_MISMATCH', `${path}: missing tensor '${s.name}' required by the model spec`);
    if (t.shape.length !== s.shape.length || t.shape.some((d, k) => d !== s.shape[k])) {
      throw new ProtocolError('SHAPE_MISMATCH', `${path}: tensor '${s.name}' has shape [${t.shape.join(', ')}], the model expects [${s.shape.join(', ')}]`);
    }
    return t;
  });
}

function metricsFromProto(v: unknown): Record<string, number> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ProtocolError('INVALID_FIELD', 'clientUpdate.metrics must be a map of numbers');
  const entries = Object.entries(v as PB);
  if (entries.length > LIMITS.maxMetrics) throw new ProtocolError('INVALID_FIELD', `clientUpdate.metrics has ${entries.length} entries (at most ${LIMITS.maxMetrics})`);
  for (const [k, x] of entries) {
    if (!METRIC_KEY_PATTERN.test(k)) throw new ProtocolError('INVALID_FIELD', `clientUpdate.metrics key ${quote(k)} must match ${METRIC_KEY_PATTERN}`);
    if (typeof x !== 'number') throw new ProtocolError('INVALID_FIELD', `clientUpdate.metrics['${k}'] must be a number`);
    if (!Number.isFinite(x)) throw new ProtocolError('NON_FINITE', `clientUpdate.metrics['${k}'] is ${x} (must be finite)`);
  }
  return Object.fromEntries(entries) as Record<string, number>;
}

// ---------------------------------------------------------------------------------------------
// Field helpers. Proto3 has no presence for scalars: "missing" means the default (0 / "" / empty).

function u32(v: unknown, path: string, o: { required?: boolean; max?: number }): number {
  const x = v ?? 0;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new ProtocolError('INVALID_FIELD', `${path} must be a uint32 (got ${describe(v)})`);
  if (o.required && x === 0) throw new ProtocolError('MISSING_FIELD', `${path} is missing (must be ≥ 1)`);
  if (o.max !== undefined && x > o.max) throw new ProtocolError('INVALID_FIELD', `${path} is ${x} (at most ${o.max})`);
  return x;
}

/** uint64 → number; protobufjs yields a Long (long.js is installed) or a number. Values above 2^53 are rejected. */
function u64(v: unknown, path: string, o: { required?: boolean }): number {
  let x: number;
  if (v === undefined || v === null) x = 0;
  else if (typeof v === 'number') x = v;
  else if (typeof v === 'object' && typeof (v as PB).low === 'number' && typeof (v as PB).high === 'number') {
    const low = (v as { low: number }).low >>> 0;
    const high = (v as { high: number }).high >>> 0;
    if (high > 0x1fffff) throw new ProtocolError('INVALID_FIELD', `${path} exceeds 2^53`);
    x = high * 0x100000000 + low;
  } else throw new ProtocolError('INVALID_FIELD', `${path} must be an unsigned integer (got ${describe(v)})`);
  if (!Number.isSafeInteger(x) || x < 0) throw new ProtocolError('INVALID_FIELD', `${path} must be a non-negative safe integer (got ${x})`);
  if (o.required && x === 0) throw new ProtocolError('MISSING_FIELD', `${path} is missing (must be ≥ 1)`);
  return x;
}

/** A float32 field, returned as the shortest decimal that rounds to the same float32 (so 2e-4 stays 2e-4, not 0.000199999994947575). */
function f32(v: unknown, path: string): number {
  const x = v ?? 0;
  if (typeof x !== 'number') throw new ProtocolError('INVALID_FIELD', `${path} must be a number (got ${describe(v)})`);
  if (!Number.isFinite(x)) throw new ProtocolError('NON_FINITE', `${path} is ${x} (must be finite)`);
  const f = Math.fround(x);
  for (let p = 1; p <= 9; p++) {
    const c = Number(f.toPrecision(p));
    if (Math.fround(c) === f) return c;
  }
  return f;
}

function f64(v: unknown, path: string): number {
  const x = v ?? 0;
  if (typeof x !== 'number') throw new ProtocolError('INVALID_FIELD', `${path} must be a number (got ${describe(v)})`);
  return x;
}

function str(v: unknown, path: string, o: { required?: boolean; pattern?: RegExp; maxLength?: number }): string {
  const s = v ?? '';
  if (typeof s !== 'string') throw new ProtocolError('INVALID_FIELD', `${path} must be a string (got ${describe(v)})`);
  if (o.required && s.length === 0) throw new ProtocolError('MISSING_FIELD', `${path} is missing`);
  const max = o.maxLength ?? LIMITS.maxTextLength;
  if (s.length > max) throw new ProtocolError('INVALID_FIELD', `${path} is ${s.length} characters (at most ${max})`);
  if (o.pattern) {
    if (!o.pattern.test(s)) throw new ProtocolError('INVALID_FIELD', `${path} ${quote(s)} must match ${o.pattern}`);
  } else if (BAD_TEXT.test(s)) {
    throw new ProtocolError('INVALID_FIELD', `${path} contains invalid UTF-8, control characters or unpaired surrogates`);
  }
  return s;
}

function bytesField(v: unknown, path: string, o: { required?: boolean; length?: number }): Uint8Array {
  const b = asBytes(v);
  if (!(b instanceof Uint8Array)) throw new ProtocolError('INVALID_FIELD', `${path} must be bytes (got ${describe(v)})`);
  if (o.required && b.length === 0) throw new ProtocolError('MISSING_FIELD', `${path} is missing`);
  if (o.length !== undefined && b.length !== o.length) throw new ProtocolError('INVALID_FIELD', `${path} must be ${o.length} bytes (got ${b.length})`);
  return b;
}

// protobufjs leaves an absent bytes field as its prototype default, an empty plain array.
function asBytes(v: unknown): unknown {
  return v === undefined || v === null || (Array.isArray(v) && v.length === 0) ? new Uint8Array(0) : v;
}

function checkId(s: unknown, path: string): void {
  if (typeof s !== 'string' || !ID_PATTERN.test(s)) throw new ProtocolError('INVALID_FIELD', `${path} ${quote(String(s))} must match ${ID_PATTERN}`);
}

/** Decoded byte fields are views into the frame buffer; give callers their own copy. */
function copyBytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

/**
 * Quotes untrusted text for an error message as printable ASCII (everything else \u-escaped),
 * truncated, so a peer's bytes can never make our error text invalid, misleading or huge (error
 * messages are echoed back over the wire and into logs).
 */
function quote(s: string, max = 80): string {
  const cut = s.length > max ? s.slice(0, max) : s;
  const escaped = cut.replace(/[^\x20-\x7e]|["\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  return `"${escaped}"${s.length > max ? '...' : ''}`;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.constructor.name}(${v.length})`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  if (typeof v === 'string') return quote(v, 40);
  return String(v);
}

export type { ProtocolErrorCode };
