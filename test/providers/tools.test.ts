/**
 * Tool calling against the fake vendor servers: the fakes answer scripted tool calls in each
 * vendor's wire format, the provider runs the tools and sends their results back, and the
 * assertions read the requests that crossed the loopback. Nothing here mocks fetch.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FakeReply, FakeVendor } from '../fakes/harness.ts';
import { governanceMiddleware, type GovernanceDeps } from '../../src/governance/index.ts';
import {
  applyMiddleware,
  createProvider,
  type CallContext,
  type Provider,
  type StreamPart,
  type ToolDefinition,
  type ToolEvent,
} from '../../src/providers/index.ts';
import { rejection, until } from './calls.ts';
import { VENDOR_CASES, type VendorCase } from './vendors.ts';

const FAST_RETRIES = { retryPolicy: { initialDelayMs: 5, maxDelayMs: 20 }, env: {} };

const WEATHER_PARAMETERS = {
  type: 'object',
  properties: { city: { type: 'string', description: 'City name' } },
  required: ['city'],
  additionalProperties: false,
};

const TEMPERATURES: Record<string, number> = { Paris: 18, Rome: 24, Oslo: 7 };

interface WeatherTool extends ToolDefinition {
  calls: unknown[];
}

/** A weather tool that records its calls; `run` replaces the default lookup. */
function weatherTool(run?: (args: unknown, ctx: { signal: AbortSignal; toolCallId: string }) => Promise<unknown>): WeatherTool {
  const calls: unknown[] = [];
  return {
    name: 'get_weather',
    description: 'Current temperature of a city, in degrees Celsius.',
    parameters: WEATHER_PARAMETERS,
    calls,
    execute: async (args, ctx) => {
      calls.push(args);
      if (run) return run(args, ctx);
      const city = (args as { city: string }).city;
      return { city, celsius: TEMPERATURES[city] ?? null };
    },
  };
}

async function collect(stream: AsyncIterable<StreamPart>) {
  const parts: StreamPart[] = [];
  for await (const part of stream) parts.push(part);
  const finish = parts.find((p): p is Extract<StreamPart, { type: 'finish' }> => p.type === 'finish');
  return { parts, finish };
}

