import { sql, type Kysely, type Selectable } from 'kysely';
import { Migrator } from 'kysely/migration';
import { executeShaped, rowParameters } from './compiled.ts';
import { migrationProvider, type Engine } from './migrations.ts';
import { KyselyBudgetStore, KyselyUsageStore, KyselyUserStore } from './governance-store.ts';
import { KyselyRunStore, KyselyWorkflowStore } from './run-store.ts';
import { parseJson, unlessDuplicate, UUID_PATTERN } from './rows.ts';
import type { AgentsTable, AuditLogTable, Database } from './schema.ts';
import type {
  AgentFilter,
  AgentHealth,
  AgentPatch,
  AgentRecord,
  AgentStore,
  AppRecord,
  AppStore,
  AuditEntry,
  AuditQuery,
  AuditStore,
  Storage,
  TokenRecord,
  BudgetStore,
  RunStore,
  TokenStore,
  UsageStore,
  UserStore,
  WorkflowStore,
} from './types.ts';

const MIGRATION_LOCK_KEY = 7_320_411_903; // any constant shared by every Ensemble process

/** The SQLite and PostgreSQL adapters: one Kysely implementation of every port per engine. */
export class KyselyStorage implements Storage {
  readonly engine: Engine;
  readonly apps: AppStore;
  readonly tokens: TokenStore;
  readonly agents: AgentStore;
  readonly audit: AuditStore;
  readonly workflows: WorkflowStore;
  readonly runs: RunStore;
  readonly usage: UsageStore;
  readonly budgets: BudgetStore;
  readonly users: UserStore;
  readonly db: Kysely<Database>;

  constructor(db: Kysely<Database>, engine: Engine) {
    this.db = db;
    this.engine = engine;
    this.apps = new KyselyAppStore(db);
    this.tokens = new KyselyTokenStore(db);
    this.agents = new KyselyAgentStore(db);
    this.audit = new KyselyAuditStore(db);
    this.workflows = new KyselyWorkflowStore(db);
    this.runs = new KyselyRunStore(db);
    this.usage = new KyselyUsageStore(db);
    this.budgets = new KyselyBudgetStore(db);
    this.users = new KyselyUserStore(db);
  }

