import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import { Kysely, SelectQueryNode, SqliteAdapter, SqliteDialect, type CompiledQuery, type DatabaseConnection, type DialectAdapter, type Driver, type QueryResult, type SqliteDatabase, type SqliteStatement } from 'kysely';
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

  get inTransaction(): boolean {
    return this.#db.isTransaction;
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

  /**
   * Closes the checkpointer's connection before this one, and waits for it: the last connection
   * to close checkpoints and removes the WAL files, and that must be over when the store says it
   * is closed (a caller may delete the directory next).
   */
  async closeAndWait(): Promise<void> {
    const worker = this.#checkpointer;
    if (worker) {
      this.#checkpointer = undefined;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('close');
      const timer = setTimeout(() => void worker.terminate(), 5000);
      await exited;
      clearTimeout(timer);
    }
    this.close();
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
    const statement = new NodeSqliteStatement(this.#db, sql);
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
 * migration run in one transaction, which serializes concurrent processes. The connection is
 * shared by the group-commit driver below, which does its own scheduling: Kysely's mutex (taken
 * when an adapter has one connection) would hand it out one query at a time.
 */
class EnsembleSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }

  override get supportsMultipleConnections(): boolean {
    return true;
  }
}

class EnsembleSqliteDialect extends SqliteDialect {
  readonly #database: NodeSqliteDatabase;

  constructor(database: NodeSqliteDatabase) {
    super({ database });
    this.#database = database;
  }

  override createAdapter(): DialectAdapter {
    return new EnsembleSqliteAdapter();
  }

  override createDriver(): Driver {
    return new GroupCommitDriver(this.#database);
  }
}

/**
 * Drivers of this process whose batch is open. A batch holds the database's write lock until
 * its turn ends; another connection of the same process (two stores on one file) that wants the
 * lock would wait for it synchronously, and the turn could never end. It commits those first.
 */
const openBatches = new Set<GroupCommitDriver>();

/**
 * A batch commits at the end of its turn, or once it holds this many writes: in a burst (thousands
 * of calls ending in one turn) the writers would otherwise all wait, with everything they hold,
 * for the one commit at its end.
 */
const MAX_BATCH_WRITES = 256;

/** Statements that change rows and may share a transaction with others. */
const BATCHABLE_WRITE = /^\s*(insert|update|delete|replace)\b/i;
/** A statement starting with a common table expression writes only if it says so. */
const WITH_WRITE = /^\s*with\b[\s\S]*\b(insert|update|delete|replace)\b/i;

const STORE_CLOSED = new Error('the store is closed');

/** Work waiting for the connection: it runs when no transaction of a caller holds it (or fails when the store closes). */
type Turn = (closed?: Error) => void;

/**
 * A caller's view of the one connection: its statements run as autocommit units, or, between
 * `beginTransaction` and its end, inside the caller's own savepoint.
 */
class GroupCommitConnection implements DatabaseConnection {
  readonly #driver: GroupCommitDriver;
  /**
   * The savepoint of the caller's open transaction. One name serves all: only one caller's
   * transaction is open at a time.
   */
  savepoint: string | undefined;
  /** Why the caller's transaction cannot go on (SQLite ended it, or the store closed). */
  lost: unknown;

  constructor(driver: GroupCommitDriver) {
    this.#driver = driver;
  }

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.#driver.execute<R>(this, query);
  }

