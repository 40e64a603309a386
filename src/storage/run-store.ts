import type { Insertable, Kysely, Selectable, Transaction, Updateable } from 'kysely';
import { executeShaped, rowParameters } from './compiled.ts';
import { parseJson as parse, toJson as json, unlessDuplicate, UUID_PATTERN } from './rows.ts';
import type { Database, RunEventsTable, RunStepsTable, RunsTable, WorkflowsTable } from './schema.ts';
import type { RunAttemptRecord, RunEventRecord, RunPatch, RunQuery, RunRecord, RunStepRecord, RunStore, WorkflowRecord, WorkflowStore } from './types.ts';

export class KyselyWorkflowStore implements WorkflowStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(workflow: WorkflowRecord): Promise<void> {
    await unlessDuplicate(() => this.#db.insertInto('workflows').values(toWorkflowRow(workflow)).execute(), `A workflow named "${workflow.name}"`);
  }

  async list(appId: string): Promise<WorkflowRecord[]> {
    const rows = await this.#db.selectFrom('workflows').selectAll().where('app_id', '=', appId).orderBy('name').execute();
    return rows.map(toWorkflow);
  }

  async get(appId: string, idOrName: string): Promise<WorkflowRecord | undefined> {
    const column = UUID_PATTERN.test(idOrName) ? 'id' : 'name';
    const row = await this.#db.selectFrom('workflows').selectAll().where('app_id', '=', appId).where(column, '=', idOrName).executeTakeFirst();
    return row && toWorkflow(row);
  }

  async replace(appId: string, id: string, next: Pick<WorkflowRecord, 'name' | 'trigger' | 'format' | 'source' | 'definition'>, updatedAt: string): Promise<WorkflowRecord | undefined> {
    await unlessDuplicate(
      () =>
        this.#db
        .updateTable('workflows')
        .set((eb) => ({
          name: next.name,
          trigger: next.trigger,
          format: next.format,
          source: next.source,
          definition: json(next.definition),
          updated_at: updatedAt,
          version: eb('version', '+', 1),
        }))
        .where('app_id', '=', appId)
        .where('id', '=', id)
        .execute(),
      `A workflow named "${next.name}"`,
    );
    return this.get(appId, id);
  }

  async delete(appId: string, id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('workflows').where('app_id', '=', appId).where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}

function toWorkflowRow(w: WorkflowRecord): WorkflowsTable {
  return { ...w, definition: json(w.definition), is_active: w.is_active ? 1 : 0 };
}

function toWorkflow(row: Selectable<WorkflowsTable>): WorkflowRecord {
  return {
    ...row,
    version: Number(row.version),
    format: row.format === 'yaml' ? 'yaml' : 'json',
    definition: parse(row.definition, null),
    is_active: Number(row.is_active) === 1,
  };
}

export class KyselyRunStore implements RunStore {
  readonly #db: Kysely<Database>;
  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async create(run: RunRecord): Promise<void> {
    await unlessDuplicate(() => this.#db.insertInto('runs').values(toRunRow(run)).execute(), 'A run with this Idempotency-Key');
  }

  async get(appId: string, runId: string): Promise<RunRecord | undefined> {
    if (!UUID_PATTERN.test(runId)) return undefined;
    const row = await this.#db.selectFrom('runs').selectAll().where('app_id', '=', appId).where('id', '=', runId).executeTakeFirst();
    return row && toRun(row);
  }

  async getById(runId: string): Promise<RunRecord | undefined> {
    const row = await this.#db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst();
    return row && toRun(row);
  }

  async findByIdempotencyKey(appId: string, key: string): Promise<RunRecord | undefined> {
    const row = await this.#db.selectFrom('runs').selectAll().where('app_id', '=', appId).where('idempotency_key', '=', key).executeTakeFirst();
    return row && toRun(row);
  }

  async releaseIdempotencyKey(runId: string): Promise<void> {
    await this.#db.updateTable('runs').set({ idempotency_key: null }).where('id', '=', runId).execute();
  }

  async list(appId: string, query: RunQuery): Promise<RunRecord[]> {
    let q = this.#db.selectFrom('runs').selectAll().where('app_id', '=', appId);
    if (query.workflow) q = q.where((eb) => eb.or([eb('workflow_name', '=', query.workflow!), eb('workflow_id', '=', query.workflow!)]));
    if (query.status) q = q.where('status', '=', query.status);
    if (query.before) {
      const anchor = await this.#db.selectFrom('runs').select(['created_at', 'id']).where('app_id', '=', appId).where('id', '=', query.before).executeTakeFirst();
      if (anchor) {
        q = q.where((eb) => eb.or([eb('created_at', '<', anchor.created_at), eb.and([eb('created_at', '=', anchor.created_at), eb('id', '<', anchor.id)])]));
      }
    }
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit).execute();
    return rows.map(toRun);
  }

