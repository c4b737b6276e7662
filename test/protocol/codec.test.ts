import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeFrame,
  generateIdentity,
  MESSAGE_TYPES,
  type ClientUpdateMessage,
  type Message,
  type RoundStartMessage,
} from '../../protocol/index';
import { config, decodeRaw, pb, rawFrame, reencodeFrame, sampleMessages, spec, specTensors, tensor, WIRE_TYPE, expectCode } from './helpers';

const id = generateIdentity('bank-a');
const keys = { sign: id.sign.publicKey, box: id.box.publicKey };

const withoutFrame = <T extends object>(m: T): Omit<T, 'frame'> => {
  const { frame: _f, ...rest } = m as T & { frame?: unknown };
  return rest;
};

describe('round trip', () => {
  it('covers every message type', () => {
    const msgs = sampleMessages(keys);
    expect(new Set(msgs.map((m) => m.type))).toEqual(new Set(MESSAGE_TYPES));
    for (const msg of msgs) {
      const decoded = decodeFrame(encodeFrame(msg, { sender: 'bank-a' }));
      // Defaults the decoder fills in: the protocol version, one generator update per step.
      const expected = msg.type === 'register' ? { ...msg, protocolVersion: 1 } : msg.type === 'roundStart' ? { ...msg, config: { gSteps: 1, ...msg.config } } : msg;
      expect(withoutFrame(decoded)).toEqual(expected);
      expect(decoded.frame.type).toBe(msg.type);
      expect(decoded.frame.sender).toBe('bank-a');
    }
  });

  it('returns float32 config fields as their shortest decimal (2e-4 stays 2e-4)', () => {
    const msg: RoundStartMessage = { type: 'roundStart', roundId: 1, modelVersion: 0, weights: specTensors(), config: { ...config(), lrGenerator: 1e-3, updateClipNorm: 0.1 }, deadlineMs: 1 };
    const out = decodeFrame(encodeFrame(msg, { sender: 'coordinator' })) as RoundStartMessage;
    expect(out.config.lrGenerator).toBe(1e-3);
    expect(out.config.updateClipNorm).toBe(0.1);
    expect(out.config.dp.noiseMultiplier).toBe(1.1);
  });

  it("carries the coordinator's cancelled label calibration in the training config (absent when not cancelled)", () => {
    const rs = (c: RoundStartMessage['config']) => decodeFrame(encodeFrame({ type: 'roundStart', roundId: 1, modelVersion: 0, weights: specTensors(), config: c, deadlineMs: 1 }, { sender: 'coordinator' })) as RoundStartMessage;
    expect(rs({ ...config(), labelCalibrationSkipped: true }).config.labelCalibrationSkipped).toBe(true);
    expect(rs(config()).config.labelCalibrationSkipped).toBeUndefined();
  });

  it('carries a ~600k-float tensor bit-exactly, including -0, subnormals and float32 extremes', () => {
    const big = tensor('gen/residual0/kernel', [600, 1000], 9);
    big.data[0] = -0;
    big.data[1] = 1.4e-45; // smallest subnormal
    big.data[2] = 3.4028234663852886e38; // max float32
    big.data[3] = -3.4028234663852886e38;
    const msg: ClientUpdateMessage = { type: 'clientUpdate', roundId: 9, modelVersion: 8, sampleCount: 2 ** 40, tensors: [big], metrics: {}, epsilonSpent: 0.5, delta: 1e-6 };
    const bytes = encodeFrame(msg, { sender: 'bank-a' });
    expect(bytes.length).toBeGreaterThan(600_000 * 4);
    const out = decodeFrame(bytes) as ClientUpdateMessage;
    expect(out.sampleCount).toBe(2 ** 40);
    expect(Buffer.from(out.tensors[0].data.buffer).equals(Buffer.from(big.data.buffer))).toBe(true);
    expect(Object.is(out.tensors[0].data[0], -0)).toBe(true);
  });

  it('writes tensor data little-endian on the wire', () => {
    const msg: ClientUpdateMessage = { type: 'clientUpdate', roundId: 1, modelVersion: 0, sampleCount: 1, tensors: [{ name: 'w', shape: [1], data: new Float32Array([1]) }], metrics: {}, epsilonSpent: 0, delta: 0 };
    const frame = decodeRaw(encodeFrame(msg, { sender: 'bank-a' }));
    const body = pb('ClientUpdate').decode(frame.body as Uint8Array) as unknown as { tensors: { data: Uint8Array }[] };
    expect([...body.tensors[0].data]).toEqual([0x00, 0x00, 0x80, 0x3f]); // 1.0f = 0x3f800000
  });

  it('decodes tensors whose bytes sit at an unaligned offset, and never aliases the input buffer', () => {
    const msg: ClientUpdateMessage = { type: 'clientUpdate', roundId: 1, modelVersion: 0, sampleCount: 1, tensors: [tensor('w', [3, 5])], metrics: {}, epsilonSpent: 0, delta: 0 };
    const bytes = encodeFrame(msg, { sender: 'bank-a' });
    for (let shift = 1; shift < 4; shift++) {
      const backing = new Uint8Array(bytes.length + shift);
      backing.set(bytes, shift);
      const view = backing.subarray(shift);
      const out = decodeFrame(view) as ClientUpdateMessage;
      expect(Array.from(out.tensors[0].data)).toEqual(Array.from(msg.tensors[0].data));
      backing.fill(0);
      expect(Array.from(out.tensors[0].data)).toEqual(Array.from(msg.tensors[0].data));
    }
  });

  it('returns spec-matched tensors in spec order even if sent in another order', () => {
    const [a, b] = specTensors();
    const msg: ClientUpdateMessage = { type: 'clientUpdate', roundId: 1, modelVersion: 0, sampleCount: 1, tensors: [b, a], metrics: {}, epsilonSpent: 0, delta: 0 };
    const out = decodeFrame(encodeFrame(msg, { sender: 'bank-a' }), { modelSpec: spec }) as ClientUpdateMessage;
    expect(out.tensors.map((t) => t.name)).toEqual(spec.map((s) => s.name));
  });

  it('round-trips masked ring tensors (secure aggregation) with full uint32 range', () => {
    const data = new Uint32Array([0, 1, 0xffffffff, 0x80000000, 12345, 7, 0xdeadbeef, 2 ** 31 - 1]);
    const msg: ClientUpdateMessage = {
      type: 'clientUpdate', roundId: 2, modelVersion: 1, sampleCount: 10, tensors: [],
      maskedTensors: [{ name: 'w', shape: [2, 4], data }], metrics: {}, epsilonSpent: 1, delta: 1e-5,
    };
    const out = decodeFrame(encodeFrame(msg, { sender: 'bank-a' })) as ClientUpdateMessage;
    expect(Array.from(out.maskedTensors![0].data)).toEqual(Array.from(data));
    expect(out.tensors).toEqual([]);
  });

  it('accepts epsilonSpent = +Infinity (trained without DP) but not NaN or negative', () => {
    const base: ClientUpdateMessage = { type: 'clientUpdate', roundId: 1, modelVersion: 0, sampleCount: 1, tensors: specTensors(), metrics: {}, epsilonSpent: Infinity, delta: 0 };
    expect((decodeFrame(encodeFrame(base, { sender: 'bank-a' })) as ClientUpdateMessage).epsilonSpent).toBe(Infinity);
    expectCode(() => encodeFrame({ ...base, epsilonSpent: NaN }, { sender: 'bank-a' }), 'INVALID_FIELD', /epsilonSpent/);
    expectCode(() => encodeFrame({ ...base, epsilonSpent: -1 }, { sender: 'bank-a' }), 'INVALID_FIELD', /epsilonSpent/);
  });
});

