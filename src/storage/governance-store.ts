import { sql, type CompiledQuery, type Insertable, type Kysely, type SelectQueryBuilder } from 'kysely';
import type { Database, UsageDailyTable, UsageRecordsTable } from './schema.ts';
import { executeShaped, rowParameters } from './compiled.ts';
import { isUniqueViolation } from './rows.ts';
import type { BudgetClaim, BudgetStore, UsageGroup, UsageQuery, UsageRecord, UsageRow, UsageStore, UserBudget, UserStore } from './types.ts';

type Dimension = 'agent_name' | 'provider' | 'model' | 'workflow_name' | 'day' | 'user_id';

/** The column of each `group_by` dimension. */
export const GROUP_COLUMNS: Readonly<Record<UsageGroup, Dimension>> = {
  agent: 'agent_name',
  provider: 'provider',
  model: 'model',
  workflow: 'workflow_name',
  day: 'day',
  user: 'user_id',
};

const SUM_COLUMNS = ['requests', 'errors', 'input_tokens', 'output_tokens', 'total_tokens', 'cost_usd'] as const;
type SumColumn = (typeof SUM_COLUMNS)[number];
type Sums = Record<SumColumn, number>;

/**
 * The daily rollups (migration 0007), each with the groups it can answer. A nullable dimension
 * is '' in a rollup key ("none"); reads turn it back into NULL.
 */
const ROLLUPS = {
  usage_daily: { key: ['app_id', 'day', 'agent_name', 'provider', 'model', 'workflow_name'], groups: ['agent', 'provider', 'model', 'workflow', 'day'] },
  usage_daily_users: { key: ['app_id', 'day', 'user_id'], groups: ['user', 'day'] },
} as const satisfies Record<string, { key: ReadonlyArray<string>; groups: ReadonlyArray<UsageGroup> }>;
type RollupTable = keyof typeof ROLLUPS;
/** A rollup row's columns in upsert order: its key, then the sums. */
const ROLLUP_COLUMNS: Readonly<Record<RollupTable, readonly string[]>> = {
  usage_daily: [...ROLLUPS.usage_daily.key, ...SUM_COLUMNS],
  usage_daily_users: [...ROLLUPS.usage_daily_users.key, ...SUM_COLUMNS],
};

/** Rows per multi-row INSERT: 27 columns × 500 stays well under SQLite's 32,766 parameters. */
const ROWS_PER_INSERT = 500;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The columns of a usage row, in the order `toRow` builds it: the shape of the insert. */
const USAGE_COLUMNS = [
  'id', 'app_id', 'agent_id', 'agent_name', 'workflow_id', 'workflow_name', 'run_id', 'step_id', 'provider', 'model', 'kind', 'user_id', 'token_id',
  'input_tokens', 'output_tokens', 'total_tokens', 'cached_input_tokens', 'reasoning_tokens', 'cost_usd', 'price_known', 'latency_ms', 'ttft_ms',
  'outcome', 'error_code', 'at', 'day', 'run_attempt',
] as const satisfies ReadonlyArray<keyof UsageRecordsTable>;

function toRow(r: UsageRecord): Insertable<UsageRecordsTable> & Record<(typeof USAGE_COLUMNS)[number], unknown> {
  return {
    id: r.id, app_id: r.app_id, agent_id: r.agent_id, agent_name: r.agent_name, workflow_id: r.workflow_id,
    // '' is "none" in the rollups' keys: an empty name is stored as none here too, so the two never mix.
    workflow_name: r.workflow_name || null,
    run_id: r.run_id, step_id: r.step_id, provider: r.provider, model: r.model, kind: r.kind,
    user_id: r.user_id || null,
    token_id: r.token_id, input_tokens: r.input_tokens, output_tokens: r.output_tokens, total_tokens: r.total_tokens,
    cached_input_tokens: r.cached_input_tokens, reasoning_tokens: r.reasoning_tokens, cost_usd: r.cost_usd, price_known: r.price_known ? 1 : 0,
    latency_ms: r.latency_ms, ttft_ms: r.ttft_ms, outcome: r.outcome, error_code: r.error_code, at: r.at, day: r.at.slice(0, 10), run_attempt: r.run_attempt ?? null,
  };
}

