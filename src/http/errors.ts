import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { EnsembleError, isEnsembleError } from '../core/index.ts';

/** The contract's error shape: `{"error": {"code", "message", "details"}}`. */
export interface ErrorBody {
  error: { code: string; message: string; details: unknown };
}

export function errorBody(code: string, message: string, details: unknown = null): ErrorBody {
  return { error: { code, message, details } };
}

/** Answers with an EnsembleError in the contract's shape. */
export function sendError(c: Context, error: EnsembleError): Response {
  const retryAfterMs = (error.details as { retry_after_ms?: unknown } | null)?.retry_after_ms;
  if (error.code === 'rate_limited' && typeof retryAfterMs === 'number') c.header('Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  return c.json(errorBody(error.code, error.message, error.details ?? null), error.status as ContentfulStatusCode);
}

/** Anything thrown by a handler: known errors keep their code, the rest become a bare 500. */
export function toEnsembleError(error: unknown): EnsembleError {
  if (isEnsembleError(error)) return error;
  return new EnsembleError('internal_error', 'Internal error');
}
