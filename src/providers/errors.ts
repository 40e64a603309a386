import { APICallError, NoObjectGeneratedError } from 'ai';
import { redactSecrets } from '../security/index.ts';
import type { ProviderName } from './types.ts';

export type ProviderErrorCode =
  | 'auth_failed'
  | 'rate_limited'
  | 'overloaded'
  | 'bad_request'
  | 'timeout'
  | 'unavailable'
  | 'invalid_response'
  | 'cancelled';

/**
 * Every failure of a vendor call, in one shape. `message` is the vendor's own message with any
 * key redacted; `retryable` tells the retry loop (and the workflow engine) whether trying again
 * can help; `retryAfterMs` is what the vendor asked us to wait.
 */
export class ProviderError extends Error {
  readonly code: ProviderErrorCode;
  readonly provider: ProviderName;
  /** The vendor's HTTP status, when the vendor answered. */
  readonly status: number | undefined;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;

  constructor(init: {
    code: ProviderErrorCode;
    provider: ProviderName;
    message: string;
    status?: number | undefined;
    retryable: boolean;
    retryAfterMs?: number | undefined;
  }) {
    super(init.message);
    this.name = 'ProviderError';
    this.code = init.code;
    this.provider = init.provider;
    this.status = init.status;
    this.retryable = init.retryable;
    this.retryAfterMs = init.retryAfterMs;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      provider: this.provider,
      message: this.message,
      status: this.status ?? null,
      retryable: this.retryable,
      retry_after_ms: this.retryAfterMs ?? null,
    };
  }
}

export function isProviderError(error: unknown): error is ProviderError {
  return error instanceof ProviderError;
}

/** What the caller knows about why a call ended, which the thrown error alone cannot tell. */
export interface FailureContext {
  provider: ProviderName;
  /** Secrets to strip from any message (the agent's key). */
  secrets: ReadonlyArray<string | undefined>;
  /** The per-attempt timeout fired. */
  timedOut: boolean;
  /** The caller's signal fired. */
  cancelled: boolean;
}

/** Converts anything a vendor call can throw into a {@link ProviderError}. */
export function toProviderError(error: unknown, ctx: FailureContext): ProviderError {
  if (error instanceof ProviderError) return error;
  const clean = (text: string) => redactSecrets(text, ctx.secrets);

  if (ctx.cancelled) {
    return new ProviderError({ code: 'cancelled', provider: ctx.provider, message: 'The call was cancelled', retryable: false });
  }
  if (ctx.timedOut) {
    return new ProviderError({ code: 'timeout', provider: ctx.provider, message: 'The vendor did not answer in time', retryable: true });
  }

  const apiError = findApiCallError(error);
  if (apiError) {
    const status = apiError.statusCode;
    const vendorMessage = clean(vendorMessageOf(apiError));
    if (status === undefined) {
      return new ProviderError({
        code: 'unavailable',
        provider: ctx.provider,
        message: vendorMessage,
        retryable: true,
      });
    }
    const code = codeForStatus(status, apiError.responseBody);
    return new ProviderError({
      code,
      provider: ctx.provider,
      message: vendorMessage,
      status,
      retryable: RETRYABLE_CODES.has(code),
      retryAfterMs: retryAfterMs(apiError.responseHeaders, apiError.responseBody),
    });
  }

  const streamError = asStreamError(error);
  if (streamError) {
    const code = streamError.statusCode ? codeForStatus(streamError.statusCode, undefined) : 'unavailable';
    return new ProviderError({
      code,
      provider: ctx.provider,
      message: clean(streamError.message),
      status: streamError.statusCode,
      retryable: streamError.isRetryable ?? RETRYABLE_CODES.has(code),
    });
  }

  if (NoObjectGeneratedError.isInstance(error)) {
    return new ProviderError({
      code: 'invalid_response',
      provider: ctx.provider,
      message: clean(`The vendor's answer did not match the requested schema: ${error.message}`),
      retryable: false,
    });
  }

  const message = error instanceof Error ? error.message : String(error);
  if (isNetworkFailure(error)) {
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    const detail = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : message;
    return new ProviderError({ code: 'unavailable', provider: ctx.provider, message: clean(`Cannot reach the vendor: ${detail}`), retryable: true });
  }
  if (error instanceof Error && error.name === 'AbortError') {
    return new ProviderError({ code: 'cancelled', provider: ctx.provider, message: 'The call was cancelled', retryable: false });
  }
  return new ProviderError({
    code: 'invalid_response',
    provider: ctx.provider,
    message: clean(message),
    retryable: false,
  });
}

