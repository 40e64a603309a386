/**
 * Ensemble in your own process: the same engine, governance and storage as the server, without
 * HTTP. `createEnsemble()` opens (or creates) the store and acts as one app.
 */
import type { Writable } from 'node:stream';
import { createLogger, loadConfig, type Logger } from '../config/index.ts';
import { EnsembleError } from '../core/index.ts';
import { usageReport, type UsageReport } from '../governance/index.ts';
import { buildChainWorkflow, buildFanOutWorkflow, type ChatInput, type ChatResult, type RunView, type WorkflowView } from '../orchestrator/index.ts';
import { AgentCreateSchema, AgentPatchSchema, type Actor, type AgentCreateInput, type AgentPatchInput, type AgentTestResult, type AgentView } from '../registry/index.ts';
import type { AgentFilter, AuditEntry, AuditQuery, RunEventRecord, RunQuery, UsageGroup } from '../storage/index.ts';
import { BullMqRunQueue } from '../orchestrator/index.ts';
import { buildCore, type Core } from './service.ts';

export interface EnsembleOptions {
  /** Embedded store directory (default `./.ensemble`), or a PostgreSQL URL (and Redis for cluster dispatch). */
  storage?: { dataDir?: string; databaseUrl?: string; redisUrl?: string };
  /** The keyring (`id:base64key,...`); default: the generated key file of an embedded store. */
  masterKeys?: string;
  /** The app (tenant) to act as; created when missing. Default `default`. */
  app?: string;
  /** `host:port` entries agents' `base_url` may reach although private (default: the local Ollama). */
  allowedPrivateHosts?: string[];
  /** Where vendor keys are looked up for agents without one (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** A pino logger, or a stream for the default one; silent by default. */
  logger?: Logger | Writable;
  /** Calls in flight per run (default 16). */
  runConcurrency?: number;
}

export type RunEvent = RunEventRecord;

/** A started run: follow its events, or wait for its result. */
export interface RunHandle {
  readonly runId: string;
  /** Every event of the run, from the start (or after `afterSeq`), until it ends. */
  events(afterSeq?: number): AsyncIterable<RunEvent>;
  /** Resolves with the finished run (whatever its status). */
  result(): Promise<RunView>;
}

export interface Ensemble {
  readonly appId: string;
  readonly agents: {
    create(input: AgentCreateInput | Record<string, unknown>): Promise<AgentView>;
    list(filter?: AgentFilter): Promise<AgentView[]>;
    get(idOrName: string): Promise<AgentView>;
    update(idOrName: string, patch: AgentPatchInput): Promise<AgentView>;
    delete(idOrName: string): Promise<void>;
    test(idOrName: string, prompt?: string): Promise<AgentTestResult>;
  };
  readonly workflows: {
    /** A YAML string, or the JSON document as an object. */
    create(document: string | Record<string, unknown>): Promise<WorkflowView>;
    list(): Promise<WorkflowView[]>;
    get(idOrName: string): Promise<WorkflowView>;
    replace(idOrName: string, document: string | Record<string, unknown>): Promise<WorkflowView>;
    delete(idOrName: string): Promise<void>;
  };
  readonly runs: {
    get(runId: string): Promise<RunView>;
    list(query?: Partial<RunQuery>): Promise<RunView[]>;
    cancel(runId: string): Promise<RunView>;
    events(runId: string, afterSeq?: number): AsyncIterable<RunEvent>;
  };
  /** The design document's `execute_workflow`: a saved workflow (by name or id) or an inline document; waits for the end. */
  executeWorkflow(workflow: string | Record<string, unknown>, input: string, context?: Record<string, unknown>, options?: { user?: string; idempotencyKey?: string }): Promise<RunView>;
  /** Starts a workflow run without waiting: follow its events or wait for its result. */
  startWorkflow(workflow: string | Record<string, unknown>, input: string, context?: Record<string, unknown>, options?: { user?: string; idempotencyKey?: string }): Promise<RunHandle>;
  /** The design document's `execute_parallel`: agent i answers prompt i (or every agent the one prompt), at once. */
  executeParallel(agents: string[], prompts: string[] | string): Promise<string[]>;
  /** The design document's `chain`: each agent gets its prompt followed by the previous agent's output. */
  chain(steps: Array<[agent: string, prompt: string]>): Promise<string>;
  /** Multi-agent chat (parallel, sequential, orchestrated), as `POST /chat/multi`. */
  chat(request: Omit<ChatInput, 'context' | 'failFast'> & { context?: Record<string, unknown>; failFast?: boolean }): Promise<ChatResult>;
  usage(query?: { from?: string; to?: string; groupBy?: UsageGroup[] }): Promise<UsageReport>;
  audit(query?: Partial<AuditQuery>): Promise<AuditEntry[]>;
  /** Stops executing (runs in flight resume on the next start) and closes the store. */
  close(): Promise<void>;
}

