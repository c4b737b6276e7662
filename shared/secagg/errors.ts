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
  | 'INVALID_PARAMS';

export class SecAggError extends Error {
  readonly code: SecAggErrorCode;
  constructor(code: SecAggErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.code = code;
    this.name = 'SecAggError';
  }
}
