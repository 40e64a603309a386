import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import type { LimiterFactory } from './rate-limits.ts';

/**
 * Limiters shared by every process through Redis. While Redis is unreachable each process falls
 * back to its own memory limiter (the insurance limiter), so calls go on, limited per process.
 */
export function redisLimiters(client: Redis): LimiterFactory {
  return (options) =>
    new RateLimiterRedis({
      ...options,
      storeClient: client,
      useRedisPackage: false,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory(options),
    });
}