describe('frame-level rejections', () => {
  const good = () => encodeFrame({ type: 'statusRequest' }, { sender: 'bank-a' });

  it('checks the size cap before parsing', () => {
    // 100 bytes of garbage would be MALFORMED; over the cap it must be OVERSIZE without parsing.
    expectCode(() => decodeFrame(new Uint8Array(100).fill(0xff), { maxFrameBytes: 99 }), 'OVERSIZE', /100 bytes/);
    const big = encodeFrame({ type: 'roundStart', roundId: 1, modelVersion: 0, weights: [tensor('w', [1000])], config: config(), deadlineMs: 1 }, { sender: 'coordinator' });
    expectCode(() => decodeFrame(big, { maxFrameBytes: 1000 }), 'OVERSIZE');
    expectCode(() => encodeFrame({ type: 'roundStart', roundId: 1, modelVersion: 0, weights: [tensor('w', [1000])], config: config(), deadlineMs: 1 }, { sender: 'coordinator', maxFrameBytes: 1000 }), 'OVERSIZE', /encoded 'roundStart'/);
  });

  it('rejects non-binary and empty input', () => {
    expectCode(() => decodeFrame('hello' as unknown as Uint8Array), 'MALFORMED', /binary/);
    expectCode(() => decodeFrame(new Uint8Array(0)), 'MALFORMED', /empty/);
  });

  it('rejects unknown versions and types', () => {
    expectCode(() => decodeFrame(reencodeFrame(good(), { version: 2 })), 'UNSUPPORTED_VERSION', /version 2/);
    expectCode(() => decodeFrame(reencodeFrame(good(), { version: 0 })), 'UNSUPPORTED_VERSION');
    expectCode(() => decodeFrame(reencodeFrame(good(), { type: 0 })), 'UNKNOWN_TYPE');
    expectCode(() => decodeFrame(reencodeFrame(good(), { type: 29 })), 'UNKNOWN_TYPE', /29/);
  });

  it('validates sender, nonce, timestamp and signature length', () => {
    expectCode(() => decodeFrame(reencodeFrame(good(), { sender: '' })), 'MISSING_FIELD', /frame.sender/);
    expectCode(() => decodeFrame(reencodeFrame(good(), { sender: 'Bank A' })), 'INVALID_FIELD', /frame.sender/);
    expectCode(() => decodeFrame(reencodeFrame(good(), { sender: 'a'.repeat(65) })), 'INVALID_FIELD', /frame.sender/);
    expectCode(() => decodeFrame(reencodeFrame(good(), { nonce: new Uint8Array(0) })), 'MISSING_FIELD', /frame.nonce/);
    expectCode(() => decodeFrame(reencodeFrame(good(), { nonce: new Uint8Array(15) })), 'INVALID_FIELD', /frame.nonce must be 16 bytes/);
    expectCode(() => decodeFrame(reencodeFrame(good(), { timestampMs: 0 })), 'MISSING_FIELD', /timestampMs/);
    expectCode(() => decodeFrame(reencodeFrame(good(), { timestampMs: 2 ** 60 })), 'INVALID_FIELD', /timestampMs/);
    expectCode(() => decodeFrame(reencodeFrame(good(), { signature: new Uint8Array(10) })), 'BAD_SIGNATURE', /64 bytes/);
  });

  it('quotes untrusted text in error messages as printable ASCII', () => {
    const err = expectCode(() => decodeFrame(reencodeFrame(good(), { sender: 'a\u0007\ufffd"b' })), 'INVALID_FIELD');
    expect(err.message).toContain('"a\\u0007\\ufffd\\"b"');
    expect(err.message).toMatch(/^[\x20-\x7e\u2265\u00b1]*$/);
  });

  it('requires frame.roundId to equal the body round id', () => {
    const bytes = encodeFrame({ type: 'roundResult', roundId: 7, modelVersion: 7, banksAggregated: 2, status: 'committed', message: '' }, { sender: 'coordinator' });
    expectCode(() => decodeFrame(reencodeFrame(bytes, { roundId: 8 })), 'INVALID_FIELD', /frame.roundId 8/);
  });

  it('rejects a body that is not the message its type names', () => {
    expectCode(() => decodeFrame(reencodeFrame(good(), { type: WIRE_TYPE.roundStart, body: new Uint8Array([0x0a, 0xff]) })), 'MALFORMED', /RoundStart/);
  });

  it('rejects a register whose bankId differs from the frame sender', () => {
    const bytes = encodeFrame(sampleMessages(keys)[0], { sender: 'bank-b' });
    expectCode(() => decodeFrame(bytes), 'INVALID_FIELD', /differs from frame.sender 'bank-b'/);
  });
});

