import { Queue, Worker, type Job } from 'bullmq';
import type { RunHandler, RunQueue } from './run-queue.ts';

/**
 * Settings of the BullMQ dispatch, with their defaults. A worker that dies loses its job lock
 * after `lockDurationMs`; other workers check for such stalled jobs every `stalledIntervalMs`
 * and take them over, so a run resumes within about lockDuration + stalledInterval.
 */
export interface BullMqSettings {
  /** Runs one worker process executes at once. Default 50. */
  concurrency: number;
  /** How long a job's lock lives without renewal (renewed every half of it). Default 15 000 ms. */
  lockDurationMs: number;
  /** How often workers look for stalled jobs. Default 5 000 ms. */
  stalledIntervalMs: number;
  /** Delay before a job that could not run (lease busy, worker draining) is tried again. Default 1 000 ms. */
  retryDelayMs: number;
}

export const DEFAULT_BULLMQ_SETTINGS: Readonly<BullMqSettings> = {
  concurrency: 50,
  lockDurationMs: 15_000,
  stalledIntervalMs: 5_000,
  retryDelayMs: 1_000,
};

const QUEUE_NAME = 'ensemble-runs';

/** Runs dispatched through Redis with BullMQ; PostgreSQL stays the truth about each run. */
export class BullMqRunQueue implements RunQueue {
  readonly kind = 'redis' as const;
  readonly #queue: Queue;
  readonly #url: string;
  readonly #settings: BullMqSettings;
  #worker: Worker | undefined;
  readonly #onError: (runId: string, error: unknown) => void;

  constructor(redisUrl: string, settings: Partial<BullMqSettings> = {}, onError: (runId: string, error: unknown) => void = () => {}) {
    this.#url = redisUrl;
    this.#settings = { ...DEFAULT_BULLMQ_SETTINGS, ...settings };
    this.#onError = onError;
    this.#queue = new Queue(QUEUE_NAME, { connection: connection(redisUrl) });
    // Without a listener, a connection error would be thrown as an unhandled 'error' event.
    this.#queue.on('error', () => {});
  }

  async enqueue(runId: string): Promise<void> {
    // The job id is the run id: enqueueing a run that is already waiting or active is a no-op.
    await this.#queue.add(
      'run',
      { runId },
      {
        jobId: runId,
        attempts: 1_000_000,
        backoff: { type: 'fixed', delay: this.#settings.retryDelayMs },
        removeOnComplete: true,
        removeOnFail: true,
      },
    );
  }

  start(handler: RunHandler): void {
    this.#worker = new Worker(QUEUE_NAME, async (job: Job<{ runId: string }>) => handler(job.data.runId), {
      connection: connection(this.#url),
      concurrency: this.#settings.concurrency,
      lockDuration: this.#settings.lockDurationMs,
      stalledInterval: this.#settings.stalledIntervalMs,
      maxStalledCount: 1_000_000,
    });
    this.#worker.on('failed', (job, error) => {
      if (job && !(error instanceof Error && error.name === 'RunNotReadyError')) this.#onError(job.data.runId, error);
    });
    this.#worker.on('error', () => {});
  }

  async stop(graceMs: number): Promise<void> {
    const closing = this.#worker?.close();
    if (closing) await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
  }

  /** Closes the Redis connections (after `stop`). */
  async close(): Promise<void> {
    await this.#worker?.close(true).catch(() => {});
    await this.#queue.close().catch(() => {});
  }
}

function connection(url: string) {
  // BullMQ needs maxRetriesPerRequest null: commands wait for a reconnect instead of failing.
  return { url, maxRetriesPerRequest: null, enableOfflineQueue: true };
}
