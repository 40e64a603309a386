/**
 * Fidelity tests for the fake Anthropic server: the vendor's own SDK and the AI SDK provider are
 * the clients, so a wire-format mistake in the fake shows up as a parse failure or a wrong value.
 */
import Anthropic, { type APIError as AnthropicApiError, OverloadedError } from '@anthropic-ai/sdk';
import { createAnthropic } from '@ai-sdk/anthropic';
import { APICallError, generateText, jsonSchema, Output, streamText } from 'ai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ANTHROPIC_DEFAULT_TEXT, ANTHROPIC_VERSION, startFakeAnthropic } from './anthropic.ts';
import type { FakeVendor } from './harness.ts';

/** The official SDK warns on stderr for deprecated ids such as claude-sonnet-4-5; avoid the noise. */
const SDK_MODEL = 'claude-sonnet-4-6';

let fake: FakeVendor;

beforeAll(async () => {
  fake = await startFakeAnthropic();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.setDefault({});
});

function sdk(apiKey = fake.apiKey): Anthropic {
  // The official SDK appends /v1/... itself, so it gets the server root.
  return new Anthropic({ apiKey, baseURL: fake.url, maxRetries: 0 });
}

function lastGeneration() {
  const record = fake.generationRequests().at(-1);
  if (!record) throw new Error('no generation request recorded');
  return record;
}

const PERSON_SCHEMA = jsonSchema<{ name: string; age: number }>({
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'number' } },
  required: ['name', 'age'],
  additionalProperties: false,
});

