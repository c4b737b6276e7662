// Secure aggregation (Bonawitz et al., CCS 2017): pure maths and transport-free state machines.
export { SecAggError, type SecAggErrorCode } from './errors';
export {
  RING_MAX_SIGNED,
  NOISE_TAIL_SIGMAS,
  type RingNoise,
  type RingParams,
  type RingParamsOptions,
  type RandomWords,
  type EncodeResult,
  ringParams,
  worstCaseSumMagnitude,
  quantisationErrorBound,
  ringL2Sensitivity,
  effectiveNoiseMultiplier,
  noiseStd,
  quantise,
  dequantise,
  ringAddInPlace,
  sampleRingNoise,
  encodeUpdate,
  flatten,
  unflatten,
} from './ring';
export { PRG_ALGORITHM, SEED_BYTES, expandMask, applyMask } from './prg';
export { type Share, MAX_SHARES, split, combine, gfMul, gfDiv, gfPolyEval } from './shamir';
export {
  type KeyPair,
  type ShareBundle,
  KEY_BYTES,
  generateKeyPair,
  publicKeyOf,
  agree,
  pairwiseSeed,
  boxKey,
  seal,
  open,
  encodeBundle,
  decodeBundle,
} from './keys';
export * from './messages';
export {
  defaultThreshold,
  type RoundConfig,
  type ClientStep,
  type ServerStep,
  type SecAggClientOptions,
  type SecAggServerOptions,
  type SecAggResult,
  SecAggClient,
  SecAggServer,
} from './protocol';
export { simulateRound, type SimulationOptions, type SimulationReport, type PartyCost } from './simulate';
