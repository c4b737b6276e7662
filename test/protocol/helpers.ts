// Test-only raw protobuf access, to craft frames the codec's own encoder would refuse to produce.
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { expect } from 'vitest';
import { ProtocolError, type Message, type PairTable, type ProtocolErrorCode, type TrainingConfig, type WireTensor } from '../../protocol/index';

const root = protobuf.parse(readFileSync(new URL('../../protocol/schema/fedsynth.proto', import.meta.url), 'utf8')).root;
export const pb = (name: string): protobuf.Type => root.lookupType(`fedsynth.v1.${name}`);

export const WIRE_TYPE = {
  register: 1,
  welcome: 2,
  roundStart: 3,
  clientUpdate: 4,
  roundResult: 5,
  error: 6,
  statusRequest: 7,
  statusResponse: 8,
  summary: 9,
  calibrationRequest: 10,
  calibrationCounts: 11,
  secaggAdvertiseKeys: 20,
  secaggKeyList: 21,
  secaggShareKeys: 22,
  secaggForwardedShares: 23,
  secaggUnmaskRequest: 24,
  secaggUnmaskResponse: 25,
  secaggAbort: 26,
} as const;

/** Deterministic 32-byte values for secure-aggregation samples. */
export const bytes32 = (fill: number): Uint8Array => new Uint8Array(32).map((_, i) => (fill * 31 + i * 7) & 0xff);

/** Encodes a Frame around a raw body object of the given proto type, with sane defaults for the header. */
export function rawFrame(typeName: string, wireType: number, body: Record<string, unknown>, header: Record<string, unknown> = {}): Uint8Array {
  const bodyBytes = pb(typeName).encode(body).finish();
  return pb('Frame')
    .encode({ version: 1, type: wireType, body: bodyBytes, sender: 'bank-a', roundId: 0, nonce: new Uint8Array(16).fill(7), timestampMs: Date.now(), ...header })
    .finish();
}

export function decodeRaw(bytes: Uint8Array): Record<string, unknown> {
  return pb('Frame').decode(bytes) as unknown as Record<string, unknown>;
}

export function reencodeFrame(bytes: Uint8Array, patch: Record<string, unknown>): Uint8Array {
  const f = decodeRaw(bytes);
  return pb('Frame').encode({ ...f, ...patch }).finish();
}

export function tensor(name: string, shape: number[], seed = 1): WireTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    data[i] = x / 2147483648 - 0.5;
  }
  return { name, shape, data };
}

export const config = (): TrainingConfig => ({
  localSteps: 50,
  batchSize: 500,
  lrGenerator: 2e-4,
  lrDiscriminator: 2e-4,
  dSteps: 1,
  loss: 'wgan_gp',
  seed: 42,
  dp: { enabled: true, noiseMultiplier: 1.1, maxGradNorm: 1, targetEpsilon: 3, delta: 1e-5, epsilonMax: 10 },
  updateClipNorm: 5,
});

export const spec = [
  { name: 'gen/dense0/kernel', shape: [8, 16] },
  { name: 'gen/dense0/bias', shape: [16] },
];

export function specTensors(): WireTensor[] {
  return spec.map((s, i) => tensor(s.name, s.shape, i + 1));
}

/** Two pair tables over spans [0, 2), [2, 5) and [7, 9) of an encoded row. */
export const pairTables = (): PairTable[] => [
  { aOffset: 0, aDim: 2, bOffset: 2, bDim: 3, values: [12.5, -0.75, 3, 0, 40.25, 1e-3] },
  { aOffset: 2, aDim: 3, bOffset: 7, bDim: 2, values: [1, 2, 3, 4, 5, 6] },
];

