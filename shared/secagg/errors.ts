// Typed errors of the secure-aggregation library. Every refusal names a stable `code` so the
// transport layer (socket.io) can map it to a protocol error without parsing messages.

export type SecAggErrorCode =
  /** Fewer than t parties left at some step (or a request/list below t): the round cannot complete. */
  | 'BELOW_THRESHOLD'
  /** Someone asked a bank for the self-mask share AND the mask-key share of the same bank. */
  | 'BOTH_SHARES_REQUESTED'
  /** An encrypted share bundle failed authentication or carries the wrong round / sender / recipient. */
  | 'DECRYPT_FAILED'
  /** A method was called in the wrong protocol step (or twice). */
  | 'WRONG_STATE'
  /** A message is malformed (wrong round id, lengths, unknown or duplicate ids, bad keys …). */
  | 'INVALID_MESSAGE'
  /** Shares given to reconstruct a secret do not lie on one polynomial / do not match the public key. */
  | 'SHARE_MISMATCH'
  /** Parameters under which the ring sum could overflow, or otherwise invalid parameters. */
  | 'INVALID_PARAMS'
  // Key-list verification against the consortium directory (active adversary; see keys.ts
  // `advertSigningInput`). Each of these means the coordinator relayed a key list this bank must
  // not use: it refuses the round (no shares sent).
  /** A key-list entry names a bank that is not in this bank's consortium directory. */
  | 'KEY_LIST_UNKNOWN_BANK'
  /** A key-list entry carries no signature by its bank's long-term key. */
  | 'KEY_LIST_UNSIGNED'
  /** A key-list entry's signature does not verify: substituted keys, or an advert from another round / session / bank. */
  | 'KEY_LIST_BAD_SIGNATURE'
  /** The key list carries this bank's own entry altered (other keys or another signature). */
  | 'KEY_LIST_OWN_KEYS_CHANGED'
  /** Verification is required but this bank has no consortium directory (transport policy). */
  | 'KEY_LIST_NO_DIRECTORY';

export class SecAggError extends Error {
  readonly code: SecAggErrorCode;
  constructor(code: SecAggErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.code = code;
    this.name = 'SecAggError';
  }
}
