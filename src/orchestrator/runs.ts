import { EnsembleError, newId } from '../core/index.ts';
import type { Actor, AgentService, AuditWriter } from '../registry/index.ts';
import { LeaseLostError, type RunAttemptRecord, type RunEventRecord, type RunQuery, type RunRecord, type RunStepRecord, type Storage } from '../storage/index.ts';
import { executeWorkflow, RunInterruptedError, type CompiledWorkflow, type RunOutcome, type Semaphore } from '../workflow/index.ts';
import { applyConsults } from './chat-service.ts';
import { addPlanExecution, addPlanRetry, validatePlan, type ChatRequest, type Plan } from './chat.ts';
import type { EventBus } from './event-bus.ts';
import { FINAL_EVENTS, fromStepRecord, StorageRunJournal } from './journal.ts';
import type { RunQueue } from './run-queue.ts';
import { AgentStepRunner } from './step-runner.ts';
import type { WorkflowView } from './workflows.ts';

export const TERMINAL_RUN_STATUSES: ReadonlySet<string> = new Set(['completed', 'partial', 'failed', 'cancelled']);

/** How long creating a run waits for the queue before leaving the run to the reconciler. */
const ENQUEUE_TIMEOUT_MS = 2000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** How long an Idempotency-Key keeps returning the same run. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

export interface StepResultView {
  step_id: string;
  agent: string;
  output_name: string;
  status: string;
  attempts: number;
  output: unknown;
  error: unknown;
  usage: Record<string, number> | null;
  cost_usd: number;
  latency_ms: number | null;
  reason: string | null;
  started_at: string | null;
  finished_at: string | null;
}

export interface RunView {
  run_id: string;
  kind: string;
  status: string;
  workflow: string | null;
  workflow_id: string | null;
  workflow_version: number | null;
  mode: string | null;
  input: string;
  context: Record<string, unknown>;
  output: unknown;
  outputs: Record<string, unknown>;
  steps: StepResultView[];
  usage: Record<string, number>;
  cost_usd: number;
  /** Usage and cost of the run's calls, per agent. */
  usage_by_agent: Record<string, { usage: Record<string, number>; cost_usd: number; calls: number }>;
  error: unknown;
  user: string | null;
  /** The current attempt (a retry from failure starts the next one). */
  attempt: number;
  /** Every attempt: when, which steps it reset, how it ended. */
  attempts: Array<{ attempt: number; status: string; started_at: string; finished_at: string | null; error: unknown; reset_steps: string[]; input_overrides: Record<string, unknown> | null }>;
  /** Approval steps the run waits for (status `waiting`). */
  waiting_for: Array<{ step_id: string; message: string | null; since: string | null; timeout_at: string | null }>;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface RunServiceDeps {
  storage: Storage;
  agents: AgentService;
  audit: AuditWriter;
  bus: EventBus;
  queue: RunQueue;
  /** Calls in flight per run. */
  runConcurrency: number;
  /** Calls in flight in this process, across runs. */
  processSemaphore: Semaphore;
  onError?: (runId: string, error: unknown) => void;
  /**
   * Cluster mode: this process's lease identity. A run executes only while its executor holds
   * the run's lease in the database; every write is fenced by the lease epoch.
   */
  lease?: { owner: string; ttlMs: number };
  /** Cluster mode: tells every process to cancel a run (the executor may be elsewhere). */
  broadcastCancel?: (runId: string) => Promise<void>;
}

/** The run cannot execute here now (its lease is held elsewhere, or this worker is draining); try again later. */
export class RunNotReadyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunNotReadyError';
  }
}

export interface StartRunInput {
  input: string;
  context: Record<string, unknown>;
  idempotencyKey?: string | undefined;
  /** The end user the run is made for (opaque id), for per-user cost and budgets. */
  user?: string | undefined;
}

/** Runs: creation, dispatch, execution, cancellation, events, and resumption after a restart. */
export class RunService {
  readonly #d: RunServiceDeps;
  readonly #active = new Map<string, { cancel: AbortController; interrupt: AbortController }>();
  readonly #cancelRequested = new Set<string>();

