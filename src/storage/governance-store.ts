import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.ts';
import { isUniqueViolation } from './rows.ts';
import type { BudgetClaim, BudgetStore, UsageGroup, UsageQuery, UsageRecord, UsageRow, UsageStore, UserBudget, UserStore } from './types.ts';

const GROUP_COLUMNS: Readonly<Record<UsageGroup, 'agent_name' | 'provider' | 'model' | 'workflow_name' | 'day' | 'user_id'>> = {
  agent: 'agent_name',
  provider: 'provider',
  model: 'model',
  workflow: 'workflow_name',
  day: 'day',
  user: 'user_id',
};

export class KyselyUsageStore implements UsageStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async insert(record: UsageRecord): Promise<void> {
    await this.#db
      .insertInto('usage_records')
      .values({ ...record, price_known: record.price_known ? 1 : 0, day: record.at.slice(0, 10) })
      .execute();
  }

  async aggregate(appId: string, query: UsageQuery): Promise<UsageRow[]> {
    const columns = query.groupBy.map((g) => GROUP_COLUMNS[g]);
    let q = this.#db.selectFrom('usage_records').where('app_id', '=', appId);
    if (query.from) q = q.where('at', '>=', query.from);
    if (query.to) q = q.where('at', '<', query.to);
    if (query.runId) q = q.where('run_id', '=', query.runId);
    const rows = await q
      .select((eb) => [
        ...columns.map((c) => eb.ref(c).as(c)),
        eb.fn.countAll<number>().as('requests'),
        eb.fn.sum<number>(eb.case().when('outcome', '!=', 'success').then(1).else(0).end()).as('errors'),
        eb.fn.sum<number>('input_tokens').as('input_tokens'),
        eb.fn.sum<number>('output_tokens').as('output_tokens'),
        eb.fn.sum<number>('total_tokens').as('total_tokens'),
        eb.fn.sum<number>('cost_usd').as('cost_usd'),
      ])
      .$if(columns.length > 0, (qb) => qb.groupBy(columns).orderBy(columns))
      .execute();
    return rows.map((row) => {
      const record = row as Record<string, unknown>;
      const group: UsageRow['group'] = {};
      query.groupBy.forEach((g, i) => {
        const value = record[columns[i]!];
        group[g] = value === null || value === undefined ? null : String(value);
      });
      return {
        group,
        requests: Number(record.requests ?? 0),
        errors: Number(record.errors ?? 0),
        input_tokens: Number(record.input_tokens ?? 0),
        output_tokens: Number(record.output_tokens ?? 0),
        total_tokens: Number(record.total_tokens ?? 0),
        cost_usd: Number(record.cost_usd ?? 0),
      };
    });
  }
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
