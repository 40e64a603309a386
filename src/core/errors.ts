/**
 * The error base of Ensemble. Every error that can reach a client carries a stable `code`
 * (the contract's error codes) so callers branch on codes, never on messages.
 */
export type ErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'budget_exceeded'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'invalid_workflow'
  | 'rate_limited'
  | 'provider_error'
  | 'timeout'
  | 'internal_error';

/** HTTP status for each error code, as the contract fixes them. */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  budget_exceeded: 402,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  invalid_workflow: 422,
  rate_limited: 429,
  provider_error: 502,
  timeout: 504,
  internal_error: 500,
};

export class EnsembleError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EnsembleError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = details;
  }
}

export function isEnsembleError(error: unknown): error is EnsembleError {
  return error instanceof EnsembleError;
}
