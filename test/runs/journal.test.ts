/** The run journal writes what a run's steps do in one turn as one batch, in sequence order. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/orchestrator/event-bus.ts';
import { StorageRunJournal } from '../../src/orchestrator/journal.ts';
import { openStorage, type Storage } from '../../src/storage/index.ts';
import type { StepState } from '../../src/workflow/index.ts';
import { createRunningRun } from '../support/storage.ts';

const APP = '88888888-8888-4888-8888-888888888888';
const RUN = '99999999-9999-4999-8999-999999999999';

function state(id: string, status: StepState['status']): StepState {
  return { stepId: id, groupId: 'items', output: 'items', agent: 'a', status, attempts: 1, result: status === 'completed' ? `out ${id}` : null, error: null, usage: null, costUsd: 0, latencyMs: null, reason: null, startedAt: '2026-11-24T10:00:00.000Z', finishedAt: null, waitUntil: null };
}

describe('run journal batches', () => {
  let dir: string;
  let storage: Storage;
  let calls: Array<{ steps: number; events: number[] }>;
  let onWrite: (() => void) | undefined;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ensemble-journal-'));
    storage = await openStorage({ dataDir: dir });
    await createRunningRun(storage, { appId: APP, runId: RUN });
    calls = [];
    const recordSteps = storage.runs.recordSteps.bind(storage.runs);
    storage.runs.recordSteps = (steps, events) => {
      calls.push({ steps: steps.length, events: events.map((e) => e.seq) });
      const hook = onWrite;
      onWrite = undefined;
      hook?.();
      return recordSteps(steps, events);
    };
  });

  afterEach(async () => {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the steps that start in one turn are one write; each caller hears of it once stored, and the events are announced after', async () => {
    const bus = new EventBus();
    const announced: number[] = [];
    bus.subscribe(RUN, (event) => announced.push(event.seq));
    const journal = new StorageRunJournal(storage, bus, RUN, 0);
    const writes = Array.from({ length: 16 }, (_, i) => journal.step(state(`items[${i}]`, 'running'), { type: 'step.started', data: { step_id: `items[${i}]` } }));
    expect(announced).toEqual([]);
    await Promise.all(writes);
    expect(calls).toEqual([{ steps: 16, events: Array.from({ length: 16 }, (_, i) => i + 1) }]);
    expect(announced).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect((await storage.runs.listSteps(RUN)).map((s) => s.status)).toEqual(Array(16).fill('running'));
  });

  it('deltas, step states and later batches reach storage in sequence order', async () => {
    const bus = new EventBus();
    const journal = new StorageRunJournal(storage, bus, RUN, 10);
    journal.delta('items[0]', 'a', 'he');
    journal.delta('items[0]', 'a', 'llo');
    // Issued while the first batch is being stored: a batch of its own, stored after it.
    let second: Promise<void> | undefined;
    onWrite = () => (second = journal.step(state('items[1]', 'completed'), { type: 'step.completed', data: { step_id: 'items[1]' } }));
    await journal.step(state('items[0]', 'completed'), { type: 'step.completed', data: { step_id: 'items[0]' } });
    await second;
    await journal.event('run.started', {});
    expect(calls).toEqual([
      { steps: 1, events: [11, 12, 13] },
      { steps: 1, events: [14] },
      { steps: 0, events: [15] },
    ]);
    const stored = await storage.runs.listEvents(RUN, 0);
    expect(stored.map((e) => [e.seq, e.type])).toEqual([
      [11, 'step.delta'],
      [12, 'step.delta'],
      [13, 'step.completed'],
      [14, 'step.completed'],
      [15, 'run.started'],
    ]);
    // Stored deltas leave the bus's list of announced-but-unstored events.
    expect(bus.pending(RUN)).toEqual([]);
  });
});
