// Secure-aggregation messages (issue #6): round trips, every validation rule, the plaintext-update
// refusal, and the binding of advertised keys to the sender's signed envelope.
import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeFrame,
  generateIdentity,
  LIMITS,
  type ClientUpdateMessage,
  type Message,
  type ProtocolErrorCode,
  type RoundStartMessage,
  type SecAggParams,
} from '../../protocol/index';
import { bytes32, config, decodeRaw, pb, rawFrame, reencodeFrame, spec, specTensors, WIRE_TYPE, expectCode } from './helpers';

const roundTrip = (m: Message, sender = 'bank-a') => decodeFrame(encodeFrame(m, { sender }));
const params = (over: Partial<SecAggParams> = {}): SecAggParams => ({
  threshold: 2,
  scale: 2 ** 24,
  clipNorm: 5,
  maxBanks: 3,
  cohort: ['bank-a', 'bank-b', 'bank-c'],
  weightCap: 1 << 20,
  vectorLength: 144,
  ...over,
});
const roundStart = (secagg: SecAggParams): RoundStartMessage => ({ type: 'roundStart', roundId: 3, modelVersion: 2, weights: specTensors(), config: config(), deadlineMs: 1_800_000_000_000, secagg });
const masked = (): ClientUpdateMessage => ({
  type: 'clientUpdate',
  roundId: 3,
  modelVersion: 2,
  sampleCount: 10,
  tensors: [],
  maskedTensors: spec.map((t) => ({ name: t.name, shape: t.shape, data: new Uint32Array(t.shape.reduce((a, b) => a * b, 1)).fill(0xdeadbeef) })),
  metrics: {},
  epsilonSpent: 0,
  delta: 0,
});

describe('RoundStart secure-aggregation parameters', () => {
  it('round-trips, and a RoundStart without them has none', () => {
    const out = roundTrip(roundStart(params()), 'coordinator') as RoundStartMessage;
    expect(out.secagg).toEqual(params());
    const plain = roundTrip({ ...roundStart(params()), secagg: undefined }, 'coordinator') as RoundStartMessage;
    expect(plain.secagg).toBeUndefined();
  });

  it('carries the distributed-DP parameters (Skellam μ, rounding β) when set, and nothing when off', () => {
    const dp = params({ skellamMu: 3.5e9, roundingBeta: Math.exp(-0.5) });
    expect((roundTrip(roundStart(dp), 'coordinator') as RoundStartMessage).secagg).toEqual(dp);
    expect(Object.keys((roundTrip(roundStart(params()), 'coordinator') as RoundStartMessage).secagg!)).not.toContain('skellamMu');
  });

  it.each([
    ['a negative Skellam μ', { skellamMu: -1, roundingBeta: 0.5 }, 'INVALID_FIELD', /skellamMu/],
    ['a Skellam μ over the cap', { skellamMu: LIMITS.maxSkellamMu * 2, roundingBeta: 0.5 }, 'INVALID_FIELD', /skellamMu/],
    ['a rounding β of 1', { skellamMu: 1e6, roundingBeta: 1 }, 'INVALID_FIELD', /roundingBeta/],
    ['μ without β', { skellamMu: 1e6 }, 'INVALID_FIELD', /go together/],
    ['β without μ', { roundingBeta: 0.5 }, 'INVALID_FIELD', /go together/],
    ['an insecure threshold (t ≤ n/2)', { threshold: 2, cohort: ['bank-a', 'bank-b', 'bank-c', 'bank-d'], maxBanks: 4 }, 'INVALID_FIELD', /threshold/],
    ['a threshold above the cohort', { threshold: 4 }, 'INVALID_FIELD', /threshold/],
    ['a cohort of one', { threshold: 2, cohort: ['bank-a'] }, 'INVALID_FIELD', /at least 2/],
    ['an unsorted cohort', { cohort: ['bank-b', 'bank-a', 'bank-c'] }, 'INVALID_FIELD', /sorted/],
    ['a duplicate cohort id', { cohort: ['bank-a', 'bank-a', 'bank-c'] }, 'INVALID_FIELD', /twice/],
    ['a bad cohort id', { cohort: ['bank-a', 'Bank B', 'bank-c'] }, 'INVALID_FIELD', /cohort\[1\]/],
    ['maxBanks below the cohort', { maxBanks: 2 }, 'INVALID_FIELD', /maxBanks/],
    ['a scale that can overflow the ring', { scale: 2 ** 28 }, 'INVALID_FIELD', /overflow/],
    ['a non-positive scale', { scale: 0 }, 'INVALID_FIELD', /scale/],
    ['an infinite clip norm', { clipNorm: Infinity }, 'INVALID_FIELD', /clipNorm/],
    ['a zero weight cap', { weightCap: 0 }, 'MISSING_FIELD', /weightCap/],
    ['a vector length that is not the model size', { vectorLength: 143 }, 'SHAPE_MISMATCH', /vectorLength/],
  ] as const)('rejects %s', (_what, over, code, text) => {
    expectCode(() => encodeFrame(roundStart(params(over as Partial<SecAggParams>)), { sender: 'coordinator' }), code, text);
  });

  it('rejects a present but disabled block on decode', () => {
    const good = encodeFrame(roundStart(params()), { sender: 'coordinator' });
    const f = decodeRaw(good);
    const body = pb('RoundStart').decode(f.body as Uint8Array) as unknown as Record<string, unknown>;
    const bad = pb('RoundStart').encode({ ...body, secagg: { ...(body.secagg as object), enabled: false } }).finish();
    expectCode(() => decodeFrame(reencodeFrame(good, { body: bad })), 'INVALID_FIELD', /enabled/);
  });
});