export function sampleMessages(keys: { sign: Uint8Array; box: Uint8Array }): Message[] {
  return [
    { type: 'register', bankId: 'bank-a', signPublicKey: keys.sign, boxPublicKey: keys.box, schemaHash: 'sha256:0123abcd' },
    { type: 'welcome', bankId: 'bank-a', coordinatorSignKey: keys.sign, modelConfigJson: '{"generator":{"dims":[256,256]},"embeddingDim":128}', schemaHash: 'sha256:0123abcd', currentRound: 4 },
    { type: 'roundStart', roundId: 5, modelVersion: 4, weights: specTensors(), config: config(), deadlineMs: 1_800_000_000_000 },
    {
      type: 'roundStart',
      roundId: 6,
      modelVersion: 5,
      weights: specTensors(),
      config: config(),
      deadlineMs: 1_800_000_000_000,
      categoryWeights: [{ column: 'channel', values: [120.5, 30.25, 4] }],
    },
    { type: 'summary', counts: [{ column: 'channel', values: [118.2, -1.5, 7.75] }, { column: 'is_fraud', values: [990.5, 9.5] }], epsilon: 0.1, delta: 1e-6, noiseStd: 12.5 },
    // Per-column noise sds (the target's counts less noisy); a column without one has the summary's.
    { type: 'summary', counts: [{ column: 'channel', values: [118.2, -1.5, 7.75], noiseStd: 16.5 }, { column: 'is_fraud', values: [990.5, 9.5], noiseStd: 5.75 }, { column: 'hour', values: [3] }], epsilon: 0.1, delta: 1e-6, noiseStd: 16.5 },
    { type: 'calibrationRequest', modelVersion: 8, classIndex: 1, edges: [-6.5, -3.25, -1, 0.5, 2.75], classifier: [tensor('C/0/kernel', [3, 2], 5), tensor('C/0/bias', [2], 6)] },
    { type: 'calibrationCounts', modelVersion: 8, rows: [1200.5, 800.25, -3.5, 410, 95.75, 12], positives: [3.5, -7.25, 20, 88, 61.5, 11], noiseStd: 28.25, epsilon: 0.125, delta: 1e-5, epsilonSpent: 0.875 },
    {
      type: 'clientUpdate',
      roundId: 5,
      modelVersion: 4,
      sampleCount: 12_345,
      tensors: specTensors(),
      metrics: { lossG: -0.25, lossD: 0.75, updateNorm: 3.5 },
      epsilonSpent: 1.25,
      delta: 1e-5,
    },
    { type: 'roundResult', roundId: 5, modelVersion: 5, banksAggregated: 3, status: 'committed', message: 'aggregated 3 of 3 banks' },
    { type: 'error', code: 'SCHEMA_MISMATCH', message: 'schema hash differs — check the consortium schema', roundId: 0 },
    { type: 'statusRequest' },
    { type: 'statusResponse', currentRound: 5, modelVersion: 4, phase: 'collecting', banksConnected: 3, roundsCommitted: 4 },
    {
      type: 'roundStart',
      roundId: 7,
      modelVersion: 6,
      weights: specTensors(),
      config: config(),
      deadlineMs: 1_800_000_000_000,
      secagg: { threshold: 2, scale: 2 ** 24, clipNorm: 5, maxBanks: 3, cohort: ['bank-a', 'bank-b', 'bank-c'], weightCap: 1_048_576, vectorLength: 144 },
    },
    {
      type: 'clientUpdate',
      roundId: 7,
      modelVersion: 6,
      sampleCount: 600,
      tensors: [],
      maskedTensors: spec.map((t, i) => ({ name: t.name, shape: t.shape, data: new Uint32Array(t.shape.reduce((a, b) => a * b, 1)).map((_, j) => (j * 2654435761 + i) >>> 0) })),
      metrics: {},
      epsilonSpent: 0,
      delta: 0,
    },
    // Pair targets (weights ≥ 0) with several generator updates per step; pair counts with a plain and a masked update.
    {
      type: 'roundStart',
      roundId: 8,
      modelVersion: 7,
      weights: specTensors(),
      config: { ...config(), gSteps: 4 },
      deadlineMs: 1_800_000_000_000,
      pairTargets: pairTables().map((t) => ({ ...t, values: t.values.map(Math.abs) })),
    },
    { type: 'clientUpdate', roundId: 8, modelVersion: 7, sampleCount: 600, tensors: specTensors(), metrics: {}, epsilonSpent: 0.5, delta: 1e-5, pairCounts: { noiseStd: 20.5, tables: pairTables() } },
    {
      type: 'clientUpdate',
      roundId: 9,
      modelVersion: 8,
      sampleCount: 600,
      tensors: [],
      maskedTensors: spec.map((t) => ({ name: t.name, shape: t.shape, data: new Uint32Array(t.shape.reduce((a, b) => a * b, 1)).fill(0xfffffff0) })),
      metrics: {},
      epsilonSpent: 0.5,
      delta: 1e-5,
      pairCounts: { noiseStd: 3.25, tables: pairTables().slice(1) },
    },
    { type: 'secaggAdvertiseKeys', roundId: 7, cPk: bytes32(1), sPk: bytes32(2) },
    { type: 'secaggKeyList', roundId: 7, keys: [{ bankId: 'bank-a', cPk: bytes32(1), sPk: bytes32(2) }, { bankId: 'bank-b', cPk: bytes32(3), sPk: bytes32(4) }, { bankId: 'bank-c', cPk: bytes32(5), sPk: bytes32(6) }] },
    { type: 'secaggShareKeys', roundId: 7, ciphertexts: [{ bankId: 'bank-b', data: new Uint8Array(200).fill(9) }, { bankId: 'bank-c', data: new Uint8Array(200).fill(8) }] },
    { type: 'secaggForwardedShares', roundId: 7, ciphertexts: [{ bankId: 'bank-b', data: new Uint8Array(200).fill(7) }] },
    { type: 'secaggUnmaskRequest', roundId: 7, survivors: ['bank-a', 'bank-b'], dropped: ['bank-c'] },
    { type: 'secaggUnmaskResponse', roundId: 7, selfMaskShares: [{ bankId: 'bank-a', y: bytes32(7) }, { bankId: 'bank-b', y: bytes32(8) }], secretKeyShares: [{ bankId: 'bank-c', y: bytes32(9) }] },
    { type: 'secaggAbort', roundId: 7, code: 'KEY_LIST_UNKNOWN_BANK', message: "bank-z is not in this bank's consortium directory" },
  ];
}

/** Runs fn and checks it throws a ProtocolError with this code (and message, if given); returns it. */
export function expectCode(fn: () => unknown, code: ProtocolErrorCode, text?: string | RegExp): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a ProtocolError').toBeInstanceOf(ProtocolError);
  const err = caught as ProtocolError;
  expect(err.code, err.message).toBe(code);
  if (text !== undefined) expect(err.message).toMatch(text);
  return err;
}
