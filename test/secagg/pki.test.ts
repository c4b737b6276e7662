// Signed key lists (issue #6, items 1-2): Bonawitz et al.'s active variant assumes a PKI. Every bank
// signs its advertised keys with its long-term Ed25519 key; every bank checks every key-list entry
// against its consortium directory and refuses the round (no shares) when the coordinator
// substituted a key, dropped or forged a signature, slipped in an unknown bank, or replayed an
// advert from another round. Real tweetnacl / node:crypto keys throughout, no mocks.
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import {
  cloneMessage,
  defaultThreshold,
  SecAggClient,
  SecAggError,
  SecAggServer,
  simulateRound,
  type AdvertiseKeysMessage,
  type KeyListMessage,
  type SecAggErrorCode,
} from '../../shared/secagg';
import { advertSigningInput, generateKeyPair, signAdvert, verifyAdvert, type ConsortiumDirectory } from '../../shared/secagg/keys';

const D = 64;
const ROUND = 9;
const ids = (n: number) => Array.from({ length: n }, (_, i) => `bank-${i + 1}`);

function consortium(names: string[]) {
  const identities = new Map(names.map((id) => [id, nacl.sign.keyPair()]));
  const directory: ConsortiumDirectory = new Map([...identities].map(([id, kp]) => [id, kp.publicKey]));
  return { identities, directory };
}

/** n banks with identities and a shared directory advertise to a server; returns the honest key list. */
function setup(n = 4, o: { roundId?: number; session?: Uint8Array; directory?: ConsortiumDirectory; names?: string[] } = {}) {
  const names = o.names ?? ids(n);
  const { identities, directory } = consortium(names);
  const t = defaultThreshold(names.length);
  const roundId = o.roundId ?? ROUND;
  const clients = new Map(
    names.map((id) => [
      id,
      new SecAggClient({ id, roundId, threshold: t, vectorLength: D, signingKey: identities.get(id)!.secretKey, directory: o.directory ?? directory, ...(o.session ? { session: o.session } : {}) }),
    ]),
  );
  const server = new SecAggServer({ roundId, threshold: t, vectorLength: D });
  const adverts = new Map<string, AdvertiseKeysMessage>();
  for (const [id, c] of clients) {
    const a = c.advertise();
    adverts.set(id, a);
    server.receiveAdvertise(cloneMessage(a));
  }
  const list = server.keyList();
  return { names, identities, directory, t, clients, server, list, adverts };
}

function refusal(f: () => unknown): SecAggError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(SecAggError);
    return err as SecAggError;
  }
  throw new Error('expected a refusal');
}

/** Every bank but `except` checks the (tampered) list; each must refuse with `code`, before producing any share. */
function expectAllRefuse(clients: Map<string, SecAggClient>, list: KeyListMessage, code: SecAggErrorCode, text: RegExp, except: string[] = []) {
  for (const [id, c] of clients) {
    if (except.includes(id)) continue;
    const err = refusal(() => c.shareKeys(cloneMessage(list)));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(text);
    // Refusal is final: the same client cannot be talked into sharing for this round afterwards.
    expect(c.currentStep).toBe('done');
  }
}

const entry = (list: KeyListMessage, id: string) => list.keys.find((k) => k.id === id)!;

