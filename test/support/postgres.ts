/**
 * The real PostgreSQL server for tests. Each caller gets its own throwaway database. When the
 * server is unreachable the PostgreSQL tests are skipped with a loud warning, except under
 * CI=true, where they fail: CI must exercise the real path.
 */
import pg from 'pg';

export const POSTGRES_ADMIN_URL = process.env.ENSEMBLE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let reachable: Promise<boolean> | undefined;

export function postgresReachable(): Promise<boolean> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('select 1');
      return true;
    } catch (error) {
      if (process.env.CI === 'true') {
        throw new Error(`CI=true but PostgreSQL at ${POSTGRES_ADMIN_URL} is unreachable: ${(error as Error).message}`, { cause: error });
      }
      console.warn(`\n!!! PostgreSQL at ${POSTGRES_ADMIN_URL} is unreachable (${(error as Error).message}); PostgreSQL tests are SKIPPED.\n`);
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return reachable;
}

/** Top-level await in a test file: whether to run its PostgreSQL suites. */
export const HAS_POSTGRES = await postgresReachable();

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(prefix = 'ensemble_t'): Promise<TestDatabase> {
  const name = `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}
