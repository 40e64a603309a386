/**
 * Rate limits with rate-limiter-flexible: per agent (requests and tokens per minute) and per app
 * token (requests per minute). The store is memory in one process; cluster mode passes a factory
 * for the Redis store, so every process shares one count.
 */
import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { EnsembleError } from '../core/index.ts';

export type LimiterFactory = (options: { keyPrefix: string; points: number; duration: number }) => RateLimiterAbstract;

export const memoryLimiters: LimiterFactory = (options) => new RateLimiterMemory(options);

export interface RateLimit {
  requests_per_minute?: number;
  tokens_per_minute?: number;
}

export class RateLimitExceeded extends EnsembleError {
  readonly retryAfterMs: number;
  constructor(what: string, retryAfterMs: number) {
    super('rate_limited', `Rate limit of ${what} reached; retry after ${Math.ceil(retryAfterMs / 1000)} s`, { limit: what, retry_after_ms: retryAfterMs });
    this.name = 'RateLimitExceeded';
    this.retryAfterMs = retryAfterMs;
  }
}

export class RateLimits {
  readonly #factory: LimiterFactory;
  /** Window of a "per minute" limit, in seconds; shorter only in tests. */
  readonly #windowSeconds: number;
  readonly #limiters = new Map<string, RateLimiterAbstract>();

  constructor(factory: LimiterFactory = memoryLimiters, windowSeconds = 60) {
    this.#factory = factory;
    this.#windowSeconds = windowSeconds;
  }

  /** Takes `points` from the limiter `name` (of size `limit`); throws {@link RateLimitExceeded} when empty. */
  async take(name: string, key: string, limit: number, points: number, what: string): Promise<void> {
    const limiter = this.#limiter(name, limit);
    try {
      await limiter.consume(key, Math.min(points, limit));
    } catch (error) {
      if (error instanceof RateLimiterRes) throw new RateLimitExceeded(what, Math.max(1, error.msBeforeNext));
      throw error;
    }
  }

  /** Gives points back (the real token count was lower than the estimate taken). */
  async give(name: string, key: string, limit: number, points: number): Promise<void> {
    if (points > 0) await this.#limiter(name, limit).reward(key, points);
  }

  /** Takes more points without refusing (the real token count was higher than the estimate). */
  async charge(name: string, key: string, limit: number, points: number): Promise<void> {
    if (points > 0) await this.#limiter(name, limit).penalty(key, points);
  }

  #limiter(name: string, limit: number): RateLimiterAbstract {
    const id = `${name}:${limit}`;
    let limiter = this.#limiters.get(id);
    if (!limiter) {
      limiter = this.#factory({ keyPrefix: `ensemble:rl:${id}`, points: limit, duration: this.#windowSeconds });
      this.#limiters.set(id, limiter);
    }
    return limiter;
  }
}
