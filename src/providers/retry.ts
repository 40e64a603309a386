import type { ProviderError } from './errors.ts';

/**
 * How a provider call is retried. Every setting has a default; callers override what they need.
 */
export interface RetryPolicy {
  /** Retries after the first attempt. Default 2 (three attempts in all). */
  maxRetries: number;
  /** Delay before the first retry, before jitter. Default 500 ms. */
  initialDelayMs: number;
  /** Growth of the delay per retry. Default 2. */
  backoffFactor: number;
  /** Cap of a computed delay. Default 20 000 ms. */
  maxDelayMs: number;
  /**
   * The longest `retry-after` we are willing to wait. A vendor asking for more ends the call
   * with its error (and `retryAfterMs`) instead of holding a worker. Default 60 000 ms.
   */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = {
  maxRetries: 2,
  initialDelayMs: 500,
  backoffFactor: 2,
  maxDelayMs: 20_000,
  maxRetryAfterMs: 60_000,
};

/**
 * The wait before retry number `retry` (0-based): "full jitter" exponential backoff, but never
 * shorter than what the vendor asked for in `retry-after`.
 */
export function retryDelayMs(policy: RetryPolicy, retry: number, error: ProviderError, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.backoffFactor ** retry);
  const jittered = Math.round(ceiling / 2 + (random() * ceiling) / 2);
  return Math.max(jittered, error.retryAfterMs ?? 0);
}

export function shouldRetry(policy: RetryPolicy, retry: number, error: ProviderError): boolean {
  if (!error.retryable || retry >= policy.maxRetries) return false;
  return (error.retryAfterMs ?? 0) <= policy.maxRetryAfterMs;
}

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
