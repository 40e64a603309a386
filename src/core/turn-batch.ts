/**
 * Collects what is added during one turn of the event loop and hands it on in one call, at the
 * end of the turn (`setImmediate`), or at once when the batch is full: in a burst (thousands of
 * calls ending in one turn) its callers would otherwise all wait, with everything they hold, for
 * the turn's end. A caller is told its item is done only once the call holding it is; when a
 * batch fails, its items are handed on one by one, so one bad item fails only its own caller.
 * Under load, the calls of many concurrent runs cost one write instead of one each; alone, an
 * item waits for nothing but the end of its turn.
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
      const created: Batch<T> = { entries: [], immediate: undefined };
      created.immediate = setImmediate(() => this.#close(created));
      this.#open = batch = created;
    }
    const done = new Promise<void>((resolve, reject) => batch.entries.push({ item, resolve, reject }));
    if (batch.entries.length >= this.#maxItems) this.#close(batch);
    return done;
  }

  #close(batch: Batch<T>): void {
    if (this.#open === batch) this.#open = undefined;
    clearImmediate(batch.immediate);
    void this.#handOn(batch.entries);
  }

  async #handOn(entries: Array<Entry<T>>): Promise<void> {
    try {
      await this.#flush(entries.map((e) => e.item));
      for (const e of entries) e.resolve();
    } catch (error) {
      if (entries.length === 1) return entries[0]!.reject(error);
      for (const e of entries) await this.#handOn([e]);
    }
  }
}

interface Entry<T> {
  item: T;
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface Batch<T> {
  entries: Array<Entry<T>>;
  immediate: NodeJS.Immediate | undefined;
}
