/**
 * The real Redis server for tests. Unreachable: the Redis tests are skipped with a loud warning,
 * except under CI=true, where they fail.
 */
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.ENSEMBLE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function reachable(): Promise<boolean> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 3000, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch (error) {
    if (process.env.CI === 'true') throw new Error(`CI=true but Redis at ${REDIS_URL} is unreachable: ${(error as Error).message}`, { cause: error });
    console.warn(`\n!!! Redis at ${REDIS_URL} is unreachable (${(error as Error).message}); Redis tests are SKIPPED.\n`);
    return false;
  } finally {
    client.disconnect();
  }
}

export const HAS_REDIS = await reachable();

/** A Redis database of its own (flushed), as a URL. */
export async function freshRedisDb(index: number): Promise<string> {
  const url = `${REDIS_URL.replace(/\/\d*$/, '')}/${index}`;
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  await client.flushdb();
  client.disconnect();
  return url;
}