  async *streamQuery<R>(query: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    if (!SelectQueryNode.is(query.query)) throw new Error('Only select queries can be streamed');
    for (const row of await this.#driver.iterate(this, query)) yield { rows: [row as R] };
  }
}

/**
 * Group commit. Every commit of a WAL database writes the pages it changed to the log; a step of
 * a run used to commit four times (its started state, its usage record, its audit entry, its
 * completed state), and a fan-out of 16 calls in flight sixty-four times, each paying for the
 * same index pages again (bench/FIXES.md). Here, writes that arrive in the same turn of the event
 * loop share one transaction, committed once the turn is over (`setImmediate`):
 *
 * - An autocommit INSERT / UPDATE / DELETE runs at once inside the open batch (SQLite undoes a
 *   failed statement by itself, the batch goes on); its caller hears of it after the COMMIT.
 * - A caller's transaction is a savepoint inside the batch and holds the connection until it
 *   ends: nothing of anyone else runs inside it. A rollback undoes its savepoint only; its
 *   commit is acknowledged with the batch's.
 * - Anything else (a read, DDL, a PRAGMA) commits the open batch first, so no caller ever reads
 *   another caller's writes before they are durable.
 * - A failed COMMIT (or a batch SQLite rolled back by itself) fails every write of the batch.
 *
 * Durability is unchanged: no caller is told a write is done before the transaction that holds
 * it has committed.
 */
class GroupCommitDriver implements Driver {
  readonly #database: NodeSqliteDatabase;
  /** Callers waiting for the connection, in arrival order. */
  readonly #waiting: Turn[] = [];
  /** The connection whose transaction holds the connection now. */
  #holder: GroupCommitConnection | undefined;
  #batchOpen = false;
  /** Writes of the open batch, told of its outcome when it ends. */
  #acks: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  #commitScheduled = false;
  #closed = false;

  constructor(database: NodeSqliteDatabase) {
    this.#database = database;
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return new GroupCommitConnection(this);
  }

  async releaseConnection(): Promise<void> {}

