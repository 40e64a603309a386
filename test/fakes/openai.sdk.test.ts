/**
 * Fidelity tests for the OpenAI-format fakes: the official `openai` SDK and the AI SDK provider
 * packages must accept the fakes' answers exactly as they accept the real vendors'. A schema the
 * clients reject, or a field they cannot find, fails here before it can mislead the service's tests.
 */
import { createGroq } from '@ai-sdk/groq';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenRouter } from '@openrouter/ai-sdk-provider';
import {
  APICallError,
  generateText,
  jsonSchema,
  Output,
  streamText,
  tool,
  type JSONSchema7,
  type LanguageModel,
} from 'ai';
import OpenAI, { AuthenticationError, InternalServerError, RateLimitError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordedRequest } from './harness.ts';
import {
  DEFAULT_OPENROUTER_COST,
  startFakeGroq,
  startFakeOpenAI,
  startFakeOpenRouter,
  type OpenAIFamilyFake,
  type OpenAIFamilyOptions,
} from './openai.ts';

const SYSTEM = 'You are terse.';
const USAGE = { input: 23, output: 9, cached: 5, reasoning: 3 };
const PERSON_SCHEMA = {
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'number' } },
  required: ['name', 'age'],
  additionalProperties: false,
} satisfies JSONSchema7;
const PERSON = { name: 'Ada', age: 36 };

interface VendorCase {
  name: 'openai' | 'groq' | 'openrouter';
  start: (options?: OpenAIFamilyOptions) => Promise<OpenAIFamilyFake>;
  model: string;
  root: string;
}

const VENDORS: VendorCase[] = [
  { name: 'openai', start: startFakeOpenAI, model: 'gpt-4o-mini', root: '/v1' },
  { name: 'groq', start: startFakeGroq, model: 'llama-3.3-70b-versatile', root: '/openai/v1' },
  { name: 'openrouter', start: startFakeOpenRouter, model: 'openai/gpt-4o-mini', root: '/api/v1' },
];

function last(fake: OpenAIFamilyFake): RecordedRequest {
  const record = fake.requests.at(-1);
  if (!record) throw new Error('no request recorded');
  return record;
}

/** Runs a promise expected to fail and hands back its error for inspection. */
async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