describe('signed adverts', () => {
  it('the signature covers a domain-separated canonical encoding and verifies with tweetnacl as well as node:crypto', () => {
    const kp = nacl.sign.keyPair();
    const a = { roundId: 7, threshold: 3, vectorLength: 10, bankId: 'bank-1', cPk: generateKeyPair().publicKey, sPk: generateKeyPair().publicKey };
    const sig = signAdvert(a, kp.secretKey);
    expect(sig).toEqual(nacl.sign.detached(advertSigningInput(a), kp.secretKey)); // Ed25519 is deterministic
    expect(nacl.sign.detached.verify(advertSigningInput(a), sig, kp.publicKey)).toBe(true);
    expect(verifyAdvert(a, sig, kp.publicKey)).toBe(true);
    const input = advertSigningInput(a);
    expect(Buffer.from(input.subarray(0, 34)).toString('latin1')).toBe('fedsynth/secagg/v1/advertise-keys\0');
    // Every bound field changes the signed bytes.
    for (const changed of [
      { roundId: 8 },
      { threshold: 2 },
      { vectorLength: 11 },
      { bankId: 'bank-2' },
      { cPk: a.sPk },
      { sPk: a.cPk },
      { session: new Uint8Array(32).fill(1) },
    ]) {
      expect(verifyAdvert({ ...a, ...changed }, sig, kp.publicKey)).toBe(false);
    }
    expect(verifyAdvert(a, sig, nacl.sign.keyPair().publicKey)).toBe(false);
    expect(verifyAdvert(a, sig.subarray(0, 63), kp.publicKey)).toBe(false);
    expect(verifyAdvert(a, undefined, kp.publicKey)).toBe(false);
  });

  it('the server relays every bank signature untouched in the key list (64 bytes per entry)', () => {
    const { list, adverts } = setup(3);
    for (const k of list.keys) {
      expect(k.signature).toBeInstanceOf(Uint8Array);
      expect(k.signature).toEqual(adverts.get(k.id)!.signature);
    }
  });

  it('the server refuses an advert signature of the wrong length', () => {
    const server = new SecAggServer({ roundId: 1, threshold: 2, vectorLength: D });
    const bad = { type: 'secaggAdvertiseKeys' as const, roundId: 1, id: 'bank-1', cPk: generateKeyPair().publicKey, sPk: generateKeyPair().publicKey, signature: new Uint8Array(10) };
    expect(() => server.receiveAdvertise(bad)).toThrow(/INVALID_MESSAGE.*64 bytes/);
  });
});

