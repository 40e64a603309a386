import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
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

class NodeSqliteDatabase implements SqliteDatabase {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, NodeSqliteStatement>();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  close(): void {
    this.#statements.clear();
    this.#db.close();
  }

  prepare(sql: string): SqliteStatement {
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
  return new Kysely<Database>({ dialect: new EnsembleSqliteDialect({ database: new NodeSqliteDatabase(db) }) });
}
