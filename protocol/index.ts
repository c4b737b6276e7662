// Public API of the fedsynth wire protocol.
export { ProtocolError, PROTOCOL_ERROR_CODES, isProtocolError } from './errors';
export type { ProtocolErrorCode } from './errors';
export {
  PROTOCOL_VERSION,
  DEFAULT_MAX_FRAME_BYTES,
  LIMITS,
  ID_PATTERN,
  TENSOR_NAME_PATTERN,
  SCHEMA_HASH_PATTERN,
  ABORT_CODE_PATTERN,
  ERROR_CODES,
  MESSAGE_TYPES,
  SECAGG_KEY_BYTES,
  SECAGG_SIGNATURE_BYTES,
  SECAGG_SHARE_BYTES,
  encodeFrame,
  decodeFrame,
} from './codec';
export type {
  Message,
  MessageType,
  DecodedMessage,
  FrameMeta,
  EncodeOptions,
  DecodeOptions,
  WireTensor,
  WireRingTensor,
  TensorSpec,
  TrainingConfig,
  DpConfig,
  ErrorCode,
  RegisterMessage,
  WelcomeMessage,
  RoundStartMessage,
  ClientUpdateMessage,
  RoundResultMessage,
  ErrorWireMessage,
  StatusRequestMessage,
  StatusResponseMessage,
  SummaryMessage,
  CalibrationRequestMessage,
  CalibrationCountsMessage,
  ColumnCounts,
  PairTable,
  SecAggParams,
  SecAggAdvertiseKeysMessage,
  SecAggKeyListMessage,
  SecAggBankKeys,
  SecAggCiphertext,
  SecAggShareKeysMessage,
  SecAggForwardedSharesMessage,
  SecAggUnmaskRequestMessage,
  SecAggShare,
  SecAggUnmaskResponseMessage,
} from './codec';
export {
  SIGNATURE_DOMAIN,
  NONCE_BYTES,
  SIGNATURE_BYTES,
  signingInput,
  signFrame,
  verifyFrame,
  ReplayGuard,
} from './envelope';
export type { SignedHeader, Signer, ReplayGuardOptions, ReplayCheckInput } from './envelope';
export { generateIdentity, saveIdentity, loadIdentity, publicIdentity, parsePublicIdentity, keyFingerprint } from './identity';
export type { Identity, KeyPair, PublicIdentity } from './identity';
export { FRAME_EVENT, SOCKET_IO_HEADROOM_BYTES, MAX_HTTP_BUFFER_SIZE, recommendedMaxHttpBufferSize } from './events';
export type { FrameEvents, ClientToServerEvents, ServerToClientEvents } from './events';
