/**
 * 3. Fan-out: one step with `parallel_count: 1000` and a join step that reads every instance.
 * Overhead = run through Ensemble − the same 1001 calls straight to the fake (1000 at once with
 * the same width Ensemble allows a run, then the join).
 */
import { directProvider, streamCall } from '../lib/direct.ts';
import { FAKE_API_KEY, FAKE_MODEL, startFakeVendor } from '../lib/fake.ts';
import { createAgent, createApp, startEnsembleProcess } from '../lib/server.ts';
import { fmtMs, overhead, pool, summarize, timed } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const GOAL_MS = 250;
/** ENSEMBLE_RUN_CONCURRENCY's default: calls in flight per run. */
const RUN_CONCURRENCY = 16;

export const fanOut: Scenario = {
  id: 'fan-out',
  title: '3. Fan-out: one step with parallel_count: 1000 and a join',
  async run(ctx) {
    const tiny = ctx.scale === 'tiny';
    const count = tiny ? 10 : 1000;
    const reps = tiny ? 1 : 15;
    const fake = await startFakeVendor({ latencyMs: 0 });
    const server = await startEnsembleProcess({ allowedHosts: [fake.host], cpuProfDir: ctx.cpuProfDir });
    try {
      const { api } = await createApp(server);
      await createAgent(api, 'worker', fake, FAKE_API_KEY, FAKE_MODEL);
      await createAgent(api, 'joiner', fake, FAKE_API_KEY, FAKE_MODEL);
      await api.ok('POST', '/api/v1/workflows', {
        name: 'fan-out',
        steps: [
          { id: 'items', agent: 'worker', parallel_count: count, prompt: 'Review part {{instance}} of: {{input}}' },
          { id: 'joined', agent: 'joiner', prompt: 'Combine these reviews:\n{{items}}' },
        ],
      });
      const provider = directProvider(fake.baseUrl);
      const input = 'the release notes of version 2.3';
      const direct = (width: number) => async () => {
        const outputs: string[] = new Array(count);
        await pool(count, width, async (i) => {
          outputs[i] = await streamCall(provider, `Review part ${i} of: ${input}`, 'You are worker.');
        });
        await streamCall(provider, `Combine these reviews:\n${JSON.stringify(outputs)}`, 'You are joiner.');
      };
      const through = async () => {
        const run = await api.ok('POST', '/api/v1/workflows/fan-out/execute', { input });
        if (run.status !== 'completed') throw new Error(`fan-out ended ${run.status}: ${JSON.stringify(run.error)}`);
        if (run.outputs.items.length !== count || run.steps.length !== count + 2) throw new Error('fan-out: missing instances');
      };
      // Warm-up, then interleaved repetitions.
      await direct(RUN_CONCURRENCY)();
      await through();
      const same: number[] = [];
      const wide: number[] = [];
      const ens: number[] = [];
      for (let i = 0; i < reps; i++) {
        same.push((await timed(direct(RUN_CONCURRENCY))).ms);
        wide.push((await timed(direct(count))).ms);
        ens.push((await timed(through)).ms);
      }
      const d16 = summarize(same);
      const dAll = summarize(wide);
      const t = summarize(ens);
      // The faster direct variant is the baseline: the overhead is never understated.
      const baseline = dAll.p50 < d16.p50 ? dAll : d16;
      const o = overhead(t, baseline);
      const met = o.p50 <= GOAL_MS;
      ctx.log(`fan-out overhead p50 ${fmtMs(o.p50)} p99 ${fmtMs(o.p99)}`);
      return {
        goal: `overhead ≤ ${GOAL_MS} ms total`,
        met,
        verdict: `${met ? 'met' : 'not met'}: p50 ${fmtMs(o.p50)} for ${count} instances and the join (p99 ${fmtMs(o.p99)}, ${fmtMs(o.p50 / (count + 1), 3)} per call)`,
        figures: [
          { name: 'overhead of the run', p50: o.p50, p99: o.p99, n: reps, note: `through − direct (${baseline === dAll ? `${count} at once` : `${RUN_CONCURRENCY} at a time`}, the faster)` },
          { name: `run through Ensemble (${count} instances + join)`, p50: t.p50, p99: t.p99, n: reps },
          { name: `straight to the fake, ${RUN_CONCURRENCY} calls at a time (Ensemble's per-run width)`, p50: d16.p50, p99: d16.p99, n: reps },
          { name: `straight to the fake, all ${count} at once`, p50: dAll.p50, p99: dAll.p99, n: reps },
        ],
        setup: [
          `workflow: step \`items\` with parallel_count ${count} (each instance renders its own prompt), then step \`joined\` whose prompt holds all ${count} outputs`,
          `${reps} repetitions after one warm-up, interleaved; zero-latency fake; default ENSEMBLE_RUN_CONCURRENCY (${RUN_CONCURRENCY} calls in flight per run)`,
          'every instance is a durable step: its started and completed states, events, usage record and audit entry are written',
        ],
        notes: met ? [] : ['Where the time goes and what would bring it under the goal: bench/FIXES.md, "Fan-out".'],
      };
    } finally {
      await server.stop();
      await fake.close();
    }
  },
};