  constructor(deps: RunServiceDeps) {
    this.#d = deps;
  }

  /** Creates a run of a saved workflow and queues it; an Idempotency-Key seen in the last 24 h returns that run. */
  async startWorkflowRun(appId: string, workflow: WorkflowView, input: StartRunInput, actor: Actor): Promise<{ run: RunRecord; created: boolean }> {
    if (input.idempotencyKey) {
      const existing = await this.#d.storage.runs.findByIdempotencyKey(appId, input.idempotencyKey);
      if (existing) {
        if (Date.now() - Date.parse(existing.created_at) < IDEMPOTENCY_WINDOW_MS) return { run: existing, created: false };
        await this.#d.storage.runs.releaseIdempotencyKey(existing.id);
      }
    }
    return this.#create(appId, {
      kind: 'workflow',
      workflow_id: workflow.id,
      workflow_name: workflow.name,
      workflow_version: workflow.version,
      mode: null,
      definition: workflow.definition,
      input,
      actor,
    });
  }

  /** Creates a run of an ad-hoc DAG (chat modes use this) and queues it. */
  async startAdHocRun(appId: string, definition: CompiledWorkflow, mode: string, input: StartRunInput, actor: Actor): Promise<{ run: RunRecord; created: boolean }> {
    // An inline workflow document is a workflow run with no saved workflow behind it.
    const inline = mode === 'workflow';
    return this.#create(appId, { kind: inline ? 'workflow' : 'chat', workflow_id: null, workflow_name: inline ? definition.name : null, workflow_version: null, mode: inline ? null : mode, definition, input, actor });
  }

  async #create(
    appId: string,
    spec: Pick<RunRecord, 'kind' | 'workflow_id' | 'workflow_name' | 'workflow_version' | 'mode' | 'definition'> & { input: StartRunInput; actor: Actor },
  ): Promise<{ run: RunRecord; created: boolean }> {
    const now = new Date().toISOString();
    const run: RunRecord = {
      id: newId(),
      app_id: appId,
      kind: spec.kind,
      workflow_id: spec.workflow_id,
      workflow_name: spec.workflow_name,
      workflow_version: spec.workflow_version,
      mode: spec.mode,
      definition: spec.definition,
      status: 'queued',
      input: spec.input.input,
      context: spec.input.context,
      output: null,
      outputs: {},
      error: null,
      usage: {},
      cost_usd: 0,
      idempotency_key: spec.input.idempotencyKey ?? null,
      created_at: now,
      started_at: null,
      finished_at: null,
      updated_at: now,
      user: spec.input.user ?? null,
      attempt: 1,
    };
    try {
      await this.#d.storage.runs.create(run);
    } catch (error) {
      // Two requests with one key at once: the loser returns the winner's run.
      if (error instanceof EnsembleError && error.code === 'conflict' && spec.input.idempotencyKey) {
        const winner = await this.#d.storage.runs.findByIdempotencyKey(appId, spec.input.idempotencyKey);
        if (winner) return { run: winner, created: false };
      }
      throw error;
    }
    await this.#d.storage.runs.recordAttempt({ run_id: run.id, attempt: 1, status: 'queued', started_at: now, finished_at: null, error: null, reset_steps: [], input_overrides: null });
    await this.#d.audit.record({
      actor: spec.actor,
      app_id: appId,
      action: 'run.create',
      target_type: 'run',
      target_id: run.id,
      outcome: 'success',
      details: { workflow: spec.workflow_name, version: spec.workflow_version, mode: spec.mode },
    });
    // The run is stored; if the queue is unreachable now, the reconciler queues it later.
    await withTimeout(this.#d.queue.enqueue(run.id), ENQUEUE_TIMEOUT_MS).catch((error: unknown) => this.#d.onError?.(run.id, error));
    return { run, created: true };
  }

  /** The queue's handler: executes (or resumes) a run in this process. */
  async execute(runId: string): Promise<void> {
    if (this.#active.has(runId)) return;
    // Claimed before the first await, so two dispatches of one run cannot both go on.
    const controllers = { cancel: new AbortController(), interrupt: new AbortController() };
    this.#active.set(runId, controllers);
    const run = await this.#d.storage.runs.getById(runId).catch((error: unknown) => {
      this.#active.delete(runId);
      throw error;
    });
    if (!run || TERMINAL_RUN_STATUSES.has(run.status) || run.status === 'waiting') {
      this.#active.delete(runId);
      return;
    }
    let lease: { epoch: number; timer: NodeJS.Timeout; lost: boolean } | undefined;
    try {
      let storage = this.#d.storage;
      if (this.#d.lease) {
        const { owner, ttlMs } = this.#d.lease;
        const epoch = await storage.runs.acquireLease(runId, owner, ttlMs);
        if (epoch === null) throw new RunNotReadyError(`run ${runId} is leased by another executor`);
        const held: { epoch: number; lost: boolean; timer?: NodeJS.Timeout } = { epoch, lost: false };
        held.timer = setInterval(() => {
          void storage.runs.renewLease(runId, owner, epoch, ttlMs).then(
            (kept) => {
              if (!kept) {
                held.lost = true;
                controllers.interrupt.abort();
              }
            },
            () => {},
          );
        }, Math.max(200, Math.floor(ttlMs / 3)));
        held.timer.unref();
        lease = held as { epoch: number; timer: NodeJS.Timeout; lost: boolean };
        storage = { ...storage, runs: storage.runs.fenced(runId, epoch) } as Storage;
      }
      if (this.#cancelRequested.delete(runId) || (await storage.runs.cancelRequested(runId))) controllers.cancel.abort();
      // Under a lease the run is read again: it may have changed while the lease was taken.
      const fresh = this.#d.lease ? ((await storage.runs.getById(runId)) ?? run) : run;
      const journal = new StorageRunJournal(storage, this.#d.bus, runId, await storage.runs.lastSeq(runId), fresh.attempt);
      const current = { ...run, definition: fresh.definition, input: fresh.input, context: fresh.context, attempt: fresh.attempt };
      if (current.mode === 'orchestrated') await this.#executeOrchestrated(current, journal, controllers, storage);
      else await this.#pass(current, current.definition as CompiledWorkflow, journal, controllers, { announceStart: true, finish: true }, storage);
    } catch (error) {
      if (error instanceof LeaseLostError || lease?.lost) return;
      // Interrupted by a drain: the run goes back to the queue for another worker.
      if (error instanceof RunInterruptedError) {
        if (this.#d.lease) throw new RunNotReadyError(`run ${runId} was interrupted; it resumes elsewhere`);
        return;
      }
      throw error;
    } finally {
      this.#active.delete(runId);
      if (lease) {
        clearInterval(lease.timer);
        if (!lease.lost) await this.#d.storage.runs.releaseLease(runId, this.#d.lease!.owner, lease.epoch).catch(() => {});
      }
    }
  }

  /** A control message from another process (cluster mode). */
  onCancelBroadcast(runId: string): void {
    this.#active.get(runId)?.cancel.abort();
  }

  /**
   * Runs that are unfinished but held by nobody (their executor died, their queue entry was lost
   * with Redis) are queued again. PostgreSQL is the truth; the queue only carries work.
   */
  async requeueOrphans(minAgeMs = 10_000): Promise<number> {
    const now = new Date();
    const orphans = await this.#d.storage.runs.listOrphaned(now.toISOString(), new Date(now.getTime() - minAgeMs).toISOString());
    let queued = 0;
    for (const run of orphans) {
      if (this.#active.has(run.id)) continue;
      await this.#d.queue.enqueue(run.id);
      queued++;
    }
    return queued;
  }

  /** One pass of the engine over the run's DAG, from the step states in storage. */
  async #pass(
    run: RunRecord,
    workflow: CompiledWorkflow,
    journal: StorageRunJournal,
    controllers: { cancel: AbortController; interrupt: AbortController },
    phase: { announceStart: boolean; finish: boolean },
    storage: Storage = this.#d.storage,
  ): Promise<RunOutcome> {
    const steps = await storage.runs.listSteps(run.id);
    return executeWorkflow({
      runId: run.id,
      workflow,
      input: run.input,
      context: run.context,
      restored: steps.map(fromStepRecord),
      journal,
      runner: new AgentStepRunner(this.#d.agents, run),
      signal: controllers.cancel.signal,
      interrupt: controllers.interrupt.signal,
      runConcurrency: this.#d.runConcurrency,
      processSemaphore: this.#d.processSemaphore,
      ...phase,
    });
  }

  /**
   * Orchestrated chat: the leader plans (pass 1); an unusable plan gets one corrective retry;
   * the plan's subtasks and the synthesis are added to the run's DAG and run (pass 2). Each
   * growth of the DAG is stored before it runs, so a restart resumes from where it stood.
   */
  async #executeOrchestrated(run: RunRecord, journal: StorageRunJournal, controllers: { cancel: AbortController; interrupt: AbortController }, storage: Storage): Promise<void> {
    let workflow = run.definition as CompiledWorkflow;
    const chat = workflow.chat!;
    const request: ChatRequest = { message: run.input, agents: chat.agents, mode: 'orchestrated', aggregator: chat.aggregator, failFast: chat.failFast };
    const records = new Map<string, Awaited<ReturnType<AgentService['getRecord']>>>();
    for (const name of new Set([...chat.agents, ...(chat.aggregator ? [chat.aggregator] : [])])) records.set(name, await this.#d.agents.getRecord(run.app_id, name));
    const leader = records.get(chat.agents[0]!)!;
    const workers = chat.agents.slice(1).map((name) => records.get(name)!);
    for (let pass = 0; ; pass++) {
      const outcome = await this.#pass(run, workflow, journal, controllers, { announceStart: pass === 0, finish: false }, storage);
      const has = (id: string) => workflow.steps.some((s) => s.id === id);
      if (outcome.status !== 'completed' || has('synthesis')) {
        await journal.finish(outcome);
        return;
      }
      const planStep = has('plan_retry') ? 'plan_retry' : 'plan';
      const problems = validatePlan(outcome.outputs[planStep], workers);
      if (problems.length > 0 && planStep === 'plan') {
        workflow = addPlanRetry(workflow, request, leader, workers, problems);
        await journal.event('plan.rejected', { step_id: planStep, problems });
      } else if (problems.length > 0) {
        await journal.finish({
          ...outcome,
          status: 'failed',
          output: null,
          error: { code: 'invalid_plan', message: `The leader's plan could not be used after one corrective retry: ${problems.join('; ')}`, step_id: planStep, problems } as never,
        });
        return;
      } else {
        const plan = outcome.outputs[planStep] as Plan;
        workflow = addPlanExecution(workflow, plan, planStep, request, records, chat.aggregator ? records.get(chat.aggregator)! : leader);
        if (chat.consults) applyConsults(workflow, chat.consults);
        await journal.event('plan.created', { step_id: planStep, plan });
      }
      await storage.runs.update(run.id, { definition: workflow }, new Date().toISOString());
    }
  }

  /** Runs left queued or running by an earlier process are queued again. */
  async resumeUnfinished(): Promise<number> {
    const runs = await this.#d.storage.runs.listUnfinished();
    for (const run of runs) await this.#d.queue.enqueue(run.id);
    return runs.length;
  }

  /** Stops executing (shutdown): runs in flight are interrupted and resume on the next start. */
  interruptAll(): void {
    for (const { interrupt } of this.#active.values()) interrupt.abort();
  }

  /**
   * A person's decision on an approval step. The run must be waiting; the decision is stored, then
   * the run is queued again and goes on from where it stood.
   */
  async decide(appId: string, runId: string, stepId: string, decision: 'approve' | 'reject', comment: string | undefined, actor: Actor): Promise<RunView> {
    const run = await this.#require(appId, runId);
    const spec = (run.definition as CompiledWorkflow).steps.find((s) => s.id === stepId);
    if (!spec || spec.kind !== 'approval' || !spec.approval) throw new EnsembleError('not_found', `Run ${runId} has no approval step "${stepId}"`);
    const state = (await this.#d.storage.runs.listSteps(run.id)).find((s) => s.step_id === stepId);
    if (run.status !== 'waiting' || state?.status !== 'waiting') {
      throw new EnsembleError('conflict', state?.status === 'waiting' ? 'The run is still running other steps; decide when it waits' : `Step "${stepId}" is not waiting for a decision`);
    }
    // Only one decision wins: the run leaves "waiting" once.
    if (!(await this.#d.storage.runs.transitionStatus(run.id, 'waiting', 'deciding'))) throw new EnsembleError('conflict', `Step "${stepId}" was decided already`);
    const by = actorName(actor);
    const decidedAt = new Date().toISOString();
    const approved = decision === 'approve';
    const fails = !approved && spec.approval.onReject === 'fail';
    const step = fromStepRecord(state);
    step.status = fails ? 'failed' : 'completed';
    step.result = { approved, comment: comment ?? null, decided_by: by, decided_at: decidedAt };
    step.error = fails ? { code: 'rejected', message: comment ? `Rejected: ${comment}` : 'Rejected' } : null;
    step.finishedAt = decidedAt;
    step.waitUntil = null;
    const journal = new StorageRunJournal(this.#d.storage, this.#d.bus, run.id, await this.#d.storage.runs.lastSeq(run.id), run.attempt);
    await journal.step(step, { type: approved ? 'step.approved' : 'step.rejected', data: { step_id: stepId, comment: comment ?? null, decided_by: by } });
    await this.#d.audit.record({
      actor,
      app_id: appId,
      action: approved ? 'run.step_approve' : 'run.step_reject',
      target_type: 'run',
      target_id: run.id,
      outcome: 'success',
      details: { step_id: stepId, comment: comment ?? null, decided_by: by },
    });
    await this.#d.storage.runs.update(run.id, { status: 'queued' }, decidedAt);
    await withTimeout(this.#d.queue.enqueue(run.id), ENQUEUE_TIMEOUT_MS).catch((error: unknown) => this.#d.onError?.(run.id, error));
    return this.get(appId, runId);
  }

  /** Approval steps whose timeout passed decide themselves (their `on_timeout`). */
  async decideExpiredApprovals(): Promise<number> {
    const expired = await this.#d.storage.runs.listExpiredWaits(new Date().toISOString());
    let decided = 0;
    for (const { run_id, step_id } of expired) {
      const run = await this.#d.storage.runs.getById(run_id);
      const spec = (run?.definition as CompiledWorkflow | undefined)?.steps.find((s) => s.id === step_id);
      if (!run || !spec?.approval) continue;
      try {
        await this.decide(run.app_id, run_id, step_id, spec.approval.onTimeout, 'timed out', { kind: 'system', name: 'approval-timeout' });
        decided++;
      } catch {
        // Decided meanwhile by a person or another process.
      }
    }
    return decided;
  }

  /**
   * Retry from failure: a new attempt of the same run. Completed steps keep their results and are
   * not called again; the failed and cancelled steps (or the `steps` named), and every step after
   * them, run again.
   */
  async retry(appId: string, runId: string, request: { steps?: string[]; inputOverrides?: { input?: string; context?: Record<string, unknown> } }, actor: Actor): Promise<RunView> {
    const run = await this.#require(appId, runId);
    if (!['failed', 'partial', 'cancelled', 'completed'].includes(run.status)) throw new EnsembleError('conflict', `A ${run.status} run cannot be retried; wait for it to end`);
    const workflow = run.definition as CompiledWorkflow;
    const byName = new Map<string, string>();
    for (const s of workflow.steps) {
      byName.set(s.id, s.id);
      if (!byName.has(s.output)) byName.set(s.output, s.id);
    }
    const states = await this.#d.storage.runs.listSteps(run.id);
    const seeds = new Set<string>();
    if (request.steps?.length) {
      const unknown = request.steps.filter((name) => !byName.has(name));
      if (unknown.length > 0) throw new EnsembleError('invalid_request', `Unknown step(s): ${unknown.join(', ')}`, [{ path: 'steps', message: `unknown: ${unknown.join(', ')}` }]);
      for (const name of request.steps) seeds.add(byName.get(name)!);
    } else {
      for (const state of states) {
        if (state.status === 'failed' || state.status === 'cancelled') seeds.add(state.group_id ?? state.step_id);
      }
      for (const step of workflow.steps) if (!states.some((s) => s.step_id === step.id)) seeds.add(step.id);
    }
    if (seeds.size === 0) throw new EnsembleError('conflict', 'Nothing to retry: every step completed (name `steps` to run some again)');
    const reset = descendants(workflow, seeds);
    const dropped = states.filter((s) => reset.has(s.group_id ?? s.step_id)).map((s) => s.step_id);
    const attempt = run.attempt + 1;
    const at = new Date().toISOString();
    await this.#d.storage.runs.deleteSteps(run.id, dropped);
    await this.#d.storage.runs.clearCancel(run.id);
    const overrides = request.inputOverrides;
    await this.#d.storage.runs.update(
      run.id,
      {
        status: 'queued',
        attempt,
        error: null,
        output: null,
        finished_at: null,
        ...(overrides?.input !== undefined ? { input: overrides.input } : {}),
        ...(overrides?.context !== undefined ? { context: { ...run.context, ...overrides.context } } : {}),
      },
      at,
    );
    await this.#d.storage.runs.recordAttempt({ run_id: run.id, attempt, status: 'queued', started_at: at, finished_at: null, error: null, reset_steps: [...reset], input_overrides: overrides ? { ...overrides } : null });
    const journal = new StorageRunJournal(this.#d.storage, this.#d.bus, run.id, await this.#d.storage.runs.lastSeq(run.id), attempt);
    await journal.event('run.retried', { attempt, reset_steps: [...reset], kept_steps: states.filter((s) => !reset.has(s.group_id ?? s.step_id) && s.status === 'completed').map((s) => s.step_id) });
    await this.#d.audit.record({ actor, app_id: appId, action: 'run.retry', target_type: 'run', target_id: run.id, outcome: 'success', details: { attempt, reset_steps: [...reset] } });
    await withTimeout(this.#d.queue.enqueue(run.id), ENQUEUE_TIMEOUT_MS).catch((error: unknown) => this.#d.onError?.(run.id, error));
    return this.get(appId, runId);
  }

  async get(appId: string, runId: string): Promise<RunView> {
    const run = await this.#require(appId, runId);
    const [steps, attempts] = await Promise.all([this.#d.storage.runs.listSteps(run.id), this.#d.storage.runs.listAttempts(run.id)]);
    return this.#view(run, steps, attempts);
  }

  async list(appId: string, query: RunQuery): Promise<RunView[]> {
    const runs = await this.#d.storage.runs.list(appId, query);
    return runs.map((run) => this.#view(run, null));
  }

  async cancel(appId: string, runId: string, actor: Actor): Promise<RunView> {
    const run = await this.#require(appId, runId);
    if (run.status === 'waiting' && (await this.#d.storage.runs.transitionStatus(run.id, 'waiting', 'deciding'))) {
      // A waiting run has no executor: it is ended here (its waiting and pending steps are cancelled).
      await this.#d.storage.runs.requestCancel(run.id);
      await this.#d.storage.runs.update(run.id, { status: 'running' }, new Date().toISOString());
      await this.#d.audit.record({ actor, app_id: appId, action: 'run.cancel', target_type: 'run', target_id: run.id, outcome: 'success', details: {} });
      await this.execute(run.id);
      return this.get(appId, runId);
    }
    if (!TERMINAL_RUN_STATUSES.has(run.status)) {
      await this.#d.storage.runs.requestCancel(run.id);
      const active = this.#active.get(run.id);
      if (active) active.cancel.abort();
      else if (this.#d.broadcastCancel) await this.#d.broadcastCancel(run.id);
      else this.#cancelRequested.add(run.id);
      await this.#d.audit.record({ actor, app_id: appId, action: 'run.cancel', target_type: 'run', target_id: run.id, outcome: 'success', details: {} });
      if (!active && !this.#d.lease && run.status === 'queued') await this.execute(run.id);
    }
    return this.get(appId, runId);
  }

  /** Resolves with the run once it has ended or waits for a person (live event, or storage checked every second). */
  async waitForEnd(runId: string): Promise<RunRecord> {
    await new Promise<void>((resolve) => {
      const timers: { poll?: NodeJS.Timeout } = {};
      const done = () => {
        unsubscribe();
        clearInterval(timers.poll);
        resolve();
      };
      const unsubscribe = this.#d.bus.subscribe(runId, (event) => {
        if (FINAL_EVENTS.has(event.type) || event.type === 'run.waiting') done();
      });
      const check = () =>
        void this.#d.storage.runs.getById(runId).then(
          (run) => {
            if (!run || TERMINAL_RUN_STATUSES.has(run.status) || run.status === 'waiting') done();
          },
          () => {},
        );
      check();
      timers.poll = setInterval(check, 1000);
    });
    const run = await this.#d.storage.runs.getById(runId);
    if (!run) throw new EnsembleError('not_found', 'No such run');
    return run;
  }

  /**
   * A run's events after `afterSeq`: replayed from storage (and from deltas not yet stored), then
   * live until the run ends or `signal` aborts. No gaps, no repeats.
   */
  async *events(appId: string, runId: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<RunEventRecord> {
    await this.#require(appId, runId);
    const live: RunEventRecord[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = this.#d.bus.subscribe(runId, (event) => {
      live.push(event);
      wake?.();
    });
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    let last = afterSeq;
    const catchUp = async function* (this: RunService, upTo: number): AsyncGenerator<RunEventRecord> {
      for (;;) {
        const batch = await this.#d.storage.runs.listEvents(runId, last, 1000);
        const pending = this.#d.bus.pending(runId).filter((e) => e.seq > last);
        const merged = mergeBySeq(batch, pending).filter((e) => e.seq > last && e.seq <= upTo);
        for (const event of merged) {
          if (event.seq !== last + 1) {
            // A hole: events announced but never stored (their process died). Once the run has
            // ended nothing will fill it, so replay goes on past it.
            const current = await this.#d.storage.runs.getById(runId);
            if (!current || !TERMINAL_RUN_STATUSES.has(current.status)) return;
          }
          yield event;
          last = event.seq;
        }
        if (batch.length < 1000 || merged.length === 0) return;
      }
    };
    try {
      // A final event of an earlier attempt is followed by `run.retried`: replay goes on past it.
      let lastType = '';
      for await (const event of catchUp.call(this, Number.MAX_SAFE_INTEGER)) {
        yield event;
        lastType = event.type;
      }
      const run = await this.#d.storage.runs.getById(runId);
      if (run && TERMINAL_RUN_STATUSES.has(run.status) && FINAL_EVENTS.has(lastType)) return;
      while (!signal.aborted) {
        while (live.length > 0) {
          const event = live.shift()!;
          if (event.seq <= last) continue;
          // Events announced by another process may reach storage a moment after the bus: retry.
          for (let tries = 0; event.seq > last + 1 && tries < 80; tries++) {
            for await (const missed of catchUp.call(this, event.seq - 1)) yield missed;
            if (event.seq > last + 1) await new Promise((resolve) => setTimeout(resolve, 25));
          }
          yield event;
          last = event.seq;
          if (FINAL_EVENTS.has(event.type)) return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (live.length > 0 || signal.aborted) resolve();
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
    }
  }

  async #require(appId: string, runId: string): Promise<RunRecord> {
    const run = await this.#d.storage.runs.get(appId, runId);
    if (!run) throw new EnsembleError('not_found', `No run "${runId}"`);
    return run;
  }

  #view(run: RunRecord, steps: RunStepRecord[] | null, attempts?: RunAttemptRecord[]): RunView {
    const order = new Map(((run.definition as CompiledWorkflow | null)?.steps ?? []).map((s) => [s.id, s.index]));
    const rank = (stepId: string) => {
      const match = /^(.*)\[(\d+)\]$/.exec(stepId);
      const base = match?.[1] ?? stepId;
      return (order.get(base) ?? 0) * 100_000 + (match ? Number(match[2]) + 1 : 0);
    };
    return {
      run_id: run.id,
      kind: run.kind,
      status: run.status,
      workflow: run.workflow_name,
      workflow_id: run.workflow_id,
      workflow_version: run.workflow_version,
      mode: run.mode,
      input: run.input,
      context: run.context,
      output: run.output,
      outputs: run.outputs,
      steps: (steps ?? [])
        .sort((a, b) => rank(a.step_id) - rank(b.step_id))
        .map((s) => ({
          step_id: s.step_id,
          agent: s.agent,
          output_name: s.output_name,
          status: s.status,
          attempts: s.attempts,
          output: s.result,
          error: s.error,
          usage: s.usage,
          cost_usd: s.cost_usd,
          latency_ms: s.latency_ms,
          reason: s.reason,
          started_at: s.started_at,
          finished_at: s.finished_at,
        })),
      usage: run.usage,
      cost_usd: run.cost_usd,
      usage_by_agent: byAgent(steps ?? []),
      error: run.error,
      user: run.user,
      attempt: run.attempt,
      attempts: attempts ?? [],
      waiting_for: (steps ?? []).filter((s) => s.status === 'waiting').map((s) => ({ step_id: s.step_id, message: s.reason, since: s.started_at, timeout_at: s.wait_until ?? null })),
      created_at: run.created_at,
      started_at: run.started_at,
      finished_at: run.finished_at,
    };
  }
}

function actorName(actor: Actor): string {
  if (actor.kind === 'admin') return 'admin';
  if (actor.kind === 'app') return `token:${actor.tokenId}`;
  return `system:${actor.name}`;
}

/** The steps named and every step that (transitively) waits for one of them. */
function descendants(workflow: CompiledWorkflow, seeds: Set<string>): Set<string> {
  const result = new Set(seeds);
  for (let grew = true; grew; ) {
    grew = false;
    for (const step of workflow.steps) {
      if (!result.has(step.id) && step.dependsOn.some((d) => result.has(d))) {
        result.add(step.id);
        grew = true;
      }
    }
  }
  return result;
}

/** Rolls step usage up per agent (instances count; their group rows would count twice). */
function byAgent(steps: RunStepRecord[]): RunView['usage_by_agent'] {
  const groups = new Set(steps.map((s) => s.group_id).filter((g): g is string => g !== null));
  const totals: RunView['usage_by_agent'] = {};
  for (const step of steps) {
    if (groups.has(step.step_id) || step.usage === null) continue;
    const entry = (totals[step.agent] ??= { usage: {}, cost_usd: 0, calls: 0 });
    for (const [key, value] of Object.entries(step.usage)) entry.usage[key] = (entry.usage[key] ?? 0) + value;
    entry.cost_usd += step.cost_usd;
    entry.calls += 1;
  }
  return totals;
}

function mergeBySeq(a: RunEventRecord[], b: RunEventRecord[]): RunEventRecord[] {
  const bySeq = new Map<number, RunEventRecord>();
  for (const event of [...a, ...b]) bySeq.set(event.seq, event);
  return [...bySeq.values()].sort((x, y) => x.seq - y.seq);
}
