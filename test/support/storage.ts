import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStorage, type Storage } from '../../src/storage/index.ts';
import { createTestDatabase, HAS_POSTGRES } from './postgres.ts';

export interface StorageTarget {
  engine: 'sqlite' | 'postgres';
  /** Settings that open this target's storage (for a server under test). */
  open(): Promise<{ storage: Storage; databaseUrl: string | undefined; dataDir: string; cleanup(): Promise<void> }>;
}

const sqliteTarget: StorageTarget = {
  engine: 'sqlite',
  async open() {
    const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-sqlite-'));
    const storage = await openStorage({ dataDir });
    return {
      storage,
      databaseUrl: undefined,
      dataDir,
      cleanup: async () => {
        await storage.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
};

const postgresTarget: StorageTarget = {
  engine: 'postgres',
  async open() {
    const database = await createTestDatabase();
    const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-pg-'));
    const storage = await openStorage({ dataDir, databaseUrl: database.url });
    return {
      storage,
      databaseUrl: database.url,
      dataDir,
      cleanup: async () => {
        await storage.close();
        await database.drop();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
};

/** Both adapters when PostgreSQL is reachable; SQLite alone (with a loud warning) otherwise. */
export const STORAGE_TARGETS: StorageTarget[] = HAS_POSTGRES ? [sqliteTarget, postgresTarget] : [sqliteTarget];
