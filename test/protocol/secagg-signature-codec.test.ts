// Signed secure-aggregation adverts on the wire (issue #6, active coordinator): the bank's Ed25519
// advert signature travels in SecAggAdvertiseKeys.signature and, relayed, in SecAggBankKeys.signature.
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { decodeFrame, encodeFrame, SECAGG_SIGNATURE_BYTES, type Message, type SecAggAdvertiseKeysMessage, type SecAggKeyListMessage } from '../../protocol/index';
import { advertSigningInput, signAdvert } from '../../shared/secagg/keys';
import { bytes32, expectCode, rawFrame, WIRE_TYPE } from './helpers';

const roundTrip = (m: Message, sender = 'bank-a') => decodeFrame(encodeFrame(m, { sender }));

describe('advert signatures on the wire', () => {
  const id = nacl.sign.keyPair();
  const binding = { roundId: 9, threshold: 2, vectorLength: 144, bankId: 'bank-a', cPk: bytes32(1), sPk: bytes32(2) };
  const signature = signAdvert(binding, id.secretKey);

  it('a signed advert and a signed key list round-trip; the signature still verifies with tweetnacl', () => {
    expect(signature.length).toBe(SECAGG_SIGNATURE_BYTES);
    const adv = roundTrip({ type: 'secaggAdvertiseKeys', roundId: 9, cPk: binding.cPk, sPk: binding.sPk, signature }) as SecAggAdvertiseKeysMessage;
    expect(adv.signature).toEqual(signature);
    expect(nacl.sign.detached.verify(advertSigningInput(binding), adv.signature!, id.publicKey)).toBe(true);
    const list = roundTrip(
      { type: 'secaggKeyList', roundId: 9, keys: [{ bankId: 'bank-a', cPk: binding.cPk, sPk: binding.sPk, signature }, { bankId: 'bank-b', cPk: bytes32(3), sPk: bytes32(4) }] },
      'coordinator',
    ) as SecAggKeyListMessage;
    expect(list.keys[0]!.signature).toEqual(signature);
    expect(list.keys[1]!.signature).toBeUndefined();
  });

  it('an unsigned advert decodes without a signature (refused later by verifying banks, not by the codec)', () => {
    const adv = roundTrip({ type: 'secaggAdvertiseKeys', roundId: 9, cPk: bytes32(1), sPk: bytes32(2) }) as SecAggAdvertiseKeysMessage;
    expect(adv.signature).toBeUndefined();
    expect('signature' in adv).toBe(false);
  });

  it('a signature that is not 64 bytes is refused on encode and on decode', () => {
    expectCode(() => roundTrip({ type: 'secaggAdvertiseKeys', roundId: 9, cPk: bytes32(1), sPk: bytes32(2), signature: new Uint8Array(63) }), 'INVALID_FIELD', /signature must be 64 bytes/);
    expectCode(
      () => decodeFrame(rawFrame('SecAggKeyList', WIRE_TYPE.secaggKeyList, { roundId: 2, keys: [{ bankId: 'bank-a', cPk: bytes32(1), sPk: bytes32(2), signature: new Uint8Array(65) }] }, { roundId: 2, sender: 'coordinator' })),
      'INVALID_FIELD',
      /keys\[0\]\.signature must be 64 bytes/,
    );
  });

  it('costs 66-67 bytes per key-list entry (64-byte signature + tag + length, + 1 when the entry length varint grows)', () => {
    const keys = Array.from({ length: 10 }, (_, i) => ({ bankId: `bank-${i}`, cPk: bytes32(2 * i + 1), sPk: bytes32(2 * i + 2) }));
    const plain = encodeFrame({ type: 'secaggKeyList', roundId: 9, keys }, { sender: 'coordinator' });
    const signed = encodeFrame({ type: 'secaggKeyList', roundId: 9, keys: keys.map((k) => ({ ...k, signature })) }, { sender: 'coordinator' });
    expect(signed.length - plain.length).toBeGreaterThanOrEqual(10 * 66);
    expect(signed.length - plain.length).toBeLessThanOrEqual(10 * 67 + 4);
  });
});
