import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import {
  decodeFrame,
  encodeFrame,
  generateIdentity,
  ProtocolError,
  ReplayGuard,
  signingInput,
  type ClientUpdateMessage,
  type DecodeOptions,
  type ProtocolErrorCode,
} from '../../protocol/index';
import { decodeRaw, pb, reencodeFrame, specTensors, WIRE_TYPE } from './helpers';

const bank = generateIdentity('bank-a');
const other = generateIdentity('bank-b');
const signer = { id: 'bank-a', secretKey: bank.sign.secretKey };
const keys: Record<string, Uint8Array> = { 'bank-a': bank.sign.publicKey, 'bank-b': other.sign.publicKey };
const verify: DecodeOptions['verify'] = (id) => keys[id];

function expectCode(fn: () => unknown, code: ProtocolErrorCode, text?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as ProtocolError).code, (caught as Error).message).toBe(code);
  if (text) expect((caught as Error).message).toMatch(text);
}

const update = (roundId = 3): ClientUpdateMessage => ({
  type: 'clientUpdate', roundId, modelVersion: 2, sampleCount: 100, tensors: specTensors(), metrics: { loss: 1 }, epsilonSpent: 1, delta: 1e-5,
});

describe('signed frames', () => {
  it('verify against the sender key and report how they were verified', () => {
    const out = decodeFrame(encodeFrame(update(), { signer }), { verify });
    expect(out.frame.verified).toBe('key');
    expect(out.frame.sender).toBe('bank-a');
    expect(decodeFrame(encodeFrame(update(), { signer })).frame.verified).toBe('none');
  });

  it('reject every signed header field changed after signing', () => {
    const bytes = encodeFrame(update(3), { signer });
    const f = decodeRaw(bytes);
    const nonce = new Uint8Array(f.nonce as Uint8Array);
    nonce[0] ^= 1;
    const body = pb('ClientUpdate').decode(f.body as Uint8Array) as unknown as Record<string, unknown>;
    const tampered: Record<string, Record<string, unknown>> = {
      // sender swapped to another known bank: signature must not verify under bank-b's key.
      sender: { sender: 'bank-b' },
      roundId: { roundId: 4, body: pb('ClientUpdate').encode({ ...body, roundId: 4 }).finish() },
      nonce: { nonce },
      timestampMs: { timestampMs: Number(f.timestampMs) + 1 },
      body: { body: pb('ClientUpdate').encode({ ...body, sampleCount: 101 }).finish() },
      type: { type: WIRE_TYPE.roundResult },
    };
    for (const [field, patch] of Object.entries(tampered)) {
      const bad = reencodeFrame(bytes, patch);
      let caught: unknown;
      try {
        decodeFrame(bad, { verify });
      } catch (err) {
        caught = err;
      }
      expect(caught, field).toBeInstanceOf(ProtocolError);
      expect((caught as ProtocolError).code, `${field}: ${(caught as Error).message}`).toBe('BAD_SIGNATURE');
    }
    // The untouched frame still verifies, so the failures above are due to the edits.
    expect(decodeFrame(reencodeFrame(bytes, {}), { verify }).type).toBe('clientUpdate');
  });

  it('reject a flipped bit anywhere in the tensor payload or the signature', () => {
    const bytes = encodeFrame(update(), { signer });
    const f = decodeRaw(bytes);
    const body = new Uint8Array(f.body as Uint8Array);
    body[body.length - 3] ^= 0x01; // inside the last tensor's float data: still a well-formed body
    expectCode(() => decodeFrame(reencodeFrame(bytes, { body }), { verify }), 'BAD_SIGNATURE', /does not verify/);
    const sig = new Uint8Array(f.signature as Uint8Array);
    sig[10] ^= 0x80;
    expectCode(() => decodeFrame(reencodeFrame(bytes, { signature: sig }), { verify }), 'BAD_SIGNATURE');
  });

  it('require signatures when verifying; unknown senders are UNKNOWN_SENDER', () => {
    expectCode(() => decodeFrame(encodeFrame(update(), { sender: 'bank-a' }), { verify }), 'BAD_SIGNATURE', /unsigned/);
    const stranger = generateIdentity('bank-z');
    expectCode(() => decodeFrame(encodeFrame(update(), { signer: { id: 'bank-z', secretKey: stranger.sign.secretKey } }), { verify }), 'UNKNOWN_SENDER', /'bank-z'/);
    // A known id signing with the wrong key.
    expectCode(() => decodeFrame(encodeFrame(update(), { signer: { id: 'bank-b', secretKey: stranger.sign.secretKey } }), { verify }), 'BAD_SIGNATURE');
  });

  it('accept a self-signed Register only when allowed, and only with the key it carries', () => {
    const z = generateIdentity('bank-z');
    const reg = { type: 'register' as const, bankId: 'bank-z', signPublicKey: z.sign.publicKey, boxPublicKey: z.box.publicKey, schemaHash: 'h' };
    const good = encodeFrame(reg, { signer: { id: 'bank-z', secretKey: z.sign.secretKey } });
    expectCode(() => decodeFrame(good, { verify }), 'UNKNOWN_SENDER');
    expect(decodeFrame(good, { verify, allowSelfSignedRegister: true }).frame.verified).toBe('self');
    // Claiming a key it does not hold: signed by another key.
    const forged = encodeFrame(reg, { signer: { id: 'bank-z', secretKey: other.sign.secretKey } });
    expectCode(() => decodeFrame(forged, { verify, allowSelfSignedRegister: true }), 'BAD_SIGNATURE', /not signed by the key it registers/);
    // Self-signing never extends to other message types.
    expectCode(() => decodeFrame(encodeFrame(update(), { signer: { id: 'bank-z', secretKey: z.sign.secretKey } }), { verify, allowSelfSignedRegister: true }), 'UNKNOWN_SENDER');
  });

  it('refuse a Register from a known sender that announces a different signing key', () => {
    const rotated = generateIdentity('bank-a');
    const reg = { type: 'register' as const, bankId: 'bank-a', signPublicKey: rotated.sign.publicKey, boxPublicKey: rotated.box.publicKey, schemaHash: 'h' };
    expectCode(() => decodeFrame(encodeFrame(reg, { signer }), { verify }), 'INVALID_FIELD', /differs from the key this sender is known by/);
    const same = { ...reg, signPublicKey: bank.sign.publicKey };
    expect(decodeFrame(encodeFrame(same, { signer }), { verify }).frame.verified).toBe('key');
  });

  it('signing input is length-prefixed: shifting bytes between sender and nonce changes it', () => {
    const base = { version: 1, type: 4, roundId: 1, timestampMs: 5 };
    const a = signingInput({ ...base, sender: 'ab', nonce: new Uint8Array([1, 2]) }, new Uint8Array([9]));
    const b = signingInput({ ...base, sender: 'a', nonce: new Uint8Array([0x62, 1, 2]) }, new Uint8Array([9]));
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    const c = signingInput({ ...base, sender: 'ab', nonce: new Uint8Array([1, 2]) }, new Uint8Array([9, 0]));
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
    // Every header field and the body are bound.
    const h = { ...base, sender: 'ab', nonce: new Uint8Array(16) };
    const ref = Buffer.from(signingInput(h, new Uint8Array([9])));
    const nonce2 = new Uint8Array(16);
    nonce2[15] = 1;
    const variants = { version: { version: 2 }, type: { type: 5 }, sender: { sender: 'ac' }, roundId: { roundId: 2 }, nonce: { nonce: nonce2 }, timestampMs: { timestampMs: 6 } };
    for (const [field, patch] of Object.entries(variants)) {
      expect(Buffer.from(signingInput({ ...h, ...patch }, new Uint8Array([9]))).equals(ref), field).toBe(false);
    }
    expect(Buffer.from(signingInput(h, new Uint8Array([8]))).equals(ref)).toBe(false);
    // The body enters as lp(SHA-256(body)), last in the input.
    const digest = createHash('sha256').update(new Uint8Array([9])).digest();
    expect(ref.subarray(ref.length - 36).equals(Buffer.concat([Buffer.from([0, 0, 0, 32]), digest]))).toBe(true);
    // The signature is a plain Ed25519 signature over that input, checkable by any implementation.
    const frame = decodeRaw(encodeFrame(update(), { signer }));
    const input = signingInput(
      { version: 1, type: 4, sender: 'bank-a', roundId: 3, nonce: frame.nonce as Uint8Array, timestampMs: Number(frame.timestampMs) },
      frame.body as Uint8Array,
    );
    expect(nacl.sign.detached.verify(input, frame.signature as Uint8Array, bank.sign.publicKey)).toBe(true);
  });
});