describe.each(VENDORS)('$name fake through the openai SDK', ({ name, start, model, root }) => {
  let fake: OpenAIFamilyFake;
  let client: OpenAI;

  beforeAll(async () => {
    fake = await start();
    client = new OpenAI({ apiKey: fake.apiKey, baseURL: fake.baseUrl, maxRetries: 0 });
  });
  afterAll(() => fake.close());

  it('serves the documented API root', () => {
    expect(fake.baseUrl).toBe(`${fake.url}${root}`);
  });

  it('answers a chat completion with the scripted text and usage', async () => {
    fake.enqueue({ text: 'Bonjour.', usage: USAGE });
    const completion = await client.chat.completions.create({
      model,
      messages: [
        { role: 'system', content: SYSTEM },
        { role: 'user', content: 'Say hello in French.' },
      ],
    });

    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe(model);
    expect(completion.choices[0]?.message.content).toBe('Bonjour.');
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage).toMatchObject({ prompt_tokens: 23, completion_tokens: 9, total_tokens: 32 });
    expect(completion.usage?.prompt_tokens_details?.cached_tokens).toBe(5);
    expect(completion.usage?.completion_tokens_details?.reasoning_tokens).toBe(3);

    const request = last(fake);
    expect(request.path).toBe(`${root}/chat/completions`);
    expect(request.headers.authorization).toBe(`Bearer ${fake.apiKey}`);
    expect(request.body.messages[0]).toEqual({ role: 'system', content: SYSTEM });
  });

  it('falls back to its default text when the script has none', async () => {
    const completion = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] });
    expect(completion.choices[0]?.message.content).toBe(`Hello from the fake ${name}.`);
    expect(completion.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 7 });
  });

  it('streams the scripted chunks and ends with usage when include_usage is set', async () => {
    fake.enqueue({ chunks: ['Bon', 'jour', '.'], usage: USAGE });
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Say hello in French.' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const deltas: string[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      const content = chunk.choices[0]?.delta.content;
      if (content) deltas.push(content);
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(deltas).toEqual(['Bon', 'jour', '.']);
    expect(finish).toBe('stop');
    expect(usage).toMatchObject({ prompt_tokens: 23, completion_tokens: 9, total_tokens: 32 });
    expect(usage?.prompt_tokens_details?.cached_tokens).toBe(5);
    expect(usage?.completion_tokens_details?.reasoning_tokens).toBe(3);
  });

  it('reports stream usage without include_usage only the way the vendor does', async () => {
    fake.enqueue({ text: 'Hi there', usage: USAGE });
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
    });
    const chunks: Array<OpenAI.ChatCompletionChunk & { x_groq?: { usage?: { prompt_tokens: number } } }> = [];
    for await (const chunk of stream) chunks.push(chunk);
    const usageChunks = chunks.filter((c) => c.usage);
    const groqUsage = chunks.find((c) => c.x_groq?.usage)?.x_groq?.usage;
    if (name === 'openai') {
      expect(usageChunks).toHaveLength(0);
    } else if (name === 'groq') {
      expect(usageChunks).toHaveLength(0);
      expect(groqUsage?.prompt_tokens).toBe(23);
    } else {
      // OpenRouter always reports usage (and cost) in a final chunk.
      expect(usageChunks).toHaveLength(1);
      expect(usageChunks[0]?.choices).toEqual([]);
      expect((usageChunks[0]?.usage as unknown as { cost: number }).cost).toBe(DEFAULT_OPENROUTER_COST);
    }
  });

  it('answers response_format json_schema with the scripted JSON as text', async () => {
    fake.enqueue({ json: PERSON });
    const completion = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Describe Ada.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON_SCHEMA, strict: true } },
    });
    expect(JSON.parse(completion.choices[0]?.message.content ?? '')).toEqual(PERSON);
  });

  it('reports finish_reason length when scripted', async () => {
    fake.enqueue({ text: 'Once upon', finish: 'length' });
    const completion = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Story' }] });
    expect(completion.choices[0]?.finish_reason).toBe('length');
  });

  it('rejects a wrong key with AuthenticationError whose message echoes the key', async () => {
    const badKey = 'sk-wrong-key-9876543210';
    const bad = new OpenAI({ apiKey: badKey, baseURL: fake.baseUrl, maxRetries: 0 });
    const error = await failure(bad.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] }));
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as AuthenticationError).status).toBe(401);
    expect((error as AuthenticationError).message).toContain(badKey);
    if (name !== 'openrouter') expect((error as AuthenticationError).code).toBe('invalid_api_key');
  });

  it('does not use a scripted reply on a request it rejects for auth', async () => {
    fake.enqueue({ text: 'kept for the next good call' });
    const bad = new OpenAI({ apiKey: 'nope', baseURL: fake.baseUrl, maxRetries: 0 });
    await failure(bad.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] }));
    const completion = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] });
    expect(completion.choices[0]?.message.content).toBe('kept for the next good call');
  });

  it('surfaces a scripted 429 with retry-after as RateLimitError', async () => {
    fake.enqueue({ status: 429, headers: { 'retry-after': '7' } });
    const error = await failure(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] }));
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).headers.get('retry-after')).toBe('7');
    if (name !== 'openrouter') expect((error as RateLimitError).code).toBe('rate_limit_exceeded');
  });

  it('surfaces scripted 500 and 503 as InternalServerError with the scripted message', async () => {
    fake.enqueue({ status: 500, errorMessage: 'boom' }, { status: 503 });
    const first = await failure(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] }));
    expect(first).toBeInstanceOf(InternalServerError);
    expect((first as InternalServerError).message).toContain('boom');
    const second = await failure(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] }));
    expect((second as InternalServerError).status).toBe(503);
  });

  it('answers a forced tool with the scripted JSON as the call arguments, streamed too', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'record_person', parameters: PERSON_SCHEMA } },
    ];
    const toolChoice = { type: 'function', function: { name: 'record_person' } } as const;
    fake.enqueue({ json: PERSON }, { json: PERSON });
    const completion = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Describe Ada.' }],
      tools,
      tool_choice: toolChoice,
    });
    const call = completion.choices[0]?.message.tool_calls?.[0];
    expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' && call.function.name).toBe('record_person');
    expect(call?.type === 'function' && JSON.parse(call.function.arguments)).toEqual(PERSON);

    const stream = client.chat.completions.stream({
      model,
      messages: [{ role: 'user', content: 'Describe Ada.' }],
      tools,
      tool_choice: toolChoice,
    });
    const final = await stream.finalChatCompletion();
    const streamedCall = final.choices[0]?.message.tool_calls?.[0];
    expect(streamedCall?.type === 'function' && JSON.parse(streamedCall.function.arguments)).toEqual(PERSON);
  });

  it('holds a delayed reply and records that the client gave up', async () => {
    fake.enqueue({ text: 'too late', delayMs: 2_000 });
    const error = await failure(
      client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }] }, { timeout: 100 }),
    );
    expect(error).toBeInstanceOf(Error);
    await expect.poll(() => last(fake).closedEarly).toBe(true);
  });

  it('paces streamed chunks and stops writing when the client aborts mid-stream', async () => {
    fake.enqueue({ chunks: ['a', 'b', 'c', 'd'], chunkDelayMs: 150 });
    const stream = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
    });
    const started = Date.now();
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content === 'b') break;
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    await expect.poll(() => last(fake).closedEarly).toBe(true);
  });

  it('lists models', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids.length).toBeGreaterThan(0);
    expect(last(fake).path).toBe(`${root}/models`);
    expect(fake.generationRequests().every((r) => r.path !== `${root}/models`)).toBe(true);
  });

  it(`${name === 'openrouter' ? 'serves' : 'guards'} the model list ${name === 'openrouter' ? 'without' : 'behind'} a key`, async () => {
    const res = await fetch(`${fake.baseUrl}/models`);
    expect(res.status).toBe(name === 'openrouter' ? 200 : 401);
  });
});

