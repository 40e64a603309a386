/**
 * The DAG executor. It knows steps, not vendors: a {@link StepRunner} performs each call, a
 * {@link RunJournal} makes every state change durable before it is announced.
 */
import { renderTemplate } from './template.ts';
import { compileCondition } from './condition.ts';
import type { CompiledStep, CompiledWorkflow, TemplateScope } from './types.ts';

export type StepStatus = 'pending' | 'running' | 'waiting' | 'completed' | 'failed' | 'skipped' | 'cancelled';
export type RunStatus = 'queued' | 'running' | 'waiting' | 'completed' | 'partial' | 'failed' | 'cancelled';

export type TokenUsage = Record<string, number>;

export interface StepError {
  code: string;
  message: string;
  status?: number | null;
  provider?: string;
}

/** The durable state of one step (or one instance of a `parallel_count` step). */
export interface StepState {
  /** The step's id; instances are `<id>[<n>]`. */
  stepId: string;
  /** For instances, the id of their step. */
  groupId: string | null;
  output: string;
  /** The agent that ran (or runs) it: the step's agent or the fallback in use. */
  agent: string;
  status: StepStatus;
  attempts: number;
  result: unknown;
  error: StepError | null;
  usage: TokenUsage | null;
  costUsd: number;
  latencyMs: number | null;
  reason: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** A waiting approval decides itself at this time (its timeout). */
  waitUntil?: string | null;
}

export interface StepCall {
  runId: string;
  stepId: string;
  agent: string;
  attempt: number;
  message: string;
  schema?: Record<string, unknown>;
  signal: AbortSignal;
  onDelta(text: string): void;
  /** Agents the step's agent may ask while it works (tools `ask_<name>`). */
  consults?: CompiledStep['consults'];
  /** Records consultations as child steps of this step (their own state, usage and events). */
  consult: ConsultChannel;
}

/** How a runner reports a consultation: a child step of the step that asked. */
export interface ConsultChannel {
  /** A consultation begins; returns the child step's id. */
  start(agent: string, question: string, askedBy: string): Promise<string>;
  finish(childId: string, result: StepCallResult): Promise<void>;
  fail(childId: string, error: StepFailure): Promise<void>;
}

export interface StepCallResult {
  /** Text, or the parsed object of a structured answer. */
  output: unknown;
  usage: TokenUsage;
  costUsd: number;
  latencyMs: number;
}

/** A failure as the engine needs to see it; `StepRunner.classify` turns thrown errors into this. */
export interface StepFailure extends StepError {
  retryable: boolean;
  retryAfterMs?: number;
}

/** Performs one agent call. Vendors, budgets, rate limits and usage records live behind it. */
export interface StepRunner {
  run(call: StepCall): Promise<StepCallResult>;
  classify(error: unknown): StepFailure;
}

export type RunEventType =
  | 'run.started'
  | 'step.started'
  | 'step.delta'
  | 'step.completed'
  | 'step.failed'
  | 'step.skipped'
  | 'run.completed'
  | 'run.failed'
  | 'run.cancelled'
  | 'plan.created'
  | 'plan.rejected'
  | 'step.waiting'
  | 'step.approved'
  | 'step.rejected'
  | 'run.waiting'
  | 'run.retried'
  | 'step.consult.started'
  | 'step.consult.completed';

export interface RunOutcome {
  /** `waiting`: nothing can go on until a person decides an approval; the run is not over. */
  status: Exclude<RunStatus, 'queued' | 'running'>;
  output: unknown;
  outputs: Record<string, unknown>;
  usage: TokenUsage;
  costUsd: number;
  error: (StepError & { step_id?: string }) | null;
}

/** Durable side of a run: each call is awaited before the engine goes on. */
export interface RunJournal {
  /** Persists a step's state, then the event that announces it (if any). */
  step(state: StepState, event?: { type: RunEventType; data: Record<string, unknown> }): Promise<void>;
  /** Persists and announces a run-level event (`run.started`). */
  event(type: RunEventType, data: Record<string, unknown>): Promise<void>;
  /** Announces a text delta; deltas may be persisted in batches. */
  delta(stepId: string, agent: string, text: string): void;
  /** Persists the outcome, then announces the final event. */
  finish(outcome: RunOutcome): Promise<void>;
}

