import type { RunEventRecord } from '../storage/index.ts';

export type RunEventListener = (event: RunEventRecord) => void;

/**
 * Live run events inside one process. Events are published in sequence order; state events are
 * already stored when they arrive here, text deltas may still be waiting for their batch write
 * (`pending`), so a reader that replays from storage can fill the gap without waiting.
 */
export class EventBus {
  readonly #listeners = new Map<string, Set<RunEventListener>>();
  readonly #pending = new Map<string, RunEventRecord[]>();
  /** Forwards local events to other processes (cluster mode). */
  #relay: ((event: RunEventRecord) => void) | undefined;

  relayTo(relay: (event: RunEventRecord) => void): void {
    this.#relay = relay;
  }

  subscribe(runId: string, listener: RunEventListener): () => void {
    let set = this.#listeners.get(runId);
    if (!set) {
      set = new Set();
      this.#listeners.set(runId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(runId);
    };
  }

  /** Announces an event here, and (unless it came from another process) to the other processes. */
  publish(event: RunEventRecord, options: { remote?: boolean } = {}): void {
    if (!options.remote) this.#relay?.(event);
    const set = this.#listeners.get(event.run_id);
    if (!set) return;
    for (const listener of [...set]) listener(event);
  }

  /** Records an event that is announced but not stored yet. */
  addPending(event: RunEventRecord): void {
    const list = this.#pending.get(event.run_id) ?? [];
    list.push(event);
    this.#pending.set(event.run_id, list);
  }

  /** The events of a run announced but not stored yet. */
  pending(runId: string): RunEventRecord[] {
    return [...(this.#pending.get(runId) ?? [])];
  }

  /** Forgets pending events up to `seq` once they are stored. */
  stored(runId: string, seq: number): void {
    const list = this.#pending.get(runId);
    if (!list) return;
    const rest = list.filter((e) => e.seq > seq);
    if (rest.length === 0) this.#pending.delete(runId);
    else this.#pending.set(runId, rest);
  }
}