/**
 * Adds a batch to a rollup: its rows summed per key (one upsert per key, '' for a missing
 * workflow or user), in key order, so that concurrent batches on PostgreSQL wait for each other
 * instead of deadlocking. The upsert adds under the row's lock: no increment is ever lost.
 */
async function upsertRollup(trx: Kysely<Database>, table: RollupTable, rows: ReadonlyArray<Insertable<UsageRecordsTable>>): Promise<void> {
  const key = ROLLUPS[table].key;
  const groups = new Map<string, { values: string[]; sums: Sums }>();
  for (const row of rows) {
    const values = key.map((c) => row[c] ?? '');
    const id = JSON.stringify(values);
    let group = groups.get(id);
    if (!group) {
      group = { values, sums: { requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0 } };
      groups.set(id, group);
    }
    const sums = group.sums;
    sums.requests += 1;
    sums.errors += row.outcome === 'success' ? 0 : 1;
    sums.input_tokens += row.input_tokens ?? 0;
    sums.output_tokens += row.output_tokens ?? 0;
    sums.total_tokens += row.total_tokens ?? 0;
    sums.cost_usd += row.cost_usd ?? 0;
  }
  const ordered: Array<Record<string, unknown>> = [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, { values, sums }]) => ({ ...Object.fromEntries(key.map((c, i) => [c, values[i]])), ...sums }));
  const columns = ROLLUP_COLUMNS[table];
  for (const chunk of chunks(ordered, ROWS_PER_INSERT)) {
    await executeShaped(trx, `${table}.upsert:${chunk.length}`, rowParameters(chunk, columns), () =>
      trx
        .insertInto(table)
        .values(chunk as unknown as Array<Insertable<UsageDailyTable>>)
        // `SET requests = <table>.requests + excluded.requests, …`
        .onConflict((oc) =>
          oc.columns([...key] as Array<keyof UsageDailyTable>).doUpdateSet(Object.fromEntries(SUM_COLUMNS.map((c) => [c, sql<number>`${sql.ref(`${table}.${c}`)} + ${sql.ref(`excluded.${c}`)}`]))),
        ),
    );
  }
}

/** What one part of the union reads: the group columns (as the query names them) and the sums. */
type PartRow = Record<Dimension, string | null> & Sums;
type Part = SelectQueryBuilder<Database, 'usage_records' | RollupTable, PartRow>;

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The UTC day after `day` ('YYYY-MM-DD'), or undefined when `day` is not one. */
function nextDay(day: string): string | undefined {
  const time = Date.parse(`${day}T00:00:00.000Z`);
  if (!DAY.test(day) || Number.isNaN(time) || new Date(time).toISOString().slice(0, 10) !== day) return undefined;
  const next = new Date(time + 86_400_000).toISOString().slice(0, 10);
  return DAY.test(next) ? next : undefined;
}

/**
 * The whole UTC days inside [from, to): days `start <= day < end` (an open side when the range
 * has none), or undefined when there are none. `at` is always `Date#toISOString()` text, so a
 * day's calls lie in [day + 'T00:00:00.000Z', next day) and compare as text.
 */
export function wholeDays(from: string | undefined, to: string | undefined): { start?: string; end?: string } | undefined {
  let start: string | undefined;
  if (from !== undefined) {
    const day = from.slice(0, 10);
    start = from <= `${day}T00:00:00.000Z` ? day : nextDay(day);
    if (start === undefined || !DAY.test(start)) return undefined;
  }
  let end: string | undefined;
  if (to !== undefined) {
    // Every call of a day before to's own day is before `to`; to's day is partial (or empty).
    end = to.slice(0, 10);
    if (!DAY.test(end)) return undefined;
  }
  if (start !== undefined && end !== undefined && start >= end) return undefined;
  return { ...(start !== undefined ? { start } : {}), ...(end !== undefined ? { end } : {}) };
}

/** The rollup that can answer these groups (the smallest per app for no group), if any. */
function rollupFor(groupBy: readonly UsageGroup[]): RollupTable | undefined {
  return (Object.keys(ROLLUPS) as RollupTable[]).find((table) => groupBy.every((g) => (ROLLUPS[table].groups as readonly UsageGroup[]).includes(g)));
}

