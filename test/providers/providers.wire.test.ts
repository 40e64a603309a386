/**
 * The provider layer against fake vendor servers that speak each vendor's wire protocol.
 * Every assertion is about bytes that crossed the loopback: nothing here mocks fetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeVendor } from '../fakes/harness.ts';
import { createProvider, type Provider, type StreamPart } from '../../src/providers/index.ts';
import { rejection, until } from './calls.ts';
import { VENDOR_CASES, type VendorCase } from './vendors.ts';

const FAST_RETRIES = { retryPolicy: { initialDelayMs: 5, maxDelayMs: 20 }, env: {} };

async function collect(stream: AsyncIterable<StreamPart>) {
  const deltas: string[] = [];
  let finish: Extract<StreamPart, { type: 'finish' }> | undefined;
  for await (const part of stream) {
    if (part.type === 'text-delta') deltas.push(part.text);
    else if (part.type === 'finish') finish = part;
  }
  return { deltas, finish };
}

describe.each(VENDOR_CASES)('$provider provider on the wire', (vendor: VendorCase) => {
  let fake: FakeVendor;
  let provider: Provider;
  const key = `key-${vendor.provider}-Zq81xP0w9mNv`;

  beforeAll(async () => {
    fake = await vendor.start({ apiKey: key });
    provider = createProvider(
      { provider: vendor.provider, model: vendor.model, apiKey: key, baseUrl: fake.baseUrl, temperature: 0.3, maxTokens: 321 },
      FAST_RETRIES,
    );
  });
  afterAll(async () => {
    await fake.close();
  });

  const lastGeneration = () => {
    const requests = fake.generationRequests();
    const last = requests[requests.length - 1];
    if (!last) throw new Error('the fake received no generation request');
    return last;
  };

  it('generate returns the text and usage the vendor sent', async () => {
    fake.enqueue({ text: `Answer from ${vendor.provider}`, usage: { input: 23, output: 9 } });
    const result = await provider.generate('What is 2+2?');
    expect(result.text).toBe(`Answer from ${vendor.provider}`);
    expect(result.usage).toMatchObject({ input_tokens: 23, output_tokens: 9, total_tokens: 32 });
    expect(result.finishReason).toBe('stop');
    expect(result.attempts).toBe(1);
    expect(JSON.stringify(lastGeneration().body)).toContain('What is 2+2?');
  });

  it('stream yields the text as deltas, then usage and finish reason', async () => {
    fake.enqueue({ chunks: ['Str', 'eam', 'ed ', vendor.provider], usage: { input: 5, output: 4 } });
    const { deltas, finish } = await collect(provider.stream('stream please'));
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join('')).toBe(`Streamed ${vendor.provider}`);
    expect(finish?.text).toBe(`Streamed ${vendor.provider}`);
    expect(finish?.usage).toMatchObject({ input_tokens: 5, output_tokens: 4, total_tokens: 9 });
    expect(finish?.finishReason).toBe('stop');
    expect(finish?.timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
  });

  it("sends the key in the vendor's header, the system prompt where the vendor expects it, and the sampling settings", async () => {
    await provider.generate('hello', { systemPrompt: 'You are a terse reviewer.' });
    const request = lastGeneration();
    expect(vendor.keyOnWire(request)).toBe(key);
    expect(vendor.systemPrompt(request.body)).toBe('You are a terse reviewer.');
    expect(JSON.stringify(request.body)).not.toContain(key);
    expect(vendor.temperature(request.body)).toBe(0.3);
    expect(vendor.maxTokens(request.body)).toBe(321);

    await provider.generate('hello', { temperature: 0.9, maxTokens: 77 });
    expect(vendor.temperature(lastGeneration().body)).toBe(0.9);
    expect(vendor.maxTokens(lastGeneration().body)).toBe(77);
  });

  it('returns the parsed object in structured-output mode', async () => {
    const answer = { verdict: 'approve', score: 8, issues: ['naming'] };
    fake.enqueue({ json: answer });
    const schema = {
      type: 'object',
      properties: {
        verdict: { type: 'string', enum: ['approve', 'reject'] },
        score: { type: 'number' },
        issues: { type: 'array', items: { type: 'string' } },
      },
      required: ['verdict', 'score', 'issues'],
      additionalProperties: false,
    };
    const result = await provider.generate<typeof answer>('Review this', { schema, schemaName: 'review' });
    expect(result.object).toEqual(answer);
    // The schema travelled to the vendor in its structured-output field.
    expect(JSON.stringify(lastGeneration().body)).toContain('"verdict"');
  });

  it('retries a 429 after the retry-after the vendor asked for, then succeeds', async () => {
    fake.enqueue({ status: 429, errorMessage: 'Slow down', headers: { 'retry-after': '1' } }, { text: 'after the wait' });
    const before = fake.generationRequests().length;
    const result = await provider.generate('busy?');
    expect(result.text).toBe('after the wait');
    expect(result.attempts).toBe(2);
    const [first, second] = fake.generationRequests().slice(before);
    expect(second!.startedAt - first!.startedAt).toBeGreaterThanOrEqual(950);
  });

  it('maps a 401 to auth_failed without the key anywhere in the error', async () => {
    const wrongKey = `wrong-${vendor.provider}-Kk29sLq7Ty`;
    const bad = createProvider({ provider: vendor.provider, model: vendor.model, apiKey: wrongKey, baseUrl: fake.baseUrl }, FAST_RETRIES);
    const error = await rejection(bad.generate('hi'));
    expect(error.code).toBe('auth_failed');
    expect([401, 403]).toContain(error.status);
    expect(error.retryable).toBe(false);
    expect(error.provider).toBe(vendor.provider);
    // The fakes echo the key they were sent, as some vendors do; it must not survive.
    const everything = `${error.message} ${error.stack ?? ''} ${JSON.stringify(error)} ${JSON.stringify(error.toJSON())}`;
    expect(everything).not.toContain(wrongKey);
    expect(everything).not.toContain(wrongKey.slice(0, 12));
  });

  it('an abort stops the HTTP request', async () => {
    fake.enqueue({ delayMs: 5000 });
    const controller = new AbortController();
    const before = fake.generationRequests().length;
    const pending = provider.generate('slow', { signal: controller.signal });
    await until(() => fake.generationRequests().length > before);
    controller.abort();
    const error = await rejection(pending);
    expect(error.code).toBe('cancelled');
    const request = fake.generationRequests()[before]!;
    await until(() => request.closedEarly);
    expect(request.closedEarly).toBe(true);
  });

  it('a consumer that stops reading a stream closes the HTTP request', async () => {
    fake.enqueue({ chunks: ['a', 'b', 'c', 'd', 'e', 'f'], chunkDelayMs: 300 });
    const before = fake.generationRequests().length;
    for await (const part of provider.stream('long')) {
      if (part.type === 'text-delta') break;
    }
    const request = fake.generationRequests()[before]!;
    await until(() => request.closedEarly);
    expect(request.closedEarly).toBe(true);
  });

  it('healthCheck reports healthy with a good key and unhealthy with a bad key or no server', async () => {
    const healthy = await provider.healthCheck();
    expect(healthy.status).toBe('healthy');
    expect(healthy.error).toBeNull();
    expect(healthy.latencyMs).toBeGreaterThanOrEqual(0);

    const wrongKey = `bad-${vendor.provider}-health-Pq0s8Xw`;
    const bad = createProvider({ provider: vendor.provider, model: vendor.model, apiKey: wrongKey, baseUrl: fake.baseUrl }, FAST_RETRIES);
    const unhealthy = await bad.healthCheck();
    expect(unhealthy.status).toBe('unhealthy');
    expect(unhealthy.error?.code).toBe('auth_failed');
    expect(JSON.stringify(unhealthy)).not.toContain(wrongKey);

    const down = createProvider(
      { provider: vendor.provider, model: vendor.model, apiKey: key, baseUrl: 'http://127.0.0.1:9/v1' },
      FAST_RETRIES,
    );
    const unreachable = await down.healthCheck();
    expect(unreachable.status).toBe('unhealthy');
    expect(unreachable.error?.code).toBe('unavailable');
  });
});
