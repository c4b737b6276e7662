import { describe, expect, it } from 'vitest';
import {
  cloneMessage,
  defaultThreshold,
  dequantise,
  encodeUpdate,
  quantisationErrorBound,
  ringParams,
  SecAggClient,
  SecAggError,
  SecAggServer,
  simulateRound,
  type ForwardedSharesMessage,
  type KeyListMessage,
  type MaskedInputMessage,
  type UnmaskRequestMessage,
} from '../../shared/secagg';
import { byteChiSquare, CHI2_255_P1E6, floatSum, randomUpdate } from './helpers';

const D = 4096;
const ids = (n: number) => Array.from({ length: n }, (_, i) => `bank-${String(i).padStart(3, '0')}`);

function ringSum(inputs: Map<string, Uint32Array>, keep: string[]): Uint32Array {
  const s = new Uint32Array(D);
  for (const id of keep) {
    const x = inputs.get(id)!;
    for (let i = 0; i < D; i++) s[i] += x[i];
  }
  return s;
}
const sameWords = (a: Uint32Array, b: Uint32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Drives clients + server by hand up to the masked inputs; returns the pieces for adversarial tests. */
function upToMasked(n: number, t = defaultThreshold(n)) {
  const names = ids(n);
  const p = ringParams({ clipNorm: 1, maxBanks: n });
  const inputs = new Map(names.map((id, i) => [id, encodeUpdate(randomUpdate(D, 1, i + 1), p).ring]));
  const server = new SecAggServer({ roundId: 9, threshold: t, vectorLength: D, allowed: names });
  const clients = new Map(names.map((id) => [id, new SecAggClient({ id, roundId: 9, threshold: t, vectorLength: D })]));
  for (const c of clients.values()) server.receiveAdvertise(c.advertise());
  const list = server.keyList();
  for (const c of clients.values()) server.receiveShares(c.shareKeys(cloneMessage(list)));
  const fwd = server.forwardShares();
  const masked = new Map<string, MaskedInputMessage>();
  for (const [id, c] of clients) masked.set(id, c.maskInput(cloneMessage(fwd.get(id)!), inputs.get(id)!));
  return { names, p, inputs, server, clients, list, fwd, masked, t };
}

describe('secure aggregation round (in-process)', () => {
  it('masked inputs look uniform and differ from the plain quantised update', () => {
    const { inputs, masked, names } = upToMasked(3);
    for (const id of names) {
      const plain = inputs.get(id)!;
      const y = masked.get(id)!.masked;
      expect(byteChiSquare(y)).toBeLessThan(CHI2_255_P1E6);
      expect(byteChiSquare(plain)).toBeGreaterThan(CHI2_255_P1E6); // the test can tell them apart
      let same = 0;
      for (let i = 0; i < D; i++) if (y[i] === plain[i]) same++;
      expect(same).toBeLessThan(3);
    }
  });

  it('no dropouts: unmasked sum = Σ inputs exactly; dequantised within n/scale of the float sum', () => {
    for (const n of [3, 10]) {
      const p = ringParams({ clipNorm: 1, maxBanks: n });
      const updates = ids(n).map((_, i) => randomUpdate(D, i % 3 === 0 ? 2 : 0.5, 50 + i));
      const inputs = new Map(ids(n).map((id, i) => [id, encodeUpdate(updates[i], p).ring]));
      const r = simulateRound({ ids: ids(n), input: (id) => inputs.get(id)!, vectorLength: D });
      expect(r.result.counts).toEqual([n, n, n, n]);
      expect(sameWords(r.result.sum, ringSum(inputs, ids(n)))).toBe(true);
      const got = dequantise(r.result.sum, p.scale);
      const want = floatSum(updates, 1);
      const bound = quantisationErrorBound(p, n);
      for (let i = 0; i < D; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(bound);
    }
  });

  const dropCases: [string, number, Partial<Record<'dropBeforeShares' | 'dropBeforeInput' | 'dropBeforeUnmask', string[]>>, (n: string[]) => string[]][] = [
    ['1 of 3 drops after sharing keys, before its masked input', 3, { dropBeforeInput: ['bank-001'] }, (n) => n.filter((id) => id !== 'bank-001')],
    ['3 of 10 drop after sharing keys, before their masked inputs', 10, { dropBeforeInput: ['bank-000', 'bank-004', 'bank-009'] }, (n) => n.filter((id) => !['bank-000', 'bank-004', 'bank-009'].includes(id))],
    ['1 of 3 drops after its masked input arrived (during unmasking)', 3, { dropBeforeUnmask: ['bank-002'] }, (n) => n],
    ['3 of 10 drop after their masked inputs arrived (during unmasking)', 10, { dropBeforeUnmask: ['bank-001', 'bank-002', 'bank-003'] }, (n) => n],
    ['mixed: 1 before sharing, 1 before masking, 2 during unmasking of 10', 10, { dropBeforeShares: ['bank-005'], dropBeforeInput: ['bank-007'], dropBeforeUnmask: ['bank-000', 'bank-008'] }, (n) => n.filter((id) => id !== 'bank-005' && id !== 'bank-007')],
  ];
  for (const [name, n, drops, summed] of dropCases) {
    it(`dropouts: ${name} → the round completes with the right sum`, () => {
      const p = ringParams({ clipNorm: 1, maxBanks: n });
      const updates = new Map(ids(n).map((id, i) => [id, randomUpdate(D, 1, 7 + i)]));
      const inputs = new Map(ids(n).map((id) => [id, encodeUpdate(updates.get(id)!, p).ring]));
      const r = simulateRound({ ids: ids(n), input: (id) => inputs.get(id)!, vectorLength: D, ...drops });
      const keep = summed(ids(n));
      expect(r.result.survivors).toEqual(keep);
      expect(sameWords(r.result.sum, ringSum(inputs, keep))).toBe(true);
      const got = dequantise(r.result.sum, p.scale);
      const want = floatSum(keep.map((id) => updates.get(id)!), 1);
      let worst = 0;
      for (let i = 0; i < D; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      expect(worst).toBeLessThan(quantisationErrorBound(p, keep.length));
    });
  }

  it('a wrong input is detected by the sum check (the test can fail)', () => {
    const { server, masked, clients, names, inputs } = upToMasked(3);
    const y = masked.get(names[0])!;
    y.masked[5] += 1;
    for (const m of masked.values()) server.receiveMaskedInput(m);
    const req = server.unmaskRequest();
    for (const c of clients.values()) server.receiveUnmask(c.unmask(cloneMessage(req)));
    const { sum } = server.finish();
    expect(sameWords(sum, ringSum(inputs, names))).toBe(false);
  });

  it('DP noise hook: noise is added in the ring before masking; the sum carries Σ of the banks\' noise', () => {
    const n = 3;
    const sigma = 30;
    const p = ringParams({ clipNorm: 1, maxBanks: n, scale: 4096, noise: { mechanism: 'discreteGaussian', sigma } });
    const updates = ids(n).map((_, i) => randomUpdate(D, 1, 300 + i));
    const names = ids(n);
    const server = new SecAggServer({ roundId: 1, threshold: 2, vectorLength: D });
    const clients = names.map((id) => new SecAggClient({ id, roundId: 1, threshold: 2, vectorLength: D, ring: p }));
    for (const c of clients) server.receiveAdvertise(c.advertise());
    const list = server.keyList();
    for (const c of clients) server.receiveShares(c.shareKeys(list));
    const fwd = server.forwardShares();
    clients.forEach((c, i) => server.receiveMaskedInput(c.maskUpdate(fwd.get(c.id)!, updates[i])));
    const req = server.unmaskRequest();
    for (const c of clients) server.receiveUnmask(c.unmask(req));
    const got = dequantise(server.finish().sum, p.scale);
    const want = floatSum(updates, 1);
    let s2 = 0;
    for (let i = 0; i < D; i++) s2 += ((got[i] - want[i]) * p.scale) ** 2;
    const sd = Math.sqrt(s2 / D);
    const expected = Math.sqrt(n * sigma * sigma); // + rounding variance ≤ n/4
    expect(sd).toBeGreaterThan(expected * 0.93);
    expect(sd).toBeLessThan(expected * 1.07);
  });
});

describe('refusals', () => {
  it('a bank asked for both shares of one bank refuses (same request or across requests)', () => {
    const { server, masked, clients, names } = upToMasked(3);
    for (const m of masked.values()) server.receiveMaskedInput(m);
    const honest = server.unmaskRequest();
    const c0 = clients.get(names[0])!;
    const both: UnmaskRequestMessage = { ...honest, dropped: [names[1]] };
    expect(() => c0.unmask(both)).toThrow(/BOTH_SHARES_REQUESTED/);
    // Answer the honest view, then a second request claiming bank-001 dropped is refused.
    c0.unmask(honest);
    const lie: UnmaskRequestMessage = { ...honest, survivors: [names[0], names[2]], dropped: [names[1]] };
    let err: unknown;
    try {
      c0.unmask(lie);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SecAggError);
    expect((err as SecAggError).code).toBe('BOTH_SHARES_REQUESTED');
    // A retry of the same view is answered identically.
    expect(c0.unmask(honest).selfMaskShares.map((s) => s.of)).toEqual(names);
  });

  it('a bank refuses to be listed as dropped after it sent its masked input', () => {
    const { clients, names } = upToMasked(3);
    const req: UnmaskRequestMessage = { type: 'secaggUnmaskRequest', roundId: 9, survivors: [names[1], names[2]], dropped: [names[0]] };
    expect(() => clients.get(names[0])!.unmask(req)).toThrow(SecAggError);
  });

  it('below-threshold survivors fail clearly (server and client)', () => {
    // n = 3, t = 2: two banks drop before masking → U3 = 1 < t.
    const inputs = new Map(ids(3).map((id) => [id, new Uint32Array(D)]));
    expect(() => simulateRound({ ids: ids(3), input: (id) => inputs.get(id)!, vectorLength: D, dropBeforeInput: ['bank-000', 'bank-001'] })).toThrow(
      /BELOW_THRESHOLD: server: banks whose masked input arrived \(U3\): only 1 bank\(s\), threshold t=2/,
    );
    // 10 banks, t = 6: 5 vanish during unmasking → only 5 responders.
    const in10 = new Map(ids(10).map((id) => [id, new Uint32Array(D)]));
    expect(() => simulateRound({ ids: ids(10), input: (id) => in10.get(id)!, vectorLength: D, dropBeforeUnmask: ids(5) })).toThrow(/BELOW_THRESHOLD.*U4.*only 5/);
    // Too few banks ever show up.
    expect(() => simulateRound({ ids: ids(10), input: (id) => in10.get(id)!, vectorLength: D, dropBeforeShares: ids(5) })).toThrow(/BELOW_THRESHOLD.*U2/);
    // A client refuses an unmask request naming fewer than t survivors.
    const { clients, names } = upToMasked(3);
    expect(() => clients.get(names[0])!.unmask({ type: 'secaggUnmaskRequest', roundId: 9, survivors: [names[0]], dropped: [names[1], names[2]] })).toThrow(/BELOW_THRESHOLD/);
  });

  it('tampered or mis-routed ciphertexts are rejected (DECRYPT_FAILED)', () => {
    const names = ids(3);
    const mk = () => {
      const server = new SecAggServer({ roundId: 4, threshold: 2, vectorLength: 8 });
      const clients = names.map((id) => new SecAggClient({ id, roundId: 4, threshold: 2, vectorLength: 8 }));
      for (const c of clients) server.receiveAdvertise(c.advertise());
      const list: KeyListMessage = server.keyList();
      for (const c of clients) server.receiveShares(c.shareKeys(list));
      return { clients, fwd: server.forwardShares() };
    };
    {
      const { clients, fwd } = mk();
      const f: ForwardedSharesMessage = cloneMessage(fwd.get(names[0])!);
      f.ciphertexts[0].data[40] ^= 1;
      expect(() => clients[0].maskInput(f, new Uint32Array(8))).toThrow(/DECRYPT_FAILED/);
    }
    {
      // The server relabels bank-002's bundle as coming from bank-001.
      const { clients, fwd } = mk();
      const f: ForwardedSharesMessage = cloneMessage(fwd.get(names[0])!);
      const [a, b] = f.ciphertexts;
      f.ciphertexts = [{ from: a.from, data: b.data }, { from: b.from, data: a.data }];
      expect(() => clients[0].maskInput(f, new Uint32Array(8))).toThrow(/DECRYPT_FAILED/);
    }
    {
      // A bundle meant for bank-001 forwarded to bank-000.
      const { clients, fwd } = mk();
      const f: ForwardedSharesMessage = cloneMessage(fwd.get(names[0])!);
      f.ciphertexts[1] = { from: f.ciphertexts[1].from, data: fwd.get(names[1])!.ciphertexts.find((c) => c.from === f.ciphertexts[1].from)!.data };
      expect(() => clients[0].maskInput(f, new Uint32Array(8))).toThrow(/DECRYPT_FAILED/);
    }
  });

  it('a key list that replaces a bank\'s keys, or an insecure threshold, is refused', () => {
    const names = ids(3);
    const server = new SecAggServer({ roundId: 1, threshold: 2, vectorLength: 8 });
    const clients = names.map((id) => new SecAggClient({ id, roundId: 1, threshold: 2, vectorLength: 8 }));
    for (const c of clients) server.receiveAdvertise(c.advertise());
    const list = server.keyList();
    const forged = cloneMessage(list);
    forged.keys[0].sPk = forged.keys[1].sPk.slice();
    expect(() => clients[0].shareKeys(forged)).toThrow(/different keys|repeats/);
    const weak = new SecAggClient({ id: 'bank-000', roundId: 1, threshold: 2, vectorLength: 8 });
    expect(() => new SecAggServer({ roundId: 1, threshold: 2, vectorLength: 8, allowed: ids(4) })).toThrow(/insecure/);
    expect(weak.currentStep).toBe('advertise');
    expect(() => weak.shareKeys(list)).toThrow(/WRONG_STATE/);
  });

  it('default threshold is a strict majority', () => {
    expect([2, 3, 10, 100].map(defaultThreshold)).toEqual([2, 2, 6, 51]);
  });
});
