import type { Kysely, Selectable, Transaction } from 'kysely';
import { parseJson as parse, toJson as json, unlessDuplicate, UUID_PATTERN } from './rows.ts';
import type { Database, RunEventsTable, RunStepsTable, RunsTable, WorkflowsTable } from './schema.ts';
import type { RunEventRecord, RunPatch, RunQuery, RunRecord, RunStepRecord, RunStore, WorkflowRecord, WorkflowStore } from './types.ts';

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
    const values: Partial<RunsTable> = { updated_at: updatedAt };
    if (patch.status !== undefined) values.status = patch.status;
    if (patch.output !== undefined) values.output = json(patch.output);
    if (patch.outputs !== undefined) values.outputs = json(patch.outputs);
    if (patch.error !== undefined) values.error = patch.error === null ? null : json(patch.error);
    if (patch.usage !== undefined) values.usage = json(patch.usage);
    if (patch.cost_usd !== undefined) values.cost_usd = patch.cost_usd;
    if (patch.started_at !== undefined) values.started_at = patch.started_at;
    if (patch.finished_at !== undefined) values.finished_at = patch.finished_at;
    if (patch.definition !== undefined) values.definition = json(patch.definition);
    await this.#db.updateTable('runs').set(values).where('id', '=', runId).execute();
  }

  async listUnfinished(): Promise<RunRecord[]> {
    const rows = await this.#db.selectFrom('runs').selectAll().where('status', 'in', ['queued', 'running']).orderBy('created_at').execute();
    return rows.map(toRun);
  }

  async listSteps(runId: string): Promise<RunStepRecord[]> {
    const rows = await this.#db.selectFrom('run_steps').selectAll().where('run_id', '=', runId).execute();
    return rows.map(toStep);
  }

  async recordStep(step: RunStepRecord, events: RunEventRecord[]): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await upsertStep(trx, step);
      if (events.length > 0) await trx.insertInto('run_events').values(events.map(toEventRow)).execute();
    });
  }

  async appendEvents(events: RunEventRecord[]): Promise<void> {
    if (events.length === 0) return;
    await this.#db.insertInto('run_events').values(events.map(toEventRow)).execute();
  }

  async listEvents(runId: string, afterSeq: number, limit = 10_000): Promise<RunEventRecord[]> {
    const rows = await this.#db.selectFrom('run_events').selectAll().where('run_id', '=', runId).where('seq', '>', afterSeq).orderBy('seq').limit(limit).execute();
    return rows.map((row) => ({ ...row, seq: Number(row.seq), data: parse(row.data, {}) }));
  }

  async lastSeq(runId: string): Promise<number> {
    const row = await this.#db.selectFrom('run_events').select((eb) => eb.fn.max('seq').as('seq')).where('run_id', '=', runId).executeTakeFirst();
    return Number(row?.seq ?? 0);
  }
}

async function upsertStep(trx: Transaction<Database>, step: RunStepRecord): Promise<void> {
  const row = toStepRow(step);
  const { run_id: _run, step_id: _step, ...changes } = row;
  await trx
    .insertInto('run_steps')
    .values(row)
    .onConflict((oc) => oc.columns(['run_id', 'step_id']).doUpdateSet(changes))
    .execute();
}

function toRunRow(run: RunRecord): RunsTable {
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
  const { user_id, ...rest } = row;
  return {
    ...rest,
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

function toStepRow(step: RunStepRecord): RunStepsTable {
  return {
    ...step,
    result: step.result === null || step.result === undefined ? null : json(step.result),
    error: step.error === null || step.error === undefined ? null : json(step.error),
    usage: step.usage === null ? null : json(step.usage),
  };
}

function toStep(row: Selectable<RunStepsTable>): RunStepRecord {
  return {
    ...row,
    attempts: Number(row.attempts),
    result: parse(row.result, null),
    error: parse(row.error, null),
    usage: parse(row.usage, null),
    cost_usd: Number(row.cost_usd),
    latency_ms: row.latency_ms === null ? null : Number(row.latency_ms),
  };
}

function toEventRow(event: RunEventRecord): RunEventsTable {
  return { ...event, data: json(event.data) };
}
