import { sql, type CreateTableBuilder, type Kysely } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';

/**
 * Every schema change, in order. One list serves both engines: only types both understand are
 * used. A migration, once released, is never edited; changes come as new entries.
 */
export type Engine = 'sqlite' | 'postgres';

function migrations(engine: Engine): Record<string, Migration> {
  /** An ever-growing integer key: the one column type the engines spell differently. */
  const serialKey = engine === 'sqlite' ? sql`integer primary key autoincrement` : sql`bigint generated always as identity primary key`;
  return {
  '0001_registry': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('apps')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('settings', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('app_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('agents')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('system_prompt', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('config', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('is_active', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('api_key_ciphertext', 'text')
        .addColumn('api_key_hint', 'text')
        .addColumn('api_key_kid', 'text')
        .addColumn('health', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('agents_app_name_unique', ['app_id', 'name'])
        .execute();
      await db.schema.createIndex('agents_key_kid').on('agents').column('api_key_kid').execute();
      await db.schema
        .createTable('audit_log')
        // A growing sequence gives a stable order for paging even when timestamps tie.
        .addColumn('seq', serialKey)
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('app_id', 'text')
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target_type', 'text', (c) => c.notNull())
        .addColumn('target_id', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('details', 'text', (c) => c.notNull().defaultTo('{}'))
        .execute();
      await db.schema.createIndex('audit_app_seq').on('audit_log').columns(['app_id', 'seq']).execute();
    },
  },
    '0002_workflows_runs': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('workflows')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('trigger', 'text')
          .addColumn('format', 'text', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('definition', 'text', (c) => c.notNull())
          .addColumn('is_active', 'integer', (c) => c.notNull().defaultTo(1))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('workflows_app_name_unique', ['app_id', 'name'])
          .execute();
        await db.schema
          .createTable('runs')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id').onDelete('cascade'))
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('workflow_id', 'text')
          .addColumn('workflow_name', 'text')
          .addColumn('workflow_version', 'integer')
          .addColumn('mode', 'text')
          .addColumn('definition', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('input', 'text', (c) => c.notNull())
          .addColumn('context', 'text', (c) => c.notNull())
          .addColumn('output', 'text')
          .addColumn('outputs', 'text', (c) => c.notNull().defaultTo('{}'))
          .addColumn('error', 'text')
          .addColumn('usage', 'text', (c) => c.notNull().defaultTo('{}'))
          .addColumn('cost_usd', 'double precision', (c) => c.notNull().defaultTo(0))
          .addColumn('idempotency_key', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('started_at', 'text')
          .addColumn('finished_at', 'text')
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        await sql`create unique index runs_idempotency on runs (app_id, idempotency_key) where idempotency_key is not null`.execute(db);
        await db.schema.createIndex('runs_app_created').on('runs').columns(['app_id', 'created_at', 'id']).execute();
        await db.schema.createIndex('runs_status').on('runs').column('status').execute();
        await db.schema
          .createTable('run_steps')
          .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id').onDelete('cascade'))
          .addColumn('step_id', 'text', (c) => c.notNull())
          .addColumn('group_id', 'text')
          .addColumn('output_name', 'text', (c) => c.notNull())
          .addColumn('agent', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('result', 'text')
          .addColumn('error', 'text')
          .addColumn('usage', 'text')
          .addColumn('cost_usd', 'double precision', (c) => c.notNull().defaultTo(0))
          .addColumn('latency_ms', 'double precision')
          .addColumn('reason', 'text')
          .addColumn('started_at', 'text')
          .addColumn('finished_at', 'text')
          .addPrimaryKeyConstraint('run_steps_pk', ['run_id', 'step_id'])
          .execute();
        await db.schema
          .createTable('run_events')
          .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id').onDelete('cascade'))
          .addColumn('seq', 'integer', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('run_events_pk', ['run_id', 'seq'])
          .execute();
      },
    },
    '0003_governance': {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('runs').addColumn('user_id', 'text').execute();
        await db.schema
          .createTable('usage_records')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('app_id', 'text', (c) => c.notNull())
          .addColumn('agent_id', 'text', (c) => c.notNull())
          .addColumn('agent_name', 'text', (c) => c.notNull())
          .addColumn('workflow_id', 'text')
          .addColumn('workflow_name', 'text')
          .addColumn('run_id', 'text')
          .addColumn('step_id', 'text')
          .addColumn('provider', 'text', (c) => c.notNull())
          .addColumn('model', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text')
          .addColumn('token_id', 'text')
          .addColumn('input_tokens', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('output_tokens', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('total_tokens', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('cached_input_tokens', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('reasoning_tokens', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('cost_usd', 'double precision', (c) => c.notNull().defaultTo(0))
          .addColumn('price_known', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('latency_ms', 'double precision', (c) => c.notNull().defaultTo(0))
          .addColumn('ttft_ms', 'double precision')
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('error_code', 'text')
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('day', 'text', (c) => c.notNull())
          .execute();
        // The analytics query filters by app and time; covering the grouped columns lets both
        // engines answer from the index alone.
        await db.schema.createIndex('usage_app_at').on('usage_records').columns(['app_id', 'at']).execute();
        await db.schema.createIndex('usage_run').on('usage_records').column('run_id').execute();
        await db.schema
          .createTable('budget_ledgers')
          .addColumn('scope', 'text', (c) => c.notNull())
          .addColumn('period_start', 'text', (c) => c.notNull())
          .addColumn('spent_nano', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('reserved_nano', 'bigint', (c) => c.notNull().defaultTo(0))
          .addPrimaryKeyConstraint('budget_ledgers_pk', ['scope', 'period_start'])
          .execute();
        await db.schema
          .createTable('budget_reservations')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('entries', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('budget_reservations_expiry').on('budget_reservations').column('expires_at').execute();
      },
    },
    '0004_cluster': {
      async up(db: Kysely<unknown>) {
        // The lease fences a run to one executor: the epoch grows with every new owner, and
        // every write of an executor checks that the epoch is still its own.
        await db.schema.alterTable('runs').addColumn('lease_owner', 'text').execute();
        await db.schema.alterTable('runs').addColumn('lease_expires_at', 'text').execute();
        await db.schema.alterTable('runs').addColumn('lease_epoch', 'integer', (c) => c.notNull().defaultTo(0)).execute();
        await db.schema.alterTable('runs').addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      },
    },
    '0005_users_triggers': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('user_budgets')
          .addColumn('app_id', 'text', (c) => c.notNull().references('apps.id').onDelete('cascade'))
          .addColumn('user_id', 'text', (c) => c.notNull())
          .addColumn('limit_usd', 'double precision', (c) => c.notNull())
          .addColumn('period', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('user_budgets_pk', ['app_id', 'user_id'])
          .execute();
        await db.schema.alterTable('apps').addColumn('webhook_secret', 'text').execute();
        await db.schema
          .createTable('webhook_deliveries')
          .addColumn('app_id', 'text', (c) => c.notNull())
          .addColumn('delivery_id', 'text', (c) => c.notNull())
          .addColumn('received_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('webhook_deliveries_pk', ['app_id', 'delivery_id'])
          .execute();
        await db.schema.createIndex('usage_app_user').on('usage_records').columns(['app_id', 'user_id']).execute();
      },
    },
    '0006_run_control': {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('runs').addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(1)).execute();
        await db.schema.alterTable('run_steps').addColumn('wait_until', 'text').execute();
        await db.schema.alterTable('run_steps').addColumn('run_attempt', 'integer', (c) => c.notNull().defaultTo(1)).execute();
        await db.schema.alterTable('usage_records').addColumn('run_attempt', 'integer').execute();
        await db.schema
          .createTable('run_attempts')
          .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id').onDelete('cascade'))
          .addColumn('attempt', 'integer', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('started_at', 'text', (c) => c.notNull())
          .addColumn('finished_at', 'text')
          .addColumn('error', 'text')
          .addColumn('reset_steps', 'text', (c) => c.notNull().defaultTo('[]'))
          .addColumn('input_overrides', 'text')
          .addPrimaryKeyConstraint('run_attempts_pk', ['run_id', 'attempt'])
          .execute();
        await db.schema.createIndex('run_steps_waiting').on('run_steps').columns(['status', 'wait_until']).execute();
      },
    },
    '0007_usage_rollups': {
      async up(db: Kysely<unknown>) {
        // Daily sums of usage_records, kept in the same transaction as every insert, so that
        // `GET /usage` reads whole days from here and raw rows only for a range's partial days.
        // Keys are NOT NULL on both engines (an upsert needs a key it can match): "no workflow"
        // and "no user" are '' here. An empty name cannot be recorded (inserts store it as
        // NULL, and the raw rows are brought in line first), so '' always means none.
        await sql`update usage_records set workflow_name = null where workflow_name = ''`.execute(db);
        await sql`update usage_records set user_id = null where user_id = ''`.execute(db);
        // Clustered by key on SQLite: the range scan of one app's days reads the sums in place.
        const createRollup = async (name: string, dimensions: string[]) => {
          let table: CreateTableBuilder<string, string> = db.schema.createTable(name);
          for (const column of ['app_id', 'day', ...dimensions]) table = table.addColumn(column, 'text', (c) => c.notNull());
          for (const column of ['requests', 'errors', 'input_tokens', 'output_tokens', 'total_tokens']) table = table.addColumn(column, 'bigint', (c) => c.notNull());
          await table
            .addColumn('cost_usd', 'double precision', (c) => c.notNull())
            .addPrimaryKeyConstraint(`${name}_pk`, ['app_id', 'day', ...dimensions])
            .modifyEnd(engine === 'sqlite' ? sql`without rowid` : sql``)
            .execute();
        };
        await createRollup('usage_daily', ['agent_name', 'provider', 'model', 'workflow_name']);
        // Users get their own rollup: keyed with the other dimensions too, it would hold about
        // as many rows as usage_records (bench/FIXES.md, "Analytics").
        await createRollup('usage_daily_users', ['user_id']);
        // The backfill runs in the migration's transaction, under the migration lock: processes
        // starting at once wait for it, and it runs once.
        const totals = sql`count(*), sum(case when outcome != 'success' then 1 else 0 end), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost_usd)`;
        await sql`
          insert into usage_daily (app_id, day, agent_name, provider, model, workflow_name, requests, errors, input_tokens, output_tokens, total_tokens, cost_usd)
          select app_id, day, agent_name, provider, model, coalesce(workflow_name, ''), ${totals}
          from usage_records group by app_id, day, agent_name, provider, model, coalesce(workflow_name, '')`.execute(db);
        await sql`
          insert into usage_daily_users (app_id, day, user_id, requests, errors, input_tokens, output_tokens, total_tokens, cost_usd)
          select app_id, day, coalesce(user_id, ''), ${totals}
          from usage_records group by app_id, day, coalesce(user_id, '')`.execute(db);
      },
    },
    '0008_partial_waiting_index': {
      // Only waiting steps are ever looked up by their wait deadline: indexing every step by
      // status made each state change of every step (two per call) rewrite an index entry.
      async up(db) {
        await db.schema.dropIndex('run_steps_waiting').execute();
        await db.schema.createIndex('run_steps_waiting').on('run_steps').column('wait_until').where(sql.ref('status'), '=', 'waiting').execute();
      },
    },
  };
}

export function migrationProvider(engine: Engine): MigrationProvider {
  return { getMigrations: () => Promise.resolve(migrations(engine)) };
}
