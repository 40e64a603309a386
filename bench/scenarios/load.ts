/**
 * 2. Under load: 64 runs of the PR-review workflow in flight at once (closed loop: each client
 * starts its next run when one ends), against the fake with a fixed latency and against the
 * zero-latency fake (saturation: the most steps per second this machine does).
 *
 * Added latency per step = (run through Ensemble − the same DAG straight to the fake, at the
 * same concurrency and latency) / 3, the steps on the DAG's critical path (analysis → fixes ∥
 * security → synthesis).
 */
import { readFileSync } from 'node:fs';
import { directPrReview, directProvider } from '../lib/direct.ts';
import { FAKE_API_KEY, FAKE_MODEL, startFakeVendor, type FakeVendorProcess } from '../lib/fake.ts';
import { createAgent, createApp, startEnsembleProcess, type Api } from '../lib/server.ts';
import { fmtMs, overhead, summarize } from '../lib/stats.ts';
import type { Figure, Scenario } from '../lib/types.ts';

const GOAL_P99_MS = 10;
const CRITICAL_PATH = 3;
const STEPS_PER_RUN = 4;
export const PR_REVIEW_YAML = readFileSync(new URL('../../examples/pr_review.yaml', import.meta.url), 'utf8');
export const PR_AGENTS = ['claude-leader', 'gpt-coder', 'gemini-security'];
export const PR_INPUT = 'PR #42: add a login form. Files: src/auth/login.ts (+120), src/auth/session.ts (+40 −12), test/auth.test.ts (+80).';

/** Registers the PR-review agents (all on the one fake) and saves examples/pr_review.yaml. */
export async function setupPrReview(api: Api, fake: FakeVendorProcess): Promise<void> {
  for (const name of PR_AGENTS) await createAgent(api, name, fake, FAKE_API_KEY, FAKE_MODEL);
  await api.ok('POST', '/api/v1/workflows', PR_REVIEW_YAML, { 'content-type': 'application/yaml' });
}

export async function prReviewThroughEnsemble(api: Api): Promise<void> {
  const run = await api.ok('POST', '/api/v1/workflows/pr_review/execute', { input: PR_INPUT });
  if (run.status !== 'completed') throw new Error(`pr_review ended ${run.status}: ${JSON.stringify(run.error)}`);
}

/**
 * `clients` loops, each running `task` back to back until `durationMs` has passed; returns each
 * task's time. The clients start spread over `spreadMs` (about one run), so that with a fixed
 * latency they do not move in lockstep waves.
 */
async function closedLoop(clients: number, durationMs: number, spreadMs: number, task: () => Promise<void>): Promise<{ times: number[]; elapsedMs: number }> {
  const times: number[] = [];
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      await new Promise((resolve) => setTimeout(resolve, (i * spreadMs) / clients));
      while (performance.now() < deadline) {
        const t = performance.now();
        await task();
        times.push(performance.now() - t);
      }
    }),
  );
  return { times, elapsedMs: performance.now() - started };
}

