/** A run's journal writes the steps and events of one turn with recordSteps: one transaction, multi-row statements. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openStorage, type RunStepRecord, type Storage } from '../../src/storage/index.ts';
import { createTestDatabase, HAS_POSTGRES } from '../support/postgres.ts';
import { createRunningRun } from '../support/storage.ts';

const APP = '66666666-6666-4666-8666-666666666666';
const RUN = '77777777-7777-4777-8777-777777777777';

async function withStorage(engine: 'sqlite' | 'postgres', body: (storage: Storage) => Promise<void>): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-run-steps-'));
  const storage = await openStorage({ dataDir, ...(engine === 'postgres' ? { databaseUrl: (await createTestDatabase()).url } : {}) });
  try {
    await createRunningRun(storage, { appId: APP, runId: RUN });
    await body(storage);
  } finally {
    await storage.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function instance(i: number, status: string, result: unknown): RunStepRecord {
  const at = '2026-11-24T10:00:00.000Z';
  return { run_id: RUN, step_id: `items[${i}]`, group_id: 'items', output_name: 'items', agent: 'a', status, attempts: 1, result, error: null, usage: status === 'completed' ? { total_tokens: i } : null, cost_usd: i / 1000, latency_ms: status === 'completed' ? i : null, reason: null, started_at: at, finished_at: status === 'completed' ? at : null, wait_until: null, run_attempt: 2 };
}

for (const engine of ['sqlite', 'postgres'] as const) {
  describe.skipIf(engine === 'postgres' && !HAS_POSTGRES)(`recordSteps on ${engine}`, () => {
    it('writes many steps and events at once (past one statement), the last state of a step winning', async () => {
      await withStorage(engine, async (storage) => {
        const count = 1200;
        const started = Array.from({ length: count }, (_, i) => instance(i, 'running', null));
        const events = Array.from({ length: count }, (_, i) => ({ run_id: RUN, seq: i + 1, type: 'step.started', data: { step_id: `items[${i}]` }, at: '2026-11-24T10:00:00.000Z' }));
        await storage.runs.recordSteps(started, events);
        // One batch may hold a step twice (it started and ended in one turn): the later state counts.
        const ended = Array.from({ length: 10 }, (_, i) => instance(i, 'completed', `out ${i}`));
        await storage.runs.recordSteps([instance(0, 'running', null), ...ended, instance(5, 'failed', null)], [{ run_id: RUN, seq: count + 1, type: 'step.completed', data: {}, at: '2026-11-24T10:00:01.000Z' }]);

        const steps = await storage.runs.listSteps(RUN);
        expect(steps).toHaveLength(count);
        const byId = new Map(steps.map((s) => [s.step_id, s]));
        expect(byId.get('items[0]')).toMatchObject({ status: 'completed', result: 'out 0', usage: { total_tokens: 0 }, run_attempt: 2 });
        expect(byId.get('items[5]')).toMatchObject({ status: 'failed', result: null });
        expect(byId.get('items[9]')).toMatchObject({ status: 'completed', result: 'out 9', cost_usd: 0.009, latency_ms: 9 });
        expect(byId.get('items[1199]')).toMatchObject({ status: 'running', result: null, finished_at: null });
        const stored = await storage.runs.listEvents(RUN, 0);
        expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: count + 1 }, (_, i) => i + 1));
      });
    });

    it('is one transaction: a failing event (a sequence number taken) leaves none of the steps behind', async () => {
      await withStorage(engine, async (storage) => {
        await storage.runs.appendEvents([{ run_id: RUN, seq: 3, type: 'x', data: {}, at: '2026-11-24T10:00:00.000Z' }]);
        const events = [1, 2, 3].map((seq) => ({ run_id: RUN, seq, type: 'step.started', data: {}, at: '2026-11-24T10:00:00.000Z' }));
        await expect(storage.runs.recordSteps([instance(0, 'running', null), instance(1, 'running', null)], events)).rejects.toThrow();
        expect(await storage.runs.listSteps(RUN)).toEqual([]);
        expect((await storage.runs.listEvents(RUN, 0)).map((e) => e.seq)).toEqual([3]);
      });
    });
  });
}