describe('openai fake: Responses API through the openai SDK', () => {
  let fake: OpenAIFamilyFake;
  let client: OpenAI;

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    client = new OpenAI({ apiKey: fake.apiKey, baseURL: fake.baseUrl, maxRetries: 0 });
  });
  afterAll(() => fake.close());

  it('creates a response with the scripted text, usage and instructions echoed', async () => {
    fake.enqueue({ text: 'Salut.', usage: USAGE });
    const response = await client.responses.create({ model: 'gpt-4o-mini', instructions: SYSTEM, input: 'Hello?' });
    expect(response.object).toBe('response');
    expect(response.status).toBe('completed');
    expect(response.output_text).toBe('Salut.');
    expect(response.instructions).toBe(SYSTEM);
    expect(response.usage).toMatchObject({ input_tokens: 23, output_tokens: 9, total_tokens: 32 });
    expect(response.usage?.input_tokens_details.cached_tokens).toBe(5);
    expect(response.usage?.output_tokens_details.reasoning_tokens).toBe(3);
    expect(last(fake).path).toBe('/v1/responses');
    expect(last(fake).body.instructions).toBe(SYSTEM);
  });

  it('streams the documented event sequence with consecutive sequence numbers', async () => {
    fake.enqueue({ chunks: ['Sa', 'lut', '.'], usage: USAGE });
    const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'Hello?', stream: true });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);

    expect(events.map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const deltas = events.filter((e) => e.type === 'response.output_text.delta');
    expect(deltas.map((e) => e.delta)).toEqual(['Sa', 'lut', '.']);
    const added = events.find((e) => e.type === 'response.output_item.added');
    expect(new Set(deltas.map((e) => e.item_id))).toEqual(new Set([added?.item.id]));
    const completed = events.at(-1);
    expect(completed?.type === 'response.completed' && completed.response.usage?.output_tokens).toBe(9);
  });

  it("accumulates through the SDK's stream helper into a final response", async () => {
    fake.enqueue({ chunks: ['one ', 'two'], usage: USAGE });
    const stream = client.responses.stream({ model: 'gpt-4o-mini', input: 'Count' });
    const final = await stream.finalResponse();
    expect(final.output_text).toBe('one two');
    expect(final.usage?.input_tokens).toBe(23);
  });

  it('answers text.format json_schema with the scripted JSON', async () => {
    fake.enqueue({ json: PERSON });
    const response = await client.responses.create({
      model: 'gpt-4o-mini',
      input: 'Describe Ada.',
      text: { format: { type: 'json_schema', name: 'person', schema: PERSON_SCHEMA, strict: true } },
    });
    expect(JSON.parse(response.output_text)).toEqual(PERSON);
  });

  it('answers a forced function tool with a function_call item, streamed and not', async () => {
    const tools: OpenAI.Responses.FunctionTool[] = [
      { type: 'function', name: 'record_person', parameters: PERSON_SCHEMA, strict: true },
    ];
    fake.enqueue({ json: PERSON }, { json: PERSON });
    const params = {
      model: 'gpt-4o-mini',
      input: 'Describe Ada.',
      tools,
      tool_choice: { type: 'function', name: 'record_person' },
    } as const;
    const response = await client.responses.create(params);
    const item = response.output[0];
    expect(item?.type).toBe('function_call');
    expect(item?.type === 'function_call' && JSON.parse(item.arguments)).toEqual(PERSON);

    const final = await client.responses.stream(params).finalResponse();
    const streamed = final.output[0];
    expect(streamed?.type === 'function_call' && streamed.name).toBe('record_person');
    expect(streamed?.type === 'function_call' && JSON.parse(streamed.arguments)).toEqual(PERSON);
  });

  it('ends a length-limited stream with response.incomplete', async () => {
    fake.enqueue({ text: 'Once upon', finish: 'length' });
    const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'Story', stream: true });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types.at(-1)).toBe('response.incomplete');
  });

  it('surfaces a scripted 429 as RateLimitError', async () => {
    fake.enqueue({ status: 429, headers: { 'retry-after': '2' } });
    const error = await failure(client.responses.create({ model: 'gpt-4o-mini', input: 'Hi' }));
    expect(error).toBeInstanceOf(RateLimitError);
  });
});

