/**
 * Collects what is added during one turn of the event loop and hands it on in one call, at the
 * end of the turn (`setImmediate`). Every `add` resolves (or rejects) with that call: a caller is
 * told its item is done only once the batch holding it is. Under load, the calls of many
 * concurrent runs land in one turn and cost one write instead of one each; alone, an item waits
 * for nothing but the end of its turn.
 */
export class TurnBatch<T> {
  readonly #flush: (items: T[]) => Promise<void>;
  #items: T[] = [];
  #done: Promise<void> | undefined;

  constructor(flush: (items: T[]) => Promise<void>) {
    this.#flush = flush;
  }

  add(item: T): Promise<void> {
    if (!this.#done) {
      const items: T[] = [];
      this.#items = items;
      this.#done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.#done = undefined;
        return this.#flush(items);
      });
    }
    this.#items.push(item);
    return this.#done;
  }
}