describe.each(VENDOR_CASES)('$provider tool calling on the wire', (vendor: VendorCase) => {
  let fake: FakeVendor;
  let provider: Provider;
  const key = `key-${vendor.provider}-T00ls9xQ`;

  beforeEach(async () => {
    // A fresh fake per test: scripts that keep asking for tools must not leak into the next test.
    fake = await vendor.start({ apiKey: key });
    provider = createProvider({ provider: vendor.provider, model: vendor.model, apiKey: key, baseUrl: fake.baseUrl, maxTokens: 400 }, FAST_RETRIES);
  });
  afterEach(async () => {
    await fake.close();
  });

  const generations = () => fake.generationRequests();

  it('generate: runs the tool for each call, sends the results back in the wire format, and answers', async () => {
    fake.enqueue(
      {
        toolCalls: [
          { name: 'get_weather', args: { city: 'Paris' } },
          { name: 'get_weather', args: { city: 'Rome' } },
        ],
        usage: { input: 30, output: 12 },
      },
      { text: 'Paris is at 18°C and Rome at 24°C.', usage: { input: 70, output: 11 } },
    );
    const tool = weatherTool();
    const events: ToolEvent[] = [];
    const result = await provider.generate('Weather in Paris and Rome?', { tools: [tool], onToolEvent: (e) => events.push(e) });

    expect(result.text).toBe('Paris is at 18°C and Rome at 24°C.');
    expect(result.finishReason).toBe('stop');
    expect(result.steps).toBe(2);
    // Usage is the total over both model steps.
    expect(result.usage).toMatchObject({ input_tokens: 100, output_tokens: 23, total_tokens: 123 });
    expect(tool.calls).toEqual([{ city: 'Paris' }, { city: 'Rome' }]);
    expect(result.toolCalls).toHaveLength(2);
    expect(result.toolCalls.map((c) => [c.toolName, c.args, c.result, c.isError])).toEqual([
      ['get_weather', { city: 'Paris' }, { city: 'Paris', celsius: 18 }, false],
      ['get_weather', { city: 'Rome' }, { city: 'Rome', celsius: 24 }, false],
    ]);

    // Events: each call before its result, all of them reported once.
    expect(events.filter((e) => e.type === 'tool-call')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'tool-result')).toHaveLength(2);
    for (const call of result.toolCalls) {
      const at = events.findIndex((e) => e.type === 'tool-call' && e.toolCallId === call.toolCallId);
      const done = events.findIndex((e) => e.type === 'tool-result' && e.toolCallId === call.toolCallId);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(done).toBeGreaterThan(at);
    }

    const [first, second] = generations();
    expect(generations()).toHaveLength(2);
    // The tool went out with its JSON Schema.
    const declared = vendor.declaredTools(first!.body);
    expect(declared.map((t) => t.name)).toEqual(['get_weather']);
    expect(JSON.stringify(declared[0]!.parameters)).toContain('"city"');
    expect(vendor.toolResults(first!.body)).toEqual([]);
    // The follow-up carries both results, answering the vendor's call ids.
    const results = vendor.toolResults(second!.body);
    expect(results).toHaveLength(2);
    expect(results[0]!.content).toContain('18');
    expect(results[1]!.content).toContain('24');
    if (vendor.provider !== 'gemini') {
      // Gemini 2.x sends calls without ids; the others answer by id.
      expect(results.map((r) => r.id)).toEqual(result.toolCalls.map((c) => c.toolCallId));
    }
    expect(results.every((r) => r.isError !== true)).toBe(true);
    // The tools are still declared when the conversation carries tool calls.
    expect(vendor.declaredTools(second!.body).map((t) => t.name)).toEqual(['get_weather']);
  });

  it('stream: yields tool calls and results in order across steps, then the answer and the totals', async () => {
    fake.enqueue(
      { text: 'Checking Paris. ', toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }], usage: { input: 10, output: 5 } },
      { toolCalls: [{ name: 'get_weather', args: { city: 'Oslo' } }], usage: { input: 20, output: 6 } },
      { chunks: ['Paris 18, ', 'Oslo 7.'], usage: { input: 30, output: 7 } },
    );
    const tool = weatherTool();
    const events: ToolEvent[] = [];
    const { parts, finish } = await collect(provider.stream('Paris then Oslo?', { tools: [tool], onToolEvent: (e) => events.push(e) }));

    const toolParts = parts.filter((p): p is ToolEvent => p.type === 'tool-call' || p.type === 'tool-result');
    expect(toolParts.map((p) => p.type)).toEqual(['tool-call', 'tool-result', 'tool-call', 'tool-result']);
    expect(toolParts[0]).toMatchObject({ toolName: 'get_weather', args: { city: 'Paris' } });
    expect(toolParts[1]).toMatchObject({ toolCallId: toolParts[0]!.toolCallId, result: { city: 'Paris', celsius: 18 }, isError: false });
    expect(toolParts[2]).toMatchObject({ args: { city: 'Oslo' } });
    expect(toolParts[3]).toMatchObject({ toolCallId: toolParts[2]!.toolCallId, result: { city: 'Oslo', celsius: 7 }, isError: false });
    // The text written before the call streams before it; the answer streams after the results.
    const firstCall = parts.findIndex((p) => p.type === 'tool-call');
    const deltas = parts.map((p, i) => [p, i] as const).filter(([p]) => p.type === 'text-delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas[0]![1]).toBeLessThan(firstCall);
    expect(deltas.at(-1)![1]).toBeGreaterThan(parts.findLastIndex((p) => p.type === 'tool-result'));
    expect(parts.at(-1)?.type).toBe('finish');
    expect(parts.filter((p) => p.type === 'finish')).toHaveLength(1);

    expect(finish?.text).toBe('Paris 18, Oslo 7.');
    expect(finish?.finishReason).toBe('stop');
    expect(finish?.steps).toBe(3);
    expect(finish?.usage).toMatchObject({ input_tokens: 60, output_tokens: 18, total_tokens: 78 });
    expect(finish?.toolCalls.map((c) => c.args)).toEqual([{ city: 'Paris' }, { city: 'Oslo' }]);
    expect(tool.calls).toEqual([{ city: 'Paris' }, { city: 'Oslo' }]);
    // onToolEvent sees exactly the stream's tool parts.
    expect(events).toEqual(toolParts);

    const requests = generations();
    expect(requests).toHaveLength(3);
    expect(vendor.toolResults(requests[1]!.body)).toHaveLength(1);
    // The last request carries the whole conversation: both results.
    const last = vendor.toolResults(requests[2]!.body);
    expect(last.map((r) => r.content)).toEqual([expect.stringContaining('18'), expect.stringContaining('7')]);
  });

  it('a tool that throws gives the model an error result, and the call still finishes', async () => {
    fake.enqueue(
      { toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }] },
      { text: 'The weather service is down, sorry.' },
    );
    const tool = weatherTool(() => Promise.reject(new Error('weather service down')));
    const result = await provider.generate('Weather in Paris?', { tools: [tool] });

    expect(result.text).toBe('The weather service is down, sorry.');
    expect(result.finishReason).toBe('stop');
    expect(result.toolCalls).toEqual([
      { toolCallId: expect.any(String), toolName: 'get_weather', args: { city: 'Paris' }, result: { error: 'weather service down' }, isError: true },
    ]);
    const [sent] = vendor.toolResults(generations()[1]!.body);
    // Every vendor's model reads an object with the error message.
    expect(JSON.parse(sent!.content.startsWith('{') ? sent!.content : '{}')).toMatchObject({ error: expect.stringContaining('weather service down') });
    if (vendor.provider === 'anthropic') expect(sent!.isError).toBe(true);

    // Streamed, the error result is a tool-result part with isError.
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Rome' } }] }, { text: 'Still down.' });
    const { parts, finish } = await collect(provider.stream('And Rome?', { tools: [tool] }));
    expect(parts.find((p) => p.type === 'tool-result')).toMatchObject({ isError: true, result: { error: 'weather service down' } });
    expect(finish?.text).toBe('Still down.');
  });

  it('maxToolSteps caps a model that keeps asking for tools: no further request, the last calls are not run', async () => {
    fake.setDefault({ toolCalls: [{ name: 'get_weather', args: { city: 'Oslo' } }], usage: { input: 5, output: 3 } });
    const tool = weatherTool();
    const result = await provider.generate('Loop forever', { tools: [tool], maxToolSteps: 3 });

    expect(generations()).toHaveLength(3);
    expect(result.steps).toBe(3);
    expect(result.finishReason).toBe('tool-calls');
    expect(result.text).toBe('');
    expect(result.usage).toMatchObject({ input_tokens: 15, output_tokens: 9 });
    // Steps 1 and 2 ran their tool; step 3's call would never reach the model, so it was not run.
    expect(tool.calls).toHaveLength(2);
    expect(result.toolCalls).toHaveLength(3);
    expect(result.toolCalls.slice(0, 2).every((c) => !c.isError)).toBe(true);
    expect(result.toolCalls[2]).toMatchObject({ isError: true, result: { error: expect.stringContaining('limit of 3 model steps') } });

    // Streamed the same, with the default cap of 5.
    const { finish } = await collect(provider.stream('Loop forever', { tools: [tool] }));
    expect(finish?.finishReason).toBe('tool-calls');
    expect(finish?.steps).toBe(5);
    expect(generations()).toHaveLength(8);
    expect(tool.calls).toHaveLength(2 + 4);
  });

  it('structured output still works with tools: the answer after the tool results is parsed', async () => {
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Rome' } }] }, { json: { city: 'Rome', celsius: 24 } });
    const schema = {
      type: 'object',
      properties: { city: { type: 'string' }, celsius: { type: 'number' } },
      required: ['city', 'celsius'],
      additionalProperties: false,
    };
    const tool = weatherTool();
    const result = await provider.generate<{ city: string; celsius: number }>('Rome?', { schema, schemaName: 'weather', tools: [tool] });
    expect(result.object).toEqual({ city: 'Rome', celsius: 24 });
    expect(tool.calls).toEqual([{ city: 'Rome' }]);
    expect(result.toolCalls).toHaveLength(1);
    expect(vendor.toolResults(generations()[1]!.body)).toHaveLength(1);
  });

  it('an abort while a tool runs stops the call: the tool sees the abort and no further request is made', async () => {
    // Were the call to go on, the fake would answer with text; each script has just the tool call.
    fake.setDefault({ text: 'never sent' });
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }] });
    const controller = new AbortController();
    let toolSignal: AbortSignal | undefined;
    const tool = weatherTool(
      (_args, { signal }) =>
        new Promise((_resolve, reject) => {
          toolSignal = signal;
          signal.addEventListener('abort', () => reject(new Error('tool stopped')), { once: true });
        }),
    );
    const pending = provider.generate('Weather?', { tools: [tool], signal: controller.signal });
    await until(() => tool.calls.length === 1);
    controller.abort();
    const error = await rejection(pending);
    expect(error.code).toBe('cancelled');
    expect(toolSignal?.aborted).toBe(true);
    expect(generations()).toHaveLength(1);

    // A tool that ignores its signal does not hold the call either; streamed this time.
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Rome' } }] });
    const stubborn = weatherTool(() => new Promise(() => {}));
    const second = new AbortController();
    const parts: StreamPart[] = [];
    const consuming = (async () => {
      for await (const part of provider.stream('Weather?', { tools: [stubborn], signal: second.signal })) parts.push(part);
    })();
    await until(() => stubborn.calls.length === 1);
    second.abort();
    const streamError = await rejection(consuming);
    expect(streamError.code).toBe('cancelled');
    expect(parts.map((p) => p.type)).toEqual(['tool-call']);
    expect(generations()).toHaveLength(2);
  });
});