describe('ReplayGuard', () => {
  const meta = (o: Partial<{ sender: string; roundId: number; nonce: Uint8Array; timestampMs: number }> = {}) => ({
    sender: 'bank-a', roundId: 1, nonce: nacl.randomBytes(16), timestampMs: 1_000_000, ...o,
  });

  it('rejects a replayed frame end to end through decodeFrame', () => {
    const guard = new ReplayGuard();
    const bytes = encodeFrame(update(), { signer });
    expect(decodeFrame(bytes, { verify, guard }).type).toBe('clientUpdate');
    expectCode(() => decodeFrame(bytes, { verify, guard }), 'REPLAY', /nonce already seen/);
    // A fresh frame with identical content is fine (new nonce).
    expect(decodeFrame(encodeFrame(update(), { signer }), { verify, guard }).type).toBe('clientUpdate');
  });

  it('scopes nonces per sender', () => {
    const guard = new ReplayGuard({ now: () => 1_000_000 });
    const nonce = new Uint8Array(16).fill(3);
    guard.check(meta({ nonce }));
    guard.check(meta({ nonce, sender: 'bank-b' }));
    expectCode(() => guard.check(meta({ nonce })), 'REPLAY');
  });

  it('rejects timestamps outside the skew window in either direction', () => {
    const guard = new ReplayGuard({ now: () => 1_000_000, maxSkewMs: 1000 });
    expectCode(() => guard.check(meta({ timestampMs: 998_999 })), 'STALE', /allowed ±1 s/);
    expectCode(() => guard.check(meta({ timestampMs: 1_001_001 })), 'STALE');
    guard.check(meta({ timestampMs: 999_000 }));
    guard.check(meta({ timestampMs: 1_001_000 }));
    expect(guard.size).toBe(2);
  });

  it('rejects rounds older than the current one; round 0 (handshake) is exempt', () => {
    const guard = new ReplayGuard({ now: () => 1_000_000 });
    guard.advanceRound(5);
    expectCode(() => guard.check(meta({ roundId: 4 })), 'STALE_ROUND', /round 4, but the current round is 5/);
    guard.check(meta({ roundId: 5 }));
    guard.check(meta({ roundId: 0 }));
    guard.advanceRound(3); // never moves backwards
    expect(guard.currentRound).toBe(5);
  });

  it('auto-advances on accepted frames when asked (a bank following its coordinator)', () => {
    const guard = new ReplayGuard({ now: () => 1_000_000, autoAdvanceRound: true });
    guard.check(meta({ roundId: 7 }));
    expectCode(() => guard.check(meta({ roundId: 6 })), 'STALE_ROUND');
    const manual = new ReplayGuard({ now: () => 1_000_000 });
    manual.check(meta({ roundId: 7 }));
    manual.check(meta({ roundId: 6 }));
    expect(manual.currentRound).toBe(0);
  });

  it('does not record nonces of rejected frames', () => {
    const guard = new ReplayGuard({ now: () => 1_000_000 });
    guard.advanceRound(5);
    const nonce = new Uint8Array(16).fill(9);
    expectCode(() => guard.check(meta({ nonce, roundId: 4 })), 'STALE_ROUND');
    guard.check(meta({ nonce, roundId: 5 }));
  });

  it('forgets nonces once they leave the window, and a replay of them is then STALE', () => {
    let now = 1_000_000;
    const guard = new ReplayGuard({ now: () => now, maxSkewMs: 1000 });
    const old = meta({ timestampMs: now });
    guard.check(old);
    now += 1500;
    guard.check(meta({ timestampMs: now }));
    expect(guard.size).toBe(1);
    expectCode(() => guard.check(old), 'STALE');
  });

  it('stays bounded under a flood and never re-accepts an evicted nonce', () => {
    const guard = new ReplayGuard({ now: () => 1_000_000, maxEntries: 100, maxSkewMs: 60_000 });
    const sent = [];
    for (let i = 0; i < 1000; i++) {
      const m = meta({ timestampMs: 1_000_000 - 50_000 + i });
      guard.check(m);
      sent.push(m);
    }
    expect(guard.size).toBe(100);
    for (const m of sent.slice(0, 900)) expectCode(() => guard.check(m), 'STALE', /floor/);
    for (const m of sent.slice(900)) expectCode(() => guard.check(m), 'REPLAY');
  });

  it('refuses nonsensical options', () => {
    expect(() => new ReplayGuard({ maxSkewMs: 0 })).toThrow(/maxSkewMs/);
    expect(() => new ReplayGuard({ maxEntries: 0 })).toThrow(/maxEntries/);
  });
});