/** The raw calls of [from, to) (either side open), one row each. */
function rawPart(db: Kysely<Database>, appId: string, columns: readonly Dimension[], from: string | undefined, to: string | undefined, runId: string | undefined): Part {
  let q = db.selectFrom('usage_records').where('app_id', '=', appId);
  if (from !== undefined) q = q.where('at', '>=', from);
  if (to !== undefined) q = q.where('at', '<', to);
  if (runId !== undefined) q = q.where('run_id', '=', runId);
  return q
    .select((eb) => [
      ...columns.map((c) => eb.ref(c).as(c)),
      sql<number>`1`.as('requests'),
      sql<number>`case when outcome != 'success' then 1 else 0 end`.as('errors'),
      'input_tokens',
      'output_tokens',
      'total_tokens',
      'cost_usd',
    ])
    .$castTo<PartRow>();
}

/** The rollup's sums of the whole days [start, end). */
function rollupPart(db: Kysely<Database>, appId: string, table: RollupTable, columns: readonly Dimension[], days: { start?: string; end?: string }): Part {
  let q = db.selectFrom(table).where('app_id', '=', appId);
  if (days.start !== undefined) q = q.where('day', '>=', days.start);
  if (days.end !== undefined) q = q.where('day', '<', days.end);
  return q
    .select([
      ...columns.map((c) => (c === 'workflow_name' || c === 'user_id' ? sql<string | null>`nullif(${sql.ref(c)}, '')`.as(c) : sql<string>`${sql.ref(c)}`.as(c))),
      ...SUM_COLUMNS,
    ])
    .$castTo<PartRow>();
}

/**
 * The SQL of {@link KyselyUsageStore.aggregate}: one statement, `GROUP BY` over the union of
 * the rollup's whole days and the raw rows of the partial days at the range's edges. Without a
 * rollup for the groups (user with agent, provider, model or workflow) or with a run filter,
 * it reads the raw rows only.
 */
export function usageAggregateQuery(db: Kysely<Database>, appId: string, query: UsageQuery): CompiledQuery<Record<string, unknown>> {
  const columns = query.groupBy.map((g) => GROUP_COLUMNS[g]);
  const table = query.runId === undefined ? rollupFor(query.groupBy) : undefined;
  const days = table && wholeDays(query.from, query.to);
  const parts: Part[] = [];
  if (table && days) {
    parts.push(rollupPart(db, appId, table, columns, days));
    if (query.from !== undefined && days.start !== undefined && query.from < days.start) parts.push(rawPart(db, appId, columns, query.from, days.start, undefined));
    if (query.to !== undefined && days.end !== undefined && query.to > days.end) parts.push(rawPart(db, appId, columns, days.end, query.to, undefined));
  } else {
    parts.push(rawPart(db, appId, columns, query.from, query.to, query.runId));
  }
  const union = parts.slice(1).reduce((all, part) => all.unionAll(part), parts[0]!);
  return db
    .selectFrom(union.as('u'))
    .select((eb) => [...columns.map((c) => eb.ref(c).as(c)), ...SUM_COLUMNS.map((c) => eb.fn.sum<number>(c).as(c))])
    .$if(columns.length > 0, (qb) => columns.reduce((ordered, c) => ordered.orderBy(c), qb.groupBy(columns)))
    .compile();
}

export class KyselyUsageStore implements UsageStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  insert(record: UsageRecord): Promise<void> {
    return this.insertMany([record]);
  }

  async insertMany(records: readonly UsageRecord[]): Promise<void> {
    if (records.length === 0) return;
    const rows = records.map(toRow);
    await this.#db.transaction().execute(async (trx) => {
      for (const chunk of chunks(rows, ROWS_PER_INSERT)) {
        await executeShaped(trx, `usage_records.insert:${chunk.length}`, rowParameters(chunk, USAGE_COLUMNS), () => trx.insertInto('usage_records').values(chunk));
      }
      await upsertRollup(trx, 'usage_daily', rows);
      await upsertRollup(trx, 'usage_daily_users', rows);
    });
  }

  async aggregate(appId: string, query: UsageQuery): Promise<UsageRow[]> {
    const { rows } = await this.#db.executeQuery(usageAggregateQuery(this.#db, appId, query));
    return rows.map((row) => toUsageRow(row, query.groupBy));
  }
}