const ACTOR: Actor = { kind: 'system', name: 'library' };

export async function createEnsemble(options: EnsembleOptions = {}): Promise<Ensemble> {
  const env: Record<string, string | undefined> = {
    ENSEMBLE_DATA_DIR: options.storage?.dataDir,
    DATABASE_URL: options.storage?.databaseUrl,
    REDIS_URL: options.storage?.redisUrl,
    ENSEMBLE_MASTER_KEYS: options.masterKeys,
    ENSEMBLE_ALLOWED_PRIVATE_HOSTS: options.allowedPrivateHosts?.join(','),
    ENSEMBLE_RUN_CONCURRENCY: options.runConcurrency?.toString(),
  };
  const config = loadConfig(env);
  const logger = isLogger(options.logger) ? options.logger : createLogger(options.logger ? 'info' : 'silent', options.logger);
  const core = await buildCore(config, logger, { env: options.env ?? process.env, healthMonitor: { enabled: false } });
  const appName = options.app ?? 'default';
  const app = (await core.apps.getByName(appName)) ?? (await core.apps.create(appName, ACTOR)).app;
  await core.startExecuting(true);
  return new LibraryEnsemble(core, app.id, config.shutdownGraceMs);
}

function isLogger(value: unknown): value is Logger {
  return typeof value === 'object' && value !== null && typeof (value as Logger).child === 'function' && typeof (value as Logger).info === 'function';
}

class LibraryEnsemble implements Ensemble {
  readonly appId: string;
  readonly #core: Core;
  readonly #graceMs: number;
  #closing: Promise<void> | undefined;

  constructor(core: Core, appId: string, graceMs: number) {
    this.#core = core;
    this.appId = appId;
    this.#graceMs = graceMs;
  }

  get agents(): Ensemble['agents'] {
    const { agents } = this.#core;
    const appId = this.appId;
    return {
      create: (input) => agents.create(appId, AgentCreateSchema.parse(input), ACTOR),
      list: (filter = {}) => agents.list(appId, filter),
      get: (idOrName) => agents.get(appId, idOrName),
      update: (idOrName, patch) => agents.update(appId, idOrName, AgentPatchSchema.parse(patch), ACTOR),
      delete: (idOrName) => agents.delete(appId, idOrName, ACTOR),
      test: (idOrName, prompt = 'Hello, are you working?') => agents.test(appId, idOrName, prompt),
    };
  }

  get workflows(): Ensemble['workflows'] {
    const { workflows } = this.#core;
    const appId = this.appId;
    const source = (document: string | Record<string, unknown>) =>
      typeof document === 'string' ? { text: document, format: 'yaml' as const } : { text: JSON.stringify(document, null, 2), format: 'json' as const };
    return {
      create: (document) => {
        const { text, format } = source(document);
        return workflows.create(appId, text, format, ACTOR);
      },
      list: () => workflows.list(appId),
      get: (idOrName) => workflows.get(appId, idOrName),
      replace: (idOrName, document) => {
        const { text, format } = source(document);
        return workflows.replace(appId, idOrName, text, format, ACTOR);
      },
      delete: (idOrName) => workflows.delete(appId, idOrName, ACTOR),
    };
  }

  get runs(): Ensemble['runs'] {
    const { runs } = this.#core;
    const appId = this.appId;
    return {
      get: (runId) => runs.get(appId, runId),
      list: (query = {}) => runs.list(appId, { limit: 50, ...query }),
      cancel: (runId) => runs.cancel(appId, runId, ACTOR),
      events: (runId, afterSeq = 0) => this.#events(runId, afterSeq),
    };
  }

