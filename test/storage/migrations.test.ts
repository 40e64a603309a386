/** Migrations: versioned, idempotent, and safe when several processes start at once. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStorage } from '../../src/storage/index.ts';
import { createTestDatabase, HAS_POSTGRES } from '../support/postgres.ts';

const engines: Array<'sqlite' | 'postgres'> = HAS_POSTGRES ? ['sqlite', 'postgres'] : ['sqlite'];

/** Opens storage (running migrations) in a separate Node process. */
function migrateInChild(dataDir: string, databaseUrl: string | undefined): Promise<{ code: number | null; stderr: string }> {
  const script = `
    const { openStorage } = await import(${JSON.stringify(new URL('../../src/storage/index.ts', import.meta.url).href)});
    const storage = await openStorage({ dataDir: ${JSON.stringify(dataDir)}, databaseUrl: ${JSON.stringify(databaseUrl)} });
    await storage.close();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

describe.each(engines)('migrations on %s', (engine) => {
  it('run from four processes at once, then again, and leave one consistent schema', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-migrate-'));
    const database = engine === 'postgres' ? await createTestDatabase() : undefined;
    try {
      const results = await Promise.all([1, 2, 3, 4].map(() => migrateInChild(dataDir, database?.url)));
      for (const result of results) expect(result.code, result.stderr).toBe(0);

      const storage = await openStorage({ dataDir, databaseUrl: database?.url });
      await storage.migrate();
      const now = new Date().toISOString();
      await storage.apps.create({ id: '11111111-1111-4111-8111-111111111111', name: 'm', settings: { a: 1 }, created_at: now });
      expect(await storage.apps.getByName('m')).toMatchObject({ settings: { a: 1 } });
      await storage.close();
    } finally {
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe.each(engines)('stores on %s', (engine) => {
  it('page the audit log newest first, filter it, and keep agents per app', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-stores-'));
    const database = engine === 'postgres' ? await createTestDatabase() : undefined;
    const storage = await openStorage({ dataDir, databaseUrl: database?.url });
    try {
      const app = { id: '22222222-2222-4222-8222-222222222222', name: 'a', settings: {}, created_at: new Date().toISOString() };
      await storage.apps.create(app);
      for (let i = 0; i < 5; i++) {
        await storage.audit.append({
          id: `00000000-0000-4000-8000-00000000000${i}`,
          app_id: app.id,
          at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
          actor: i % 2 ? 'admin' : 'token:x',
          action: i % 2 ? 'agent.update' : 'agent.create',
          target_type: 'agent',
          target_id: `t${i}`,
          outcome: 'success',
          details: { i },
        });
      }
      const first = await storage.audit.list(app.id, { limit: 2 });
      expect(first.map((e) => e.details.i)).toEqual([4, 3]);
      const next = await storage.audit.list(app.id, { limit: 2, before: first[1]!.id });
      expect(next.map((e) => e.details.i)).toEqual([2, 1]);
      expect((await storage.audit.list(app.id, { limit: 10, action: 'agent.update' })).map((e) => e.details.i)).toEqual([3, 1]);
      expect((await storage.audit.list(app.id, { limit: 10, actor: 'admin', from: '2026-01-01T00:00:02.000Z' })).map((e) => e.details.i)).toEqual([3]);
      expect(await storage.audit.list('33333333-3333-4333-8333-333333333333', { limit: 10 })).toEqual([]);
    } finally {
      await storage.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