/** A row of an aggregate (group columns and sums, as either engine returns them) as the port's UsageRow. */
export function toUsageRow(row: Record<string, unknown>, groupBy: readonly UsageGroup[]): UsageRow {
  const group: UsageRow['group'] = {};
  for (const g of groupBy) {
    const value = row[GROUP_COLUMNS[g]];
    group[g] = value === null || value === undefined ? null : String(value);
  }
  return {
    group,
    requests: Number(row.requests ?? 0),
    errors: Number(row.errors ?? 0),
    input_tokens: Number(row.input_tokens ?? 0),
    output_tokens: Number(row.output_tokens ?? 0),
    total_tokens: Number(row.total_tokens ?? 0),
    cost_usd: Number(row.cost_usd ?? 0),
  };
}

/** Creates the scope's ledger for the period if missing, starting from the spend already recorded. */
async function seedLedger(trx: Kysely<Database>, claim: BudgetClaim): Promise<void> {
  const seed = claim.seed;
  if (!seed) {
    await trx.insertInto('budget_ledgers').values({ scope: claim.scope, period_start: claim.periodStart, spent_nano: 0, reserved_nano: 0 }).onConflict((oc) => oc.columns(['scope', 'period_start']).doNothing()).execute();
    return;
  }
  await trx
    .insertInto('budget_ledgers')
    .columns(['scope', 'period_start', 'spent_nano', 'reserved_nano'])
    .expression((eb) => {
      let q = eb
        .selectFrom('usage_records')
        .select([
          sql<string>`${claim.scope}`.as('scope'),
          sql<string>`${claim.periodStart}`.as('period_start'),
          sql<number>`cast(coalesce(sum(cost_usd), 0) * 1000000000 as bigint)`.as('spent_nano'),
          sql<number>`0`.as('reserved_nano'),
        ])
        .where('app_id', '=', seed.appId);
      if (seed.agentId) q = q.where('agent_id', '=', seed.agentId);
      if (seed.workflowId) q = q.where('workflow_id', '=', seed.workflowId);
      if (seed.userId) q = q.where('user_id', '=', seed.userId);
      if (seed.since) q = q.where('at', '>=', seed.since);
      return q;
    })
    .onConflict((oc) => oc.columns(['scope', 'period_start']).doNothing())
    .execute();
}

class ReservationRefused extends Error {
  readonly claim: BudgetClaim;
  readonly spentNano: number;
  readonly reservedNano: number;
  constructor(claim: BudgetClaim, spentNano: number, reservedNano: number) {
    super('budget exceeded');
    this.claim = claim;
    this.spentNano = spentNano;
    this.reservedNano = reservedNano;
  }
}

interface ReservedEntry {
  scope: string;
  periodStart: string;
  amountNano: number;
}

/**
 * Budget ledgers in the database. The check and the reservation are one conditional UPDATE per
 * scope inside one transaction, so concurrent calls (in any number of processes) cannot both
 * take the last dollars: PostgreSQL re-checks the condition under the row lock, SQLite runs
 * write transactions one at a time (BEGIN IMMEDIATE).
 */
