/**
 * A/B: the same scenario against Ensemble servers run from two (or more) source trees, at the
 * same time and interleaved run by run, so machine noise hits every tree alike. Used to record
 * the before/after figures of bench/FIXES.md.
 *
 *   node bench/ab.ts --trees=/tmp/before,/work/main [--workload=seq10|pr|fanout|chat] [--runs=200]
 *
 * A tree is a copy of the repository's bin/, src/ and package.json with node_modules linked.
 */
import { directPrReview, directProvider, streamCall } from './lib/direct.ts';
import { FAKE_API_KEY, FAKE_MODEL, startFakeVendor } from './lib/fake.ts';
import { createAgent, createApp, startEnsembleProcess, type Api } from './lib/server.ts';
import { summarize, timed } from './lib/stats.ts';
import { PR_INPUT, prReviewThroughEnsemble, setupPrReview } from './scenarios/load.ts';

const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const trees = arg('trees', '').split(',').filter(Boolean);
const workload = arg('workload', 'seq10');
const runs = Number(arg('runs', '200'));
if (trees.length === 0) throw new Error('--trees=<dir>,<dir> is required');

const fake = await startFakeVendor({ latencyMs: 0 });
const provider = directProvider(fake.baseUrl);
const servers = await Promise.all(trees.map((root) => startEnsembleProcess({ allowedHosts: [fake.host], root })));
try {
  const apis: Api[] = [];
  for (const server of servers) {
    const { api } = await createApp(server);
    await createAgent(api, 'step-agent', fake, FAKE_API_KEY, FAKE_MODEL);
    await api.ok('POST', '/api/v1/workflows', { name: 'sequential-10', steps: Array.from({ length: 10 }, (_, i) => ({ id: `s${i + 1}`, agent: 'step-agent' })) });
    await api.ok('POST', '/api/v1/workflows', { name: 'fan-out', steps: [{ id: 'items', agent: 'step-agent', parallel_count: 200, prompt: 'part {{instance}}' }, { id: 'joined', agent: 'step-agent', prompt: '{{items}}' }] });
    await setupPrReview(api, fake);
    apis.push(api);
  }
  const work: Record<string, { steps: number; direct: () => Promise<unknown>; through: (api: Api) => Promise<unknown> }> = {
    seq10: {
      steps: 10,
      direct: async () => {
        let m = 'input';
        for (let i = 0; i < 10; i++) m = await streamCall(provider, m, 'You are step-agent.');
      },
      through: (api) => api.ok('POST', '/api/v1/workflows/sequential-10/execute', { input: 'input' }),
    },
    pr: { steps: 3, direct: () => directPrReview(provider, PR_INPUT), through: (api) => prReviewThroughEnsemble(api) },
    fanout: {
      steps: 201,
      direct: async () => {
        await Promise.all(Array.from({ length: 200 }, (_, i) => streamCall(provider, `part ${i}`, 'You are step-agent.')));
        await streamCall(provider, 'join', 'You are step-agent.');
      },
      through: (api) => api.ok('POST', '/api/v1/workflows/fan-out/execute', { input: 'x' }),
    },
  };
  const w = work[workload];
  if (!w) throw new Error(`unknown workload ${workload}`);
  const times: number[][] = trees.map(() => []);
  const direct: number[] = [];
  const warmup = Math.max(3, Math.floor(runs / 10));
  for (let i = 0; i < warmup + runs; i++) {
    const d = await timed(w.direct);
    if (i >= warmup) direct.push(d.ms);
    for (let k = 0; k < apis.length; k++) {
      const t = await timed(() => w.through(apis[k]!));
      if (i >= warmup) times[k]!.push(t.ms);
    }
  }
  const ds = summarize(direct);
  console.log(`workload ${workload}, ${runs} runs each, direct p50 ${ds.p50.toFixed(2)} ms`);
  trees.forEach((tree, k) => {
    const s = summarize(times[k]!);
    console.log(`${tree.padEnd(28)} run p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} | overhead per step p50 ${((s.p50 - ds.p50) / w.steps).toFixed(3)} p99 ${((s.p99 - ds.p99) / w.steps).toFixed(3)} ms`);
  });
} finally {
  for (const server of servers) await server.stop();
  await fake.close();
}