describe('message field rejections', () => {
  const reg = (body: Record<string, unknown>) =>
    rawFrame('Register', WIRE_TYPE.register, { protocolVersion: 1, bankId: 'bank-a', signPublicKey: keys.sign, boxPublicKey: keys.box, schemaHash: 'sha256:ab', ...body });

  it('register', () => {
    expect(decodeFrame(reg({})).type).toBe('register');
    expectCode(() => decodeFrame(reg({ protocolVersion: 9 })), 'UNSUPPORTED_VERSION', /register.protocolVersion 9/);
    expectCode(() => decodeFrame(reg({ signPublicKey: new Uint8Array(31) })), 'INVALID_FIELD', /register.signPublicKey must be 32 bytes/);
    expectCode(() => decodeFrame(reg({ boxPublicKey: new Uint8Array(0) })), 'MISSING_FIELD', /register.boxPublicKey/);
    expectCode(() => decodeFrame(reg({ schemaHash: '' })), 'MISSING_FIELD', /register.schemaHash/);
    expectCode(() => decodeFrame(reg({ schemaHash: 'bad hash!' })), 'INVALID_FIELD', /register.schemaHash/);
    expectCode(() => decodeFrame(reg({ bankId: '../etc' }, ), { }), 'INVALID_FIELD', /register.bankId/);
  });

  it('welcome: model config must be a JSON object', () => {
    const w = (body: Record<string, unknown>) =>
      rawFrame('Welcome', WIRE_TYPE.welcome, { bankId: 'bank-a', coordinatorSignKey: keys.sign, modelConfigJson: '{}', schemaHash: 'h1', ...body }, { sender: 'coordinator' });
    expect(decodeFrame(w({})).type).toBe('welcome');
    expectCode(() => decodeFrame(w({ modelConfigJson: '{"a":' })), 'INVALID_FIELD', /not valid JSON/);
    expectCode(() => decodeFrame(w({ modelConfigJson: '[1,2]' })), 'INVALID_FIELD', /JSON object/);
    expectCode(() => decodeFrame(w({ modelConfigJson: '' })), 'MISSING_FIELD', /modelConfigJson/);
    expectCode(() => decodeFrame(w({ coordinatorSignKey: new Uint8Array(33) })), 'INVALID_FIELD', /coordinatorSignKey/);
  });

  it('roundStart: training config bounds, with the offending field named', () => {
    const rs = (patch: Partial<RoundStartMessage>) => encodeFrame({ type: 'roundStart', roundId: 1, modelVersion: 0, weights: specTensors(), config: config(), deadlineMs: 1, ...patch }, { sender: 'coordinator' });
    const cfg = config();
    expectCode(() => rs({ roundId: 0 }), 'MISSING_FIELD', /roundStart.roundId/);
    expectCode(() => rs({ deadlineMs: 0 }), 'MISSING_FIELD', /deadlineMs/);
    expectCode(() => rs({ weights: [] }), 'MISSING_FIELD', /roundStart.weights is empty/);
    expectCode(() => rs({ config: undefined as never }), 'MISSING_FIELD', /roundStart.config is missing/);
    expectCode(() => rs({ config: { ...cfg, dp: undefined as never } }), 'MISSING_FIELD', /config.dp is missing/);
    expectCode(() => rs({ config: { ...cfg, localSteps: 0 } }), 'MISSING_FIELD', /localSteps/);
    expectCode(() => rs({ config: { ...cfg, batchSize: 2 ** 21 } }), 'INVALID_FIELD', /batchSize/);
    expectCode(() => rs({ config: { ...cfg, lrGenerator: -1 } }), 'INVALID_FIELD', /lrGenerator/);
    expectCode(() => rs({ config: { ...cfg, lrDiscriminator: 1e-50 } }), 'INVALID_FIELD', /lrDiscriminator/); // rounds to 0 as float32
    expectCode(() => rs({ config: { ...cfg, lrGenerator: NaN } }), 'NON_FINITE', /lrGenerator/);
    expectCode(() => rs({ config: { ...cfg, loss: 'DROP TABLE' } }), 'INVALID_FIELD', /config.loss/);
    expectCode(() => rs({ config: { ...cfg, updateClipNorm: 0 } }), 'INVALID_FIELD', /updateClipNorm/);
    expectCode(() => rs({ config: { ...cfg, dp: { ...cfg.dp, noiseMultiplier: 0 } } }), 'INVALID_FIELD', /noiseMultiplier must be > 0 when DP is enabled/);
    expectCode(() => rs({ config: { ...cfg, dp: { ...cfg.dp, delta: 1 } } }), 'INVALID_FIELD', /dp.delta/);
    // DP off: zeros are fine.
    const off = { enabled: false, noiseMultiplier: 0, maxGradNorm: 0, targetEpsilon: 0, delta: 0, epsilonMax: 0 };
    expect((decodeFrame(rs({ config: { ...cfg, dp: off } })) as RoundStartMessage).config.dp).toEqual(off);
  });

  const upd = (patch: Partial<ClientUpdateMessage>): ClientUpdateMessage => ({
    type: 'clientUpdate', roundId: 3, modelVersion: 2, sampleCount: 100, tensors: specTensors(), metrics: { loss: 1 }, epsilonSpent: 1, delta: 1e-5, ...patch,
  });
  const rawUpd = (tensors: unknown[], extra: Record<string, unknown> = {}) =>
    rawFrame('ClientUpdate', WIRE_TYPE.clientUpdate, { roundId: 3, modelVersion: 2, sampleCount: 100, tensors, epsilonSpent: 1, delta: 1e-5, ...extra }, { roundId: 3 });
  const le = (a: Float32Array) => new Uint8Array(a.buffer.slice(0));

  it('clientUpdate: scalar fields', () => {
    expectCode(() => encodeFrame(upd({ sampleCount: 0 }), { sender: 'bank-a' }), 'MISSING_FIELD', /sampleCount/);
    expectCode(() => encodeFrame(upd({ tensors: [] }), { sender: 'bank-a' }), 'MISSING_FIELD', /no tensors/);
    expectCode(() => encodeFrame(upd({ delta: 1.5 }), { sender: 'bank-a' }), 'INVALID_FIELD', /clientUpdate.delta/);
    expectCode(() => encodeFrame(upd({ metrics: { loss: NaN } }), { sender: 'bank-a' }), 'NON_FINITE', /metrics\['loss'\]/);
    expectCode(() => encodeFrame(upd({ metrics: { 'bad key': 1 } }), { sender: 'bank-a' }), 'INVALID_FIELD', /metrics key/);
    expectCode(() => decodeFrame(rawUpd([], { tensors: specTensors().map((t) => ({ ...t, data: le(t.data) })), maskedTensors: [{ name: 'w', shape: [1], data: new Uint8Array(4) }] })), 'INVALID_FIELD', /both/);
    expectCode(() => decodeFrame(rawUpd(specTensors().map((t) => ({ ...t, data: le(t.data) })), { sampleCount: 2 ** 54 })), 'INVALID_FIELD', /sampleCount/);
  });

  it('tensors: byte length, shape, names, finiteness', () => {
    const t = (o: Record<string, unknown>) => ({ name: 'w', shape: [2, 3], data: le(new Float32Array(6)), ...o });
    expect(decodeFrame(rawUpd([t({})])).type).toBe('clientUpdate');
    expectCode(() => decodeFrame(rawUpd([t({ data: new Uint8Array(23) })])), 'SHAPE_MISMATCH', /tensor 'w' has 23 data bytes, but shape \[2, 3\] needs 24/);
    expectCode(() => decodeFrame(rawUpd([t({ shape: [2, 0, 3] })])), 'INVALID_FIELD', /tensor 'w' shape\[1\] = 0/);
    expectCode(() => decodeFrame(rawUpd([t({ shape: [] })])), 'MISSING_FIELD', /tensor 'w' has no shape/);
    expectCode(() => decodeFrame(rawUpd([t({ shape: [1, 1, 1, 1, 1, 1, 1, 1, 6] })])), 'INVALID_FIELD', /tensor rank \(shape length\) exceeds the limit of 8/);
    // Unpacked (non-packed) repeated encoding of the shape is counted too.
    const unpacked = new Uint8Array([0x0a, 0x01, 0x77, ...Array.from({ length: 9 }, () => [0x10, 0x01]).flat(), 0x1a, 0x04, 0, 0, 0, 0]);
    expectCode(() => decodeFrame(reencodeFrame(rawUpd([]), { body: new Uint8Array([0x08, 3, 0x18, 100, 0x22, unpacked.length, ...unpacked]) })), 'INVALID_FIELD', /tensor rank/);
    expectCode(() => decodeFrame(rawUpd([t({ shape: [2 ** 31, 2 ** 31] })])), 'INVALID_FIELD', /shape\[0\]/);
    expectCode(() => decodeFrame(rawUpd([t({ shape: [65536, 65536] })])), 'SHAPE_MISMATCH', /needs 17179869184/);
    expectCode(() => decodeFrame(rawUpd([t({ name: '' })])), 'MISSING_FIELD', /name/);
    expectCode(() => decodeFrame(rawUpd([t({ name: 'w\u0000x' })])), 'INVALID_FIELD', /name/);
    expectCode(() => decodeFrame(rawUpd([t({}), t({})])), 'INVALID_FIELD', /duplicate tensor name "w"/);
    expectCode(() => decodeFrame(rawUpd([t({ data: undefined })])), 'SHAPE_MISMATCH', /0 data bytes/);
    for (const [bad, label] of [[NaN, 'NaN'], [Infinity, 'Infinity'], [-Infinity, '-Infinity']] as const) {
      const data = new Float32Array(6);
      data[4] = bad;
      expectCode(() => decodeFrame(rawUpd([t({ name: 'gen/w', data: le(data) })])), 'NON_FINITE', new RegExp(`tensor 'gen/w' element 4 is ${label}`));
      expectCode(() => encodeFrame(upd({ tensors: [{ name: 'gen/w', shape: [6], data }] }), { sender: 'bank-a' }), 'NON_FINITE', /element 4/);
    }
    // A NaN with a non-canonical payload is still caught.
    const bits = new Uint32Array([0x7fc00001, 0xffffffff, 0, 0, 0, 0]);
    expectCode(() => decodeFrame(rawUpd([t({ data: new Uint8Array(bits.buffer) })])), 'NON_FINITE', /element 0/);
  });

  it('counts repeated fields on the wire before materialising them (no memory blow-up)', () => {
    // 1 MiB of empty Tensor entries (2 bytes each) would be 512k objects; refused before decoding.
    const n = 512 * 1024;
    const body = new Uint8Array(4 + 2 * n);
    body.set([0x08, 3, 0x18, 100]);
    for (let i = 0; i < n; i++) body.set([0x22, 0x00], 4 + 2 * i);
    expectCode(() => decodeFrame(reencodeFrame(rawUpd([]), { body })), 'INVALID_FIELD', /number of tensors in clientUpdate.tensors exceeds the limit of 4096/);
    const metrics = new Uint8Array(4 + 2 * 300);
    metrics.set([0x08, 3, 0x18, 100]);
    for (let i = 0; i < 300; i++) metrics.set([0x2a, 0x00], 4 + 2 * i);
    expectCode(() => decodeFrame(reencodeFrame(rawUpd([]), { body: metrics })), 'INVALID_FIELD', /clientUpdate.metrics entries exceeds the limit of 256/);
    // Structural garbage in the body is MALFORMED, whatever protobufjs would have made of it.
    expectCode(() => decodeFrame(reencodeFrame(rawUpd([]), { body: new Uint8Array([0x22, 0x05, 0x00]) })), 'MALFORMED', /past the end/);
    expectCode(() => decodeFrame(reencodeFrame(rawUpd([]), { body: new Uint8Array([0x0b]) })), 'MALFORMED', /wire type 3/);
  });

  it('tensors must match the model spec exactly when one is given', () => {
    const opts = { modelSpec: spec };
    const [k, b] = specTensors();
    expect(decodeFrame(encodeFrame(upd({}), { sender: 'bank-a' }), opts).type).toBe('clientUpdate');
    expectCode(() => decodeFrame(encodeFrame(upd({ tensors: [k] }), { sender: 'bank-a' }), opts), 'SHAPE_MISMATCH', /missing tensor 'gen\/dense0\/bias'/);
    expectCode(() => decodeFrame(encodeFrame(upd({ tensors: [k, b, tensor('extra', [1])] }), { sender: 'bank-a' }), opts), 'SHAPE_MISMATCH', /unexpected tensor 'extra'/);
    expectCode(() => decodeFrame(encodeFrame(upd({ tensors: [k, tensor(b.name, [4, 4])] }), { sender: 'bank-a' }), opts), 'SHAPE_MISMATCH', /'gen\/dense0\/bias' has shape \[4, 4\], the model expects \[16\]/);
    expectCode(() => decodeFrame(encodeFrame(upd({ tensors: [k, tensor(b.name, [16, 1])] }), { sender: 'bank-a' }), opts), 'SHAPE_MISMATCH', /expects \[16\]/);
    // The weights of a RoundStart are held to the same spec.
    const rsBytes = encodeFrame({ type: 'roundStart', roundId: 1, modelVersion: 0, weights: [k], config: config(), deadlineMs: 1 }, { sender: 'coordinator' });
    expectCode(() => decodeFrame(rsBytes, opts), 'SHAPE_MISMATCH', /roundStart.weights: missing tensor/);
    // And so are masked tensors.
    const masked = upd({ tensors: [], maskedTensors: [{ name: k.name, shape: k.shape, data: new Uint32Array(k.data.length) }] });
    expectCode(() => decodeFrame(encodeFrame(masked, { sender: 'bank-a' }), opts), 'SHAPE_MISMATCH', /maskedTensors: missing tensor 'gen\/dense0\/bias'/);
  });

  it('text fields: invalid UTF-8, control characters and length are rejected', () => {
    const rr = (message: string | Uint8Array) => {
      const body = pb('RoundResult').encode({ roundId: 1, modelVersion: 1, banksAggregated: 1, status: 'committed', message: typeof message === 'string' ? message : '' }).finish();
      if (typeof message === 'string') return reencodeFrame(rawFrame('RoundResult', WIRE_TYPE.roundResult, {}, { roundId: 1 }), { body });
      // Hand-append field 5 (message) with raw, invalid UTF-8 bytes.
      const raw = new Uint8Array([...body, 0x2a, message.length, ...message]);
      return reencodeFrame(rawFrame('RoundResult', WIRE_TYPE.roundResult, {}, { roundId: 1 }), { body: raw });
    };
    expect((decodeFrame(rr('ok — ünïcödé 🎉')) as Message & { message: string }).message).toBe('ok — ünïcödé 🎉');
    expectCode(() => decodeFrame(rr(new Uint8Array([0x61, 0xff, 0xfe]))), 'INVALID_FIELD', /roundResult.message contains invalid UTF-8/);
    expectCode(() => decodeFrame(rr(new Uint8Array([0xed, 0xa0, 0x80]))), 'INVALID_FIELD', /invalid UTF-8/); // encoded surrogate
    expectCode(() => decodeFrame(rr('bell\u0007')), 'INVALID_FIELD', /control characters/);
    expectCode(() => decodeFrame(rr('x'.repeat(4097))), 'INVALID_FIELD', /4097 characters/);
    expectCode(() => encodeFrame({ type: 'roundResult', roundId: 1, modelVersion: 1, banksAggregated: 1, status: 'Committed!', message: '' }, { sender: 'coordinator' }), 'INVALID_FIELD', /roundResult.status/);
  });

  it('error codes: known ones round-trip, unknown numbers read as UNSPECIFIED, unknown names are refused', () => {
    const e = rawFrame('ErrorMessage', WIRE_TYPE.error, { code: 99, message: 'from the future' }, { sender: 'coordinator' });
    const out = decodeFrame(e) as Message & { code: string };
    expect(out.code).toBe('UNSPECIFIED');
    expect(out.type).toBe('error');
    expectCode(() => encodeFrame({ type: 'error', code: 'NOPE' as never, message: '', roundId: 0 }, { sender: 'coordinator' }), 'INVALID_FIELD', /error.code "NOPE"/);
  });

  it('encodeFrame refuses bad caller input with ProtocolError, not TypeError', () => {
    expectCode(() => encodeFrame({ type: 'bogus' } as never, { sender: 'a' }), 'UNKNOWN_TYPE', /bogus/);
    expectCode(() => encodeFrame({ type: 'statusRequest' }), 'MISSING_FIELD', /sender/);
    expectCode(() => encodeFrame(upd({ tensors: [{ name: 'w', shape: [2], data: [1, 2] as never }] }), { sender: 'bank-a' }), 'INVALID_FIELD', /Float32Array/);
    expectCode(() => encodeFrame(upd({}), { sender: 'bank-a', nonce: new Uint8Array(8) }), 'INVALID_FIELD', /nonce/);
  });
});

