import type { RunEventType, RunJournal, RunOutcome, StepState } from '../workflow/index.ts';
import type { RunEventRecord, RunStepRecord, Storage } from '../storage/index.ts';
import type { EventBus } from './event-bus.ts';

/** Deltas are written in batches: at the next state change, at this many, or after this long. */
const DELTA_BATCH_SIZE = 64;
const DELTA_FLUSH_MS = 50;

interface StepBatch {
  steps: RunStepRecord[];
  events: RunEventRecord[];
  /** The deltas among `events`: they leave the bus's pending list once stored. */
  deltas: RunEventRecord[];
  done: Promise<void>;
}

export const FINAL_EVENTS: ReadonlySet<string> = new Set(['run.completed', 'run.failed', 'run.cancelled']);

/**
 * The durable journal of one run: a state change is written to storage, then announced on the
 * bus. Sequence numbers are per run and continue across restarts.
 */
export class StorageRunJournal implements RunJournal {
  readonly #storage: Storage;
  readonly #bus: EventBus;
  readonly #runId: string;
  #seq: number;
  #deltas: RunEventRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** The batch still taking writes, and the last batch handed on (they are stored in order). */
  #batch: StepBatch | undefined;
  #tail: Promise<void> = Promise.resolve();

  readonly #attempt: number;

  constructor(storage: Storage, bus: EventBus, runId: string, lastSeq: number, attempt = 1) {
    this.#storage = storage;
    this.#bus = bus;
    this.#runId = runId;
    this.#seq = lastSeq;
    this.#attempt = attempt;
  }

