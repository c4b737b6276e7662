// The one error type protocol/ throws for anything a peer (or a key file) got wrong. `code` is stable
// and machine-readable; `message` says exactly what is wrong (which field, which tensor).

export const PROTOCOL_ERROR_CODES = [
  'OVERSIZE',
  'MALFORMED',
  'UNSUPPORTED_VERSION',
  'UNKNOWN_TYPE',
  'MISSING_FIELD',
  'INVALID_FIELD',
  'SHAPE_MISMATCH',
  'NON_FINITE',
  'BAD_SIGNATURE',
  'REPLAY',
  'STALE',
  'STALE_ROUND',
  'UNKNOWN_SENDER',
  'INVALID_KEY_FILE',
  'INSECURE_KEY_FILE',
  'SECURE_AGGREGATION_REQUIRED',
] as const;

export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

export class ProtocolError extends Error {
  override name = 'ProtocolError';
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isProtocolError(err: unknown, code?: ProtocolErrorCode): err is ProtocolError {
  return err instanceof ProtocolError && (code === undefined || err.code === code);
}
