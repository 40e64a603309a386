import { join } from 'node:path';
import { KyselyStorage } from './kysely-store.ts';
import { openPostgres } from './postgres.ts';
import { openSqlite } from './sqlite.ts';
import type { Storage } from './types.ts';

export type * from './types.ts';
export { USAGE_GROUPS } from './types.ts';
export { KyselyStorage } from './kysely-store.ts';
export { LeaseLostError } from './run-store.ts';

export interface StorageOptions {
  /** A postgres:// URL selects PostgreSQL; otherwise the embedded SQLite file is used. */
  databaseUrl?: string | undefined;
  /** Where the embedded database lives (`<dataDir>/ensemble.db`). */
  dataDir: string;
}

/** Opens the configured storage and brings its schema up to date. */
export async function openStorage(options: StorageOptions): Promise<Storage> {
  const storage = options.databaseUrl
    ? new KyselyStorage(openPostgres(options.databaseUrl), 'postgres')
    : new KyselyStorage(openSqlite(join(options.dataDir, 'ensemble.db')), 'sqlite');
  try {
    await storage.migrate();
  } catch (error) {
    await storage.close();
    throw error;
  }
  return storage;
}