describe('summary and category weights', () => {
  const enc = (m: Parameters<typeof encodeFrame>[0]) => encodeFrame(m, { sender: 'bank-a' });
  const code = (f: () => unknown): string | undefined => {
    try {
      f();
    } catch (e) {
      return (e as { code?: string }).code;
    }
    return undefined;
  };
  it('refuses a summary without noise: raw counts may not leave a bank', () => {
    expect(code(() => enc({ type: 'summary', counts: [{ column: 'c', values: [1, 2] }], epsilon: 1, delta: 1e-6, noiseStd: 0 }))).toBe('INVALID_FIELD');
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(code(() => enc({ type: 'summary', counts: [{ column: 'c', values: [1, 2], noiseStd: bad }], epsilon: 1, delta: 1e-6, noiseStd: 1 }))).toBe('INVALID_FIELD');
    }
  });
  it('refuses non-finite counts, duplicate columns, empty summaries and negative weights', () => {
    expect(code(() => enc({ type: 'summary', counts: [{ column: 'c', values: [1, NaN] }], epsilon: 1, delta: 1e-6, noiseStd: 1 }))).toBe('NON_FINITE');
    expect(code(() => enc({ type: 'summary', counts: [{ column: 'c', values: [1] }, { column: 'c', values: [2] }], epsilon: 1, delta: 1e-6, noiseStd: 1 }))).toBe('INVALID_FIELD');
    expect(code(() => enc({ type: 'summary', counts: [], epsilon: 1, delta: 1e-6, noiseStd: 1 }))).toBe('MISSING_FIELD');
    expect(code(() => enc({ type: 'summary', counts: [{ column: 'c', values: [1] }], epsilon: Infinity, delta: 1e-6, noiseStd: 1 }))).toBe('INVALID_FIELD');
    const rs = sampleMessages({ sign: new Uint8Array(32).fill(1), box: new Uint8Array(32).fill(2) }).find((m) => m.type === 'roundStart')!;
    expect(code(() => enc({ ...(rs as Extract<typeof rs, { type: 'roundStart' }>), categoryWeights: [{ column: 'c', values: [1, -1] }] }))).toBe('INVALID_FIELD');
  });
});

