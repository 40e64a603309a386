/**
 * Dispatch of runs to executors. The in-process queue runs them here; the cluster issue puts
 * BullMQ workers behind the same port.
 */
export type RunHandler = (runId: string) => Promise<void>;

export interface RunQueue {
  readonly kind: 'local' | 'redis';
  enqueue(runId: string): Promise<void>;
  /** Starts handing runs to `handler`. */
  start(handler: RunHandler): void;
  /** Stops taking runs and waits for the ones running (up to `graceMs`). */
  stop(graceMs: number): Promise<void>;
}

/** Runs each enqueued run at once in this process; the engine bounds calls in flight. */
export class InProcessRunQueue implements RunQueue {
  readonly kind = 'local' as const;
  #handler: RunHandler | undefined;
  readonly #backlog: string[] = [];
  readonly #running = new Set<Promise<void>>();
  #stopped = false;
  readonly #onError: (runId: string, error: unknown) => void;

  constructor(onError: (runId: string, error: unknown) => void = () => {}) {
    this.#onError = onError;
  }

  async enqueue(runId: string): Promise<void> {
    if (this.#stopped) throw new Error('the run queue is stopped');
    if (!this.#handler) {
      this.#backlog.push(runId);
      return;
    }
    this.#dispatch(runId);
  }

  start(handler: RunHandler): void {
    this.#handler = handler;
    for (const runId of this.#backlog.splice(0)) this.#dispatch(runId);
  }

  async stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    const all = Promise.allSettled([...this.#running]);
    await Promise.race([all, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
  }

  #dispatch(runId: string): void {
    const handler = this.#handler!;
    const task = handler(runId)
      .catch((error: unknown) => this.#onError(runId, error))
      .finally(() => this.#running.delete(task));
    this.#running.add(task);
  }
}
