import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { sql, type Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/storage/schema.ts';
import { openSqlite } from '../../src/storage/sqlite.ts';

/** The group-commit driver of the embedded database: writes of one event-loop turn share a transaction. */
describe('SQLite group commit', () => {
  let dir: string;
  let file: string;
  let db: Kysely<Database>;
  let observer: DatabaseSync;

  const count = () => Number((observer.prepare('select count(*) as n from t').get() as { n: number }).n);
  const insert = (id: number, note = 'x') => sql`insert into t (id, note) values (${id}, ${note})`.execute(db);

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ensemble-group-commit-'));
    file = join(dir, 'test.db');
    db = openSqlite(file);
    await sql`create table t (id integer primary key, note text not null)`.execute(db);
    // Another connection, as another process would see the file.
    observer = new DatabaseSync(file);
  });

  afterEach(async () => {
    observer.close();
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits the writes of one turn together, and tells no writer before the commit', async () => {
    const writes = Array.from({ length: 50 }, (_, i) => insert(i));
    let told = 0;
    for (const w of writes) void w.then(() => told++);
    // Issued, executed inside the open batch, not yet committed: nobody else sees them, nobody was told.
    for (let i = 0; i < 100; i++) await Promise.resolve();
    expect(count()).toBe(0);
    expect(told).toBe(0);
    await Promise.all(writes);
    expect(count()).toBe(50);
  });

  it('a batch that fills up commits before its turn ends', async () => {
    const writes = Array.from({ length: 300 }, (_, i) => insert(1000 + i));
    for (let i = 0; i < 100; i++) await Promise.resolve();
    // The first 256 are committed (and their writers told); the rest wait for the turn's end.
    expect(count()).toBe(256);
    await Promise.all(writes);
    expect(count()).toBe(300);
  });

  it('a failing statement fails its own caller only; the rest of the batch commits', async () => {
    await insert(1);
    const results = await Promise.allSettled([insert(2), insert(1, 'duplicate'), insert(3)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(Error);
    expect(observer.prepare('select id, note from t order by id').all()).toEqual([
      { id: 1, note: 'x' },
      { id: 2, note: 'x' },
      { id: 3, note: 'x' },
    ]);
  });

  it("a transaction rolled back undoes its own writes, not those of the batch it shared", async () => {
    const before = insert(10);
    const failed = db.transaction().execute(async (trx) => {
      await sql`insert into t (id, note) values (20, 'in tx')`.execute(trx);
      // Another caller writes while the transaction is open: it waits, and is not undone with it.
      const during = insert(30);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await sql`insert into t (id, note) values (21, 'in tx')`.execute(trx);
      void during;
      throw new Error('changed my mind');
    });
    const during = new Promise((resolve) => setTimeout(resolve, 5)).then(() => insert(31));
    await expect(failed).rejects.toThrow('changed my mind');
    await Promise.all([before, during]);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect((observer.prepare('select id from t order by id').all() as Array<{ id: number }>).map((r) => r.id)).toEqual([10, 30, 31]);
  });

  it('a transaction sees its own writes, commits with the batch, and nothing runs inside it', async () => {
    const order: string[] = [];
    const tx = db.transaction().execute(async (trx) => {
      await sql`insert into t (id, note) values (1, 'tx')`.execute(trx);
      order.push('tx wrote');
      await new Promise((resolve) => setTimeout(resolve, 10));
      const rows = await sql<{ n: number }>`select count(*) as n from t`.execute(trx);
      order.push(`tx read ${rows.rows[0]!.n}`);
      return 'done';
    });
    await new Promise((resolve) => setTimeout(resolve, 2));
    const other = insert(2).then(() => order.push('other committed'));
    expect(await tx).toBe('done');
    await other;
    expect(order).toEqual(['tx wrote', 'tx read 1', 'other committed']);
    expect(count()).toBe(2);
  });

  it('a read commits the open batch first: it never sees a write that is not durable', async () => {
    const write = insert(7);
    const rows = await sql<{ n: number }>`select count(*) as n from t`.execute(db);
    // The read saw the write only because it was committed before the read ran.
    expect(rows.rows[0]!.n).toBe(1);
    expect(count()).toBe(1);
    await write;
  });

  it('updates report the rows they changed; a write with RETURNING gets its rows after the commit', async () => {
    await Promise.all([insert(1), insert(2), insert(3)]);
    const updated = await sql`update t set note = 'y' where id >= 2`.execute(db);
    expect(updated.numAffectedRows).toBe(2n);
    const returned = await sql<{ id: number }>`insert into t (id, note) values (4, 'z') returning id`.execute(db);
    expect(returned.rows).toEqual([{ id: 4 }]);
    expect(count()).toBe(4);
  });

  it('closing during a transaction undoes it (never half of it) and refuses whoever waits', async () => {
    let inside: () => void = () => {};
    const reachedInside = new Promise<void>((resolve) => (inside = resolve));
    const tx = db.transaction().execute(async (trx) => {
      await sql`insert into t (id, note) values (40, 'tx')`.execute(trx);
      inside();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await sql`insert into t (id, note) values (41, 'tx')`.execute(trx);
    });
    const txOutcome = tx.then(() => 'committed', (error: Error) => error.message);
    await reachedInside;
    const waiting = insert(42).then(() => 'stored', (error: Error) => error.message);
    await db.destroy();
    expect(await txOutcome).toBe('the store was closed during the transaction');
    expect(await waiting).toBe('the store is closed');
    expect(count()).toBe(0);
    db = openSqlite(file);
  });

  it('a statement that starts with a common table expression is a read unless it writes', async () => {
    await insert(1);
    const rows = await sql<{ n: number }>`with x as (select id from t) select count(*) as n from x`.execute(db);
    expect(rows.rows[0]!.n).toBe(1);
    await sql`with x as (select 2 as id) insert into t (id, note) select id, 'cte' from x`.execute(db);
    expect(count()).toBe(2);
  });

  it('closing commits what is pending', async () => {
    const write = insert(99);
    // Microtasks only: the write reaches the connection, the turn (and its commit) is not over.
    for (let i = 0; i < 100; i++) await Promise.resolve();
    expect(count()).toBe(0);
    await db.destroy();
    await write;
    expect(count()).toBe(1);
    db = openSqlite(file);
  });
});
