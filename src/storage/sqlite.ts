import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import { Kysely, SqliteAdapter, SqliteDialect, type DialectAdapter, type SqliteDatabase, type SqliteStatement } from 'kysely';
import type { Database } from './schema.ts';

/**
 * Kysely's SQLite dialect expects a better-sqlite3-like handle; node:sqlite is close enough that
 * this adapter is all it takes (and it keeps native addons out of the install).
 *
 * Prepared statements are kept (an LRU of {@link STATEMENT_CACHE_SIZE} by SQL text): Kysely asks
 * for a fresh one for every query, and compiling the same few dozen statements again and again
 * was a third of the SQLite time of a workflow step (bench/RESULTS.md). `all` and `run` finish
 * before they return, so one statement can serve every caller; `iterate` (a cursor left open)
 * gets a statement of its own.
 */
class NodeSqliteStatement implements SqliteStatement {
  readonly reader: boolean;
  readonly #statement: StatementSync;
  readonly #db: DatabaseSync;
  readonly #sql: string;

  constructor(db: DatabaseSync, sql: string) {
    this.#db = db;
    this.#sql = sql;
    this.#statement = db.prepare(sql);
    this.reader = this.#statement.columns().length > 0;
  }

  all(parameters: ReadonlyArray<unknown>): unknown[] {
    return this.#statement.all(...(parameters as SQLInputValue[]));
  }

  run(parameters: ReadonlyArray<unknown>) {
    return this.#statement.run(...(parameters as SQLInputValue[]));
  }

  iterate(parameters: ReadonlyArray<unknown>): IterableIterator<unknown> {
    return this.#db.prepare(this.#sql).iterate(...(parameters as SQLInputValue[]));
  }
}

/** Distinct SQL texts kept prepared (multi-row inserts make a few variants per table). */
const STATEMENT_CACHE_SIZE = 500;

/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside the COMMIT that
 * crosses 1000 WAL pages: that commit copies the pages into the database file and fsyncs it,
 * on the thread that serves requests (every step of a run paid about 0.1 ms for it on average,
 * and an unlucky one several ms: bench/RESULTS.md). A worker thread with a connection of its own
 * runs passive checkpoints instead (they never block writers or readers); the writing
 * connection keeps a high automatic threshold only as a backstop. The worker starts once a
 * database has seen some traffic, so short-lived stores (tests, CLI commands) never pay for it.
 */
const CHECKPOINT_INTERVAL_MS = 200;
const QUERIES_BEFORE_CHECKPOINTER = 1000;
const BACKSTOP_AUTOCHECKPOINT_PAGES = 20_000;
const CHECKPOINTER_SOURCE = `
const { DatabaseSync } = require('node:sqlite');
const { parentPort, workerData } = require('node:worker_threads');
const db = new DatabaseSync(workerData.file, { timeout: 0 });
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const timer = setInterval(() => {
  try { checkpoint.get(); } catch {}
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  try { db.close(); } catch {}
  parentPort.close();
});
`;

class NodeSqliteDatabase implements SqliteDatabase {
  readonly #db: DatabaseSync;
  readonly #file: string;
  readonly #statements = new Map<string, NodeSqliteStatement>();
  #queries = 0;
  #checkpointer: Worker | undefined;

  constructor(db: DatabaseSync, file: string) {
    this.#db = db;
    this.#file = file;
  }

  close(): void {
    this.#statements.clear();
    if (this.#checkpointer) {
      const worker = this.#checkpointer;
      this.#checkpointer = undefined;
      worker.postMessage('close');
      setTimeout(() => void worker.terminate(), 5000).unref();
    }
    this.#db.close();
  }

  prepare(sql: string): SqliteStatement {
    if (++this.#queries === QUERIES_BEFORE_CHECKPOINTER) this.#startCheckpointer();
    const cached = this.#statements.get(sql);
    if (cached) {
      // Most recently used last: the first entry is the one to drop when the cache is full.
      this.#statements.delete(sql);
      this.#statements.set(sql, cached);
      return cached;
    }
    // A deferred BEGIN takes the write lock only at the first write, and two processes that
    // both read first cannot both upgrade (SQLITE_BUSY without waiting). BEGIN IMMEDIATE waits
    // on busy_timeout instead, which is what makes concurrent migrations and writes safe.
    const text = sql.trim().toLowerCase() === 'begin' ? 'begin immediate' : sql;
    const statement = new NodeSqliteStatement(this.#db, text);
    this.#statements.set(sql, statement);
    if (this.#statements.size > STATEMENT_CACHE_SIZE) this.#statements.delete(this.#statements.keys().next().value!);
    return statement;
  }

  #startCheckpointer(): void {
    if (this.#file === ':memory:' || !this.#db.isOpen) return;
    const worker = new Worker(CHECKPOINTER_SOURCE, { eval: true, workerData: { file: this.#file, intervalMs: CHECKPOINT_INTERVAL_MS } });
    worker.unref();
    // Without the worker the connection checkpoints by itself again, as SQLite does by default.
    worker.once('error', () => {
      if (this.#checkpointer === worker && this.#db.isOpen) this.#db.exec('PRAGMA wal_autocheckpoint = 1000');
      this.#checkpointer = undefined;
    });
    this.#checkpointer = worker;
    this.#db.exec(`PRAGMA wal_autocheckpoint = ${BACKSTOP_AUTOCHECKPOINT_PAGES}`);
  }
}

/**
 * SQLite runs DDL inside transactions perfectly well; Kysely's adapter says otherwise, which
 * makes its migrator run without a transaction and without a lock. Saying yes puts each
 * migration run in one BEGIN IMMEDIATE transaction, which serializes concurrent processes.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class EnsembleSqliteDialect extends SqliteDialect {
  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

/** Opens (creating if needed) the embedded database file in WAL mode. */
export function openSqlite(file: string): Kysely<Database> {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  // The busy timeout must hold from the first statement: switching to WAL takes a lock too.
  const db = new DatabaseSync(file, { timeout: 10_000 });
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA foreign_keys = ON');
  db.exec('PRAGMA synchronous = NORMAL');
  return new Kysely<Database>({ dialect: new EnsembleSqliteDialect({ database: new NodeSqliteDatabase(db, file) }) });
}