  async update(runId: string, patch: RunPatch, updatedAt: string): Promise<void> {
    await updateRun(this.#db, runId, patch, updatedAt);
  }

  async listUnfinished(): Promise<RunRecord[]> {
    const rows = await this.#db.selectFrom('runs').selectAll().where('status', 'in', ['queued', 'running', 'deciding']).orderBy('created_at').execute();
    return rows.map(toRun);
  }

  async listSteps(runId: string): Promise<RunStepRecord[]> {
    const rows = await this.#db.selectFrom('run_steps').selectAll().where('run_id', '=', runId).execute();
    return rows.map(toStep);
  }

  async recordStep(step: RunStepRecord, events: RunEventRecord[]): Promise<void> {
    await this.recordSteps([step], events);
  }

  async recordSteps(steps: RunStepRecord[], events: RunEventRecord[]): Promise<void> {
    await this.#db.transaction().execute((trx) => writeSteps(trx, steps, events));
  }

  async appendEvents(events: RunEventRecord[]): Promise<void> {
    if (events.length === 0) return;
    await insertEvents(this.#db, events);
  }

  async listEvents(runId: string, afterSeq: number, limit = 10_000): Promise<RunEventRecord[]> {
    const rows = await this.#db.selectFrom('run_events').selectAll().where('run_id', '=', runId).where('seq', '>', afterSeq).orderBy('seq').limit(limit).execute();
    return rows.map((row) => ({ ...row, seq: Number(row.seq), data: parse(row.data, {}) }));
  }

  async acquireLease(runId: string, owner: string, ttlMs: number): Promise<number | null> {
    const now = new Date();
    const result = await this.#db
      .updateTable('runs')
      .set((eb) => ({ lease_owner: owner, lease_expires_at: new Date(now.getTime() + ttlMs).toISOString(), lease_epoch: eb('lease_epoch', '+', 1) }))
      .where('id', '=', runId)
      .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_owner', '=', owner), eb('lease_expires_at', '<', now.toISOString())]))
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return null;
    const row = await this.#db.selectFrom('runs').select(['lease_epoch', 'lease_owner']).where('id', '=', runId).executeTakeFirst();
    return row && row.lease_owner === owner ? Number(row.lease_epoch) : null;
  }

  async renewLease(runId: string, owner: string, epoch: number, ttlMs: number): Promise<boolean> {
    const result = await this.#db
      .updateTable('runs')
      .set({ lease_expires_at: new Date(Date.now() + ttlMs).toISOString() })
      .where('id', '=', runId)
      .where('lease_owner', '=', owner)
      .where('lease_epoch', '=', epoch)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async releaseLease(runId: string, owner: string, epoch: number): Promise<void> {
    await this.#db.updateTable('runs').set({ lease_owner: null, lease_expires_at: null }).where('id', '=', runId).where('lease_owner', '=', owner).where('lease_epoch', '=', epoch).execute();
  }

  async requestCancel(runId: string): Promise<void> {
    await this.#db.updateTable('runs').set({ cancel_requested: 1 }).where('id', '=', runId).execute();
  }

  async cancelRequested(runId: string): Promise<boolean> {
    const row = await this.#db.selectFrom('runs').select('cancel_requested').where('id', '=', runId).executeTakeFirst();
    return Number(row?.cancel_requested ?? 0) === 1;
  }

  async listOrphaned(now: string, olderThan: string): Promise<RunRecord[]> {
    const rows = await this.#db
      .selectFrom('runs')
      .selectAll()
      .where('status', 'in', ['queued', 'running'])
      .where('updated_at', '<', olderThan)
      .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_expires_at', '<', now)]))
      .orderBy('created_at')
      .limit(1000)
      .execute();
    return rows.map(toRun);
  }

  fenced(runId: string, epoch: number): RunStore {
    return new FencedRunStore(this, this.#db, runId, epoch);
  }

  async transitionStatus(runId: string, from: string, to: string): Promise<boolean> {
    const result = await this.#db.updateTable('runs').set({ status: to, updated_at: new Date().toISOString() }).where('id', '=', runId).where('status', '=', from).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async clearCancel(runId: string): Promise<void> {
    await this.#db.updateTable('runs').set({ cancel_requested: 0 }).where('id', '=', runId).execute();
  }

  async deleteSteps(runId: string, stepIds: string[]): Promise<void> {
    if (stepIds.length === 0) return;
    await this.#db.deleteFrom('run_steps').where('run_id', '=', runId).where('step_id', 'in', stepIds).execute();
  }

  async listExpiredWaits(now: string): Promise<Array<{ run_id: string; step_id: string }>> {
    return this.#db
      .selectFrom('run_steps')
      .innerJoin('runs', 'runs.id', 'run_steps.run_id')
      .select(['run_steps.run_id', 'run_steps.step_id'])
      .where('run_steps.status', '=', 'waiting')
      .where('run_steps.wait_until', '<', now)
      .where('runs.status', '=', 'waiting')
      .limit(500)
      .execute();
  }

  async recordAttempt(attempt: RunAttemptRecord): Promise<void> {
    await this.#db
      .insertInto('run_attempts')
      .values({ ...attempt, error: attempt.error === null || attempt.error === undefined ? null : json(attempt.error), reset_steps: json(attempt.reset_steps), input_overrides: attempt.input_overrides ? json(attempt.input_overrides) : null })
      .onConflict((oc) => oc.columns(['run_id', 'attempt']).doNothing())
      .execute();
  }

  async finishAttempt(runId: string, attempt: number, status: string, error: unknown, at: string): Promise<void> {
    await this.#db
      .updateTable('run_attempts')
      .set({ status, finished_at: at, error: error === null || error === undefined ? null : json(error) })
      .where('run_id', '=', runId)
      .where('attempt', '=', attempt)
      .execute();
  }

  async listAttempts(runId: string): Promise<RunAttemptRecord[]> {
    const rows = await this.#db.selectFrom('run_attempts').selectAll().where('run_id', '=', runId).orderBy('attempt').execute();
    return rows.map((row) => ({
      ...row,
      attempt: Number(row.attempt),
      error: parse(row.error, null),
      reset_steps: parse(row.reset_steps, []),
      input_overrides: parse(row.input_overrides, null),
    }));
  }

  async lastSeq(runId: string): Promise<number> {
    const row = await this.#db.selectFrom('run_events').select((eb) => eb.fn.max('seq').as('seq')).where('run_id', '=', runId).executeTakeFirst();
    return Number(row?.seq ?? 0);
  }
}

async function updateRun(db: Kysely<Database> | Transaction<Database>, runId: string, patch: RunPatch, updatedAt: string): Promise<void> {
  const values: Updateable<RunsTable> = { updated_at: updatedAt };
  if (patch.status !== undefined) values.status = patch.status;
  if (patch.output !== undefined) values.output = json(patch.output);
  if (patch.outputs !== undefined) values.outputs = json(patch.outputs);
  if (patch.error !== undefined) values.error = patch.error === null ? null : json(patch.error);
  if (patch.usage !== undefined) values.usage = json(patch.usage);
  if (patch.cost_usd !== undefined) values.cost_usd = patch.cost_usd;
  if (patch.started_at !== undefined) values.started_at = patch.started_at;
  if (patch.finished_at !== undefined) values.finished_at = patch.finished_at;
  if (patch.definition !== undefined) values.definition = json(patch.definition);
  if (patch.attempt !== undefined) values.attempt = patch.attempt;
  if (patch.input !== undefined) values.input = patch.input;
  if (patch.context !== undefined) values.context = json(patch.context);
  await db.updateTable('runs').set(values).where('id', '=', runId).execute();
}

/** Rows per multi-row statement: well under both engines' parameter limits (SQLite: 32,766). */
const ROWS_PER_STATEMENT = 500;

const STEP_COLUMNS = [
  'run_id', 'step_id', 'group_id', 'output_name', 'agent', 'status', 'attempts', 'result', 'error', 'usage', 'cost_usd', 'latency_ms', 'reason', 'started_at', 'finished_at', 'wait_until', 'run_attempt',
] as const satisfies ReadonlyArray<keyof RunStepsTable>;
const STEP_CHANGES = STEP_COLUMNS.filter((c) => c !== 'run_id' && c !== 'step_id');

async function writeSteps(trx: Transaction<Database>, steps: RunStepRecord[], events: RunEventRecord[]): Promise<void> {
  // One row per step in a statement (an upsert cannot touch a row twice): the last state wins.
  const latest = new Map<string, RunStepRecord>();
  for (const step of steps) latest.set(`${step.run_id}\u0000${step.step_id}`, step);
  const rows = [...latest.values()].map(toStepRow);
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) await upsertSteps(trx, rows.slice(i, i + ROWS_PER_STATEMENT));
  for (let i = 0; i < events.length; i += ROWS_PER_STATEMENT) await insertEvents(trx, events.slice(i, i + ROWS_PER_STATEMENT));
}

function upsertSteps(trx: Transaction<Database>, rows: Array<Record<(typeof STEP_COLUMNS)[number], unknown>>): Promise<unknown> {
  return executeShaped(trx, `run_steps.upsert:${rows.length}`, rowParameters(rows, STEP_COLUMNS), () =>
    trx
      .insertInto('run_steps')
      .values(rows as Array<Insertable<RunStepsTable>>)
      .onConflict((oc) => oc.columns(['run_id', 'step_id']).doUpdateSet((eb) => Object.fromEntries(STEP_CHANGES.map((c) => [c, eb.ref(`excluded.${c}`)])) as never)),
  );
}

const EVENT_COLUMNS = ['run_id', 'seq', 'type', 'data', 'at'] as const;

function insertEvents(db: Kysely<Database> | Transaction<Database>, events: RunEventRecord[]): Promise<unknown> {
  const rows = events.map(toEventRow);
  return executeShaped(db, `run_events.insert:${rows.length}`, rowParameters(rows, EVENT_COLUMNS), () => db.insertInto('run_events').values(rows));
}

function toRunRow(run: RunRecord): Insertable<RunsTable> {
  const { user, ...rest } = run;
  return {
    ...rest,
    user_id: user,
    definition: json(run.definition),
    context: json(run.context),
    output: run.output === null || run.output === undefined ? null : json(run.output),
    outputs: json(run.outputs),
    error: run.error === null || run.error === undefined ? null : json(run.error),
    usage: json(run.usage),
  };
}

function toRun(row: Selectable<RunsTable>): RunRecord {
  const { user_id, lease_owner: _owner, lease_expires_at: _expires, lease_epoch: _epoch, cancel_requested: _cancel, attempt, ...rest } = row;
  return {
    ...rest,
    attempt: Number(attempt ?? 1),
    user: user_id,
    kind: row.kind === 'chat' ? 'chat' : 'workflow',
    workflow_version: row.workflow_version === null ? null : Number(row.workflow_version),
    definition: parse(row.definition, null),
    context: parse(row.context, {}),
    output: parse(row.output, null),
    outputs: parse(row.outputs, {}),
    error: parse(row.error, null),
    usage: parse(row.usage, {}),
    cost_usd: Number(row.cost_usd),
  };
}

/** Every column, in STEP_COLUMNS order: the shape of the upsert. */
function toStepRow(step: RunStepRecord): Record<(typeof STEP_COLUMNS)[number], unknown> {
  return {
    run_id: step.run_id,
    step_id: step.step_id,
    group_id: step.group_id,
    output_name: step.output_name,
    agent: step.agent,
    status: step.status,
    attempts: step.attempts,
    result: step.result === null || step.result === undefined ? null : json(step.result),
    error: step.error === null || step.error === undefined ? null : json(step.error),
    usage: step.usage === null ? null : json(step.usage),
    cost_usd: step.cost_usd,
    latency_ms: step.latency_ms,
    reason: step.reason,
    started_at: step.started_at,
    finished_at: step.finished_at,
    wait_until: step.wait_until ?? null,
    run_attempt: step.run_attempt ?? 1,
  };
}

function toStep(row: Selectable<RunStepsTable>): RunStepRecord {
  return {
    ...row,
    run_attempt: Number(row.run_attempt ?? 1),
    attempts: Number(row.attempts),
    result: parse(row.result, null),
    error: parse(row.error, null),
    usage: parse(row.usage, null),
    cost_usd: Number(row.cost_usd),
    latency_ms: row.latency_ms === null ? null : Number(row.latency_ms),
  };
}

function toEventRow(event: RunEventRecord): RunEventsTable {
  // Always in EVENT_COLUMNS order: the shape of the insert.
  return { run_id: event.run_id, seq: event.seq, type: event.type, data: json(event.data), at: event.at };
}

/** A write of an executor that no longer holds the run's lease. */
export class LeaseLostError extends Error {
  constructor(runId: string) {
    super(`The lease of run ${runId} is held by another executor`);
    this.name = 'LeaseLostError';
  }
}

/**
 * The run store as one executor of one run sees it: every write for that run first checks, under
 * a row lock, that the run's lease epoch is still the executor's. A worker that lost its lease
 * (it stalled and another took over) can no longer change the run.
 */
class FencedRunStore implements RunStore {
  readonly #inner: KyselyRunStore;
  readonly #db: Kysely<Database>;
  readonly #runId: string;
  readonly #epoch: number;

  constructor(inner: KyselyRunStore, db: Kysely<Database>, runId: string, epoch: number) {
    this.#inner = inner;
    this.#db = db;
    this.#runId = runId;
    this.#epoch = epoch;
  }

  async #check(trx: Transaction<Database>): Promise<void> {
    const row = await trx.selectFrom('runs').select('lease_epoch').where('id', '=', this.#runId).forUpdate().executeTakeFirst();
    if (!row || Number(row.lease_epoch) !== this.#epoch) throw new LeaseLostError(this.#runId);
  }

  async recordStep(step: RunStepRecord, events: RunEventRecord[]): Promise<void> {
    await this.recordSteps([step], events);
  }

  async recordSteps(steps: RunStepRecord[], events: RunEventRecord[]): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await this.#check(trx);
      await writeSteps(trx, steps, events);
    });
  }

  async appendEvents(events: RunEventRecord[]): Promise<void> {
    if (events.length === 0) return;
    await this.#db.transaction().execute(async (trx) => {
      await this.#check(trx);
      await insertEvents(trx, events);
    });
  }