describe('openrouter fake: key info and cost', () => {
  let fake: OpenAIFamilyFake;

  beforeAll(async () => {
    fake = await startFakeOpenRouter({ apiKey: 'sk-or-v1-0123456789abcdef0123' });
  });
  afterAll(() => fake.close());

  it('answers GET /key with a masked label and the credits spent', async () => {
    fake.enqueue({ cost: 0.5 });
    const client = new OpenAI({ apiKey: fake.apiKey, baseURL: fake.baseUrl, maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: 'openai/gpt-4o-mini',
      messages: [{ role: 'user', content: 'Hi' }],
    });
    expect((completion.usage as unknown as { cost: number }).cost).toBe(0.5);

    const res = await fetch(`${fake.baseUrl}/key`, { headers: { authorization: `Bearer ${fake.apiKey}` } });
    expect(res.status).toBe(200);
    const info = (await res.json()) as { data: { label: string; usage: number } };
    expect(info.data.label).toBe('sk-or-v1-01...123');
    expect(info.data.usage).toBe(0.5);
  });

  it('rejects GET /key with a wrong key', async () => {
    const res = await fetch(`${fake.baseUrl}/key`, { headers: { authorization: 'Bearer sk-or-v1-bad' } });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: 401, message: 'User not found for API key: sk-or-v1-bad' } });
  });
});

// -------------------------------------------------------------------------------------------------
// The AI SDK provider packages, as the service uses them.

interface AiCase {
  label: string;
  start: () => Promise<OpenAIFamilyFake>;
  model: (fake: OpenAIFamilyFake) => LanguageModel;
  path: string;
  /** Where the request body carries the system prompt. */
  systemOf: (body: any) => { role: string; content: unknown };
}

