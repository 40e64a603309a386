/**
 * 6. Peers, side by side on the same fake and machine:
 * - the PR-review DAG in LangGraph.js (`@langchain/langgraph` StateGraph: analysis → fixes ∥
 *   security → synthesis, each node one streamed call through the same AI SDK provider), in the
 *   bench process, against Ensemble's PR-review run (POST …/execute, sync);
 * - one chat completion through the Portkey gateway (`@portkey-ai/gateway`, run locally) against
 *   one call through Ensemble (POST /agents/{name}/test: one governed call, usage and audit written).
 * Each side is also compared with the same work straight to the fake; the ratios are Ensemble/peer.
 */
import { Annotation, END, MemorySaver, START, StateGraph } from '@langchain/langgraph';
import { directPrReview, directProvider, rawChatCompletion, streamCall } from '../lib/direct.ts';
import { FAKE_API_KEY, FAKE_MODEL, startFakeVendor } from '../lib/fake.ts';
import { startPortkey } from '../lib/portkey.ts';
import { createAgent, createApp, startEnsembleProcess } from '../lib/server.ts';
import { fmtMs, summarize, timed, type Summary } from '../lib/stats.ts';
import type { Provider } from '../../src/providers/index.ts';
import type { Figure, Scenario } from '../lib/types.ts';
import { PR_INPUT, prReviewThroughEnsemble, setupPrReview } from './load.ts';

const PrState = Annotation.Root({
  input: Annotation<string>(),
  analysis: Annotation<string>(),
  fixes: Annotation<string>(),
  security: Annotation<string>(),
  review: Annotation<string>(),
});

/** The same DAG as examples/pr_review.yaml, as a LangGraph StateGraph. */
function prReviewGraph(provider: Provider, checkpointer?: MemorySaver) {
  return new StateGraph(PrState)
    .addNode('analyze', async (s) => ({ analysis: await streamCall(provider, `Analyse this pull request.\n\n${s.input}`, 'You are claude-leader.') }))
    .addNode('suggest_fixes', async (s) => ({ fixes: await streamCall(provider, `Action: suggest_fixes\n\n${s.analysis}`, 'You are gpt-coder.') }))
    .addNode('security_review', async (s) => ({ security: await streamCall(provider, `Action: security_review\n\n${s.analysis}`, 'You are gemini-security.') }))
    .addNode('synthesize', async (s) => ({
      review: await streamCall(provider, `Write one review.\n\nSuggested fixes:\n${s.fixes}\n\nSecurity review:\n${s.security}`, 'You are claude-leader.'),
    }))
    .addEdge(START, 'analyze')
    .addEdge('analyze', 'suggest_fixes')
    .addEdge('analyze', 'security_review')
    .addEdge(['suggest_fixes', 'security_review'], 'synthesize')
    .addEdge('synthesize', END)
    .compile(checkpointer ? { checkpointer } : {});
}

const ratio = (a: number, b: number) => a / b;
const fmtRatio = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a');