/** A counting semaphore: bounds calls in flight per run and per process. */
export class Semaphore {
  #available: number;
  readonly #waiters: Array<() => void> = [];

  constructor(size: number) {
    this.#available = size;
  }

  async acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    if (this.#available > 0) {
      this.#available--;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const index = this.#waiters.indexOf(grant);
        if (index >= 0) this.#waiters.splice(index, 1);
        reject(signal?.reason);
      };
      this.#waiters.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#available++;
  }
}

export interface ExecuteOptions {
  runId: string;
  workflow: CompiledWorkflow;
  input: string;
  context: Record<string, unknown>;
  /** States from an earlier execution of this run (resume): completed steps are not called again. */
  restored?: StepState[];
  journal: RunJournal;
  runner: StepRunner;
  /** Aborting cancels the run: in-flight calls are aborted, nothing new starts. */
  signal?: AbortSignal;
  /**
   * Aborting interrupts the run without ending it (shutdown): in-flight calls are aborted and
   * nothing more is written, so the run resumes from storage later. `executeWorkflow` then
   * rejects with {@link RunInterruptedError}.
   */
  interrupt?: AbortSignal;
  /** Calls in flight in this run. Default 16. */
  runConcurrency?: number;
  /** Calls in flight in the whole process (shared by every run). */
  processSemaphore?: Semaphore;
  random?: () => number;
  /** Announce `run.started` (default true). False when continuing a run in a further pass. */
  announceStart?: boolean;
  /** End the run through `journal.finish` (default true). False when another pass follows. */
  finish?: boolean;
}

const NON_RETRYABLE = new Set(['auth_failed', 'bad_request', 'cancelled', 'budget_exceeded']);
const TERMINAL: ReadonlySet<StepStatus> = new Set(['completed', 'failed', 'skipped', 'cancelled']);

function now(): string {
  return new Date().toISOString();
}

export class RunInterruptedError extends Error {
  constructor() {
    super('The run was interrupted; it resumes from storage');
    this.name = 'RunInterruptedError';
  }
}

/** Runs a compiled workflow to its end and returns the outcome (also given to `journal.finish`). */
export async function executeWorkflow(options: ExecuteOptions): Promise<RunOutcome> {
  return new Execution(options).run();
}

class Execution {
  readonly #o: ExecuteOptions;
  readonly #steps: Map<string, CompiledStep>;
  readonly #dependents = new Map<string, string[]>();
  /** State per step id (for a parallel_count step: the group; its instances are separate). */
  readonly #states = new Map<string, StepState>();
  readonly #instances = new Map<string, StepState[]>();
  readonly #runSemaphore: Semaphore;
  readonly #controller = new AbortController();
  readonly #random: () => number;
  #fatal: (StepError & { step_id: string }) | null = null;
  #interrupted = false;
  /** Consultations: child steps of the steps that asked. */
  readonly #children: StepState[] = [];
  #inFlight = new Set<Promise<void>>();