  async executeWorkflow(workflow: string | Record<string, unknown>, input: string, context: Record<string, unknown> = {}, options: { user?: string; idempotencyKey?: string } = {}): Promise<RunView> {
    return (await this.startWorkflow(workflow, input, context, options)).result();
  }

  async startWorkflow(workflow: string | Record<string, unknown>, input: string, context: Record<string, unknown> = {}, options: { user?: string; idempotencyKey?: string } = {}): Promise<RunHandle> {
    const { runs, workflows } = this.#core;
    let run;
    if (typeof workflow === 'string' && !workflow.includes('\n')) {
      const saved = await workflows.get(this.appId, workflow);
      run = (await runs.startWorkflowRun(this.appId, saved, { input, context, user: options.user, idempotencyKey: options.idempotencyKey }, ACTOR)).run;
    } else {
      const definition = await workflows.compile(this.appId, typeof workflow === 'string' ? workflow : JSON.stringify(workflow), typeof workflow === 'string' ? 'yaml' : 'json');
      run = (await runs.startAdHocRun(this.appId, definition, 'workflow', { input, context, user: options.user }, ACTOR)).run;
    }
    return this.#handle(run.id);
  }

  async executeParallel(agents: string[], prompts: string[] | string): Promise<string[]> {
    const list = typeof prompts === 'string' ? agents.map(() => prompts) : prompts;
    if (list.length !== agents.length) throw new EnsembleError('invalid_request', 'executeParallel needs one prompt per agent (or one prompt for all)');
    const definition = buildFanOutWorkflow(agents, list);
    const { run } = await this.#core.runs.startAdHocRun(this.appId, definition, 'parallel', { input: '', context: {} }, ACTOR);
    const done = await this.#handle(run.id).result();
    return definition.steps.map((step) => {
      const result = done.steps.find((s) => s.step_id === step.id);
      if (result?.status !== 'completed') throw new EnsembleError('provider_error', `Agent ${step.agent} failed: ${JSON.stringify(result?.error ?? null)}`, { run_id: run.id });
      return typeof result.output === 'string' ? result.output : JSON.stringify(result.output);
    });
  }

  async chain(steps: Array<[agent: string, prompt: string]>): Promise<string> {
    const { run } = await this.#core.runs.startAdHocRun(this.appId, buildChainWorkflow(steps), 'sequential', { input: '', context: {} }, ACTOR);
    const done = await this.#handle(run.id).result();
    if (done.status !== 'completed') throw new EnsembleError('provider_error', `The chain ${done.status}: ${JSON.stringify(done.error)}`, { run_id: run.id });
    return typeof done.output === 'string' ? done.output : JSON.stringify(done.output);
  }

  async chat(request: Omit<ChatInput, 'context' | 'failFast'> & { context?: Record<string, unknown>; failFast?: boolean }): Promise<ChatResult> {
    const runId = await this.#core.chat.start(this.appId, { ...request, context: request.context ?? {}, failFast: request.failFast ?? false }, ACTOR);
    await this.#core.runs.waitForEnd(runId);
    return this.#core.chat.result(this.appId, runId);
  }

  usage(query: { from?: string; to?: string; groupBy?: UsageGroup[] } = {}): Promise<UsageReport> {
    return usageReport(this.#core.storage, this.appId, { ...query, groupBy: query.groupBy ?? [] });
  }

  audit(query: Partial<AuditQuery> = {}): Promise<AuditEntry[]> {
    return this.#core.storage.audit.list(this.appId, { limit: 100, ...query });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const { queue, runs, closers, storage } = this.#core;
      await queue.stop(this.#graceMs);
      runs.interruptAll();
      await queue.stop(1000);
      if (queue instanceof BullMqRunQueue) await queue.close();
      for (const close of closers.reverse()) await close();
      await storage.close();
    })();
    return this.#closing;
  }

  #handle(runId: string): RunHandle {
    return {
      runId,
      events: (afterSeq = 0) => this.#events(runId, afterSeq),
      result: async () => {
        await this.#core.runs.waitForEnd(runId);
        return this.#core.runs.get(this.appId, runId);
      },
    };
  }

  async *#events(runId: string, afterSeq: number): AsyncGenerator<RunEvent> {
    const controller = new AbortController();
    try {
      for await (const event of this.#core.runs.events(this.appId, runId, afterSeq, controller.signal)) yield event;
    } finally {
      controller.abort();
    }
  }
}
