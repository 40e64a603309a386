/**
 * 5. Streaming: time to the first delta through `POST /api/v1/chat/multi` with `stream: true`
 * (one agent), against the first text delta of the same streamed call straight to the fake.
 */
import { directProvider, streamFirstDelta } from '../lib/direct.ts';
import { FAKE_API_KEY, FAKE_MODEL, startFakeVendor } from '../lib/fake.ts';
import { createAgent, createApp, startEnsembleProcess, type Api } from '../lib/server.ts';
import { fmtMs, overhead, summarize } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const GOAL_MS = 3;

/** Sends the chat request and resolves with the time to the first `step.delta` event; reads the stream to its end. */
async function chatFirstDelta(api: Api, agent: string, message: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${api.url}/api/v1/chat/multi`, {
    method: 'POST',
    headers: { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ message, agents: [agent], mode: 'parallel', stream: true }),
  });
  if (res.status !== 200 || !res.body) throw new Error(`chat/multi answered ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let text = '';
  let first: number | undefined;
  let ended = false;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    if (first === undefined && text.includes('event: step.delta\n')) first = performance.now() - started;
    if (/event: run\.(completed|failed|cancelled)\n/.test(text)) ended = true;
  }
  if (first === undefined) throw new Error(`no step.delta event in: ${text.slice(0, 500)}`);
  if (!ended || !text.includes('event: run.completed\n')) throw new Error(`the chat run did not complete: ${text.slice(-500)}`);
  return first;
}

export const streaming: Scenario = {
  id: 'streaming',
  title: '5. Streaming: time to first delta through /chat/multi (stream) vs straight to the fake',
  async run(ctx) {
    const tiny = ctx.scale === 'tiny';
    const n = tiny ? 3 : 300;
    const warmup = tiny ? 1 : 30;
    const fake = await startFakeVendor({ latencyMs: 0 });
    const server = await startEnsembleProcess({ allowedHosts: [fake.host], cpuProfDir: ctx.cpuProfDir });
    try {
      const { api } = await createApp(server);
      await createAgent(api, 'streamer', fake, FAKE_API_KEY, FAKE_MODEL);
      const provider = directProvider(fake.baseUrl);
      const message = 'Explain in three sentences why the sky is blue.';
      for (let i = 0; i < warmup; i++) {
        await streamFirstDelta(provider, message, 'You are streamer.');
        await chatFirstDelta(api, 'streamer', message);
      }
      const direct: number[] = [];
      const through: number[] = [];
      for (let i = 0; i < n; i++) {
        direct.push(await streamFirstDelta(provider, message, 'You are streamer.'));
        through.push(await chatFirstDelta(api, 'streamer', message));
      }
      const d = summarize(direct);
      const t = summarize(through);
      const o = overhead(t, d);
      const met = o.p50 <= GOAL_MS;
      ctx.log(`streaming: added time to first delta p50 ${fmtMs(o.p50)} p99 ${fmtMs(o.p99)}`);
      return {
        goal: `≤ ${GOAL_MS} ms added at p50`,
        met,
        verdict: `${met ? 'met' : 'not met'}: p50 ${fmtMs(o.p50)} added (p99 ${fmtMs(o.p99)})`,
        figures: [
          { name: 'added time to first delta', p50: o.p50, p99: o.p99, n, note: 'through − direct' },
          { name: 'first step.delta event through POST /api/v1/chat/multi (stream: true)', p50: t.p50, p99: t.p99, n },
          { name: 'first text delta straight to the fake', p50: d.p50, p99: d.p99, n },
        ],
        setup: [
          `${n} requests after ${warmup} warm-up ones, interleaved; one agent, mode parallel; the zero-latency fake streams three deltas`,
          'through Ensemble the clock runs from sending the request to reading the first `event: step.delta` line of the SSE stream: the run is created (run row, audit entry), started, its step recorded, and the call made before that',
          'the direct baseline is the time from calling the same AI SDK provider to its first text delta',
        ],
        notes: met ? [] : ['Where the time goes and what would bring it under the goal: bench/FIXES.md, "Streaming".'],
      };
    } finally {
      await server.stop();
      await fake.close();
    }
  },
};
