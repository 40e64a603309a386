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

/** An app and a running workflow run in it, for tests of the run store and the journal. */
export async function createRunningRun(storage: Storage, ids: { appId: string; runId: string }): Promise<void> {
  const now = new Date().toISOString();
  await storage.apps.create({ id: ids.appId, name: `app-${ids.appId.slice(0, 8)}`, settings: {}, created_at: now });
  await storage.runs.create({
    id: ids.runId, app_id: ids.appId, kind: 'workflow', workflow_id: null, workflow_name: 'w', workflow_version: 1, mode: null,
    definition: { name: 'w', steps: [] }, status: 'running', input: '', context: {}, output: null, outputs: {}, error: null, usage: {}, cost_usd: 0,
    idempotency_key: null, created_at: now, started_at: now, finished_at: null, updated_at: now, user: null, attempt: 1,
  });
}
