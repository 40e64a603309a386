/**
 * 4. Many runs in flight: 10,000 runs started with `"async": true`, each waiting on a 2-second
 * provider call. The fake holds every answer until all 10,000 calls have arrived (and at least
 * 2 s), so all of them are surely in flight at once. RSS is the server process's alone.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FAKE_API_KEY, FAKE_MODEL, startFakeVendor } from '../lib/fake.ts';
import { createAgent, createApp, startEnsembleProcess } from '../lib/server.ts';
import { fmtBytes, pool } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const GOAL_RSS = 1024 ** 3;

/**
 * Heap and RSS per in-flight call of the provider layer alone, and heap per in-flight request of
 * a bare fetch of the same shape (bench/lib/provider-memory.ts, a bare process).
 */
async function providerMemory(count: number): Promise<{ heapPerCall: number; rssPerCall: number; fetchHeapPerCall: number }> {
  const script = fileURLToPath(new URL('../lib/provider-memory.ts', import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', script, String(count)], { timeout: 120_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as { heapPerCall: number; rssPerCall: number; fetchHeapPerCall: number };
}

export const inFlight: Scenario = {
  id: 'in-flight',
  title: '4. Many runs in flight: 10,000 concurrent runs, each waiting on a 2-second provider call',
  async run(ctx) {
    const tiny = ctx.scale === 'tiny';
    const runs = tiny ? 50 : 10_000;
    const latencyMs = tiny ? 200 : 2000;
    const fake = await startFakeVendor({ latencyMs, gate: runs });
    // Every run's call in flight at once: the process-wide cap (default 4096) is raised to the run count.
    const server = await startEnsembleProcess({ allowedHosts: [fake.host], cpuProfDir: ctx.cpuProfDir, env: { ENSEMBLE_PROCESS_CONCURRENCY: String(runs) } });
    let peak = 0;
    let sampler: NodeJS.Timeout | undefined;
    try {
      const { api } = await createApp(server);
      await createAgent(api, 'waiter', fake, FAKE_API_KEY, FAKE_MODEL);
      await api.ok('POST', '/api/v1/workflows', { name: 'one-call', steps: [{ id: 'answer', agent: 'waiter' }] });
      // Warm the code paths with a few runs, then measure from an idle server.
      await fake.configure({ latencyMs: 0, gate: 0 });
      for (let i = 0; i < 5; i++) await api.ok('POST', '/api/v1/workflows/one-call/execute', { input: 'warm-up' });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const baseline = server.rss();
      await fake.configure({ latencyMs, gate: runs });
      await fake.stats(true);
      sampler = setInterval(() => (peak = Math.max(peak, server.rss())), 50);
      const started = performance.now();
      const ids: string[] = [];
      await pool(runs, 64, async (i) => {
        const res = await api.call('POST', '/api/v1/workflows/one-call/execute', { input: `request ${i}`, async: true });
        if (res.status !== 202) throw new Error(`async execute answered ${res.status}: ${JSON.stringify(res.body)}`);
        ids.push(res.body.run_id as string);
      });
      const createdMs = performance.now() - started;
      ctx.log(`in-flight: ${runs} runs created in ${(createdMs / 1000).toFixed(1)} s`);
      // Wait until every call has reached the fake (the gate opens then).
      let stats = await fake.stats();
      while (stats.generations < runs && performance.now() - started < 120_000) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        stats = await fake.stats();
      }
      const allInFlightMs = performance.now() - started;
      const inFlightNow = stats.peakInFlight;
      const rssAllInFlight = server.rss();
      peak = Math.max(peak, rssAllInFlight);
      // Then until no run is queued or running.
      const unfinished = async () => {
        for (const status of ['queued', 'running']) {
          const page = await api.ok('GET', `/api/v1/runs?status=${status}&limit=1`);
          if (page.data.length > 0) return true;
        }
        return false;
      };
      while ((await unfinished()) && performance.now() - started < 180_000) await new Promise((resolve) => setTimeout(resolve, 250));
      const doneMs = performance.now() - started;
      clearInterval(sampler);
      sampler = undefined;
      peak = Math.max(peak, server.rss());
      // Every run must have completed: count them page by page.
      const counts: Record<string, number> = {};
      for (const status of ['completed', 'partial', 'failed', 'cancelled', 'queued', 'running']) {
        let before: string | undefined;
        counts[status] = 0;
        for (;;) {
          const page = await api.ok('GET', `/api/v1/runs?status=${status}&limit=500${before ? `&before=${before}` : ''}`);
          counts[status] += page.data.filter((r: { run_id: string; input: string }) => r.input !== 'warm-up').length;
          if (page.data.length < 500) break;
          before = page.data[page.data.length - 1].run_id;
        }
      }
      const completed = counts.completed ?? 0;
      const bare = await providerMemory(tiny ? 50 : 2000);
      const perRun = (peak - baseline) / runs;
      const allCompleted = completed === runs && ids.length === runs;
      const met = peak <= GOAL_RSS && allCompleted;
      ctx.log(`in-flight: peak RSS ${fmtBytes(peak)}, ${completed}/${runs} completed, ${fmtBytes(perRun)} per run`);
      return {
        goal: 'RSS ≤ 1 GiB and every run completes; report bytes per in-flight run',
        met,
        verdict: `${met ? 'met' : 'not met'}: peak RSS ${fmtBytes(peak)} with ${inFlightNow} provider calls in flight at once; ${completed} of ${runs} runs completed${allCompleted ? '' : ` (${JSON.stringify(counts)})`}; ${fmtBytes(perRun)} per in-flight run`,
        figures: [
          { name: 'peak server RSS', value: peak, unit: 'bytes', note: 'VmRSS sampled every 50 ms' },
          { name: 'server RSS when idle, before the runs', value: baseline, unit: 'bytes' },
          { name: 'server RSS with every call in flight', value: rssAllInFlight, unit: 'bytes' },
          { name: 'bytes per in-flight run', value: perRun, unit: 'bytes', note: '(peak − idle) / runs' },
          { name: 'provider calls in flight at once (at the fake)', value: inFlightNow, unit: 'count' },
          { name: 'the provider call alone, no Ensemble: live heap per in-flight call', value: bare.heapPerCall, unit: 'bytes', note: `${tiny ? 50 : 2000} streamed calls through src/providers in flight in a bare process, after a full GC` },
          { name: '… of which the HTTP request alone (fetch, no SDK)', value: bare.fetchHeapPerCall, unit: 'bytes', note: 'the same POST by fetch, held at the fake the same way' },
          { name: 'the provider call alone, no Ensemble: RSS per in-flight call', value: bare.rssPerCall, unit: 'bytes', note: 'RSS counts garbage not yet collected: live heap is the figure to compare' },
          { name: 'runs completed', value: completed, unit: 'count', note: `of ${runs}` },
          { name: 'time to create every run (async execute)', value: createdMs, unit: 'ms', note: `${(runs / (createdMs / 1000)).toFixed(0)} runs/s, 64 requests at a time` },
          { name: 'time until every call was in flight', value: allInFlightMs, unit: 'ms' },
          { name: 'time until every run had ended', value: doneMs, unit: 'ms' },
        ],
        setup: [
          `${runs} POST …/execute {"async": true} of a one-step workflow, 64 requests at a time; the fake answers each call after ${latencyMs} ms, and not before all ${runs} calls have arrived`,
          `ENSEMBLE_PROCESS_CONCURRENCY=${runs} so that every run's call is in flight at once (the default cap, 4096, would queue the rest inside the server)`,
          'the server is its own process; RSS is read from /proc/<pid>/status',
        ],
        notes: [
          `Where the memory is (heap snapshots and GC traces in bench/FIXES.md, "Many runs in flight"): a provider call in flight holds ${fmtBytes(bare.heapPerCall)} of live heap in a bare process, ${fmtBytes(bare.fetchHeapPerCall)} of it the HTTP request itself (undici fetch: request, connection, body streams); Ensemble's own objects add about 15 KiB per run. The peak comes after the calls, not while they wait: most of the ${runs.toLocaleString('en-US')} answers arrive at once (the fake releases them when the last call has arrived), every run then records its completion (usage record, rollups, journal, group commits) with its state kept alive across young-generation collections, and V8 lets the old generation fill with that garbage up to its limit (up to 4× the live heap of its previous full collection) before it collects again.`,
        ],
      };
    } finally {
      if (sampler) clearInterval(sampler);
      await server.stop();
      await fake.close();
    }
  },
};