describe('tool loop retries, timeouts and odd calls', () => {
  let fake: FakeVendor;
  let provider: Provider;
  const anthropic = VENDOR_CASES.find((v) => v.provider === 'anthropic')!;
  const openai = VENDOR_CASES.find((v) => v.provider === 'openai')!;

  const start = async (vendor: VendorCase, settings: { timeoutMs?: number; maxRetries?: number } = {}) => {
    fake = await vendor.start({ apiKey: 'key-tools-retries-0123' });
    provider = createProvider({ provider: vendor.provider, model: vendor.model, apiKey: 'key-tools-retries-0123', baseUrl: fake.baseUrl, ...settings }, FAST_RETRIES);
  };
  afterEach(async () => {
    await fake.close();
  });

  it('a failure before any tool ran is retried', async () => {
    await start(anthropic);
    fake.enqueue({ status: 503 }, { toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }] }, { text: 'done' });
    const tool = weatherTool();
    const result = await provider.generate('x', { tools: [tool] });
    expect(result.text).toBe('done');
    expect(result.attempts).toBe(2);
    expect(tool.calls).toHaveLength(1);
  });

  it('a failure after a tool ran is not retried: the tool must not run twice', async () => {
    await start(anthropic);
    const reply: FakeReply = { toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }] };
    // A retry would find the tool call scripted again, then this answer.
    fake.setDefault({ text: 'would be a retry' });
    fake.enqueue(reply, { status: 503 });
    const tool = weatherTool();
    const error = await rejection(provider.generate('x', { tools: [tool] }));
    expect(error.code).toBe('unavailable');
    expect(error.retryable).toBe(true);
    expect(tool.calls).toHaveLength(1);
    expect(fake.generationRequests()).toHaveLength(2);

    fake.enqueue(reply, { status: 503 });
    const streamError = await rejection(
      (async () => {
        for await (const part of provider.stream('x', { tools: [tool] })) void part;
      })(),
    );
    expect(streamError.code).toBe('unavailable');
    expect(tool.calls).toHaveLength(2);
    expect(fake.generationRequests()).toHaveLength(4);
  });

  it('timeout_ms limits the model, not the tools: a tool slower than the timeout does not time the call out', async () => {
    await start(openai, { timeoutMs: 400 });
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Oslo' } }] }, { text: 'cold' });
    const slow = weatherTool(() => new Promise((resolve) => setTimeout(() => resolve({ celsius: 7 }), 700)));
    const result = await provider.generate('x', { tools: [slow] });
    expect(result.text).toBe('cold');

    // The clock runs again for the next model step.
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Oslo' } }] }, { text: 'late', delayMs: 1500 });
    const error = await rejection(provider.generate('x', { tools: [slow], maxRetries: 0 }));
    expect(error.code).toBe('timeout');
  });

  it('a call of an unknown tool gets an error result the model sees, and the loop goes on', async () => {
    await start(openai);
    fake.enqueue({ toolCalls: [{ name: 'no_such_tool', args: {} }] }, { text: 'ok without it' });
    const events: ToolEvent[] = [];
    const result = await provider.generate('x', { tools: [weatherTool()], onToolEvent: (e) => events.push(e) });
    expect(result.text).toBe('ok without it');
    expect(result.toolCalls).toEqual([{ toolCallId: expect.any(String), toolName: 'no_such_tool', args: {}, result: { error: expect.stringContaining('no_such_tool') }, isError: true }]);
    expect(events.map((e) => e.type)).toEqual(['tool-call', 'tool-result']);
    expect(openai.toolResults(fake.generationRequests()[1]!.body)[0]!.content).toContain('no_such_tool');
  });

  it('maxToolSteps 1 makes one model call and runs no tool', async () => {
    await start(openai);
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }] });
    const tool = weatherTool();
    const result = await provider.generate('x', { tools: [tool], maxToolSteps: 1 });
    expect(result.finishReason).toBe('tool-calls');
    expect(tool.calls).toHaveLength(0);
    expect(result.toolCalls[0]).toMatchObject({ isError: true });
    expect(fake.generationRequests()).toHaveLength(1);
  });

  it('a string result travels as text; results that are not JSON become errors', async () => {
    await start(anthropic);
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }, { name: 'get_weather', args: { city: 'Rome' } }] }, { text: 'ok' });
    const tool = weatherTool(async (args) => ((args as { city: string }).city === 'Paris' ? 'sunny, 18°C' : { big: 10n }));
    const result = await provider.generate('x', { tools: [tool] });
    expect(result.toolCalls.map((c) => [c.result, c.isError])).toEqual([
      ['sunny, 18°C', false],
      [{ error: expect.stringContaining('not JSON') }, true],
    ]);
    const sent = anthropic.toolResults(fake.generationRequests()[1]!.body);
    expect(sent[0]).toMatchObject({ content: 'sunny, 18°C', isError: false });
    expect(sent[1]).toMatchObject({ isError: true });
  });
});

