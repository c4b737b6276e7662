// Decoding arbitrary bytes must end in a typed result or a ProtocolError, never anything else.
import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, ERROR_CODES, generateIdentity, ProtocolError, type DecodeOptions, type ErrorCode, type Message } from '../../protocol/index';
import { sampleMessages, spec } from './helpers';

// Deterministic PRNG (mulberry32) so a failure is reproducible from the printed case.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const id = generateIdentity('bank-a');
const messages = sampleMessages({ sign: id.sign.publicKey, box: id.box.publicKey });
const signer = { id: 'bank-a', secretKey: id.sign.secretKey };
const unsigned = messages.map((m) => encodeFrame(m, { sender: 'bank-a' }));
const signed = messages.map((m) => encodeFrame(m, { signer }));
const lenient: DecodeOptions = { modelSpec: spec };
const strict: DecodeOptions = { modelSpec: spec, verify: (s) => (s === 'bank-a' ? id.sign.publicKey : undefined) };

function attempt(bytes: Uint8Array, opts: DecodeOptions, label: string): Message | ProtocolError {
  try {
    return decodeFrame(bytes, opts);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw new Error(`${label}: decodeFrame threw ${String(err)} instead of ProtocolError`, { cause: err });
    expect(err.message.length, label).toBeGreaterThan(0);
    // Peers' bytes never make our error text unsendable: a coordinator echoes it in an ErrorMessage.
    const code = (ERROR_CODES as readonly string[]).includes(err.code) ? (err.code as ErrorCode) : 'UNSPECIFIED';
    encodeFrame({ type: 'error', code, message: err.message, roundId: 0 }, { sender: 'coordinator' });
    return err;
  }
}

const strip = (m: Message): unknown => {
  const { frame: _f, ...rest } = m as Message & { frame?: unknown };
  return rest;
};

describe('fuzz', () => {
  it('random byte strings', () => {
    const r = rng(1);
    const codes = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const n = 1 + Math.floor(r() * 300);
      const b = new Uint8Array(n);
      for (let k = 0; k < n; k++) b[k] = Math.floor(r() * 256);
      const out = attempt(b, lenient, `random #${i}`);
      if (out instanceof ProtocolError) codes.add(out.code);
    }
    expect(codes.has('MALFORMED')).toBe(true);
  });

  it('every truncation of every valid frame', () => {
    let cases = 0;
    for (const [i, full] of [...unsigned, ...signed].entries()) {
      for (let len = 0; len < full.length; len++) {
        const out = attempt(full.subarray(0, len), lenient, `frame ${i} truncated to ${len}`);
        // A cut frame can only survive if the cut fell between fields that are all optional.
        if (!(out instanceof ProtocolError)) expect(len, `frame ${i} truncated to ${len} decoded`).toBeGreaterThan(0);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(2000);
  });

  it('bit flips in unsigned frames', () => {
    const r = rng(2);
    for (let i = 0; i < 4000; i++) {
      const src = unsigned[i % unsigned.length];
      const b = new Uint8Array(src);
      const flips = 1 + Math.floor(r() * 3);
      for (let k = 0; k < flips; k++) b[Math.floor(r() * b.length)] ^= 1 << Math.floor(r() * 8);
      attempt(b, lenient, `unsigned flip #${i}`);
    }
  });

  it('bit flips in signed frames never yield a different accepted message', () => {
    const r = rng(3);
    let accepted = 0;
    for (let i = 0; i < 2000; i++) {
      const k = i % signed.length;
      const b = new Uint8Array(signed[k]);
      b[Math.floor(r() * b.length)] ^= 1 << Math.floor(r() * 8);
      const out = attempt(b, strict, `signed flip #${i}`);
      if (!(out instanceof ProtocolError)) {
        // Only a change the signature does not cover and that decodes to the same content may pass.
        expect(strip(out)).toEqual(strip(decodeFrame(signed[k], strict)));
        accepted++;
      }
    }
    expect(accepted).toBeLessThan(2000);
  });

  it('random splices of two valid frames', () => {
    const r = rng(4);
    for (let i = 0; i < 1500; i++) {
      const a = unsigned[Math.floor(r() * unsigned.length)];
      const b = unsigned[Math.floor(r() * unsigned.length)];
      const cut = Math.floor(r() * a.length);
      const from = Math.floor(r() * b.length);
      const spliced = new Uint8Array([...a.subarray(0, cut), ...b.subarray(from)]);
      attempt(spliced, lenient, `splice #${i}`);
    }
  });
});