describe('secure-aggregation messages', () => {
  it('round-trip with their round id in the frame header', () => {
    const m: Message = { type: 'secaggAdvertiseKeys', roundId: 9, cPk: bytes32(1), sPk: bytes32(2) };
    const out = roundTrip(m);
    expect(out.frame.roundId).toBe(9);
    expect(out).toMatchObject(m);
  });

  it("carries a bank's abort (round, reason code, detail) and refuses a code that is not an upper-case word", () => {
    const m: Message = { type: 'secaggAbort', roundId: 7, code: 'KEY_LIST_BAD_SIGNATURE', message: "bank-b's advert does not verify" };
    const out = roundTrip(m);
    expect(out.frame.roundId).toBe(7);
    expect(out).toMatchObject(m);
    expectCode(() => encodeFrame({ ...m, code: 'key list' } as Message, { sender: 'bank-a' }), 'INVALID_FIELD', /secaggAbort.code/);
    expectCode(() => encodeFrame({ ...m, code: '' } as Message, { sender: 'bank-a' }), 'MISSING_FIELD', /secaggAbort.code/);
  });

  it('rejects a frame whose header round differs from the body', () => {
    const good = encodeFrame({ type: 'secaggUnmaskRequest', roundId: 4, survivors: ['bank-a', 'bank-b'], dropped: [] }, { sender: 'coordinator' });
    expectCode(() => decodeFrame(reencodeFrame(good, { roundId: 5 })), 'INVALID_FIELD', /frame.roundId/);
  });

  it.each<[string, Message, ProtocolErrorCode, RegExp]>([
    ['a short advertised key', { type: 'secaggAdvertiseKeys', roundId: 1, cPk: new Uint8Array(31), sPk: bytes32(2) }, 'INVALID_FIELD', /cPk must be 32 bytes/],
    ['a missing advertised key', { type: 'secaggAdvertiseKeys', roundId: 1, cPk: bytes32(1), sPk: new Uint8Array(0) }, 'MISSING_FIELD', /sPk/],
    ['round 0', { type: 'secaggAdvertiseKeys', roundId: 0, cPk: bytes32(1), sPk: bytes32(2) }, 'MISSING_FIELD', /roundId/],
    ['an empty key list', { type: 'secaggKeyList', roundId: 1, keys: [] }, 'MISSING_FIELD', /keys is empty/],
    [
      'an unsorted key list',
      { type: 'secaggKeyList', roundId: 1, keys: [{ bankId: 'bank-b', cPk: bytes32(1), sPk: bytes32(2) }, { bankId: 'bank-a', cPk: bytes32(3), sPk: bytes32(4) }] },
      'INVALID_FIELD',
      /sorted/,
    ],
    [
      'a key list naming a bank twice',
      { type: 'secaggKeyList', roundId: 1, keys: [{ bankId: 'bank-a', cPk: bytes32(1), sPk: bytes32(2) }, { bankId: 'bank-a', cPk: bytes32(3), sPk: bytes32(4) }] },
      'INVALID_FIELD',
      /twice/,
    ],
    ['a key-list key of 33 bytes', { type: 'secaggKeyList', roundId: 1, keys: [{ bankId: 'bank-a', cPk: new Uint8Array(33), sPk: bytes32(2) }] }, 'INVALID_FIELD', /keys\[0\].cPk/],
    ['share keys without bundles', { type: 'secaggShareKeys', roundId: 1, ciphertexts: [] }, 'MISSING_FIELD', /ciphertexts is empty/],
    ['an oversized bundle', { type: 'secaggShareKeys', roundId: 1, ciphertexts: [{ bankId: 'bank-b', data: new Uint8Array(LIMITS.maxSecAggCiphertextBytes + 1) }] }, 'INVALID_FIELD', /at most 1024/],
    ['an empty bundle', { type: 'secaggForwardedShares', roundId: 1, ciphertexts: [{ bankId: 'bank-b', data: new Uint8Array(0) }] }, 'MISSING_FIELD', /data/],
    ['a bundle to a malformed id', { type: 'secaggShareKeys', roundId: 1, ciphertexts: [{ bankId: '../etc', data: new Uint8Array(10) }] }, 'INVALID_FIELD', /bankId/],
    [
      'two bundles for one bank',
      { type: 'secaggShareKeys', roundId: 1, ciphertexts: [{ bankId: 'bank-b', data: new Uint8Array(10) }, { bankId: 'bank-b', data: new Uint8Array(10) }] },
      'INVALID_FIELD',
      /twice/,
    ],
    ['an unmask request without survivors', { type: 'secaggUnmaskRequest', roundId: 1, survivors: [], dropped: ['bank-a'] }, 'MISSING_FIELD', /survivors/],
    ['a bank both survivor and dropped', { type: 'secaggUnmaskRequest', roundId: 1, survivors: ['bank-a', 'bank-b'], dropped: ['bank-b'] }, 'INVALID_FIELD', /twice/],
    ['a short share', { type: 'secaggUnmaskResponse', roundId: 1, selfMaskShares: [{ bankId: 'bank-a', y: new Uint8Array(16) }], secretKeyShares: [] }, 'INVALID_FIELD', /must be 32 bytes/],
    [
      'both shares of one bank',
      { type: 'secaggUnmaskResponse', roundId: 1, selfMaskShares: [{ bankId: 'bank-a', y: bytes32(1) }], secretKeyShares: [{ bankId: 'bank-a', y: bytes32(2) }] },
      'INVALID_FIELD',
      /twice/,
    ],
  ])('rejects %s (encode and decode)', (_what, msg, code, text) => {
    expectCode(() => encodeFrame(msg, { sender: 'bank-a' }), code, text);
  });

  it('rejects the same problems on decode, from raw protobuf', () => {
    expectCode(() => decodeFrame(rawFrame('SecAggAdvertiseKeys', WIRE_TYPE.secaggAdvertiseKeys, { roundId: 2, cPk: new Uint8Array(5), sPk: bytes32(2) }, { roundId: 2 })), 'INVALID_FIELD', /cPk/);
    expectCode(
      () => decodeFrame(rawFrame('SecAggUnmaskRequest', WIRE_TYPE.secaggUnmaskRequest, { roundId: 2, survivors: ['bank-a', 'bank-a'] }, { roundId: 2, sender: 'coordinator' })),
      'INVALID_FIELD',
      /twice/,
    );
  });

  it('counts list entries on the raw bytes before materialising them', () => {
    const survivors = Array.from({ length: LIMITS.maxSecAggBanks + 1 }, (_, i) => `bank-${i}`);
    expectCode(() => decodeFrame(rawFrame('SecAggUnmaskRequest', WIRE_TYPE.secaggUnmaskRequest, { roundId: 2, survivors }, { roundId: 2 })), 'INVALID_FIELD', /exceeds the limit of 255/);
  });
});