describe('a bank with a consortium directory verifies the key list', () => {
  it('a valid signed list: the round completes and the sum is right', () => {
    const { names, clients, server, list } = setup(5);
    for (const c of clients.values()) server.receiveShares(c.shareKeys(cloneMessage(list)));
    const fwd = server.forwardShares();
    const inputs = new Map(names.map((id, i) => [id, new Uint32Array(D).map((_, j) => (i + 1) * 1000 + j)]));
    for (const [id, c] of clients) server.receiveMaskedInput(c.maskInput(cloneMessage(fwd.get(id)!), inputs.get(id)!));
    const req = server.unmaskRequest();
    for (const c of clients.values()) server.receiveUnmask(c.unmask(cloneMessage(req)));
    const r = server.finish();
    const want = new Uint32Array(D);
    for (const x of inputs.values()) for (let j = 0; j < D; j++) want[j] += x[j]!;
    expect(r.sum).toEqual(want);
  });

  it('simulateRound signs and verifies by default and gets the right sum with dropouts', () => {
    const names = ids(7);
    const inputs = new Map(names.map((id, i) => [id, new Uint32Array(D).fill(i + 1)]));
    const r = simulateRound({ ids: names, input: (id) => inputs.get(id)!, vectorLength: D, dropBeforeInput: ['bank-2'] });
    expect(r.result.sum).toEqual(new Uint32Array(D).fill(1 + 3 + 4 + 5 + 6 + 7));
    const unsigned = simulateRound({ ids: names, input: (id) => inputs.get(id)!, vectorLength: D, verifyKeys: false });
    // Signatures cost 64 bytes (+3 of framing) per entry of every key list each bank receives.
    const recv = (x: typeof r, id: string) => x.clients.get(id)!.receivedBytes;
    expect(recv(simulateRound({ ids: names, input: (id) => inputs.get(id)!, vectorLength: D }), 'bank-1') - recv(unsigned, 'bank-1')).toBeGreaterThanOrEqual(7 * 66);
  });

  it.each([
    ['c_pk', 'cPk'],
    ['s_pk', 'sPk'],
  ] as const)("a substituted %s (the coordinator's own key, the bank's signature kept) → KEY_LIST_BAD_SIGNATURE", (_name, field) => {
    const { clients, list } = setup(4);
    const forged = cloneMessage(list);
    entry(forged, 'bank-2')[field] = generateKeyPair().publicKey;
    expectAllRefuse(clients, forged, 'KEY_LIST_BAD_SIGNATURE', /keys of 'bank-2' are not signed by its directory key/, ['bank-2']);
    // bank-2 itself sees its own entry altered.
    expect(refusal(() => clients.get('bank-2')!.shareKeys(cloneMessage(forged))).code).toBe('KEY_LIST_OWN_KEYS_CHANGED');
  });

  it('substituted keys re-signed by the coordinator (or by another bank) → KEY_LIST_BAD_SIGNATURE', () => {
    const { clients, list, identities, t } = setup(4);
    const coordinator = nacl.sign.keyPair();
    const forged = cloneMessage(list);
    const e = entry(forged, 'bank-3');
    e.cPk = generateKeyPair().publicKey;
    e.sPk = generateKeyPair().publicKey;
    e.signature = signAdvert({ roundId: ROUND, threshold: t, vectorLength: D, bankId: 'bank-3', cPk: e.cPk, sPk: e.sPk }, coordinator.secretKey);
    expectAllRefuse(clients, forged, 'KEY_LIST_BAD_SIGNATURE', /bank-3/, ['bank-3']);
    const { clients: again, list: list2 } = setup(4);
    const byPeer = cloneMessage(list2);
    const e2 = entry(byPeer, 'bank-3');
    e2.sPk = generateKeyPair().publicKey;
    e2.signature = signAdvert({ roundId: ROUND, threshold: t, vectorLength: D, bankId: 'bank-3', cPk: e2.cPk, sPk: e2.sPk }, identities.get('bank-1')!.secretKey);
    expectAllRefuse(again, byPeer, 'KEY_LIST_BAD_SIGNATURE', /bank-3/, ['bank-3']);
  });

  it.each([
    ['absent', undefined],
    ['empty', new Uint8Array(0)],
  ] as const)('a missing signature (%s) → KEY_LIST_UNSIGNED', (_what, sig) => {
    const { clients, list } = setup(4);
    const forged = cloneMessage(list);
    if (sig === undefined) delete entry(forged, 'bank-4').signature;
    else entry(forged, 'bank-4').signature = sig;
    expectAllRefuse(clients, forged, 'KEY_LIST_UNSIGNED', /'bank-4' carry no signature/, ['bank-4']);
    expect(refusal(() => clients.get('bank-4')!.shareKeys(cloneMessage(forged))).code).toBe('KEY_LIST_OWN_KEYS_CHANGED');
  });

  it('an invalid signature (one bit flipped, or random bytes) → KEY_LIST_BAD_SIGNATURE', () => {
    const { clients, list } = setup(4);
    const flipped = cloneMessage(list);
    entry(flipped, 'bank-1').signature![5] ^= 0x01;
    expectAllRefuse(clients, flipped, 'KEY_LIST_BAD_SIGNATURE', /bank-1/, ['bank-1']);
    const { clients: c2, list: l2 } = setup(4);
    const random = cloneMessage(l2);
    entry(random, 'bank-1').signature = nacl.randomBytes(64);
    expectAllRefuse(c2, random, 'KEY_LIST_BAD_SIGNATURE', /bank-1/, ['bank-1']);
  });

  it('a bank that is not in the directory (validly self-signed sybil) → KEY_LIST_UNKNOWN_BANK', () => {
    const names = ids(3);
    const { identities, directory } = consortium(names);
    const sybil = nacl.sign.keyPair();
    const all = [...names, 'bank-x'];
    const t = defaultThreshold(all.length);
    const server = new SecAggServer({ roundId: ROUND, threshold: t, vectorLength: D });
    const clients = new Map(names.map((id) => [id, new SecAggClient({ id, roundId: ROUND, threshold: t, vectorLength: D, signingKey: identities.get(id)!.secretKey, directory })]));
    for (const c of clients.values()) server.receiveAdvertise(c.advertise());
    // The coordinator plays 'bank-x' itself, with keys it knows, properly signed under its own key.
    const x = new SecAggClient({ id: 'bank-x', roundId: ROUND, threshold: t, vectorLength: D, signingKey: sybil.secretKey });
    server.receiveAdvertise(x.advertise());
    const list = server.keyList();
    expectAllRefuse(clients, list, 'KEY_LIST_UNKNOWN_BANK', /'bank-x', which is not in this bank's consortium directory/);
  });

  it("a directory that lacks a peer → that bank refuses (KEY_LIST_UNKNOWN_BANK), the others accept", () => {
    const names = ids(4);
    const { identities, directory } = consortium(names);
    const partial = new Map([...directory].filter(([id]) => id !== 'bank-4'));
    const t = defaultThreshold(4);
    const server = new SecAggServer({ roundId: ROUND, threshold: t, vectorLength: D });
    const clients = new Map(
      names.map((id) => [id, new SecAggClient({ id, roundId: ROUND, threshold: t, vectorLength: D, signingKey: identities.get(id)!.secretKey, directory: id === 'bank-1' ? partial : directory })]),
    );
    for (const c of clients.values()) server.receiveAdvertise(c.advertise());
    const list = server.keyList();
    expect(refusal(() => clients.get('bank-1')!.shareKeys(cloneMessage(list))).code).toBe('KEY_LIST_UNKNOWN_BANK');
    for (const id of ['bank-2', 'bank-3', 'bank-4']) expect(clients.get(id)!.shareKeys(cloneMessage(list)).ciphertexts.length).toBe(3);
  });

  it("a replayed advert from another round (the bank's genuine signed keys of round 8) → KEY_LIST_BAD_SIGNATURE", () => {
    const names = ids(4);
    const { identities, directory } = consortium(names);
    const t = defaultThreshold(4);
    // Round 8: bank-2 advertised (the coordinator may since have learnt its s_sk, e.g. by unmasking it as dropped).
    const old = new SecAggClient({ id: 'bank-2', roundId: 8, threshold: t, vectorLength: D, signingKey: identities.get('bank-2')!.secretKey, directory }).advertise();
    const server = new SecAggServer({ roundId: ROUND, threshold: t, vectorLength: D });
    const clients = new Map(names.map((id) => [id, new SecAggClient({ id, roundId: ROUND, threshold: t, vectorLength: D, signingKey: identities.get(id)!.secretKey, directory })]));
    for (const [id, c] of clients) {
      const a = c.advertise();
      server.receiveAdvertise(id === 'bank-2' ? { ...old, roundId: ROUND } : a);
    }
    const list = server.keyList();
    expect(entry(list, 'bank-2').signature).toEqual(old.signature);
    expectAllRefuse(clients, list, 'KEY_LIST_BAD_SIGNATURE', /bank-2.*round 9.*replayed/, ['bank-2']);
  });

  it('an advert from another session of the same round id (a retried attempt, another coordinator) → KEY_LIST_BAD_SIGNATURE', () => {
    const names = ids(3);
    const { identities, directory } = consortium(names);
    const t = 2;
    const s1 = new Uint8Array(32).fill(1);
    const s2 = new Uint8Array(32).fill(2);
    const server = new SecAggServer({ roundId: ROUND, threshold: t, vectorLength: D });
    const mk = (id: string, session: Uint8Array) => new SecAggClient({ id, roundId: ROUND, threshold: t, vectorLength: D, signingKey: identities.get(id)!.secretKey, directory, session });
    const clients = new Map(names.map((id) => [id, mk(id, s2)]));
    for (const [id, c] of clients) {
      const a = c.advertise();
      server.receiveAdvertise(id === 'bank-3' ? mk('bank-3', s1).advertise() : a);
    }
    const list = server.keyList();
    for (const id of ['bank-1', 'bank-2']) expect(refusal(() => clients.get(id)!.shareKeys(cloneMessage(list))).code).toBe('KEY_LIST_BAD_SIGNATURE');
  });

  it("its own entry with another signature → KEY_LIST_OWN_KEYS_CHANGED", () => {
    const { clients, list } = setup(3);
    const forged = cloneMessage(list);
    entry(forged, 'bank-1').signature = entry(forged, 'bank-2').signature!.slice();
    expect(refusal(() => clients.get('bank-1')!.shareKeys(forged)).code).toBe('KEY_LIST_OWN_KEYS_CHANGED');
  });

  it('without a directory a client still signs, and accepts an unsigned list (unverified mode, as before)', () => {
    const names = ids(3);
    const t = 2;
    const clients = names.map((id) => new SecAggClient({ id, roundId: 1, threshold: t, vectorLength: D, signingKey: nacl.sign.keyPair().secretKey }));
    const server = new SecAggServer({ roundId: 1, threshold: t, vectorLength: D });
    for (const c of clients) {
      const a = c.advertise();
      expect(a.signature?.length).toBe(64);
      server.receiveAdvertise({ ...a, signature: undefined });
    }
    const list = server.keyList();
    expect(clients[0]!.verifiesKeyList).toBe(false);
    expect(clients[0]!.shareKeys(list).ciphertexts.length).toBe(2);
  });
});
