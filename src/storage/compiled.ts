import { CompiledQuery, type Compilable, type Kysely, type QueryResult, type Transaction } from 'kysely';
import type { Database } from './schema.ts';

type Executor = Kysely<Database> | Transaction<Database>;

/** SQL texts by dialect (one adapter object per database handle and its transactions), then by shape. */
const texts = new WeakMap<object, Map<string, string | null>>();

/** Shapes remembered per dialect; past this, shapes are built every time as before. */
const MAX_SHAPES = 2000;

/**
 * Runs a query of a known shape without building it again. Kysely builds and compiles every query
 * from scratch (operation nodes, frozen objects, identifier quoting): on the hot path of a
 * workflow step that was more CPU than SQLite's own work (bench/FIXES.md). The SQL of a query
 * depends on its shape only: the caller names the shape (`key`) and states the parameters in
 * order; the first time, the query is built with Kysely and its parameters are checked against
 * the stated ones. A shape whose parameters do not match is never cached: it keeps being built,
 * so a wrong `parameters` can cost speed, never correctness.
 */
export async function executeShaped<R = unknown>(db: Executor, key: string, parameters: readonly unknown[], build: () => Compilable<R>): Promise<QueryResult<R>> {
  // A missing value drops its column from Kysely's SQL: such a query is not of the stated shape.
  if (parameters.includes(undefined)) return db.executeQuery<R>(build().compile());
  const adapter = db.getExecutor().adapter;
  let shapes = texts.get(adapter);
  if (!shapes) texts.set(adapter, (shapes = new Map()));
  const text = shapes.get(key);
  if (typeof text === 'string') return db.executeQuery<R>(CompiledQuery.raw(text, parameters as unknown[]));
  const compiled = build().compile();
  if (text === undefined && shapes.size < MAX_SHAPES) shapes.set(key, sameParameters(compiled.parameters, parameters) ? compiled.sql : null);
  return db.executeQuery<R>(compiled);
}

function sameParameters(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((value, i) => Object.is(value, b[i]));
}

/** The columns of a row, in the order Kysely's `values()` puts its parameters. */
export function rowParameters<Row extends object>(rows: readonly Row[], columns: ReadonlyArray<keyof Row & string>): unknown[] {
  const parameters: unknown[] = [];
  for (const row of rows) for (const column of columns) parameters.push(row[column]);
  return parameters;
}
