/** Finer points of the provider layer, on the wire: token details, timeouts, stream retries, vendor cost. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeVendor } from '../fakes/harness.ts';
import { startFakeOpenAI, startFakeOpenRouter, type OpenAIFamilyFake } from '../fakes/openai.ts';
import { createProvider, isProviderError, type StreamPart } from '../../src/providers/index.ts';
import { VENDOR_CASES } from './vendors.ts';

const FAST = { retryPolicy: { initialDelayMs: 5, maxDelayMs: 20 }, env: {} };

describe.each(VENDOR_CASES.filter((v) => ['anthropic', 'openai', 'gemini', 'openrouter'].includes(v.provider)))(
  '$provider token details',
  (vendor) => {
    let fake: FakeVendor;
    beforeAll(async () => {
      fake = await vendor.start({ apiKey: 'detail-key-123456' });
    });
    afterAll(() => fake.close());

    it('reports cached input tokens (and reasoning tokens where the vendor has them)', async () => {
      const provider = createProvider({ provider: vendor.provider, model: vendor.model, apiKey: 'detail-key-123456', baseUrl: fake.baseUrl }, FAST);
      fake.enqueue({ usage: { input: 40, output: 12, cached: 30, reasoning: 5 } });
      const { usage } = await provider.generate('hi');
      expect(usage.input_tokens).toBe(40);
      expect(usage.output_tokens).toBe(12);
      expect(usage.cached_input_tokens).toBe(30);
      if (vendor.provider !== 'anthropic') expect(usage.reasoning_tokens).toBe(5);
    });
  },
);

describe('timeouts, stream retries and vendor-reported cost', () => {
  let fake: OpenAIFamilyFake;
  beforeAll(async () => {
    fake = await startFakeOpenRouter({ apiKey: 'or-key-123456789' });
  });
  afterAll(() => fake.close());
  const provider = () =>
    createProvider({ provider: 'openrouter', model: 'openai/gpt-4o', apiKey: 'or-key-123456789', baseUrl: fake.baseUrl, timeoutMs: 300, maxRetries: 0 }, FAST);

  it('a vendor slower than timeout_ms fails with timeout, and the request is closed', async () => {
    fake.enqueue({ delayMs: 3000 });
    const before = fake.generationRequests().length;
    const error = await provider().generate('slow').catch((e: unknown) => e);
    expect(isProviderError(error) && error.code).toBe('timeout');
    const request = fake.generationRequests()[before]!;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(request.closedEarly).toBe(true);
  });

  it('a stream that fails before its first delta is retried', async () => {
    const retrying = createProvider({ provider: 'openrouter', model: 'openai/gpt-4o', apiKey: 'or-key-123456789', baseUrl: fake.baseUrl, maxRetries: 2 }, FAST);
    fake.enqueue({ status: 503, errorMessage: 'upstream down' }, { text: 'second time lucky' });
    let finish: Extract<StreamPart, { type: 'finish' }> | undefined;
    let text = '';
    for await (const part of retrying.stream('x')) {
      if (part.type === 'text-delta') text += part.text;
      else if (part.type === 'finish') finish = part;
    }
    expect(text).toBe('second time lucky');
    expect(finish?.attempts).toBe(2);
  });

  it('max_retries 0 gives up on the first retryable error', async () => {
    fake.enqueue({ status: 503, errorMessage: 'upstream down' });
    const error = await provider().generate('x').catch((e: unknown) => e);
    expect(isProviderError(error) && { code: error.code, status: error.status, retryable: error.retryable }).toEqual({
      code: 'unavailable',
      status: 503,
      retryable: true,
    });
  });

  it("passes on the cost OpenRouter reports, streamed or not", async () => {
    fake.enqueue({ cost: 0.0042 }, { cost: 0.0017 });
    const result = await provider().generate('x');
    expect(result.providerCostUsd).toBe(0.0042);
    let streamedCost: number | undefined;
    for await (const part of provider().stream('x')) if (part.type === 'finish') streamedCost = part.providerCostUsd;
    expect(streamedCost).toBe(0.0017);
  });
});

describe('a streamed call without tools (one model call, without streamText)', () => {
  let fake: OpenAIFamilyFake;
  beforeAll(async () => {
    fake = await startFakeOpenAI({ apiKey: 'sk-lean-123456789' });
  });
  afterAll(() => fake.close());

  it("logs the vendor's warnings as generate does", async () => {
    const logged: unknown[] = [];
    const global = globalThis as { AI_SDK_LOG_WARNINGS?: unknown };
    const previous = global.AI_SDK_LOG_WARNINGS;
    global.AI_SDK_LOG_WARNINGS = (options: unknown) => logged.push(options);
    try {
      // Reasoning models take no temperature: the OpenAI package warns and leaves it out.
      const provider = createProvider({ provider: 'openai', model: 'o3-mini', apiKey: 'sk-lean-123456789', baseUrl: fake.baseUrl, openaiApi: 'chat', temperature: 0.5 }, FAST);
      await provider.generate('hi');
      for await (const part of provider.stream('hi')) expect(part.type).not.toBe('error');
    } finally {
      global.AI_SDK_LOG_WARNINGS = previous;
    }
    expect(logged).toHaveLength(2);
    expect(logged[1]).toEqual(logged[0]);
    expect(logged[1]).toMatchObject({ provider: 'openai.chat', model: 'o3-mini', warnings: [{ type: 'unsupported', feature: 'temperature' }] });
    expect(fake.generationRequests().at(-1)?.body.temperature).toBeUndefined();
  });

  it('leaves the request of a stream that ran to its end alone, and cancels one left early', async () => {
    const signals: AbortSignal[] = [];
    // The real fetch, to the fake: only the signal each request carried is kept.
    const recording: typeof fetch = (input, init) => {
      if (init?.signal) signals.push(init.signal);
      return fetch(input, init);
    };
    const provider = createProvider({ provider: 'openai', model: 'gpt-4.1-mini', apiKey: 'sk-lean-123456789', baseUrl: fake.baseUrl, openaiApi: 'chat' }, { ...FAST, fetch: recording });
    fake.enqueue({ text: 'to the end' }, { chunks: ['left ', 'early'], chunkDelayMs: 200 });
    let text = '';
    for await (const part of provider.stream('x')) if (part.type === 'text-delta') text += part.text;
    expect(text).toBe('to the end');
    expect(signals[0]?.aborted).toBe(false);

    const before = fake.generationRequests().length;
    for await (const part of provider.stream('y')) if (part.type === 'text-delta') break;
    expect(signals[1]?.aborted).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fake.generationRequests()[before]?.closedEarly).toBe(true);
  });
});
