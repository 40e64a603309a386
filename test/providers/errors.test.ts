import { APICallError } from 'ai';
import { describe, expect, it } from 'vitest';
import { retryAfterMs, toProviderError } from '../../src/providers/errors.ts';
import { DEFAULT_RETRY_POLICY, retryDelayMs, shouldRetry } from '../../src/providers/retry.ts';
import { ProviderError } from '../../src/providers/index.ts';

const ctx = { provider: 'openai' as const, secrets: ['sk-secret-abcdef123456'], timedOut: false, cancelled: false };

function apiError(statusCode: number | undefined, body = '{}', headers: Record<string, string> = {}) {
  return new APICallError({ message: 'fail', url: 'http://x', requestBodyValues: {}, statusCode, responseHeaders: headers, responseBody: body });
}

describe('toProviderError', () => {
  it.each([
    [401, 'auth_failed', false],
    [403, 'auth_failed', false],
    [429, 'rate_limited', true],
    [529, 'overloaded', true],
    [500, 'unavailable', true],
    [502, 'unavailable', true],
    [504, 'timeout', true],
    [400, 'bad_request', false],
    [404, 'bad_request', false],
  ])('status %i becomes %s (retryable %s)', (status, code, retryable) => {
    const error = toProviderError(apiError(status), ctx);
    expect(error.code).toBe(code);
    expect(error.status).toBe(status);
    expect(error.retryable).toBe(retryable);
  });

  it('reads overload from a 503 body and a bad Gemini key from a 400 body', () => {
    expect(toProviderError(apiError(503, '{"error":{"message":"The model is overloaded"}}'), ctx).code).toBe('overloaded');
    expect(toProviderError(apiError(400, '{"error":{"status":"INVALID_ARGUMENT","message":"API key not valid","details":[{"reason":"API_KEY_INVALID"}]}}'), ctx).code).toBe('auth_failed');
  });

  it("keeps the vendor's own message, with the key redacted", () => {
    const error = toProviderError(apiError(401, '{"error":{"message":"Incorrect API key provided: sk-secret-abcdef123456."}}'), ctx);
    expect(error.message).toBe('Incorrect API key provided: [REDACTED].');
    expect(toProviderError(apiError(404, '{"error":"model \\"x\\" not found"}'), ctx).message).toBe('model "x" not found');
  });

  it('a connection failure is unavailable and retryable', () => {
    const error = toProviderError(apiError(undefined), ctx);
    expect(error).toMatchObject({ code: 'unavailable', retryable: true });
  });

  it('knows timeouts and cancellations from the context', () => {
    expect(toProviderError(new Error('aborted'), { ...ctx, timedOut: true })).toMatchObject({ code: 'timeout', retryable: true });
    expect(toProviderError(new Error('aborted'), { ...ctx, cancelled: true })).toMatchObject({ code: 'cancelled', retryable: false });
  });
});

describe('retryAfterMs', () => {
  it('reads retry-after-ms, retry-after seconds and dates, and Gemini RetryInfo', () => {
    expect(retryAfterMs({ 'retry-after-ms': '250' })).toBe(250);
    expect(retryAfterMs({ 'Retry-After': '2' })).toBe(2000);
    const inThree = new Date(Date.now() + 3000).toUTCString();
    expect(retryAfterMs({ 'retry-after': inThree })).toBeGreaterThan(1000);
    expect(retryAfterMs({}, '{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"7s"}]}}')).toBe(7000);
    expect(retryAfterMs({})).toBeUndefined();
  });
});

describe('retry policy', () => {
  const retryable = new ProviderError({ code: 'unavailable', provider: 'groq', message: 'x', retryable: true });
  it('grows exponentially with jitter, capped, never below retry-after', () => {
    const policy = { ...DEFAULT_RETRY_POLICY, initialDelayMs: 100, maxDelayMs: 1000 };
    expect(retryDelayMs(policy, 0, retryable, () => 0)).toBe(50);
    expect(retryDelayMs(policy, 0, retryable, () => 1)).toBe(100);
    expect(retryDelayMs(policy, 3, retryable, () => 1)).toBe(800);
    expect(retryDelayMs(policy, 10, retryable, () => 1)).toBe(1000);
    const limited = new ProviderError({ code: 'rate_limited', provider: 'groq', message: 'x', retryable: true, retryAfterMs: 4000 });
    expect(retryDelayMs(policy, 0, limited, () => 0)).toBe(4000);
  });

  it('stops after maxRetries, on non-retryable errors, and when retry-after is too long', () => {
    expect(shouldRetry(DEFAULT_RETRY_POLICY, 0, retryable)).toBe(true);
    expect(shouldRetry(DEFAULT_RETRY_POLICY, 2, retryable)).toBe(false);
    const auth = new ProviderError({ code: 'auth_failed', provider: 'groq', message: 'x', retryable: false });
    expect(shouldRetry(DEFAULT_RETRY_POLICY, 0, auth)).toBe(false);
    const tooLong = new ProviderError({ code: 'rate_limited', provider: 'groq', message: 'x', retryable: true, retryAfterMs: 120_000 });
    expect(shouldRetry(DEFAULT_RETRY_POLICY, 0, tooLong)).toBe(false);
  });
});