  async migrate(): Promise<void> {
    const run = async (db: Kysely<Database>) => {
      const migrator = new Migrator({ db, provider: migrationProvider(this.engine), migrationTableName: 'ensemble_migrations', migrationLockTableName: 'ensemble_migrations_lock' });
      const { error, results } = await migrator.migrateToLatest();
      if (error) {
        const failed = results?.find((r) => r.status === 'Error')?.migrationName;
        throw new Error(`Migration ${failed ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
    };
    if (this.engine === 'sqlite') return run(this.db);
    // Kysely locks inside the migration transaction, but creates its bookkeeping tables before
    // that; two processes racing on CREATE TABLE can collide in PostgreSQL's catalog. A session
    // lock around the whole run serializes them.
    await this.db.connection().execute(async (conn) => {
      await sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`.execute(conn);
      try {
        await run(conn);
      } finally {
        await sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`.execute(conn);
      }
    });
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

class KyselyAppStore implements AppStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(app: AppRecord): Promise<void> {
    await unlessDuplicate(() => this.#db.insertInto('apps').values({ id: app.id, name: app.name, created_at: app.created_at, settings: JSON.stringify(app.settings) }).execute(), `An app named "${app.name}"`);
  }

  async list(): Promise<AppRecord[]> {
    const rows = await this.#db.selectFrom('apps').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toApp);
  }

  async get(id: string): Promise<AppRecord | undefined> {
    const row = await this.#db.selectFrom('apps').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toApp(row);
  }

  async getByName(name: string): Promise<AppRecord | undefined> {
    const row = await this.#db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirst();
    return row && toApp(row);
  }

  async getWebhookSecret(id: string): Promise<string | null> {
    const row = await this.#db.selectFrom('apps').select('webhook_secret').where('id', '=', id).executeTakeFirst();
    return row?.webhook_secret ?? null;
  }

  async setWebhookSecret(id: string, sealed: string): Promise<void> {
    await this.#db.updateTable('apps').set({ webhook_secret: sealed }).where('id', '=', id).execute();
  }

  async updateSettings(id: string, settings: Record<string, unknown>): Promise<void> {
    await this.#db.updateTable('apps').set({ settings: JSON.stringify(settings) }).where('id', '=', id).execute();
  }
}

function toApp(row: Selectable<Database['apps']>): AppRecord {
  return { id: row.id, name: row.name, created_at: row.created_at, settings: parseJson(row.settings, {}) };
}

class KyselyTokenStore implements TokenStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(token: TokenRecord & { token_hash: string }): Promise<void> {
    await this.#db.insertInto('app_tokens').values(token).execute();
  }

  async findActiveByHash(tokenHash: string): Promise<TokenRecord | undefined> {
    return this.#db
      .selectFrom('app_tokens')
      .select(['id', 'app_id', 'name', 'created_at', 'revoked_at'])
      .where('token_hash', '=', tokenHash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
  }

  async revoke(appId: string, tokenId: string, at: string): Promise<boolean> {
    const result = await this.#db
      .updateTable('app_tokens')
      .set({ revoked_at: at })
      .where('id', '=', tokenId)
      .where('app_id', '=', appId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) > 0) return true;
    // Revoking twice is not an error; revoking another app's token is "not found".
    const exists = await this.#db.selectFrom('app_tokens').select('id').where('id', '=', tokenId).where('app_id', '=', appId).executeTakeFirst();
    return exists !== undefined;
  }
}

class KyselyAgentStore implements AgentStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(agent: AgentRecord): Promise<void> {
    await unlessDuplicate(() => this.#db.insertInto('agents').values(toAgentRow(agent)).execute(), `An agent named "${agent.name}"`);
  }

  async list(appId: string, filter: AgentFilter = {}): Promise<AgentRecord[]> {
    let query = this.#db.selectFrom('agents').selectAll().where('app_id', '=', appId);
    if (filter.role !== undefined) query = query.where('role', '=', filter.role);
    if (filter.provider !== undefined) query = query.where('provider', '=', filter.provider);
    if (filter.is_active !== undefined) query = query.where('is_active', '=', filter.is_active ? 1 : 0);
    const rows = await query.orderBy('name').execute();
    return rows.map(toAgent);
  }

  async get(appId: string, idOrName: string): Promise<AgentRecord | undefined> {
    const column = UUID_PATTERN.test(idOrName) ? 'id' : 'name';
    // Read for every call a step makes: its SQL is built once.
    const { rows } = await executeShaped<Selectable<AgentsTable>>(this.#db, `agents.get:${column}`, [appId, idOrName], () =>
      this.#db.selectFrom('agents').selectAll().where('app_id', '=', appId).where(column, '=', idOrName),
    );
    const row = rows[0];
    return row && toAgent(row);
  }

  async update(appId: string, id: string, patch: AgentPatch, updatedAt: string): Promise<AgentRecord | undefined> {
    const values: Partial<AgentsTable> = { updated_at: updatedAt };
    for (const [key, value] of Object.entries(patch)) {
      if (value === undefined) continue;
      if (key === 'config') values.config = JSON.stringify(value);
      else if (key === 'is_active') values.is_active = value ? 1 : 0;
      else (values as Record<string, unknown>)[key] = value;
    }
    await unlessDuplicate(() => this.#db.updateTable('agents').set(values).where('app_id', '=', appId).where('id', '=', id).execute(), `An agent named "${String(patch.name)}"`);
    return this.get(appId, id);
  }

  async delete(appId: string, id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('agents').where('app_id', '=', appId).where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async setHealth(id: string, health: AgentHealth): Promise<void> {
    await this.#db.updateTable('agents').set({ health: JSON.stringify(health) }).where('id', '=', id).execute();
  }

  async listActive(): Promise<AgentRecord[]> {
    const rows = await this.#db.selectFrom('agents').selectAll().where('is_active', '=', 1).orderBy('id').execute();
    return rows.map(toAgent);
  }

  async listKeysNotWrappedBy(kid: string, limit: number) {
    return this.#db
      .selectFrom('agents')
      .select(['id', 'app_id', 'api_key_ciphertext', 'api_key_kid'])
      .where('api_key_ciphertext', 'is not', null)
      .where((eb) => eb.or([eb('api_key_kid', '!=', kid), eb('api_key_kid', 'is', null)]))
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  async swapKeyEnvelope(id: string, expected: string, next: string, kid: string): Promise<boolean> {
    const result = await this.#db
      .updateTable('agents')
      .set({ api_key_ciphertext: next, api_key_kid: kid })
      .where('id', '=', id)
      .where('api_key_ciphertext', '=', expected)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }
}

function toAgentRow(agent: AgentRecord): AgentsTable {
  return {
    ...agent,
    config: JSON.stringify(agent.config),
    health: JSON.stringify(agent.health),
    is_active: agent.is_active ? 1 : 0,
  };
}

const UNKNOWN_HEALTH: AgentHealth = { status: 'unknown', checked_at: null, latency_ms: null, error: null };

function toAgent(row: Selectable<AgentsTable>): AgentRecord {
  const health = parseJson<Partial<AgentHealth>>(row.health, {});
  return {
    ...row,
    config: parseJson(row.config, {}),
    is_active: Number(row.is_active) === 1,
    health: { ...UNKNOWN_HEALTH, ...health },
  };
}

const AUDIT_COLUMNS = ['id', 'app_id', 'at', 'actor', 'action', 'target_type', 'target_id', 'outcome', 'details'] as const;
/** 9 columns × 1000 rows: under SQLite's 32,766 parameters. */
const AUDIT_ROWS_PER_STATEMENT = 1000;

class KyselyAuditStore implements AuditStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async append(entry: AuditEntry): Promise<void> {
    await this.appendMany([entry]);
  }

  async appendMany(entries: readonly AuditEntry[]): Promise<void> {
    // Written for every call: the SQL of each batch size is built once (columns in AUDIT_COLUMNS order).
    const rows = entries.map((e) => ({ id: e.id, app_id: e.app_id, at: e.at, actor: e.actor, action: e.action, target_type: e.target_type, target_id: e.target_id, outcome: e.outcome, details: JSON.stringify(e.details) }));
    const insert = async (db: Kysely<Database>) => {
      for (let i = 0; i < rows.length; i += AUDIT_ROWS_PER_STATEMENT) {
        const chunk = rows.slice(i, i + AUDIT_ROWS_PER_STATEMENT);
        await executeShaped(db, `audit_log.insert:${chunk.length}`, rowParameters(chunk, AUDIT_COLUMNS), () => db.insertInto('audit_log').values(chunk));
      }
    };
    // All or none: more than one statement goes in a transaction.
    if (rows.length > AUDIT_ROWS_PER_STATEMENT) await this.#db.transaction().execute(insert);
    else await insert(this.#db);
  }

  async list(appId: string, query: AuditQuery): Promise<AuditEntry[]> {
    let q = this.#db.selectFrom('audit_log').selectAll().where('app_id', '=', appId);
    if (query.action) q = q.where('action', '=', query.action);
    if (query.actor) q = q.where('actor', '=', query.actor);
    if (query.target_id) q = q.where('target_id', '=', query.target_id);
    if (query.from) q = q.where('at', '>=', query.from);
    if (query.to) q = q.where('at', '<', query.to);
    if (query.before) {
      const anchor = this.#db.selectFrom('audit_log').select('seq').where('id', '=', query.before);
      q = q.where('seq', '<', anchor);
    }
    const rows = await q.orderBy('seq', 'desc').limit(query.limit).execute();
    return rows.map(toAudit);
  }
}

function toAudit(row: Selectable<AuditLogTable>): AuditEntry {
  return {
    id: row.id,
    app_id: row.app_id,
    at: row.at,
    actor: row.actor,
    action: row.action,
    target_type: row.target_type,
    target_id: row.target_id,
    outcome: row.outcome as AuditEntry['outcome'],
    details: parseJson(row.details, {}),
  };
}