export const peers: Scenario = {
  id: 'peers',
  title: '6. Peers: the PR-review DAG in LangGraph.js, one call through the Portkey gateway',
  async run(ctx) {
    const tiny = ctx.scale === 'tiny';
    const n = tiny ? 3 : 150;
    const warmup = tiny ? 1 : 20;
    const fake = await startFakeVendor({ latencyMs: 0 });
    const server = await startEnsembleProcess({ allowedHosts: [fake.host], cpuProfDir: ctx.cpuProfDir });
    const portkey = await startPortkey();
    try {
      const { api } = await createApp(server);
      await setupPrReview(api, fake);
      await createAgent(api, 'single', fake, FAKE_API_KEY, FAKE_MODEL);
      const provider = directProvider(fake.baseUrl);
      const graph = prReviewGraph(provider);
      const saver = new MemorySaver();
      const durableGraph = prReviewGraph(provider, saver);
      let thread = 0;

      // --- LangGraph: the PR-review DAG ---
      const dag = {
        ensemble: () => prReviewThroughEnsemble(api),
        langgraph: async () => {
          const out = await graph.invoke({ input: PR_INPUT });
          if (!out.review) throw new Error('langgraph: no review');
        },
        langgraphCheckpointed: async () => {
          const out = await durableGraph.invoke({ input: PR_INPUT }, { configurable: { thread_id: `t${thread++}` } });
          if (!out.review) throw new Error('langgraph: no review');
        },
        direct: () => directPrReview(provider, PR_INPUT).then(() => undefined),
      };
      const dagTimes: Record<keyof typeof dag, number[]> = { ensemble: [], langgraph: [], langgraphCheckpointed: [], direct: [] };
      for (let i = 0; i < warmup + n; i++) {
        for (const key of Object.keys(dag) as Array<keyof typeof dag>) {
          const { ms } = await timed(dag[key]);
          if (i >= warmup) dagTimes[key].push(ms);
        }
      }

      // --- Portkey: one chat completion ---
      const message = 'Say hello.';
      const single = {
        ensemble: async () => {
          const res = await api.ok('POST', '/api/v1/agents/single/test', { prompt: message });
          if (res.ok !== true) throw new Error(`agent test failed: ${JSON.stringify(res)}`);
        },
        portkey: async () => {
          await rawChatCompletion(`${portkey.url}/v1/chat/completions`, { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': fake.baseUrl }, message);
        },
        direct: async () => {
          await rawChatCompletion(`${fake.baseUrl}/chat/completions`, {}, message);
        },
      };
      const singleTimes: Record<keyof typeof single, number[]> = { ensemble: [], portkey: [], direct: [] };
      const singleN = n * 2;
      for (let i = 0; i < warmup + singleN; i++) {
        for (const key of Object.keys(single) as Array<keyof typeof single>) {
          const { ms } = await timed(single[key]);
          if (i >= warmup) singleTimes[key].push(ms);
        }
      }

      const s = (values: number[]): Summary => summarize(values);
      const dE = s(dagTimes.ensemble);
      const dL = s(dagTimes.langgraph);
      const dLc = s(dagTimes.langgraphCheckpointed);
      const dD = s(dagTimes.direct);
      const sE = s(singleTimes.ensemble);
      const sP = s(singleTimes.portkey);
      const sD = s(singleTimes.direct);
      const over = (x: Summary, base: Summary) => ({ p50: x.p50 - base.p50, p99: x.p99 - base.p99 });
      const oE = over(dE, dD);
      const oL = over(dL, dD);
      const oSE = over(sE, sD);
      const oSP = over(sP, sD);
      const lgWall = ratio(dE.p50, dL.p50);
      const lgOver = ratio(oE.p50, oL.p50);
      const pkWall = ratio(sE.p50, sP.p50);
      const pkOver = ratio(oSE.p50, oSP.p50);
      ctx.log(`peers: Ensemble/LangGraph ${fmtRatio(lgWall)} (overhead ${fmtRatio(lgOver)}), Ensemble/Portkey ${fmtRatio(pkWall)} (overhead ${fmtRatio(pkOver)})`);
      const figures: Figure[] = [
        { name: 'PR-review run through Ensemble (HTTP, durable)', p50: dE.p50, p99: dE.p99, n },
        { name: 'PR-review in LangGraph.js (in process, no checkpointer)', p50: dL.p50, p99: dL.p99, n },
        { name: 'PR-review in LangGraph.js with MemorySaver checkpointer', p50: dLc.p50, p99: dLc.p99, n },
        { name: 'PR-review DAG straight to the fake', p50: dD.p50, p99: dD.p99, n },
        { name: 'Ensemble overhead on the PR-review DAG', p50: oE.p50, p99: oE.p99, n, note: 'Ensemble − direct' },
        { name: 'LangGraph.js overhead on the PR-review DAG', p50: oL.p50, p99: oL.p99, n, note: 'LangGraph − direct' },
        { name: 'ratio Ensemble/LangGraph.js, wall time p50', value: lgWall, unit: 'ratio' },
        { name: 'ratio Ensemble/LangGraph.js, overhead p50', value: lgOver, unit: 'ratio' },
        { name: 'one call through Ensemble (POST /agents/{name}/test)', p50: sE.p50, p99: sE.p99, n: singleN },
        { name: 'one call through the Portkey gateway', p50: sP.p50, p99: sP.p99, n: singleN },
        { name: 'one call straight to the fake (fetch)', p50: sD.p50, p99: sD.p99, n: singleN },
        { name: 'Ensemble overhead on one call', p50: oSE.p50, p99: oSE.p99, n: singleN, note: 'Ensemble − direct' },
        { name: 'Portkey overhead on one call', p50: oSP.p50, p99: oSP.p99, n: singleN, note: 'Portkey − direct' },
        { name: 'ratio Ensemble/Portkey, wall time p50', value: pkWall, unit: 'ratio' },
        { name: 'ratio Ensemble/Portkey, overhead p50', value: pkOver, unit: 'ratio' },
      ];
      return {
        goal: '',
        met: null,
        verdict: `Ensemble/LangGraph.js ${fmtRatio(lgWall)} wall time (${fmtMs(dE.p50)} vs ${fmtMs(dL.p50)} p50), ${fmtRatio(lgOver)} overhead; Ensemble/Portkey ${fmtRatio(pkWall)} wall time (${fmtMs(sE.p50)} vs ${fmtMs(sP.p50)} p50), ${fmtRatio(pkOver)} overhead`,
        figures,
        setup: [
          `${n} PR-review runs per contender and ${singleN} single calls per contender after ${warmup} warm-up rounds, interleaved round by round; zero-latency fake`,
          'LangGraph.js runs in the bench process and calls the fake through the same AI SDK provider (streamed), so its figure has no HTTP hop and no durable writes; Ensemble is a separate server process writing every step to SQLite',
          'Portkey runs as its own process (`node node_modules/@portkey-ai/gateway/build/start-server.js --headless`, NODE_ENV=production) and forwards a non-streamed Chat Completions request (`x-portkey-provider: openai`, `x-portkey-custom-host: <fake>/v1`); Ensemble makes the same call through its agent (AI SDK) and writes a usage record and an audit entry',
        ],
        notes: [],
      };
    } finally {
      await portkey.stop();
      await server.stop();
      await fake.close();
    }
  },
};