export const load: Scenario = {
  id: 'load',
  title: '2. Under load: 64 concurrent PR-review runs',
  async run(ctx) {
    const tiny = ctx.scale === 'tiny';
    const clients = tiny ? 4 : 64;
    // The goal is judged at the first latency; the others show how the added latency grows as
    // the server gets busier (0 ms: saturated, the figure is the throughput).
    const phases = tiny
      ? [{ latencyMs: 5, durationMs: 300, warmupMs: 100 }, { latencyMs: 0, durationMs: 300, warmupMs: 100 }]
      : [{ latencyMs: 1000, durationMs: 25_000, warmupMs: 4_000 }, { latencyMs: 250, durationMs: 10_000, warmupMs: 2_000 }, { latencyMs: 0, durationMs: 8_000, warmupMs: 2_000 }];
    const latencyMs = phases[0]!.latencyMs;
    const fake = await startFakeVendor({ latencyMs });
    const server = await startEnsembleProcess({ allowedHosts: [fake.host], cpuProfDir: ctx.cpuProfDir });
    try {
      const { api } = await createApp(server);
      await setupPrReview(api, fake);
      const provider = directProvider(fake.baseUrl);
      const direct = () => directPrReview(provider, PR_INPUT).then(() => undefined);
      const through = () => prReviewThroughEnsemble(api);
      const figures: Figure[] = [];
      const results: Record<string, { added: { p50: number; p99: number }; throughput: number; t: ReturnType<typeof summarize>; d: ReturnType<typeof summarize> }> = {};
      for (const { latencyMs: latency, durationMs, warmupMs } of phases) {
        await fake.configure({ latencyMs: latency });
        ctx.log(`load: ${clients} clients, fake latency ${latency} ms`);
        const spreadMs = Math.max(20, CRITICAL_PATH * latency);
        await closedLoop(clients, warmupMs, spreadMs, through);
        const d = await closedLoop(clients, durationMs, spreadMs, direct);
        const t = await closedLoop(clients, durationMs, spreadMs, through);
        const ds = summarize(d.times);
        const ts = summarize(t.times);
        const added = overhead(ts, ds, CRITICAL_PATH);
        const throughput = (t.times.length * STEPS_PER_RUN) / (t.elapsedMs / 1000);
        results[latency] = { added, throughput, t: ts, d: ds };
        const label = latency === 0 ? 'zero-latency fake (saturated)' : `fake latency ${latency} ms`;
        figures.push(
          { name: `${label}: added latency per step`, p50: added.p50, p99: added.p99, n: t.times.length, note: '(through − direct) / 3 critical-path steps' },
          { name: `${label}: run through Ensemble`, p50: ts.p50, p99: ts.p99, n: t.times.length },
          { name: `${label}: same DAG straight to the fake`, p50: ds.p50, p99: ds.p99, n: d.times.length },
          { name: `${label}: throughput through Ensemble`, value: throughput, unit: 'steps/s', note: `${t.times.length} runs × ${STEPS_PER_RUN} steps in ${(t.elapsedMs / 1000).toFixed(1)} s` },
          { name: `${label}: throughput straight to the fake`, value: (d.times.length * STEPS_PER_RUN) / (d.elapsedMs / 1000), unit: 'steps/s' },
        );
      }
      const main = results[latencyMs]!;
      const saturated = results[0]!;
      const phaseText = phases.map((p) => `${p.latencyMs} ms (${p.durationMs / 1000} s per side after a ${p.warmupMs / 1000} s warm-up)`).join(', ');
      const met = main.added.p99 <= GOAL_P99_MS;
      ctx.log(`load: added p99 ${fmtMs(main.added.p99)} per step at ${latencyMs} ms; ${saturated.throughput.toFixed(0)} steps/s saturated`);
      return {
        goal: `p99 added latency per step ≤ ${GOAL_P99_MS} ms on 2 cores; report throughput`,
        met,
        verdict: `${met ? 'met' : 'not met'}: p99 ${fmtMs(main.added.p99)} per step (p50 ${fmtMs(main.added.p50)}) with the ${latencyMs} ms fake, ${main.throughput.toFixed(0)} steps/s; saturated (zero-latency fake): ${saturated.throughput.toFixed(0)} steps/s, where added latency is queueing (p99 ${fmtMs(saturated.added.p99)} per step)`,
        figures,
        setup: [
          `${clients} closed-loop clients, each running examples/pr_review.yaml (4 steps: analysis → fixes ∥ security → synthesis) with POST …/execute (sync), back to back; fake latencies: ${phaseText}; the clients start spread over one run's length`,
          `the direct baseline runs the same DAG with the same AI SDK provider and the same ${clients}-wide concurrency for the same time, before the Ensemble phase`,
          `the goal is judged with the fixed-latency fake (${latencyMs} ms per call, a realistic LLM call); the shorter latencies load the server more, and with the zero-latency fake both sides are CPU-bound, so that figure is the saturation throughput and its added latency is queueing`,
          'the Ensemble server, the fake vendor and the load-generating client are three processes on the same 2 cores',
        ],
        notes: met ? [] : ['Where the time goes: bench/FIXES.md, "Under load".'],
      };
    } finally {
      await server.stop();
      await fake.close();
    }
  },
};
