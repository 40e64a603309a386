import { newId, TurnBatch } from '../core/index.ts';
import type { AuditEntry, AuditStore } from '../storage/index.ts';

/** Who did something: the admin, an app token, or Ensemble itself. */
export type Actor = { kind: 'admin' } | { kind: 'app'; appId: string; tokenId: string } | { kind: 'system'; name: string };

export function actorLabel(actor: Actor): string {
  switch (actor.kind) {
    case 'admin':
      return 'admin';
    case 'app':
      return `token:${actor.tokenId}`;
    case 'system':
      return `system:${actor.name}`;
  }
}

export type AuditInput = Omit<AuditEntry, 'id' | 'at' | 'actor'> & { actor: Actor };

/** Appends audit entries. Details must never hold a secret; callers pass names and ids only. */
export class AuditWriter {
  /** Entries of one turn are one multi-row insert (each call still waits until its entry is stored). */
  readonly #batch: TurnBatch<AuditEntry>;

  constructor(store: AuditStore) {
    this.#batch = new TurnBatch((entries) => store.appendMany(entries));
  }

  async record(input: AuditInput): Promise<void> {
    await this.#batch.add({ ...input, id: newId(), at: new Date().toISOString(), actor: actorLabel(input.actor) });
  }
}