export class KyselyBudgetStore implements BudgetStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async reserve(reservationId: string, claims: BudgetClaim[], expiresAt: string) {
    // A fixed lock order keeps two transactions with the same scopes from deadlocking.
    const ordered = [...claims].sort((a, b) => (a.scope + a.periodStart).localeCompare(b.scope + b.periodStart));
    try {
      await this.#db.transaction().execute(async (trx) => {
        for (const claim of ordered) {
          await seedLedger(trx, claim);
          const result = await trx
            .updateTable('budget_ledgers')
            .set((eb) => ({ reserved_nano: eb('reserved_nano', '+', claim.amountNano) }))
            .where('scope', '=', claim.scope)
            .where('period_start', '=', claim.periodStart)
            .where(sql<boolean>`spent_nano + reserved_nano + ${claim.amountNano} <= ${claim.limitNano}`)
            .executeTakeFirst();
          if (Number(result.numUpdatedRows) === 0) {
            const ledger = await trx.selectFrom('budget_ledgers').select(['spent_nano', 'reserved_nano']).where('scope', '=', claim.scope).where('period_start', '=', claim.periodStart).executeTakeFirst();
            throw new ReservationRefused(claim, Number(ledger?.spent_nano ?? 0), Number(ledger?.reserved_nano ?? 0));
          }
        }
        const entries: ReservedEntry[] = ordered.map((c) => ({ scope: c.scope, periodStart: c.periodStart, amountNano: c.amountNano }));
        await trx.insertInto('budget_reservations').values({ id: reservationId, entries: JSON.stringify(entries), expires_at: expiresAt }).execute();
      });
      return { ok: true as const };
    } catch (error) {
      if (error instanceof ReservationRefused) return { ok: false as const, claim: error.claim, spentNano: error.spentNano, reservedNano: error.reservedNano };
      throw error;
    }
  }

  async settle(reservationId: string, actualNano: number, claims: BudgetClaim[] = []): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('budget_reservations').select('entries').where('id', '=', reservationId).executeTakeFirst();
      if (!row) {
        // Released meanwhile (expired): nothing is reserved any more, but the money was spent.
        for (const claim of claims) {
          await trx
            .updateTable('budget_ledgers')
            .set((eb) => ({ spent_nano: eb('spent_nano', '+', actualNano) }))
            .where('scope', '=', claim.scope)
            .where('period_start', '=', claim.periodStart)
            .execute();
        }
        return;
      }
      const entries = JSON.parse(row.entries) as ReservedEntry[];
      for (const entry of entries) {
        await trx
          .updateTable('budget_ledgers')
          .set((eb) => ({ reserved_nano: eb('reserved_nano', '-', entry.amountNano), spent_nano: eb('spent_nano', '+', actualNano) }))
          .where('scope', '=', entry.scope)
          .where('period_start', '=', entry.periodStart)
          .execute();
      }
      await trx.deleteFrom('budget_reservations').where('id', '=', reservationId).execute();
    });
  }

  async releaseExpired(now: string): Promise<number> {
    const expired = await this.#db.selectFrom('budget_reservations').select('id').where('expires_at', '<', now).execute();
    for (const { id } of expired) await this.settle(id, 0);
    return expired.length;
  }

  async ledger(scope: string, periodStart: string): Promise<{ spentNano: number; reservedNano: number }> {
    const row = await this.#db.selectFrom('budget_ledgers').select(['spent_nano', 'reserved_nano']).where('scope', '=', scope).where('period_start', '=', periodStart).executeTakeFirst();
    return { spentNano: Number(row?.spent_nano ?? 0), reservedNano: Number(row?.reserved_nano ?? 0) };
  }
}

export class KyselyUserStore implements UserStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async setBudget(appId: string, budget: UserBudget): Promise<void> {
    const row = { app_id: appId, user_id: budget.user, limit_usd: budget.limit_usd, period: budget.period, updated_at: budget.updated_at };
    await this.#db
      .insertInto('user_budgets')
      .values(row)
      .onConflict((oc) => oc.columns(['app_id', 'user_id']).doUpdateSet({ limit_usd: row.limit_usd, period: row.period, updated_at: row.updated_at }))
      .execute();
  }

  async getBudget(appId: string, user: string): Promise<UserBudget | undefined> {
    const row = await this.#db.selectFrom('user_budgets').selectAll().where('app_id', '=', appId).where('user_id', '=', user).executeTakeFirst();
    return row && toUserBudget(row);
  }

  async deleteBudget(appId: string, user: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('user_budgets').where('app_id', '=', appId).where('user_id', '=', user).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async listBudgets(appId: string): Promise<UserBudget[]> {
    const rows = await this.#db.selectFrom('user_budgets').selectAll().where('app_id', '=', appId).orderBy('user_id').execute();
    return rows.map(toUserBudget);
  }

  async recordDelivery(appId: string, deliveryId: string, at: string): Promise<boolean> {
    try {
      await this.#db.insertInto('webhook_deliveries').values({ app_id: appId, delivery_id: deliveryId, received_at: at }).execute();
      return true;
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      throw error;
    }
  }
}

function toUserBudget(row: { user_id: string; limit_usd: number; period: string; updated_at: string }): UserBudget {
  return { user: row.user_id, limit_usd: Number(row.limit_usd), period: row.period as UserBudget['period'], updated_at: row.updated_at };
}