  async update(runId: string, patch: RunPatch, updatedAt: string): Promise<void> {
    if (runId !== this.#runId) return this.#inner.update(runId, patch, updatedAt);
    await this.#db.transaction().execute(async (trx) => {
      await this.#check(trx);
      await updateRun(trx, runId, patch, updatedAt);
    });
  }

  create = (run: RunRecord) => this.#inner.create(run);
  get = (appId: string, runId: string) => this.#inner.get(appId, runId);
  getById = (runId: string) => this.#inner.getById(runId);
  findByIdempotencyKey = (appId: string, key: string) => this.#inner.findByIdempotencyKey(appId, key);
  releaseIdempotencyKey = (runId: string) => this.#inner.releaseIdempotencyKey(runId);
  list = (appId: string, query: RunQuery) => this.#inner.list(appId, query);
  listUnfinished = () => this.#inner.listUnfinished();
  listSteps = (runId: string) => this.#inner.listSteps(runId);
  listEvents = (runId: string, afterSeq: number, limit?: number) => this.#inner.listEvents(runId, afterSeq, limit);
  lastSeq = (runId: string) => this.#inner.lastSeq(runId);
  acquireLease = (runId: string, owner: string, ttlMs: number) => this.#inner.acquireLease(runId, owner, ttlMs);
  renewLease = (runId: string, owner: string, epoch: number, ttlMs: number) => this.#inner.renewLease(runId, owner, epoch, ttlMs);
  releaseLease = (runId: string, owner: string, epoch: number) => this.#inner.releaseLease(runId, owner, epoch);
  requestCancel = (runId: string) => this.#inner.requestCancel(runId);
  cancelRequested = (runId: string) => this.#inner.cancelRequested(runId);
  listOrphaned = (now: string, olderThan: string) => this.#inner.listOrphaned(now, olderThan);
  fenced = (runId: string, epoch: number) => this.#inner.fenced(runId, epoch);
  deleteSteps = (runId: string, stepIds: string[]) => this.#inner.deleteSteps(runId, stepIds);
  transitionStatus = (runId: string, from: string, to: string) => this.#inner.transitionStatus(runId, from, to);
  clearCancel = (runId: string) => this.#inner.clearCancel(runId);
  listExpiredWaits = (now: string) => this.#inner.listExpiredWaits(now);
  recordAttempt = (attempt: RunAttemptRecord) => this.#inner.recordAttempt(attempt);
  finishAttempt = (runId: string, attempt: number, status: string, error: unknown, at: string) => this.#inner.finishAttempt(runId, attempt, status, error, at);
  listAttempts = (runId: string) => this.#inner.listAttempts(runId);
}
