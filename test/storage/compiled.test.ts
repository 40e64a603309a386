import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeShaped, rowParameters } from '../../src/storage/compiled.ts';
import { openStorage, type KyselyStorage } from '../../src/storage/index.ts';
import type { Database } from '../../src/storage/schema.ts';

describe('queries of a known shape', () => {
  let dir: string;
  let storage: KyselyStorage;
  let db: Kysely<Database>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ensemble-shaped-'));
    storage = (await openStorage({ dataDir: dir })) as KyselyStorage;
    db = storage.db;
  });
  afterAll(async () => {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const app = (id: string) => ({ id, name: `app-${id}`, created_at: '2026-11-24T00:00:00.000Z', settings: '{}' });
  const columns = ['id', 'name', 'created_at', 'settings'] as const;

  it('builds the query once, then runs the same SQL with the new parameters', async () => {
    let builds = 0;
    for (const id of ['a1', 'a2', 'a3']) {
      const row = app(id);
      await executeShaped(db, 'test.apps.insert', rowParameters([row], columns), () => {
        builds++;
        return db.insertInto('apps').values(row);
      });
    }
    expect(builds).toBe(1);
    const names = await db.selectFrom('apps').select('name').where('id', 'in', ['a1', 'a2', 'a3']).orderBy('id').execute();
    expect(names.map((r) => r.name)).toEqual(['app-a1', 'app-a2', 'app-a3']);
  });

  it('never caches a shape whose stated parameters are not the built ones: it stays correct', async () => {
    let builds = 0;
    for (const id of ['b1', 'b2']) {
      const row = app(id);
      // Parameters stated in the wrong order.
      await executeShaped(db, 'test.apps.insert.wrong', rowParameters([row], ['name', 'id', 'created_at', 'settings']), () => {
        builds++;
        return db.insertInto('apps').values(row);
      });
    }
    expect(builds).toBe(2);
    const rows = await db.selectFrom('apps').select(['id', 'name']).where('id', 'in', ['b1', 'b2']).orderBy('id').execute();
    expect(rows).toEqual([
      { id: 'b1', name: 'app-b1' },
      { id: 'b2', name: 'app-b2' },
    ]);
  });

  it('a missing value is not of the shape: built every time', async () => {
    let builds = 0;
    const read = (id: string | undefined) =>
      executeShaped(db, 'test.apps.get', [id], () => {
        builds++;
        return db.selectFrom('apps').select('name').where('id', '=', id ?? 'a1');
      });
    expect((await read(undefined)).rows).toEqual([{ name: 'app-a1' }]);
    expect((await read('a2')).rows).toEqual([{ name: 'app-a2' }]);
    expect((await read('a3')).rows).toEqual([{ name: 'app-a3' }]);
    expect(builds).toBe(2);
  });
});