describe('authenticity and the plaintext refusal', () => {
  const bank = generateIdentity('bank-a');
  const other = generateIdentity('bank-b');
  const advertise: Message = { type: 'secaggAdvertiseKeys', roundId: 3, cPk: bytes32(1), sPk: bytes32(2) };

  it("binds advertised keys to the bank's signing key: a swapped key or another signer fails", () => {
    const signed = encodeFrame(advertise, { signer: { id: 'bank-a', secretKey: bank.sign.secretKey } });
    expect(decodeFrame(signed, { verify: () => bank.sign.publicKey }).frame.verified).toBe('key');
    const f = decodeRaw(signed);
    const swapped = pb('SecAggAdvertiseKeys').encode({ roundId: 3, cPk: bytes32(9), sPk: bytes32(2) }).finish();
    expectCode(() => decodeFrame(reencodeFrame(signed, { body: swapped }), { verify: () => bank.sign.publicKey }), 'BAD_SIGNATURE');
    expect(f.sender).toBe('bank-a');
    const forged = encodeFrame(advertise, { signer: { id: 'bank-a', secretKey: other.sign.secretKey } });
    expectCode(() => decodeFrame(forged, { verify: () => bank.sign.publicKey }), 'BAD_SIGNATURE');
  });

  it('refuses a plaintext update under secure aggregation with SECURE_AGGREGATION_REQUIRED, and accepts a masked one', () => {
    const plain: ClientUpdateMessage = { ...masked(), maskedTensors: undefined, tensors: specTensors() };
    expectCode(() => decodeFrame(encodeFrame(plain, { sender: 'bank-a' }), { refusePlainUpdates: true, modelSpec: spec }), 'SECURE_AGGREGATION_REQUIRED', /plaintext update/);
    const ok = decodeFrame(encodeFrame(masked(), { sender: 'bank-a' }), { refusePlainUpdates: true, modelSpec: spec }) as ClientUpdateMessage;
    expect(ok.maskedTensors!.map((t) => t.data.length)).toEqual([128, 16]);
    expect(ok.tensors).toEqual([]);
    // Without the option the plaintext update decodes as before.
    expect((decodeFrame(encodeFrame(plain, { sender: 'bank-a' }), { modelSpec: spec }) as ClientUpdateMessage).tensors.length).toBe(2);
  });
});
