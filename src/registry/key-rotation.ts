import { Keyring } from '../security/index.ts';
import type { Storage } from '../storage/index.ts';

export interface RotationProgress {
  rewrapped: number;
  /** Envelopes that a concurrent PATCH replaced while we worked (they are already current). */
  skipped: number;
  failed: number;
}

/**
 * Re-wraps every provider key under the keyring's active master key, in batches, while the
 * server runs. Each row is swapped only if unchanged since it was read, so a concurrent PATCH is
 * never overwritten. Stopping half-way is safe: a rerun picks up the rows still on an old key.
 */
export async function rotateKeys(
  storage: Storage,
  keyring: Keyring,
  onProgress: (progress: RotationProgress) => void = () => {},
  batchSize = 100,
): Promise<RotationProgress> {
  const progress: RotationProgress = { rewrapped: 0, skipped: 0, failed: 0 };
  const failedIds = new Set<string>();
  for (;;) {
    const batch = (await storage.agents.listKeysNotWrappedBy(keyring.activeId, batchSize + failedIds.size)).filter((row) => !failedIds.has(row.id));
    if (batch.length === 0) break;
    for (const row of batch.slice(0, batchSize)) {
      if (!row.api_key_ciphertext) continue;
      try {
        const next = keyring.rewrap(row.api_key_ciphertext, `agent:${row.app_id}:${row.id}`);
        const swapped = await storage.agents.swapKeyEnvelope(row.id, row.api_key_ciphertext, next, Keyring.keyIdOf(next));
        if (swapped) progress.rewrapped++;
        else progress.skipped++;
      } catch {
        failedIds.add(row.id);
        progress.failed++;
      }
    }
    onProgress({ ...progress });
  }
  return progress;
}