/** fetch() rejects with a TypeError whose cause carries the socket error (ECONNREFUSED, ...). */
function isNetworkFailure(error: unknown): boolean {
  return error instanceof TypeError && (error.message === 'fetch failed' || (error as { cause?: { code?: unknown } }).cause?.code !== undefined);
}

const RETRYABLE_CODES: ReadonlySet<ProviderErrorCode> = new Set(['rate_limited', 'overloaded', 'timeout', 'unavailable']);

function codeForStatus(status: number, body: string | undefined): ProviderErrorCode {
  if (status === 401 || status === 403) return 'auth_failed';
  if (status === 429) return 'rate_limited';
  // Anthropic answers 529 when overloaded; others say so in a 503 body.
  if (status === 529 || (status === 503 && body !== undefined && /overload/i.test(body))) return 'overloaded';
  if (status === 408 || status === 504) return 'timeout';
  if (status >= 500) return 'unavailable';
  // Gemini reports a bad key as 400 API_KEY_INVALID.
  if (status === 400 && body !== undefined && /API_KEY_INVALID|invalid api key/i.test(body)) return 'auth_failed';
  return 'bad_request';
}

function findApiCallError(error: unknown): APICallError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    if (APICallError.isInstance(current)) return current;
    const withErrors = current as { lastError?: unknown; cause?: unknown };
    current = withErrors.lastError ?? withErrors.cause;
  }
  return undefined;
}

interface StreamErrorPayload {
  message: string;
  statusCode?: number;
  isRetryable?: boolean;
}

/** Errors reported inside a stream (after the HTTP status) arrive as plain objects. */
function asStreamError(error: unknown): StreamErrorPayload | undefined {
  if (typeof error !== 'object' || error === null || error instanceof Error) return undefined;
  const candidate = error as Record<string, unknown>;
  const nested = (candidate.error ?? candidate) as Record<string, unknown>;
  const message = typeof nested.message === 'string' ? nested.message : JSON.stringify(error);
  return {
    message,
    statusCode: typeof nested.statusCode === 'number' ? nested.statusCode : typeof nested.code === 'number' ? nested.code : undefined,
    isRetryable: typeof nested.isRetryable === 'boolean' ? nested.isRetryable : undefined,
  };
}

/** The vendor's own words: `error.message` (or `error` for Ollama) from the body, else the SDK's. */
function vendorMessageOf(error: APICallError): string {
  const body = error.responseBody;
  if (body) {
    try {
      const parsed = JSON.parse(body) as { error?: unknown; message?: unknown };
      if (typeof parsed.error === 'string') return parsed.error;
      if (parsed.error && typeof parsed.error === 'object') {
        const message = (parsed.error as { message?: unknown }).message;
        if (typeof message === 'string') return message;
      }
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      return body.slice(0, 500);
    }
  }
  return error.message;
}

/**
 * How long the vendor asked us to wait: `retry-after-ms` (OpenAI), `retry-after` in seconds or
 * as an HTTP date, or Gemini's `RetryInfo.retryDelay` in the error body.
 */
export function retryAfterMs(headers: Record<string, string> | undefined, body?: string): number | undefined {
  const lower: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers ?? {})) lower[key.toLowerCase()] = value;
  const ms = Number(lower['retry-after-ms']);
  if (lower['retry-after-ms'] !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
  const after = lower['retry-after'];
  if (after !== undefined) {
    const seconds = Number(after);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
    const date = Date.parse(after);
    if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  }
  const delay = body?.match(/"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"/);
  if (delay?.[1]) return Math.round(Number(delay[1]) * 1000);
  return undefined;
}
