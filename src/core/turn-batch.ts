/**
 * Collects what is added during one turn of the event loop and hands it on in one call, at the
 * end of the turn (`setImmediate`), or at once when the batch is full: in a burst (thousands of
 * calls ending in one turn) its callers would otherwise all wait, with everything they hold, for
 * the turn's end. Every `add` resolves (or rejects) with that call: a caller is told its item is
 * done only once the batch holding it is. Under load, the calls of many concurrent runs cost one
 * write instead of one each; alone, an item waits for nothing but the end of its turn.
 */
export class TurnBatch<T> {
  readonly #flush: (items: T[]) => Promise<void>;
  readonly #maxItems: number;
  #open: Batch<T> | undefined;

  constructor(flush: (items: T[]) => Promise<void>, options: { maxItems?: number } = {}) {
    this.#flush = flush;
    this.#maxItems = options.maxItems ?? 256;
  }

  add(item: T): Promise<void> {
    let batch = this.#open;
    if (!batch) {
      const created: Batch<T> = { items: [], go: () => {}, done: Promise.resolve(), immediate: undefined };
      created.done = new Promise<void>((resolve) => (created.go = resolve)).then(() => this.#flush(created.items));
      created.immediate = setImmediate(() => this.#close(created));
      this.#open = batch = created;
    }
    batch.items.push(item);
    if (batch.items.length >= this.#maxItems) this.#close(batch);
    return batch.done;
  }

  #close(batch: Batch<T>): void {
    if (this.#open === batch) this.#open = undefined;
    clearImmediate(batch.immediate);
    batch.go();
  }
}

interface Batch<T> {
  items: T[];
  go: () => void;
  done: Promise<void>;
  immediate: NodeJS.Immediate | undefined;
}
