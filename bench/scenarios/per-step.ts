/**
 * 1. Per-step overhead: one sequential 10-step workflow, one run at a time, embedded SQLite.
 * Overhead per step = (run through Ensemble − the same 10 calls straight to the fake) / 10.
 */
import { directProvider, streamCall } from '../lib/direct.ts';
import { FAKE_API_KEY, FAKE_MODEL, startFakeVendor } from '../lib/fake.ts';
import { createAgent, createApp, startEnsembleProcess } from '../lib/server.ts';
import { fmtMs, overhead, summarize, timed } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const STEPS = 10;
const GOAL_MS = 1;

export const perStep: Scenario = {
  id: 'per-step',
  title: '1. Per-step overhead (sequential 10-step workflow, concurrency 1, embedded SQLite)',
  async run(ctx) {
    const tiny = ctx.scale === 'tiny';
    const runs = tiny ? 3 : 300;
    const warmup = tiny ? 1 : 30;
    const fake = await startFakeVendor({ latencyMs: 0 });
    const server = await startEnsembleProcess({ allowedHosts: [fake.host], cpuProfDir: ctx.cpuProfDir });
    try {
      const { api } = await createApp(server);
      await createAgent(api, 'step-agent', fake, FAKE_API_KEY, FAKE_MODEL);
      await api.ok('POST', '/api/v1/workflows', {
        name: 'sequential-10',
        steps: Array.from({ length: STEPS }, (_, i) => ({ id: `s${i + 1}`, agent: 'step-agent' })),
      });
      const provider = directProvider(fake.baseUrl);
      const input = 'Summarize the change in one sentence: the cache now expires entries after ten minutes.';
      const direct = async () => {
        let message = input;
        for (let i = 0; i < STEPS; i++) message = await streamCall(provider, message, 'You are step-agent.');
      };
      const through = async () => {
        const run = await api.ok('POST', '/api/v1/workflows/sequential-10/execute', { input });
        if (run.status !== 'completed' || run.steps.length !== STEPS) throw new Error(`run ended ${run.status} with ${run.steps.length} steps`);
        if (run.steps.some((s: { status: string }) => s.status !== 'completed')) throw new Error('a step did not complete');
      };
      for (let i = 0; i < warmup; i++) {
        await direct();
        await through();
      }
      const directMs: number[] = [];
      const throughMs: number[] = [];
      for (let i = 0; i < runs; i++) {
        directMs.push((await timed(direct)).ms);
        throughMs.push((await timed(through)).ms);
      }
      const d = summarize(directMs);
      const t = summarize(throughMs);
      const perStepOverhead = overhead(t, d, STEPS);
      const met = perStepOverhead.p50 <= GOAL_MS;
      ctx.log(`per-step overhead p50 ${fmtMs(perStepOverhead.p50, 3)} p99 ${fmtMs(perStepOverhead.p99, 3)}`);
      return {
        goal: `p50 ≤ ${GOAL_MS} ms per step, durable writes included`,
        met,
        verdict: `${met ? 'met' : 'not met'}: p50 ${fmtMs(perStepOverhead.p50, 3)} per step (p99 ${fmtMs(perStepOverhead.p99, 3)})`,
        figures: [
          { name: 'overhead per step', p50: perStepOverhead.p50, p99: perStepOverhead.p99, n: runs, note: '(through − direct) / 10' },
          { name: '10-step run through Ensemble (POST …/execute, sync)', p50: t.p50, p99: t.p99, n: runs },
          { name: '10 calls straight to the fake', p50: d.p50, p99: d.p99, n: runs },
        ],
        setup: [
          `${runs} runs after ${warmup} warm-up runs, direct and Ensemble interleaved`,
          'each step streams one OpenAI Chat Completions call from the zero-latency fake; every step writes its state, events, usage record and audit entry to SQLite before the next starts',
          'the direct baseline makes the same 10 streamed calls through the same AI SDK provider, in the bench process',
        ],
        notes: met ? [] : ['Where the time goes and what would bring it under the goal: bench/FIXES.md, "Per-step overhead".'],
      };
    } finally {
      await server.stop();
      await fake.close();
    }
  },
};
