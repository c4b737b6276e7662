// Messages of one secure-aggregation round (Bonawitz et al., CCS 2017, semi-honest variant).
//
// Plain objects: strings, numbers, arrays, Uint8Array (keys, ciphertexts, shares) and one
// Uint32Array (the masked input, like protocol/codec's WireRingTensor). The transport layer wraps
// them in protobuf later; until then `wireSize` estimates the protobuf-encoded size, and
// `cloneMessage` deep-copies one (what a transport would deliver: no shared buffers).
//
// Flow (server = coordinator, which only relays and sums; it never learns one bank's input):
//   bank  → server  AdvertiseKeys     (round 0)   U1 = banks whose keys arrived
//   server→ banks   KeyList           (to U1)
//   bank  → server  ShareKeys         (round 1)   U2 = banks whose encrypted shares arrived
//   server→ bank    ForwardedShares   (to each of U2: the bundles addressed to it)
//   bank  → server  MaskedInput       (round 2)   U3 = banks whose masked input arrived
//   server→ banks   UnmaskRequest     (to U3: survivors = U3, dropped = U2 \ U3)
//   bank  → server  UnmaskResponse    (round 3)   U4 = banks that answered; need |U4| ≥ t
// U1 ⊇ U2 ⊇ U3 ⊇ U4, each of size ≥ t or the round aborts with BELOW_THRESHOLD.

/** One bank's public keys, as listed by the server. */
export interface AdvertisedKeys {
  id: string;
  /** X25519 public key for encrypting share bundles to this bank (32 bytes). */
  cPk: Uint8Array;
  /** X25519 public key for agreeing pairwise mask seeds (32 bytes). */
  sPk: Uint8Array;
  /**
   * Ed25519 signature (64 bytes) by the bank's long-term identity key over keys.ts
   * `advertSigningInput` (round, t, d, id, c_pk, s_pk, session). The server relays it untouched;
   * a bank with a consortium directory refuses a key list with any entry unsigned or not verifying.
   */
  signature?: Uint8Array;
}

/** Round 0, bank → server: the bank's two fresh public keys for this round. */
export interface AdvertiseKeysMessage extends AdvertisedKeys {
  type: 'secaggAdvertiseKeys';
  roundId: number;
}

/** Server → every bank in U1: all advertised keys (with their banks' signatures), sorted by id.
 *  A bank's position i in this list fixes its Shamir x-coordinate (i + 1) and the sign of its
 *  pairwise masks. */
export interface KeyListMessage {
  type: 'secaggKeyList';
  roundId: number;
  keys: AdvertisedKeys[];
}

/** Round 1, bank → server: one sealed ShareBundle (keys.ts) per other bank of U1. */
export interface ShareKeysMessage {
  type: 'secaggShareKeys';
  roundId: number;
  from: string;
  ciphertexts: { to: string; data: Uint8Array }[];
}

/** Server → bank `to` (in U2): the bundles addressed to it from the other banks of U2. */
export interface ForwardedSharesMessage {
  type: 'secaggForwardedShares';
  roundId: number;
  to: string;
  ciphertexts: { from: string; data: Uint8Array }[];
}

/** Round 2, bank → server: y = x + PRG(b) + Σ_{v>u} PRG(s_uv) − Σ_{v<u} PRG(s_uv)  (mod 2^32). */
export interface MaskedInputMessage {
  type: 'secaggMaskedInput';
  roundId: number;
  from: string;
  masked: Uint32Array;
}

/** Server → every bank in U3. survivors = U3 (reveal shares of their self-mask seeds b),
 *  dropped = U2 \ U3 (reveal shares of their mask secret keys s_sk). Never both for one bank. */
export interface UnmaskRequestMessage {
  type: 'secaggUnmaskRequest';
  roundId: number;
  survivors: string[];
  dropped: string[];
}

/** Round 3, bank → server: its shares, in the order of the request's lists. The share's
 *  x-coordinate is the responder's own position + 1 (the server knows it). */
export interface UnmaskResponseMessage {
  type: 'secaggUnmaskResponse';
  roundId: number;
  from: string;
  selfMaskShares: { of: string; y: Uint8Array }[];
  secretKeyShares: { of: string; y: Uint8Array }[];
}

export type SecAggMessage =
  | AdvertiseKeysMessage
  | KeyListMessage
  | ShareKeysMessage
  | ForwardedSharesMessage
  | MaskedInputMessage
  | UnmaskRequestMessage
  | UnmaskResponseMessage;

function varintLen(n: number): number {
  let len = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}
const utf8 = new TextEncoder();

/** Approximate protobuf size: 1-byte tags, length-delimited bytes/strings/sub-messages, varint numbers. */
export function wireSize(value: unknown): number {
  const field = (v: unknown): number => {
    if (typeof v === 'string') {
      const n = utf8.encode(v).length;
      return 1 + varintLen(n) + n;
    }
    if (typeof v === 'number') return 1 + varintLen(Math.abs(Math.floor(v)));
    if (v instanceof Uint8Array) return 1 + varintLen(v.length) + v.length;
    if (v instanceof Uint32Array) return 1 + varintLen(4 * v.length) + 4 * v.length;
    if (Array.isArray(v)) return v.reduce((s: number, e) => s + field(e), 0);
    if (typeof v === 'object' && v !== null) {
      const inner = body(v as Record<string, unknown>);
      return 1 + varintLen(inner) + inner;
    }
    return 0;
  };
  const body = (o: Record<string, unknown>): number => Object.entries(o).reduce((s, [k, v]) => s + (k === 'type' ? 0 : field(v)), 0);
  return typeof value === 'object' && value !== null ? body(value as Record<string, unknown>) + 2 : field(value);
}

/** Deep copy (typed arrays copied): what a transport would hand the other side. */
export function cloneMessage<T>(m: T): T {
  if (m instanceof Uint8Array) return m.slice() as T;
  if (m instanceof Uint32Array) return m.slice() as T;
  if (Array.isArray(m)) return m.map((e) => cloneMessage(e)) as T;
  if (typeof m === 'object' && m !== null) return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, cloneMessage(v)])) as T;
  return m;
}