const AI_CASES: AiCase[] = [
  {
    label: 'openai (Responses API, the default)',
    start: startFakeOpenAI,
    model: (fake) => createOpenAI({ baseURL: fake.baseUrl, apiKey: fake.apiKey })('gpt-4o-mini'),
    path: '/v1/responses',
    systemOf: (body) => body.input[0],
  },
  {
    label: 'openai .chat()',
    start: startFakeOpenAI,
    model: (fake) => createOpenAI({ baseURL: fake.baseUrl, apiKey: fake.apiKey }).chat('gpt-4o-mini'),
    path: '/v1/chat/completions',
    systemOf: (body) => body.messages[0],
  },
  {
    label: 'groq',
    start: startFakeGroq,
    model: (fake) => createGroq({ baseURL: fake.baseUrl, apiKey: fake.apiKey })('llama-3.3-70b-versatile'),
    path: '/openai/v1/chat/completions',
    systemOf: (body) => body.messages[0],
  },
  {
    label: 'openrouter (strict, usage included, as the service binds it)',
    start: startFakeOpenRouter,
    model: (fake) =>
      createOpenRouter({ baseURL: fake.baseUrl, apiKey: fake.apiKey, compatibility: 'strict' }).chat('openai/gpt-4o-mini', {
        usage: { include: true },
      }),
    path: '/api/v1/chat/completions',
    systemOf: (body) => body.messages[0],
  },
  {
    label: 'openrouter (package defaults)',
    start: startFakeOpenRouter,
    model: (fake) => createOpenRouter({ baseURL: fake.baseUrl, apiKey: fake.apiKey })('openai/gpt-4o-mini'),
    path: '/api/v1/chat/completions',
    systemOf: (body) => body.messages[0],
  },
];

describe.each(AI_CASES)('AI SDK: $label', ({ label, start, model: makeModel, path, systemOf }) => {
  let fake: OpenAIFamilyFake;
  let model: LanguageModel;

  beforeAll(async () => {
    fake = await start();
    model = makeModel(fake);
  });
  afterAll(() => fake.close());

  const expectUsage = (usage: Awaited<ReturnType<typeof generateText>>['usage']): void => {
    expect(usage.inputTokens).toBe(23);
    expect(usage.outputTokens).toBe(9);
    expect(usage.inputTokenDetails.cacheReadTokens).toBe(5);
    expect(usage.outputTokenDetails.reasoningTokens).toBe(3);
  };

  it('generateText: text, usage and the system prompt where the API expects it', async () => {
    fake.enqueue({ text: 'Hola.', usage: USAGE });
    const result = await generateText({ model, instructions: SYSTEM, prompt: 'Hello in Spanish', maxOutputTokens: 50, maxRetries: 0 });
    expect(result.text).toBe('Hola.');
    expect(result.finishReason).toBe('stop');
    expectUsage(result.usage);

    const request = last(fake);
    expect(request.path).toBe(path);
    // OpenRouter's package sends content parts; the others a plain string.
    const system = systemOf(request.body);
    expect(system.role).toBe('system');
    expect([SYSTEM, [{ type: 'text', text: SYSTEM }]]).toContainEqual(system.content);
    if (label.startsWith('openrouter')) {
      expect((result.providerMetadata?.openrouter?.usage as { cost?: number } | undefined)?.cost).toBe(DEFAULT_OPENROUTER_COST);
    }
  });

  it('streamText: streamed text, with usage at the end of the stream', async () => {
    fake.enqueue({ chunks: ['Ho', 'la', '.'], usage: USAGE });
    const result = streamText({ model, instructions: SYSTEM, prompt: 'Hello in Spanish', maxRetries: 0 });
    const deltas: string[] = [];
    for await (const delta of result.textStream) deltas.push(delta);
    expect(deltas.join('')).toBe('Hola.');
    expect(await result.finishReason).toBe('stop');
    expectUsage(await result.usage);
    if (label.startsWith('openrouter')) {
      const metadata = await result.providerMetadata;
      expect((metadata?.openrouter?.usage as { cost?: number } | undefined)?.cost).toBe(DEFAULT_OPENROUTER_COST);
    }
  });

  it('generateText: structured output', async () => {
    fake.enqueue({ json: PERSON });
    const result = await generateText({
      model,
      prompt: 'Describe Ada.',
      output: Output.object({ schema: jsonSchema<typeof PERSON>(PERSON_SCHEMA) }),
      maxRetries: 0,
    });
    expect(result.output).toEqual(PERSON);
  });

  it('streamText: structured output', async () => {
    fake.enqueue({ json: PERSON, usage: USAGE });
    const result = streamText({
      model,
      prompt: 'Describe Ada.',
      output: Output.object({ schema: jsonSchema<typeof PERSON>(PERSON_SCHEMA) }),
      maxRetries: 0,
    });
    await result.consumeStream();
    expect(await result.output).toEqual(PERSON);
    expectUsage(await result.usage);
  });

  it('a wrong key fails with a 401 APICallError', async () => {
    const bad = makeModel({ ...fake, apiKey: 'wrong-key-123', baseUrl: fake.baseUrl } as OpenAIFamilyFake);
    const error = await failure(generateText({ model: bad, prompt: 'Hi', maxRetries: 0 }));
    expect(APICallError.isInstance(error)).toBe(true);
    expect((error as APICallError).statusCode).toBe(401);
    expect((error as APICallError).responseBody).toContain('wrong-key-123');
  });

  it('a scripted 429 surfaces as a non-retried APICallError carrying retry-after', async () => {
    fake.enqueue({ status: 429, headers: { 'retry-after': '3' } });
    const before = fake.generationRequests().length;
    const error = await failure(generateText({ model, prompt: 'Hi', maxRetries: 0 }));
    expect(APICallError.isInstance(error)).toBe(true);
    expect((error as APICallError).statusCode).toBe(429);
    expect((error as APICallError).responseHeaders?.['retry-after']).toBe('3');
    expect(fake.generationRequests().length).toBe(before + 1);
  });
});