describe('tool calls through the governance middleware', () => {
  it('tools reach the vendor, tool parts pass through unchanged, and usage is recorded as the total of the loop', async () => {
    const vendor = VENDOR_CASES.find((v) => v.provider === 'groq')!;
    const fake = await vendor.start({ apiKey: 'key-governed-tools-01' });
    try {
      const rows: Array<Record<string, unknown>> = [];
      const deps = {
        storage: { usage: { insertMany: async (records: Array<Record<string, unknown>>) => void rows.push(...records) } },
        audit: { record: async () => {} },
        budgets: { reserve: async () => undefined, settle: async () => {} },
        limits: { take: async () => {}, charge: async () => {}, give: async () => {} },
        settings: { get: async () => ({}) },
      } as unknown as GovernanceDeps;
      const context: CallContext = { appId: 'app', agentId: 'agent', agentName: 'weather', provider: 'groq', model: vendor.model, agentConfig: {}, kind: 'direct' };
      const inner = createProvider({ provider: 'groq', model: vendor.model, apiKey: 'key-governed-tools-01', baseUrl: fake.baseUrl }, FAST_RETRIES);
      const governed = applyMiddleware(inner, context, [governanceMiddleware(deps)]);

      fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Oslo' } }], usage: { input: 10, output: 4 } }, { text: 'Cold.', usage: { input: 30, output: 2 } });
      const tool = weatherTool();
      const { parts, finish } = await collect(governed.stream('Oslo?', { tools: [tool], maxToolSteps: 3 }));
      expect(parts.map((p) => p.type).filter((t) => t !== 'text-delta')).toEqual(['tool-call', 'tool-result', 'finish']);
      expect(parts.find((p) => p.type === 'tool-result')).toMatchObject({ result: { city: 'Oslo', celsius: 7 }, isError: false });
      expect(finish).toMatchObject({ text: 'Cold.', steps: 2, usage: { input_tokens: 40, output_tokens: 6 }, costUsd: expect.any(Number) });
      expect(rows[0]).toMatchObject({ input_tokens: 40, output_tokens: 6, outcome: 'success' });

      fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }] }, { text: 'Mild.' });
      const result = await governed.generate('Paris?', { tools: [tool] });
      expect(result.text).toBe('Mild.');
      expect(result.toolCalls).toHaveLength(1);
      expect(tool.calls).toEqual([{ city: 'Oslo' }, { city: 'Paris' }]);
    } finally {
      await fake.close();
    }
  });
});