describe('label calibration messages', () => {
  const req = { type: 'calibrationRequest' as const, modelVersion: 3, classIndex: 1, edges: [-2, 0, 1.5], classifier: [tensor('C/0/kernel', [2, 2], 3), tensor('C/0/bias', [2], 4)] };
  const counts = { type: 'calibrationCounts' as const, modelVersion: 3, rows: [10, 20, 30, 40], positives: [1, 2, 3, 4], noiseStd: 28, epsilon: 0.1, delta: 1e-5, epsilonSpent: 0.9 };
  const enc = (m: Message) => encodeFrame(m, { sender: 'bank-a' });
  it('round-trips a request and its counts', () => {
    expect(withoutFrame(decodeFrame(enc(req)))).toEqual(req);
    expect(withoutFrame(decodeFrame(enc(counts)))).toEqual(counts);
  });
  it('refuses bin edges that are not finite and strictly increasing, and a request without C', () => {
    expectCode(() => enc({ ...req, edges: [0, 0, 1] }), 'INVALID_FIELD', /strictly increasing/);
    expectCode(() => enc({ ...req, edges: [0, Number.NaN] }), 'NON_FINITE', /edges\[1\]/);
    expectCode(() => enc({ ...req, edges: [] }), 'MISSING_FIELD', /edges/);
    expectCode(() => enc({ ...req, edges: Array.from({ length: 300 }, (_, i) => i) }), 'INVALID_FIELD', /at most 255/);
    expectCode(() => enc({ ...req, classifier: [] }), 'MISSING_FIELD', /classifier/);
    expectCode(() => enc({ ...req, classifier: [{ name: 'C/0/bias', shape: [2], data: new Float32Array([0, Number.POSITIVE_INFINITY]) }] }), 'NON_FINITE');
  });
  it('refuses counts without noise, with NaN, or with rows and class counts of different lengths', () => {
    expectCode(() => enc({ ...counts, noiseStd: 0 }), 'INVALID_FIELD', /un-noised counts may not leave a bank/);
    expectCode(() => enc({ ...counts, rows: [1, Number.NaN, 3, 4] }), 'NON_FINITE', /rows\[1\]/);
    expectCode(() => enc({ ...counts, positives: [1, 2, 3] }), 'SHAPE_MISMATCH', /4 row counts but 3/);
    expectCode(() => enc({ ...counts, epsilon: 0 }), 'INVALID_FIELD', /epsilon/);
    expectCode(() => enc({ ...counts, epsilonSpent: 0.05 }), 'INVALID_FIELD', /epsilonSpent/);
  });
  it('refuses an oversize counts body before protobufjs materialises its doubles', () => {
    // 100,000 noisy row counts (0.8 MB) in a frame well under the frame cap.
    const frame = rawFrame('CalibrationCounts', WIRE_TYPE.calibrationCounts, { ...counts, rows: new Array(100_000).fill(1), positives: new Array(100_000).fill(0) });
    expect(frame.length).toBeLessThan(32 * 1024 * 1024);
    expectCode(() => decodeFrame(frame), 'OVERSIZE', /CalibrationCounts body/);
  });
});