describe('fake Anthropic through @anthropic-ai/sdk', () => {
  it('answers a non-streamed message with the scripted text, usage and stop reason', async () => {
    fake.enqueue({ text: 'Bonjour.', usage: { input: 30, output: 4, cached: 10 } });
    const message = await sdk().messages.create({
      model: SDK_MODEL,
      max_tokens: 256,
      system: 'You are terse.',
      messages: [{ role: 'user', content: 'Say hello in French.' }],
    });

    expect(message.type).toBe('message');
    expect(message.role).toBe('assistant');
    expect(message.content).toEqual([{ type: 'text', text: 'Bonjour.' }]);
    expect(message.stop_reason).toBe('end_turn');
    // Anthropic's input_tokens counts only uncached input; the cache read is reported apart.
    expect(message.usage.input_tokens + (message.usage.cache_read_input_tokens ?? 0)).toBe(30);
    expect(message.usage.cache_read_input_tokens).toBe(10);
    expect(message.usage.output_tokens).toBe(4);

    const record = lastGeneration();
    expect(record.body.system).toBe('You are terse.');
    expect(record.body.messages).toEqual([{ role: 'user', content: 'Say hello in French.' }]);
    // SDK 1.x sends the API key as a bearer token and its own API version.
    expect(record.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(record.headers['anthropic-version']).toEqual(expect.any(String));
  });

  it('uses the default text and usage when the script says nothing', async () => {
    const message = await sdk().messages.create({
      model: SDK_MODEL,
      max_tokens: 64,
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(message.content).toEqual([{ type: 'text', text: ANTHROPIC_DEFAULT_TEXT }]);
    expect(message.usage.input_tokens).toBe(11);
    expect(message.usage.output_tokens).toBe(7);
  });

  it('streams the documented event sequence and the SDK accumulates the scripted text', async () => {
    fake.enqueue({ chunks: ['Hel', 'lo ', 'there'], usage: { input: 12, output: 3 }, finish: 'length' });
    const stream = sdk().messages.stream({
      model: SDK_MODEL,
      max_tokens: 3,
      system: [{ type: 'text', text: 'Stream please.' }],
      messages: [{ role: 'user', content: 'hi' }],
    });
    const events: string[] = [];
    const deltas: string[] = [];
    for await (const event of stream) {
      events.push(event.type);
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') deltas.push(event.delta.text);
    }
    const final = await stream.finalMessage();

    expect(events).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(deltas).toEqual(['Hel', 'lo ', 'there']);
    expect(final.content).toEqual([expect.objectContaining({ type: 'text', text: 'Hello there' })]);
    expect(final.stop_reason).toBe('max_tokens');
    expect(final.usage.input_tokens).toBe(12);
    expect(final.usage.output_tokens).toBe(3);
    expect(lastGeneration().body.stream).toBe(true);
    expect(lastGeneration().body.system).toEqual([{ type: 'text', text: 'Stream please.' }]);
  });

  it('sends ping events and SSE event names on the raw wire', async () => {
    const response = await fetch(`${fake.baseUrl}/messages`, {
      method: 'POST',
      headers: { 'x-api-key': fake.apiKey, 'anthropic-version': ANTHROPIC_VERSION, 'content-type': 'application/json' },
      body: JSON.stringify({ model: SDK_MODEL, max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const raw = await response.text();
    const names = [...raw.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(names).toContain('ping');
    expect(names[0]).toBe('message_start');
    expect(names.at(-1)).toBe('message_stop');
  });

  it('answers a forced tool with a tool_use block, also streamed as input_json_delta', async () => {
    const tools: Anthropic.Tool[] = [
      { name: 'json', description: 'Respond with a JSON object.', input_schema: { type: 'object', properties: {} } },
    ];
    fake.enqueue({ json: { name: 'Ada', age: 36 } }, { json: { name: 'Bob', age: 7 } });
    const message = await sdk().messages.create({
      model: 'claude-3-5-haiku-latest',
      max_tokens: 100,
      tools,
      tool_choice: { type: 'tool', name: 'json' },
      messages: [{ role: 'user', content: 'who?' }],
    });
    expect(message.stop_reason).toBe('tool_use');
    expect(message.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'json', input: { name: 'Ada', age: 36 } })]);

    const stream = sdk().messages.stream({
      model: 'claude-3-5-haiku-latest',
      max_tokens: 100,
      tools,
      tool_choice: { type: 'any' },
      messages: [{ role: 'user', content: 'who?' }],
    });
    const partials: string[] = [];
    stream.on('inputJson', (partial) => partials.push(partial));
    const final = await stream.finalMessage();
    expect(partials.length).toBeGreaterThan(1);
    expect(final.content).toEqual([expect.objectContaining({ type: 'tool_use', name: 'json', input: { name: 'Bob', age: 7 } })]);
  });

  it('raises AuthenticationError for a bad key, with the key in the message', async () => {
    const badKey = 'sk-ant-bad-key-XYZ123';
    const error = await sdk(badKey)
      .messages.create({ model: SDK_MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
    const authError = error as InstanceType<typeof Anthropic.AuthenticationError>;
    expect(authError.status).toBe(401);
    expect(authError.message).toContain(badKey);
    expect(authError.error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    expect(authError.requestID).toMatch(/^req_/);
  });

  it('surfaces a scripted 429 with retry-after as RateLimitError', async () => {
    fake.enqueue({ status: 429, errorMessage: 'slow down', headers: { 'retry-after': '3' } });
    const error = await sdk()
      .messages.create({ model: SDK_MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.RateLimitError);
    const rateError = error as InstanceType<typeof Anthropic.RateLimitError>;
    expect(rateError.headers.get('retry-after')).toBe('3');
    expect(rateError.error).toMatchObject({ error: { type: 'rate_limit_error', message: 'slow down' } });
  });

  it('maps 529, 500 and 400 to the SDK error classes with the documented error types', async () => {
    fake.enqueue({ status: 529 }, { status: 500 }, { status: 400, errorMessage: 'bad' });
    const call = () =>
      sdk()
        .messages.create({ model: SDK_MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] })
        .catch((e: unknown) => e);
    const overloaded = await call();
    expect(overloaded).toBeInstanceOf(OverloadedError);
    expect((overloaded as AnthropicApiError).status).toBe(529);
    expect((overloaded as AnthropicApiError).error).toMatchObject({ error: { type: 'overloaded_error' } });
    const internal = await call();
    expect(internal).toBeInstanceOf(Anthropic.InternalServerError);
    expect((internal as AnthropicApiError).error).toMatchObject({ error: { type: 'api_error' } });
    const bad = await call();
    expect(bad).toBeInstanceOf(Anthropic.BadRequestError);
    expect((bad as AnthropicApiError).error).toMatchObject({ error: { type: 'invalid_request_error', message: 'bad' } });
  });

  it('honours delayMs and chunkDelayMs, and records a client that went away mid-stream', async () => {
    fake.enqueue({ delayMs: 50, chunks: ['one ', 'two ', 'three'], chunkDelayMs: 300 });
    const controller = new AbortController();
    const started = Date.now();
    const stream = sdk().messages.stream(
      { model: SDK_MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] },
      { signal: controller.signal },
    );
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const event of stream) {
          if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') {
            seen.push(event.delta.text);
            controller.abort();
          }
        }
      })(),
    ).rejects.toThrow();
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
    expect(seen).toEqual(['one ']);
    const record = lastGeneration();
    await expect.poll(() => record.closedEarly).toBe(true);
  });

  it('lists models with auth, paginating like the API', async () => {
    const ids: string[] = [];
    for await (const model of sdk().models.list({ limit: 2 })) ids.push(model.id);
    expect(ids).toContain('claude-sonnet-4-5-20250929');
    expect(ids.length).toBeGreaterThan(2);
    const one = await sdk().models.retrieve('claude-sonnet-4-5-20250929');
    expect(one.display_name).toBe('Claude Sonnet 4.5');
    await expect(sdk('nope').models.list()).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
  });
});

describe('fake Anthropic request validation on the raw wire', () => {
  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${fake.baseUrl}/messages`, {
      method: 'POST',
      headers: { 'x-api-key': fake.apiKey, 'anthropic-version': ANTHROPIC_VERSION, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it('requires max_tokens', async () => {
    const response = await post({ model: SDK_MODEL, messages: [{ role: 'user', content: 'x' }] });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'max_tokens: Field required' },
    });
  });

  it('requires the anthropic-version header', async () => {
    const response = await fetch(`${fake.baseUrl}/messages`, {
      method: 'POST',
      headers: { 'x-api-key': fake.apiKey, 'content-type': 'application/json' },
      body: JSON.stringify({ model: SDK_MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
  });

  it('does not consume a scripted reply on a rejected request', async () => {
    fake.enqueue({ text: 'kept for the next valid call' });
    await post({ model: SDK_MODEL, messages: [] });
    const response = await post({ model: SDK_MODEL, max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    expect(await response.json()).toMatchObject({ content: [{ type: 'text', text: 'kept for the next valid call' }] });
  });
});

describe('fake Anthropic through @ai-sdk/anthropic', () => {
  const provider = () => createAnthropic({ baseURL: fake.baseUrl, apiKey: fake.apiKey });

  it('generateText: text, usage and the system prompt', async () => {
    fake.enqueue({ text: 'Generated.', usage: { input: 40, output: 9, cached: 25, reasoning: 2 } });
    const result = await generateText({
      model: provider()('claude-sonnet-4-5'),
      instructions: 'Be kind.',
      prompt: 'hello',
      maxOutputTokens: 50,
      maxRetries: 0,
    });
    expect(result.text).toBe('Generated.');
    expect(result.finishReason).toBe('stop');
    expect(result.usage.inputTokens).toBe(40);
    expect(result.usage.outputTokens).toBe(9);
    expect(result.usage.inputTokenDetails.cacheReadTokens).toBe(25);
    expect(result.usage.outputTokenDetails.reasoningTokens).toBe(2);

    const body = lastGeneration().body;
    expect(body.max_tokens).toBe(50);
    expect(body.system).toEqual([expect.objectContaining({ type: 'text', text: 'Be kind.' })]);
  });

  it('streamText: text, usage and finish reason', async () => {
    fake.enqueue({ chunks: ['a', 'b', 'c'], usage: { input: 5, output: 3, cached: 1 }, finish: 'length', chunkDelayMs: 5 });
    const result = streamText({
      model: provider()('claude-sonnet-4-5'),
      instructions: 'Stream.',
      prompt: 'go',
      maxRetries: 0,
    });
    const parts: string[] = [];
    for await (const delta of result.textStream) parts.push(delta);
    expect(parts.join('')).toBe('abc');
    expect(await result.finishReason).toBe('length');
    const usage = await result.usage;
    expect(usage.inputTokens).toBe(5);
    expect(usage.outputTokens).toBe(3);
    expect(usage.inputTokenDetails.cacheReadTokens).toBe(1);
  });

  it('structured output through native output_config (claude-sonnet-4-5)', async () => {
    fake.enqueue({ json: { name: 'Ada', age: 36 } });
    const result = await generateText({
      model: provider()('claude-sonnet-4-5'),
      prompt: 'who?',
      output: Output.object({ schema: PERSON_SCHEMA }),
      maxRetries: 0,
    });
    expect(result.output).toEqual({ name: 'Ada', age: 36 });
    expect(lastGeneration().body.output_config).toMatchObject({ format: { type: 'json_schema' } });
    expect(lastGeneration().body.tools).toBeUndefined();
  });

  it('structured output through the forced json tool (claude-3-5-haiku-latest)', async () => {
    fake.enqueue({ json: { name: 'Grace', age: 85 } });
    const result = await generateText({
      model: provider()('claude-3-5-haiku-latest'),
      prompt: 'who?',
      output: Output.object({ schema: PERSON_SCHEMA }),
      maxRetries: 0,
    });
    expect(result.output).toEqual({ name: 'Grace', age: 85 });
    const body = lastGeneration().body;
    expect(body.tools).toEqual([expect.objectContaining({ name: 'json' })]);
    expect(body.tool_choice).toMatchObject({ type: 'any' });
  });

  it('streamed structured output on both paths', async () => {
    for (const modelId of ['claude-sonnet-4-5', 'claude-3-5-haiku-latest']) {
      fake.enqueue({ json: { name: modelId, age: 1 } });
      const result = streamText({
        model: provider()(modelId),
        prompt: 'who?',
        output: Output.object({ schema: PERSON_SCHEMA }),
        maxRetries: 0,
      });
      expect(await result.output).toEqual({ name: modelId, age: 1 });
    }
  });

  it('a bad key becomes an APICallError 401 carrying the vendor message', async () => {
    const badKey = 'sk-ant-wrong-0000';
    const error = await generateText({
      model: createAnthropic({ baseURL: fake.baseUrl, apiKey: badKey })('claude-sonnet-4-5'),
      prompt: 'x',
      maxRetries: 0,
    }).catch((e: unknown) => e);
    expect(APICallError.isInstance(error)).toBe(true);
    expect((error as APICallError).statusCode).toBe(401);
    expect((error as APICallError).message).toContain(badKey);
  });

  it('a scripted 429 becomes a retryable APICallError with the retry-after header', async () => {
    fake.enqueue({ status: 429, headers: { 'retry-after': '2' } });
    const error = await generateText({ model: provider()('claude-sonnet-4-5'), prompt: 'x', maxRetries: 0 }).catch(
      (e: unknown) => e,
    );
    expect(APICallError.isInstance(error)).toBe(true);
    expect((error as APICallError).statusCode).toBe(429);
    expect((error as APICallError).isRetryable).toBe(true);
    expect((error as APICallError).responseHeaders?.['retry-after']).toBe('2');
  });
});

describe('fake Anthropic tool use through @anthropic-ai/sdk', () => {
  const tools: Anthropic.Tool[] = [
    { name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
  ];
  const calls = [
    { id: 'toolu_paris', name: 'get_weather', args: { city: 'Paris' } },
    { id: 'toolu_rome', name: 'get_weather', args: { city: 'Rome' } },
  ];

  it('answers tool_use blocks with stop_reason tool_use, and accepts the tool_result blocks that answer them', async () => {
    fake.enqueue({ text: 'Checking.', toolCalls: calls }, { text: 'Both mild.' });
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'Weather in Paris and Rome?' }];
    const first = await sdk().messages.create({ model: SDK_MODEL, max_tokens: 256, messages, tools });
    expect(first.stop_reason).toBe('tool_use');
    expect(first.content).toEqual([
      { type: 'text', text: 'Checking.' },
      { type: 'tool_use', id: 'toolu_paris', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'toolu_rome', name: 'get_weather', input: { city: 'Rome' } },
    ]);

    messages.push(
      { role: 'assistant', content: first.content },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_paris', content: '18' },
          { type: 'tool_result', tool_use_id: 'toolu_rome', content: 'service down', is_error: true },
        ],
      },
    );
    const second = await sdk().messages.create({ model: SDK_MODEL, max_tokens: 256, messages, tools });
    expect(second.content).toEqual([{ type: 'text', text: 'Both mild.' }]);

    // An unanswered tool_use is refused, as the API does.
    const unanswered = await sdk()
      .messages.create({ model: SDK_MODEL, max_tokens: 256, tools, messages: [...messages.slice(0, 2), { role: 'user', content: 'go on' }] })
      .catch((e: unknown) => e);
    expect(unanswered).toBeInstanceOf(Anthropic.BadRequestError);
  });

  it('streams each tool_use block with input_json_delta pieces the SDK assembles', async () => {
    fake.enqueue({ toolCalls: calls });
    const stream = sdk().messages.stream({ model: SDK_MODEL, max_tokens: 256, messages: [{ role: 'user', content: 'x' }], tools });
    const partials: string[] = [];
    stream.on('inputJson', (partial) => partials.push(partial));
    const message = await stream.finalMessage();
    expect(message.stop_reason).toBe('tool_use');
    expect(message.content.map((b) => (b.type === 'tool_use' ? [b.id, b.input] : b.type))).toEqual([
      ['toolu_paris', { city: 'Paris' }],
      ['toolu_rome', { city: 'Rome' }],
    ]);
    expect(partials.length).toBeGreaterThan(2);
  });
});