  beginTransaction(connection: DatabaseConnection): Promise<void> {
    const caller = connection as GroupCommitConnection;
    return this.#whenFree<void>((resolve) => {
      this.#openBatch();
      this.#control('savepoint ensemble_tx');
      caller.savepoint = 'ensemble_tx';
      this.#holder = caller;
      resolve(undefined);
    });
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    const caller = connection as GroupCommitConnection;
    return new Promise((resolve, reject) => {
      const name = caller.savepoint;
      if (caller.lost) {
        if (this.#holder === caller) this.#endTransaction(caller);
        return reject(caller.lost);
      }
      if (!name || this.#holder !== caller) return reject(new Error('no transaction to commit'));
      try {
        this.#control(`release ${name}`);
      } catch (error) {
        this.#endTransaction(caller);
        return reject(error);
      }
      this.#acknowledge({ resolve, reject });
      this.#endTransaction(caller);
    });
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const caller = connection as GroupCommitConnection;
    // A commit that failed has ended the transaction already: nothing is left to undo.
    if (!caller.savepoint || this.#holder !== caller) return;
    try {
      if (this.#database.inTransaction) this.#undo(caller.savepoint);
    } finally {
      this.#endTransaction(caller);
    }
  }

  async destroy(): Promise<void> {
    // A transaction still open is undone, never committed half-way; whoever waits is refused.
    const holder = this.#holder;
    if (holder?.savepoint && this.#database.inTransaction) this.#undo(holder.savepoint);
    if (holder) holder.lost = new Error('the store was closed during the transaction');
    this.#holder = undefined;
    this.#closed = true;
    for (const turn of this.#waiting.splice(0)) turn(STORE_CLOSED);
    this.#commit();
    await this.#database.closeAndWait();
  }

  execute<R>(caller: GroupCommitConnection, query: CompiledQuery): Promise<QueryResult<R>> {
    if (caller.lost) return Promise.reject(caller.lost);
    if (this.#holder === caller) {
      try {
        return Promise.resolve(this.#run<R>(query));
      } catch (error) {
        // A failure that ended the whole transaction (I/O, a full disk, OR ROLLBACK) ends the
        // caller's too: its later statements must not run on their own, outside any transaction.
        if (!this.#database.inTransaction) {
          caller.lost = error;
          this.#batchLost(error);
        }
        return Promise.reject(error);
      }
    }
    const write = BATCHABLE_WRITE.test(query.sql) || WITH_WRITE.test(query.sql);
    return this.#whenFree((resolve, reject) => {
      if (!write) {
        this.#commit();
        resolve(this.#run<R>(query));
        return;
      }
      this.#openBatch();
      let result: QueryResult<R>;
      try {
        result = this.#run<R>(query);
      } catch (error) {
        // A statement's failure is undone by SQLite alone; a failure that ended the whole
        // transaction (I/O, a full disk) ends the batch for everyone.
        if (!this.#database.inTransaction) this.#batchLost(error);
        throw error;
      }
      // A write with RETURNING reads rows, but its rows are its own: it is still acknowledged
      // only once committed.
      this.#acknowledge({ resolve: () => resolve(result), reject });
    });
  }

  async iterate(caller: GroupCommitConnection, query: CompiledQuery): Promise<unknown[]> {
    return (await this.execute(caller, query)).rows as unknown[];
  }

  /** Runs `turn` as soon as no transaction holds the connection (and earlier callers have run). */
  #whenFree<T>(turn: (resolve: (value: T) => void, reject: (error: unknown) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = (closed?: Error) => {
        if (closed) return reject(closed);
        try {
          turn(resolve, reject);
        } catch (error) {
          reject(error);
        }
      };
      if (this.#closed) run(STORE_CLOSED);
      else if (!this.#holder && this.#waiting.length === 0) run();
      else this.#waiting.push(run);
    });
  }

  #run<R>(query: CompiledQuery): QueryResult<R> {
    const statement = this.#database.prepare(query.sql);
    if (statement.reader) return { rows: statement.all(query.parameters) as R[] };
    const { changes, lastInsertRowid } = statement.run(query.parameters);
    return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
  }

  /** Commits the open batch unless a caller's transaction holds it (that one ends by itself). */
  commitIfIdle(): void {
    if (!this.#holder) this.#commit();
  }

  /** Tells the writer of the batch's outcome once it ends; a full batch commits now. */
  #acknowledge(ack: { resolve: () => void; reject: (error: unknown) => void }): void {
    this.#acks.push(ack);
    if (this.#acks.length >= MAX_BATCH_WRITES) this.#commit();
  }

  /** Undoes a caller's savepoint, leaving the rest of the batch as it was. */
  #undo(savepoint: string): void {
    this.#control(`rollback to ${savepoint}`);
    this.#control(`release ${savepoint}`);
  }

  /** Transaction control, prepared once (it runs several times per batch). */
  #control(sql: string): void {
    this.#database.prepare(sql).run([]);
  }

  #openBatch(): void {
    if (this.#batchOpen) return;
    for (const other of openBatches) if (other !== this) other.commitIfIdle();
    // IMMEDIATE: the write lock is taken now (waiting on busy_timeout for another process),
    // never upgraded later, where two processes could deadlock.
    this.#control('begin immediate');
    this.#batchOpen = true;
    openBatches.add(this);
    if (!this.#commitScheduled) {
      this.#commitScheduled = true;
      setImmediate(() => {
        this.#commitScheduled = false;
        if (!this.#holder && !this.#closed) this.#commit();
      });
    }
  }

  #endTransaction(caller: GroupCommitConnection): void {
    caller.savepoint = undefined;
    if (this.#holder === caller) this.#holder = undefined;
    if (this.#batchOpen && !this.#database.inTransaction) this.#batchLost(new Error('the transaction was rolled back by SQLite'));
    // The turn ended while the transaction held the connection: the batch commits now.
    if (!this.#commitScheduled && !this.#holder) this.#commit();
    while (!this.#holder && this.#waiting.length > 0) this.#waiting.shift()!();
  }

  /** Commits the open batch and tells its writers. */
  #commit(): void {
    if (!this.#batchOpen) return;
    const acks = this.#acks;
    this.#acks = [];
    this.#batchOpen = false;
    openBatches.delete(this);
    try {
      this.#control('commit');
    } catch (error) {
      if (this.#database.inTransaction) this.#control('rollback');
      for (const ack of acks) ack.reject(error);
      return;
    }
    for (const ack of acks) ack.resolve();
  }

  #batchLost(error: unknown): void {
    const acks = this.#acks;
    this.#acks = [];
    this.#batchOpen = false;
    openBatches.delete(this);
    for (const ack of acks) ack.reject(error);
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
  return new Kysely<Database>({ dialect: new EnsembleSqliteDialect(new NodeSqliteDatabase(db, file)) });
}
