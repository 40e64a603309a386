/** Run leases fence a run to one executor: a worker that lost its lease can no longer write. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LeaseLostError, openStorage } from '../../src/storage/index.ts';
import { createTestDatabase, HAS_POSTGRES } from '../support/postgres.ts';

describe.skipIf(!HAS_POSTGRES)('run leases on PostgreSQL', () => {
  it('one owner at a time; a new owner fences the old one out', async () => {
    const database = await createTestDatabase();
    const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-lease-'));
    const storage = await openStorage({ dataDir, databaseUrl: database.url });
    try {
      const now = new Date().toISOString();
      await storage.apps.create({ id: '44444444-4444-4444-8444-444444444444', name: 'l', settings: {}, created_at: now });
      const runId = '55555555-5555-4555-8555-555555555555';
      await storage.runs.create({
        id: runId, app_id: '44444444-4444-4444-8444-444444444444', kind: 'workflow', workflow_id: null, workflow_name: 'w', workflow_version: 1, mode: null,
        definition: { name: 'w', steps: [] }, status: 'running', input: '', context: {}, output: null, outputs: {}, error: null, usage: {}, cost_usd: 0,
        idempotency_key: null, created_at: now, started_at: now, finished_at: null, updated_at: now, user: null, attempt: 1,
      });
      const first = await storage.runs.acquireLease(runId, 'worker-a', 300);
      expect(first).toBe(1);
      expect(await storage.runs.acquireLease(runId, 'worker-b', 300)).toBeNull();
      expect(await storage.runs.renewLease(runId, 'worker-a', 1, 300)).toBe(true);

      const step = { run_id: runId, step_id: 's', group_id: null, output_name: 's', agent: 'x', status: 'completed', attempts: 1, result: 'a', error: null, usage: null, cost_usd: 0, latency_ms: 1, reason: null, started_at: now, finished_at: now };
      const asA = storage.runs.fenced(runId, first!);
      await asA.recordStep(step, [{ run_id: runId, seq: 1, type: 'step.completed', data: {}, at: now }]);

      await new Promise((resolve) => setTimeout(resolve, 350));
      const second = await storage.runs.acquireLease(runId, 'worker-b', 5000);
      expect(second).toBe(2);
      expect(await storage.runs.renewLease(runId, 'worker-a', 1, 300)).toBe(false);
      await expect(asA.recordStep({ ...step, result: 'stale' }, [])).rejects.toBeInstanceOf(LeaseLostError);
      await expect(asA.appendEvents([{ run_id: runId, seq: 2, type: 'step.delta', data: {}, at: now }])).rejects.toBeInstanceOf(LeaseLostError);
      await expect(asA.update(runId, { status: 'completed' }, now)).rejects.toBeInstanceOf(LeaseLostError);
      await storage.runs.fenced(runId, second!).recordStep({ ...step, result: 'fresh' }, []);
      expect((await storage.runs.listSteps(runId))[0]!.result).toBe('fresh');
      expect(await storage.runs.lastSeq(runId)).toBe(1);
    } finally {
      await storage.close();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