  constructor(options: ExecuteOptions) {
    this.#o = options;
    this.#steps = new Map(options.workflow.steps.map((s) => [s.id, s]));
    for (const step of options.workflow.steps) {
      for (const dep of step.dependsOn) {
        const list = this.#dependents.get(dep) ?? [];
        list.push(step.id);
        this.#dependents.set(dep, list);
      }
    }
    this.#runSemaphore = new Semaphore(options.runConcurrency ?? 16);
    this.#random = options.random ?? Math.random;
    if (options.signal) {
      if (options.signal.aborted) this.#controller.abort(options.signal.reason);
      else options.signal.addEventListener('abort', () => this.#controller.abort(options.signal?.reason), { once: true });
    }
    const interrupt = () => {
      this.#interrupted = true;
      this.#controller.abort(new RunInterruptedError());
    };
    if (options.interrupt?.aborted) interrupt();
    else options.interrupt?.addEventListener('abort', interrupt, { once: true });
  }

  async run(): Promise<RunOutcome> {
    this.#restore();
    const resumed = (this.#o.restored?.length ?? 0) > 0;
    if (this.#o.announceStart !== false) {
      await this.#o.journal.event('run.started', { workflow: this.#o.workflow.name, ...(resumed ? { resumed: true } : {}) });
    }
    this.#schedule();
    while (this.#inFlight.size > 0) {
      await Promise.race(this.#inFlight);
    }
    if (this.#interrupted) throw new RunInterruptedError();
    const waiting = [...this.#states.values()].some((s) => s.status === 'waiting');
    // Steps that never started because the run was cancelled or failed.
    if (this.#fatal || this.#controller.signal.aborted || !waiting) {
      for (const state of this.#states.values()) {
        if (state.status === 'pending' || state.status === 'waiting') await this.#endStep(state, 'cancelled', { reason: this.#fatal ? 'the run failed' : 'the run was cancelled' });
      }
    }
    const outcome = this.#outcome();
    if (this.#o.finish !== false) await this.#o.journal.finish(outcome);
    return outcome;
  }

  #restore(): void {
    for (const step of this.#o.workflow.steps) {
      this.#states.set(step.id, blankState(step.id, null, step));
      if (step.parallelCount) {
        this.#instances.set(
          step.id,
          Array.from({ length: step.parallelCount }, (_, i) => blankState(`${step.id}[${i}]`, step.id, step)),
        );
      }
    }
    for (const saved of this.#o.restored ?? []) {
      // A step that was running when the process stopped is run again.
      const state: StepState = saved.status === 'running' ? { ...saved, status: 'pending' } : { ...saved };
      // A step that failed for good (a rejected approval, a failure stored before a crash) still ends the run.
      const step = this.#steps.get(state.stepId);
      if (!step && !state.groupId) {
        // A consultation of an earlier execution: its cost still counts.
        if (state.status === 'completed' || state.status === 'failed') this.#children.push(state);
        continue;
      }
      if (state.status === 'failed' && !state.groupId && step?.onError === 'fail') this.#fatal ??= { ...(state.error ?? { code: 'failed', message: 'step failed' }), step_id: state.stepId };
      if (state.groupId) {
        const list = this.#instances.get(state.groupId);
        const index = list?.findIndex((s) => s.stepId === state.stepId) ?? -1;
        if (list && index >= 0) list[index] = state;
      } else if (this.#states.has(state.stepId)) {
        this.#states.set(state.stepId, state);
      }
    }
  }

  /** Starts every step whose dependencies have all ended. */
  #schedule(): void {
    for (const step of this.#o.workflow.steps) {
      const state = this.#states.get(step.id);
      if (!state || state.status !== 'pending') continue;
      if (!step.dependsOn.every((dep) => TERMINAL.has(this.#states.get(dep)?.status ?? 'pending'))) continue;
      state.status = 'running';
      this.#track(this.#startStep(step, state));
    }
  }

  #track(promise: Promise<void>): void {
    const tracked = promise
      .catch((error: unknown) => {
        if (this.#interrupted) return;
        // A journal failure (storage down) must not leave the run hanging: it ends the run.
        this.#fatal ??= { code: 'internal_error', message: error instanceof Error ? error.message : String(error), step_id: '' };
        this.#controller.abort(error);
      })
      .finally(() => {
        this.#inFlight.delete(tracked);
        if (!this.#interrupted) this.#schedule();
      });
    this.#inFlight.add(tracked);
  }

  async #startStep(step: CompiledStep, state: StepState): Promise<void> {
    if (this.#interrupted) return;
    if (this.#controller.signal.aborted || this.#fatal) {
      await this.#endStep(state, 'cancelled', { reason: this.#fatal ? 'the run failed' : 'the run was cancelled' });
      return;
    }
    const deps = step.dependsOn.map((id) => this.#states.get(id)!);
    if (deps.length > 0 && deps.every((d) => d.status !== 'completed')) {
      await this.#skip(state, step, 'all of its inputs were skipped or failed');
      return;
    }
    // An iteration of a loop that ended is skipped as a whole, whatever else its steps wait for.
    if (step.iteration) {
      const ended = step.dependsOn.map((id) => this.#steps.get(id)).find((dep) => dep?.iteration?.index === step.iteration!.index && dep.iteration.loop === step.iteration!.loop && this.#states.get(dep.id)?.status === 'skipped');
      if (ended) {
        await this.#skip(state, step, this.#states.get(ended.id)?.reason ?? 'the loop ended');
        return;
      }
    }
    const scope = this.#scope();
    if (step.loopGuard) {
      const done = compileCondition(step.loopGuard.until).evaluate(scope);
      if (done.ok && done.value) {
        await this.#skip(state, step, `loop ${step.loopGuard.loop} ended: until is true after iteration ${step.loopGuard.iteration - 1}`);
        return;
      }
    }
    if (step.kind === 'loop' && step.loop) {
      await this.#endLoop(step, state, scope);
      return;
    }
    if (step.condition) {
      const verdict = compileCondition(step.condition).evaluate(scope);
      if (!verdict.ok) {
        await this.#skip(state, step, `condition could not be evaluated: ${verdict.error}`);
        return;
      }
      if (!verdict.value) {
        await this.#skip(state, step, `condition is false: ${step.condition}`);
        return;
      }
    }
    if (step.kind === 'approval' && step.approval) {
      await this.#wait(step, state, scope);
      return;
    }
    if (step.parallelCount) {
      await this.#runGroup(step, state, scope);
      return;
    }
    await this.#runCall(step, state, this.#message(step, { ...scope }));
  }

  /** An approval step: it waits, durably, until a person (or its timeout) decides. */
  async #wait(step: CompiledStep, state: StepState, scope: TemplateScope): Promise<void> {
    const approval = step.approval!;
    const message = renderTemplate(approval.message, scope);
    state.status = 'waiting';
    state.agent = 'human';
    state.startedAt = now();
    state.reason = message;
    state.waitUntil = approval.timeoutMs ? new Date(Date.now() + approval.timeoutMs).toISOString() : null;
    await this.#o.journal.step(state, { type: 'step.waiting', data: { step_id: state.stepId, message, timeout_at: state.waitUntil, on_timeout: approval.onTimeout } });
  }

  /** A loop's end: how many iterations ran and whether `until` became true. */
  async #endLoop(step: CompiledStep, state: StepState, scope: TemplateScope): Promise<void> {
    const loop = step.loop!;
    let iterations = 0;
    for (const candidate of this.#o.workflow.steps) {
      if (candidate.iteration?.loop === step.id && this.#states.get(candidate.id)?.status === 'completed') iterations = Math.max(iterations, candidate.iteration.index);
    }
    const verdict = compileCondition(loop.until).evaluate(scope);
    const converged = verdict.ok && verdict.value;
    state.result = { iterations, converged, max_iterations: loop.maxIterations };
    state.startedAt = now();
    state.latencyMs = 0;
    const reason = converged ? null : `stopped at max_iterations (${loop.maxIterations}) without until being true: ${loop.until}`;
    await this.#endStep(state, 'completed', reason ? { reason } : {});
  }

  async #runGroup(step: CompiledStep, group: StepState, scope: TemplateScope): Promise<void> {
    const instances = this.#instances.get(step.id) ?? [];
    if (group.startedAt === null) group.startedAt = now();
    await Promise.all(
      instances.map(async (instance, i) => {
        if (instance.status === 'completed') return;
        instance.status = 'pending';
        await this.#runCall(step, instance, this.#message(step, { ...scope, instance: i }));
      }),
    );
    if (this.#interrupted) return;
    const failed = instances.find((s) => s.status === 'failed');
    const cancelled = instances.some((s) => s.status === 'cancelled');
    group.usage = sumUsage(instances.map((s) => s.usage));
    group.costUsd = instances.reduce((sum, s) => sum + s.costUsd, 0);
    group.attempts = instances.reduce((sum, s) => sum + s.attempts, 0);
    group.latencyMs = Math.max(0, ...instances.map((s) => s.latencyMs ?? 0));
    if (failed) {
      await this.#endStep(group, 'failed', { error: failed.error });
      if (step.onError === 'fail') this.#fail(step.id, failed.error);
    } else if (cancelled) {
      await this.#endStep(group, 'cancelled', { reason: 'the run was cancelled' });
    } else {
      group.result = instances.map((s) => s.result);
      await this.#endStep(group, 'completed', {});
    }
  }

  /** One call with its retries, timeouts and fallbacks. */
  async #runCall(step: CompiledStep, state: StepState, message: string): Promise<void> {
    const agents = [step.agent, ...step.fallback];
    let lastFailure: StepFailure | null = null;
    const started = performance.now();
    state.startedAt ??= now();
    for (const agent of agents) {
      for (let attemptOfAgent = 1; attemptOfAgent <= step.retry.attempts; attemptOfAgent++) {
        if (this.#interrupted) return;
        if (this.#controller.signal.aborted) {
          await this.#endStep(state, 'cancelled', { reason: this.#fatal ? 'the run failed' : 'the run was cancelled' });
          return;
        }
        state.attempts += 1;
        state.agent = agent;
        state.status = 'running';
        await this.#o.journal.step(state, { type: 'step.started', data: { step_id: state.stepId, agent, attempt: state.attempts } });
        const outcome = await this.#attempt(step, state, agent, message);
        if (outcome.ok) {
          state.result = outcome.result.output;
          state.usage = outcome.result.usage;
          state.costUsd += outcome.result.costUsd;
          state.latencyMs = Math.round(performance.now() - started);
          state.error = null;
          await this.#endStep(state, 'completed', {});
          return;
        }
        lastFailure = outcome.failure;
        // Interrupted: the step stays "running" in storage and runs again on resume.
        if (this.#interrupted) return;
        if (this.#controller.signal.aborted && outcome.failure.code === 'cancelled') {
          await this.#endStep(state, 'cancelled', { reason: this.#fatal ? 'the run failed' : 'the run was cancelled' });
          return;
        }
        const moreAttempts = attemptOfAgent < step.retry.attempts && outcome.failure.retryable && !NON_RETRYABLE.has(outcome.failure.code);
        const moreAgents = agents.indexOf(agent) < agents.length - 1;
        state.error = publicError(outcome.failure);
        await this.#o.journal.step(state, {
          type: 'step.failed',
          data: { step_id: state.stepId, agent, error: state.error, attempt: state.attempts, will_retry: moreAttempts || moreAgents },
        });
        if (!moreAttempts) break;
        await this.#backoff(step, attemptOfAgent, outcome.failure);
      }
    }
    state.latencyMs = Math.round(performance.now() - started);
    await this.#endStep(state, 'failed', { error: lastFailure ? publicError(lastFailure) : { code: 'internal_error', message: 'step failed' }, silent: true });
    if (step.onError === 'fail') this.#fail(step.id, state.error);
  }

  async #attempt(step: CompiledStep, state: StepState, agent: string, message: string): Promise<{ ok: true; result: StepCallResult } | { ok: false; failure: StepFailure }> {
    const attemptController = new AbortController();
    const onRunAbort = () => attemptController.abort(this.#controller.signal.reason);
    // The run may have been aborted while this step was being announced: no call starts then.
    if (this.#controller.signal.aborted) onRunAbort();
    else this.#controller.signal.addEventListener('abort', onRunAbort, { once: true });
    let timedOut = false;
    const timer = step.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          attemptController.abort(new Error('step timeout'));
        }, step.timeoutMs)
      : undefined;
    let release: () => void = () => {};
    try {
      release = await this.#acquire();
      if (attemptController.signal.aborted) throw attemptController.signal.reason ?? new Error('aborted');
      const result = await this.#o.runner.run({
        runId: this.#o.runId,
        stepId: state.stepId,
        agent,
        attempt: state.attempts,
        message,
        ...(step.schema ? { schema: step.schema } : {}),
        signal: attemptController.signal,
        onDelta: (text) => this.#o.journal.delta(state.stepId, agent, text),
        ...(step.consults ? { consults: step.consults } : {}),
        consult: this.#consultChannel(state.stepId),
      });
      return { ok: true, result };
    } catch (error) {
      if (timedOut) {
        return { ok: false, failure: { code: 'timeout', message: `The step took longer than its timeout_ms (${step.timeoutMs} ms)`, retryable: true } };
      }
      if (this.#controller.signal.aborted) return { ok: false, failure: { code: 'cancelled', message: 'The run was stopped', retryable: false } };
      return { ok: false, failure: this.#o.runner.classify(error) };
    } finally {
      release();
      if (timer) clearTimeout(timer);
      this.#controller.signal.removeEventListener('abort', onRunAbort);
    }
  }

  /** A permit of the run and of the process; throws when the run is stopped while waiting. */
  async #acquire(): Promise<() => void> {
    const signal = this.#controller.signal;
    await this.#runSemaphore.acquire(signal);
    const process = this.#o.processSemaphore;
    if (process) {
      try {
        await process.acquire(signal);
      } catch (error) {
        this.#runSemaphore.release();
        throw error;
      }
    }
    return () => {
      process?.release();
      this.#runSemaphore.release();
    };
  }

  #consultChannel(parentId: string): ConsultChannel {
    return {
      start: async (agent, question, askedBy) => {
        const n = this.#children.filter((c) => c.stepId.startsWith(`${parentId}.consult`)).length + 1;
        const child: StepState = {
          ...blankState(`${parentId}.consult${n}`, null, { output: `${parentId}.consult${n}`, agent } as CompiledStep),
          status: 'running',
          attempts: 1,
          startedAt: now(),
          reason: question,
        };
        this.#children.push(child);
        await this.#o.journal.step(child, { type: 'step.consult.started', data: { step_id: child.stepId, parent_step_id: parentId, agent, asked_by: askedBy, question } });
        return child.stepId;
      },
      finish: async (childId, result) => {
        const child = this.#children.find((c) => c.stepId === childId);
        if (!child) return;
        Object.assign(child, { status: 'completed', result: result.output, usage: result.usage, costUsd: result.costUsd, latencyMs: Math.round(result.latencyMs), finishedAt: now() });
        await this.#o.journal.step(child, {
          type: 'step.consult.completed',
          data: { step_id: childId, parent_step_id: parentId, agent: child.agent, output: result.output, usage: result.usage, cost_usd: result.costUsd, latency_ms: child.latencyMs, error: null },
        });
      },
      fail: async (childId, failure) => {
        const child = this.#children.find((c) => c.stepId === childId);
        if (!child) return;
        Object.assign(child, { status: 'failed', error: publicError(failure), finishedAt: now() });
        await this.#o.journal.step(child, { type: 'step.consult.completed', data: { step_id: childId, parent_step_id: parentId, agent: child.agent, output: null, error: child.error } });
      },
    };
  }

  async #backoff(step: CompiledStep, attempt: number, failure: StepFailure): Promise<void> {
    const ceiling = Math.min(step.retry.maxBackoffMs, step.retry.backoffMs * 2 ** (attempt - 1));
    const delay = Math.max(Math.round(ceiling / 2 + (this.#random() * ceiling) / 2), failure.retryAfterMs ?? 0);
    const signal = this.#controller.signal;
    if (signal.aborted) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, delay);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #fail(stepId: string, error: StepError | null): void {
    if (this.#fatal) return;
    this.#fatal = { ...(error ?? { code: 'internal_error', message: 'step failed' }), step_id: stepId };
    this.#controller.abort(new Error(`step ${stepId} failed`));
  }

  async #skip(state: StepState, step: CompiledStep, reason: string): Promise<void> {
    await this.#endStep(state, 'skipped', { reason });
    // Instances of a skipped group are skipped with it.
    for (const instance of this.#instances.get(step.id) ?? []) {
      if (!TERMINAL.has(instance.status)) {
        instance.status = 'skipped';
        instance.reason = reason;
        instance.finishedAt = now();
      }
    }
  }

  async #endStep(state: StepState, status: StepStatus, extra: { reason?: string; error?: StepError | null; silent?: boolean }): Promise<void> {
    state.status = status;
    state.finishedAt = now();
    if (extra.reason !== undefined) state.reason = extra.reason;
    if (extra.error !== undefined) state.error = extra.error;
    let event: { type: RunEventType; data: Record<string, unknown> } | undefined;
    if (status === 'completed') {
      event = {
        type: 'step.completed',
        data: { step_id: state.stepId, agent: state.agent, output: state.result, usage: state.usage ?? {}, cost_usd: state.costUsd, latency_ms: state.latencyMs },
      };
    } else if (status === 'skipped') {
      event = { type: 'step.skipped', data: { step_id: state.stepId, reason: state.reason } };
    } else if (status === 'cancelled' && !state.groupId) {
      event = { type: 'step.skipped', data: { step_id: state.stepId, reason: state.reason ?? 'cancelled' } };
    } else if (status === 'failed' && !extra.silent) {
      event = { type: 'step.failed', data: { step_id: state.stepId, agent: state.agent, error: state.error, attempt: state.attempts, will_retry: false } };
    }
    await this.#o.journal.step(state, event);
  }

  #scope(): TemplateScope {
    const outputs: Record<string, unknown> = {};
    const histories: Record<string, unknown[]> = {};
    // In document order, so a name shared by loop iterations ends up with the latest result.
    for (const step of this.#o.workflow.steps) {
      const state = this.#states.get(step.id);
      const completed = state?.status === 'completed';
      const value = completed ? state.result : null;
      outputs[step.id] = value;
      if (completed || !(step.output in outputs)) outputs[step.output] = value;
      if (step.iteration) {
        const history = (histories[step.output] ??= []);
        if (completed) history.push(value);
      }
    }
    return { input: this.#o.input, context: this.#o.context, outputs, histories };
  }

  /** The message an agent receives for a step: its prompt, else its instructions, `Action:` and input. */
  #message(step: CompiledStep, scope: TemplateScope): string {
    const own = step.prompt
      ? renderTemplate(step.prompt, scope)
      : [step.instructions, step.action ? `Action: ${step.action}` : undefined, step.input !== undefined ? renderTemplate(step.input, scope) : this.#defaultInput(step)]
          .filter((part) => part !== undefined && part !== '')
          .join('\n\n');
    const shared = this.#o.workflow.shareContext ? this.#transcript(step, this.#o.workflow.shareContext.budgetTokens) : '';
    return shared ? `${shared}\n\n${own}` : own;
  }

  /**
   * Shared context: the run's earlier exchanges (every completed step and consultation, in the
   * order they finished), newest kept first within the token budget; older ones are dropped and
   * counted. Tokens are estimated at four characters each.
   */
  #transcript(step: CompiledStep, budgetTokens: number): string {
    const done = [...this.#states.values(), ...[...this.#instances.values()].flat(), ...this.#children]
      .filter((s) => s.status === 'completed' && s.stepId !== step.id && s.finishedAt !== null && !this.#instances.has(s.stepId) && this.#steps.get(s.stepId)?.kind !== 'loop')
      .sort((a, b) => (a.finishedAt! < b.finishedAt! ? -1 : a.finishedAt! > b.finishedAt! ? 1 : 0));
    const turns = done.map((s) => {
      const label = this.#steps.get(s.groupId ?? s.stepId)?.label ?? s.agent;
      const asked = s.reason && s.stepId.includes('.consult') ? ` was asked: ${s.reason}\n` : '\n';
      return `### ${label} (step ${s.stepId})${asked}${asText(s.result)}`;
    });
    const kept: string[] = [];
    let budget = budgetTokens * 4;
    for (let i = turns.length - 1; i >= 0; i--) {
      const turn = turns[i]!;
      if (turn.length > budget) break;
      kept.unshift(turn);
      budget -= turn.length;
    }
    if (kept.length === 0) return '';
    const dropped = turns.length - kept.length;
    return [`Conversation so far in this run${dropped > 0 ? ` (${dropped} earlier turn${dropped === 1 ? '' : 's'} omitted)` : ''}:`, ...kept, '---'].join('\n\n');
  }

  /**
   * No input named: the outputs of the steps it waits for, or the workflow input. Several
   * outputs are labelled sections; a dependency that failed is listed with its error, so a
   * joining step knows what is missing.
   */
  #defaultInput(step: CompiledStep): string {
    if (step.dependsOn.length === 0) return this.#o.input;
    // After a loop: its last completed iteration's outputs. Within a loop: the latest per name.
    const ids = step.dependsOn.flatMap((id) => {
      const dep = this.#steps.get(id);
      if (dep?.kind !== 'loop' || !dep.loop) return [id];
      const exits = this.#o.workflow.steps.filter((s) => s.iteration?.loop === dep.id && dep.loop!.exits.includes(s.output) && this.#states.get(s.id)?.status === 'completed');
      return exits.map((s) => s.id);
    });
    const latest = new Map<string, StepState>();
    for (const id of ids) {
      const state = this.#states.get(id);
      const name = this.#steps.get(id)?.output ?? id;
      if (state && (state.status === 'completed' || state.status === 'failed')) latest.set(name, state);
    }
    const deps = [...latest.values()];
    if (deps.length === 1 && deps[0]!.status === 'completed') return asText(deps[0]!.result);
    return deps
      .map((s) => {
        const source = this.#steps.get(s.stepId);
        const label = source?.label ?? s.agent;
        if (s.status === 'failed') return `### ${source?.output ?? s.stepId} (${label}) — failed: ${s.error?.code ?? 'error'}: ${s.error?.message ?? ''}`;
        return `### ${source?.output ?? s.stepId} (${label})\n${asText(s.result)}`;
      })
      .join('\n\n');
  }

  #outcome(): RunOutcome {
    const all = [...this.#states.values()];
    const instances = [...this.#instances.values()].flat();
    const outputs: Record<string, unknown> = {};
    for (const step of this.#o.workflow.steps) {
      const state = this.#states.get(step.id)!;
      if (state.status === 'completed') outputs[step.output] = state.result;
    }
    const leaves = [...all.filter((s) => !this.#instances.has(s.stepId)), ...instances, ...this.#children];
    const usage = sumUsage(leaves.map((s) => s.usage));
    const costUsd = leaves.reduce((sum, s) => sum + s.costUsd, 0);
    let output: unknown = null;
    if (this.#o.workflow.output) {
      output = renderTemplate(this.#o.workflow.output, this.#scope());
    } else {
      for (const step of [...this.#o.workflow.steps].reverse()) {
        const state = this.#states.get(step.id)!;
        if (state.status === 'completed') {
          output = state.result;
          break;
        }
      }
    }
    if (this.#fatal) return { status: 'failed', output: null, outputs, usage, costUsd, error: this.#fatal };
    if (this.#controller.signal.aborted) return { status: 'cancelled', output: null, outputs, usage, costUsd, error: null };
    if (all.some((s) => s.status === 'waiting')) return { status: 'waiting', output: null, outputs, usage, costUsd, error: null };
    const failed = all.find((s) => s.status === 'failed');
    return { status: failed ? 'partial' : 'completed', output, outputs, usage, costUsd, error: null };
  }
}

function blankState(stepId: string, groupId: string | null, step: CompiledStep): StepState {
  return {
    stepId,
    groupId,
    output: step.output,
    agent: step.agent,
    status: 'pending',
    attempts: 0,
    result: null,
    error: null,
    usage: null,
    costUsd: 0,
    latencyMs: null,
    reason: null,
    startedAt: null,
    finishedAt: null,
  };
}

function publicError(failure: StepFailure): StepError {
  const error: StepError = { code: failure.code, message: failure.message };
  if (failure.status !== undefined) error.status = failure.status;
  if (failure.provider !== undefined) error.provider = failure.provider;
  return error;
}

function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  return JSON.stringify(value);
}

export function sumUsage(list: Array<TokenUsage | null>): TokenUsage {
  const total: TokenUsage = { input_tokens: 0, output_tokens: 0, total_tokens: 0 };
  for (const usage of list) {
    if (!usage) continue;
    for (const [key, value] of Object.entries(usage)) total[key] = (total[key] ?? 0) + value;
  }
  return total;
}