  async step(state: StepState, event?: { type: RunEventType; data: Record<string, unknown> }): Promise<void> {
    // Buffered deltas go into the step's own transaction rather than a write of their own.
    const deltas = this.#takeDeltas();
    const events = event ? [this.#next(event.type, event.data)] : [];
    const record = { ...toStepRecord(this.#runId, state), run_attempt: this.#attempt };
    await this.#write([record], deltas.length > 0 ? [...deltas, ...events] : events, deltas);
    for (const e of events) this.#bus.publish(e);
  }

  async event(type: RunEventType, data: Record<string, unknown>): Promise<void> {
    // Into the pipeline at once, with the deltas before it: storage gets the events in order.
    const deltas = this.#takeDeltas();
    const event = this.#next(type, data);
    const written = this.#write([], [...deltas, event], deltas);
    if (type === 'run.started') await this.#storage.runs.update(this.#runId, { status: 'running', started_at: event.at }, event.at);
    await written;
    this.#bus.publish(event);
  }

  delta(stepId: string, agent: string, text: string): void {
    const event = this.#next('step.delta', { step_id: stepId, agent, text });
    this.#deltas.push(event);
    this.#bus.addPending(event);
    this.#bus.publish(event);
    if (this.#deltas.length >= DELTA_BATCH_SIZE) void this.#flushDeltas().catch(() => {});
    else this.#timer ??= setTimeout(() => void this.#flushDeltas().catch(() => {}), DELTA_FLUSH_MS);
  }

  async finish(outcome: RunOutcome): Promise<void> {
    await this.#flushDeltas();
    const at = new Date().toISOString();
    if (outcome.status === 'waiting') {
      // Not over: the run sleeps (no worker holds it) until a person decides. Only a running run
      // goes to sleep: a decision that already queued it again wins.
      await this.#storage.runs.update(this.#runId, { outputs: outcome.outputs, usage: outcome.usage, cost_usd: outcome.costUsd }, at);
      if (!(await this.#storage.runs.transitionStatus(this.#runId, 'running', 'waiting'))) return;
      const steps = await this.#storage.runs.listSteps(this.#runId);
      const waitingFor = steps.filter((s) => s.status === 'waiting').map((s) => ({ step_id: s.step_id, message: s.reason, since: s.started_at, timeout_at: s.wait_until ?? null }));
      const event = this.#next('run.waiting', { waiting_for: waitingFor, outputs: outcome.outputs });
      await this.#write([], [event], []);
      this.#bus.publish(event);
      return;
    }
    await this.#storage.runs.update(
      this.#runId,
      { status: outcome.status, output: outcome.output, outputs: outcome.outputs, error: outcome.error, usage: outcome.usage, cost_usd: outcome.costUsd, finished_at: at },
      at,
    );
    await this.#storage.runs.finishAttempt(this.#runId, this.#attempt, outcome.status, outcome.error, at);
    let event: RunEventRecord;
    if (outcome.status === 'failed') event = this.#next('run.failed', { error: outcome.error, outputs: outcome.outputs, usage: outcome.usage, cost_usd: outcome.costUsd });
    else if (outcome.status === 'cancelled') event = this.#next('run.cancelled', { reason: 'cancelled', outputs: outcome.outputs, usage: outcome.usage, cost_usd: outcome.costUsd });
    else event = this.#next('run.completed', { status: outcome.status, output: outcome.output, outputs: outcome.outputs, usage: outcome.usage, cost_usd: outcome.costUsd });
    await this.#write([], [event], []);
    this.#bus.publish(event);
  }

  #next(type: string, data: Record<string, unknown>): RunEventRecord {
    this.#seq += 1;
    return { run_id: this.#runId, seq: this.#seq, type, data: { run_id: this.#runId, seq: this.#seq, run_attempt: this.#attempt, ...data }, at: new Date().toISOString() };
  }

  /** The buffered deltas, handed to a write that is about to happen. */
  #takeDeltas(): RunEventRecord[] {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#deltas;
    if (batch.length > 0) this.#deltas = [];
    return batch;
  }

  /** Writes buffered deltas (with whatever else this turn writes). */
  #flushDeltas(): Promise<void> {
    const deltas = this.#takeDeltas();
    return this.#write([], deltas, deltas);
  }

  /**
   * Every write of the journal's steps and events goes through one pipeline of batches: what
   * the steps of a run write in one turn (the instances of a fan-out that start or end at once)
   * is one transaction with one multi-row statement per table, not one each (bench/FIXES.md).
   * Batches are stored one after the other, so events reach storage in sequence order; every
   * caller is answered once the batch holding its write is stored.
   */
  #write(steps: RunStepRecord[], events: RunEventRecord[], deltas: RunEventRecord[]): Promise<void> {
    // Nothing to write: wait for what is on its way (an earlier batch's failure was its callers').
    if (steps.length === 0 && events.length === 0) return this.#tail.catch(() => {});
    let batch = this.#batch;
    if (!batch) {
      const created: StepBatch = { steps: [], events: [], deltas: [], done: Promise.resolve() };
      // A failed batch must not poison later ones: the chain goes on (a reader skips a hole
      // once the run has ended), and its deltas leave the pending list either way.
      created.done = this.#tail
        .catch(() => {})
        .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
        .then(async () => {
          if (this.#batch === created) this.#batch = undefined;
          try {
            await this.#storage.runs.recordSteps(created.steps, created.events);
          } finally {
            const last = created.deltas[created.deltas.length - 1];
            if (last) this.#bus.stored(this.#runId, last.seq);
          }
        });
      this.#tail = created.done;
      this.#batch = batch = created;
    }
    batch.steps.push(...steps);
    batch.events.push(...events);
    batch.deltas.push(...deltas);
    return batch.done;
  }
}

export function toStepRecord(runId: string, state: StepState): RunStepRecord {
  return {
    run_id: runId,
    step_id: state.stepId,
    group_id: state.groupId,
    output_name: state.output,
    agent: state.agent,
    status: state.status,
    attempts: state.attempts,
    result: state.result,
    error: state.error,
    usage: state.usage,
    cost_usd: state.costUsd,
    latency_ms: state.latencyMs,
    reason: state.reason,
    started_at: state.startedAt,
    finished_at: state.finishedAt,
    wait_until: state.waitUntil ?? null,
  };
}

export function fromStepRecord(record: RunStepRecord): StepState {
  return {
    stepId: record.step_id,
    groupId: record.group_id,
    output: record.output_name,
    agent: record.agent,
    status: record.status as StepState['status'],
    attempts: record.attempts,
    result: record.result,
    error: record.error as StepState['error'],
    usage: record.usage,
    costUsd: record.cost_usd,
    latencyMs: record.latency_ms,
    reason: record.reason,
    startedAt: record.started_at,
    finishedAt: record.finished_at,
    waitUntil: record.wait_until ?? null,
  };
}