describe('AI SDK: groq structured output through its json tool', () => {
  let fake: OpenAIFamilyFake;
  const lookup = tool({
    description: 'Look a person up.',
    inputSchema: jsonSchema<{ name: string }>({
      type: 'object',
      properties: { name: { type: 'string' } },
      required: ['name'],
    }),
  });

  beforeAll(async () => {
    fake = await startFakeGroq();
  });
  afterAll(() => fake.close());

  // Groq models cannot combine function tools with a JSON schema, so @ai-sdk/groq asks for the
  // object through a forced `json` tool; the fake must answer with that tool call.
  it('answers the forced json tool call and the SDK turns it into the output', async () => {
    fake.enqueue({ json: PERSON, usage: USAGE });
    const groq = createGroq({ baseURL: fake.baseUrl, apiKey: fake.apiKey });
    const result = await generateText({
      model: groq('llama-3.3-70b-versatile'),
      prompt: 'Describe Ada.',
      tools: { lookup },
      output: Output.object({ schema: jsonSchema<typeof PERSON>(PERSON_SCHEMA) }),
      maxRetries: 0,
    });
    expect(last(fake).body.tools.map((t: { function: { name: string } }) => t.function.name)).toContain('json');
    expect(result.output).toEqual(PERSON);
  });

  it('streams the forced json tool call and the SDK turns it into the output', async () => {
    fake.enqueue({ json: PERSON, usage: USAGE });
    const groq = createGroq({ baseURL: fake.baseUrl, apiKey: fake.apiKey });
    const result = streamText({
      model: groq('llama-3.3-70b-versatile'),
      prompt: 'Describe Ada.',
      tools: { lookup },
      output: Output.object({ schema: jsonSchema<typeof PERSON>(PERSON_SCHEMA) }),
      maxRetries: 0,
    });
    await result.consumeStream();
    expect(last(fake).body.stream).toBe(true);
    expect(await result.output).toEqual(PERSON);
    expect((await result.usage).inputTokens).toBe(23);
  });
});

