import { EnsembleError, newId } from '../core/index.ts';
import type { Actor, AgentService, AuditWriter } from '../registry/index.ts';
import type { Storage, WorkflowRecord } from '../storage/index.ts';
import { compileWorkflow, parseWorkflowSource, type CompiledWorkflow } from '../workflow/index.ts';

export type WorkflowFormat = 'yaml' | 'json';

/** A workflow as responses show it. */
export interface WorkflowView {
  id: string;
  app_id: string;
  name: string;
  version: number;
  trigger: string | null;
  format: WorkflowFormat;
  source: string;
  definition: CompiledWorkflow;
  is_active: boolean;
  created_at: string;
  updated_at: string;
}

export function toWorkflowView(record: WorkflowRecord): WorkflowView {
  return { ...record, definition: record.definition as CompiledWorkflow };
}

/** Saved workflows: parsed, compiled and validated against the app's agents before they are stored. */
export class WorkflowService {
  readonly #storage: Storage;
  readonly #agents: AgentService;
  readonly #audit: AuditWriter;

  constructor(storage: Storage, agents: AgentService, audit: AuditWriter) {
    this.#storage = storage;
    this.#agents = agents;
    this.#audit = audit;
  }

  /** Parses and validates a document; every problem at once (400 for syntax and shape, 422 for meaning). */
  async compile(appId: string, source: string | unknown, format: WorkflowFormat): Promise<CompiledWorkflow> {
    const doc = typeof source === 'string' ? parseWorkflowSource(source, format) : source;
    const known = new Set((await this.#agents.list(appId, {})).map((a) => a.name));
    return compileWorkflow(doc, { isKnownAgent: (name) => known.has(name) });
  }

  async create(appId: string, source: string, format: WorkflowFormat, actor: Actor): Promise<WorkflowView> {
    const workflow = await this.compile(appId, source, format);
    const now = new Date().toISOString();
    const record: WorkflowRecord = {
      id: newId(),
      app_id: appId,
      name: workflow.name,
      version: 1,
      trigger: workflow.trigger ?? null,
      format,
      source,
      definition: workflow,
      is_active: true,
      created_at: now,
      updated_at: now,
    };
    await this.#storage.workflows.create(record);
    await this.#audit.record({ actor, app_id: appId, action: 'workflow.create', target_type: 'workflow', target_id: record.id, outcome: 'success', details: { name: record.name, version: 1 } });
    return toWorkflowView(record);
  }

  async list(appId: string): Promise<WorkflowView[]> {
    return (await this.#storage.workflows.list(appId)).map(toWorkflowView);
  }

  async get(appId: string, idOrName: string): Promise<WorkflowView> {
    const record = await this.#storage.workflows.get(appId, idOrName);
    if (!record) throw new EnsembleError('not_found', `No workflow "${idOrName}"`);
    return toWorkflowView(record);
  }

  async replace(appId: string, idOrName: string, source: string, format: WorkflowFormat, actor: Actor): Promise<WorkflowView> {
    const current = await this.get(appId, idOrName);
    const workflow = await this.compile(appId, source, format);
    const updated = await this.#storage.workflows.replace(
      appId,
      current.id,
      { name: workflow.name, trigger: workflow.trigger ?? null, format, source, definition: workflow },
      new Date().toISOString(),
    );
    if (!updated) throw new EnsembleError('not_found', `No workflow "${idOrName}"`);
    await this.#audit.record({ actor, app_id: appId, action: 'workflow.update', target_type: 'workflow', target_id: current.id, outcome: 'success', details: { name: updated.name, version: updated.version } });
    return toWorkflowView(updated);
  }

  async delete(appId: string, idOrName: string, actor: Actor): Promise<void> {
    const current = await this.get(appId, idOrName);
    await this.#storage.workflows.delete(appId, current.id);
    await this.#audit.record({ actor, app_id: appId, action: 'workflow.delete', target_type: 'workflow', target_id: current.id, outcome: 'success', details: { name: current.name } });
  }
}