describe.each(VENDORS)('$name fake: tool calls through the openai SDK (Chat Completions)', (vendor) => {
  let fake: OpenAIFamilyFake;
  let client: OpenAI;
  const tools = [
    { type: 'function' as const, function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
  ];

  beforeAll(async () => {
    fake = await vendor.start();
    client = new OpenAI({ apiKey: fake.apiKey, baseURL: fake.baseUrl, maxRetries: 0 });
  });
  afterAll(async () => {
    await fake.close();
  });

  const calls = [
    { id: 'call_paris', name: 'get_weather', args: { city: 'Paris' } },
    { id: 'call_rome', name: 'get_weather', args: { city: 'Rome' } },
  ];

  it('answers tool_calls with finish_reason tool_calls, and accepts the tool messages that answer them', async () => {
    fake.enqueue({ toolCalls: calls }, { text: 'Both mild.' });
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'Weather in Paris and Rome?' }];
    const first = await client.chat.completions.create({ model: vendor.model, messages, tools });
    const choice = first.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.tool_calls?.map((c) => (c.type === 'function' ? [c.id, c.function.name, JSON.parse(c.function.arguments)] : []))).toEqual([
      ['call_paris', 'get_weather', { city: 'Paris' }],
      ['call_rome', 'get_weather', { city: 'Rome' }],
    ]);

    messages.push(choice.message, { role: 'tool', tool_call_id: 'call_paris', content: '18' }, { role: 'tool', tool_call_id: 'call_rome', content: '24' });
    const second = await client.chat.completions.create({ model: vendor.model, messages, tools });
    expect(second.choices[0]!.message.content).toBe('Both mild.');

    // A call left unanswered is refused, as the API does.
    const error = await failure(client.chat.completions.create({ model: vendor.model, messages: messages.slice(0, 3), tools }));
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('streams each call by index: id and name first, then argument deltas', async () => {
    fake.enqueue({ toolCalls: calls });
    const stream = client.chat.completions.stream({ model: vendor.model, messages: [{ role: 'user', content: 'x' }], tools });
    const done = await stream.finalChatCompletion();
    const toolCalls = done.choices[0]!.message.tool_calls ?? [];
    expect(toolCalls.map((c) => (c.type === 'function' ? [c.id, JSON.parse(c.function.arguments)] : []))).toEqual([
      ['call_paris', { city: 'Paris' }],
      ['call_rome', { city: 'Rome' }],
    ]);
    expect(done.choices[0]!.finish_reason).toBe('tool_calls');
  });
});

describe('openai fake: tool calls through the openai SDK (Responses API)', () => {
  let fake: OpenAIFamilyFake;
  let client: OpenAI;
  const tools = [{ type: 'function' as const, name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    client = new OpenAI({ apiKey: fake.apiKey, baseURL: fake.baseUrl, maxRetries: 0 });
  });
  afterAll(async () => {
    await fake.close();
  });

  it('answers function_call output items and accepts the function_call_output that answers them', async () => {
    fake.enqueue({ text: 'Let me look.', toolCalls: [{ id: 'call_oslo', name: 'get_weather', args: { city: 'Oslo' } }] }, { text: 'Cold.' });
    const first = await client.responses.create({ model: 'gpt-4.1-mini', input: 'Oslo?', tools, store: false });
    expect(first.output.map((item) => item.type)).toEqual(['message', 'function_call']);
    const call = first.output[1]!;
    if (call.type !== 'function_call') throw new Error('expected a function call');
    expect([call.call_id, call.name, JSON.parse(call.arguments)]).toEqual(['call_oslo', 'get_weather', { city: 'Oslo' }]);

    const second = await client.responses.create({
      model: 'gpt-4.1-mini',
      tools,
      store: false,
      input: [{ role: 'user', content: 'Oslo?' }, call, { type: 'function_call_output', call_id: 'call_oslo', output: '{"celsius":7}' }],
    });
    expect(second.output_text).toBe('Cold.');

    const orphan = await failure(
      client.responses.create({ model: 'gpt-4.1-mini', tools, input: [{ role: 'user', content: 'x' }, { type: 'function_call_output', call_id: 'call_nope', output: '1' }] }),
    );
    expect(orphan).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('streams function_call_arguments deltas that add up to the arguments', async () => {
    fake.enqueue({ toolCalls: [{ id: 'call_a', name: 'get_weather', args: { city: 'Paris' } }, { id: 'call_b', name: 'get_weather', args: { city: 'Rome' } }] });
    const stream = client.responses.stream({ model: 'gpt-4.1-mini', input: 'x', tools });
    const deltas: Record<string, string> = {};
    for await (const event of stream) {
      if (event.type === 'response.function_call_arguments.delta') deltas[event.item_id] = (deltas[event.item_id] ?? '') + event.delta;
    }
    const final = await stream.finalResponse();
    const items = final.output.filter((item) => item.type === 'function_call');
    expect(items.map((item) => [item.call_id, JSON.parse(item.arguments)])).toEqual([
      ['call_a', { city: 'Paris' }],
      ['call_b', { city: 'Rome' }],
    ]);
    expect(items.map((item) => deltas[item.id!])).toEqual(items.map((item) => item.arguments));
  });
});
