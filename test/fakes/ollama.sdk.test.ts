/**
 * Proves the fake Ollama speaks Ollama's real wire protocol: the official `ollama` client and
 * the AI SDK provider Ensemble uses (`ollama-ai-provider-v2`) both run against it unchanged.
 */
import { APICallError, generateText, jsonSchema, Output, streamText, type JSONSchema7 } from 'ai';
import { Ollama } from 'ollama';
import { createOllama } from 'ollama-ai-provider-v2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FakeVendor } from './harness.ts';
import { FAKE_OLLAMA_MODELS, FAKE_OLLAMA_VERSION, MISSING_OLLAMA_MODEL, startFakeOllama } from './ollama.ts';

const MODEL = 'llama3.2:latest';

const personSchema: JSONSchema7 = {
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'number' } },
  required: ['name', 'age'],
  additionalProperties: false,
};

interface Person {
  name: string;
  age: number;
}

/** The error the `ollama` package throws for non-2xx answers (its class is not exported). */
interface OllamaResponseError extends Error {
  error: string;
  status_code: number;
}

async function rejectionOf(promise: Promise<unknown>): Promise<OllamaResponseError> {
  try {
    await promise;
  } catch (err) {
    return err as OllamaResponseError;
  }
  throw new Error('expected the call to fail');
}

let fake: FakeVendor;

afterEach(async () => {
  await fake.close();
});

describe('fake ollama, driven by the official ollama client', () => {
  let client: Ollama;

  beforeEach(async () => {
    fake = await startFakeOllama();
    client = new Ollama({ host: fake.url });
  });

  it('answers a non-streamed chat with the scripted text and usage', async () => {
    fake.enqueue({ text: 'Bonjour!', usage: { input: 21, output: 4 } });

    const response = await client.chat({
      model: MODEL,
      messages: [{ role: 'user', content: 'Say hi in French' }],
      options: { temperature: 0.3, num_predict: 64, top_p: 0.9, stop: ['\n\n'] },
    });

    expect(response.message).toEqual({ role: 'assistant', content: 'Bonjour!' });
    expect(response.done).toBe(true);
    expect(response.done_reason).toBe('stop');
    expect(response.prompt_eval_count).toBe(21);
    expect(response.eval_count).toBe(4);
    expect(response.total_duration).toBeGreaterThan(0);
    expect(response.model).toBe(MODEL);

    const [request] = fake.generationRequests();
    expect(request?.path).toBe('/api/chat');
    expect(request?.body.stream).toBe(false);
    expect(request?.body.options).toEqual({ temperature: 0.3, num_predict: 64, top_p: 0.9, stop: ['\n\n'] });
  });

  it('streams a chat as NDJSON deltas closed by a done object carrying the usage', async () => {
    fake.enqueue({ chunks: ['Hel', 'lo ', 'there'], usage: { input: 9, output: 3 }, chunkDelayMs: 5 });

    const stream = await client.chat({
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    const parts = [];
    for await (const part of stream) parts.push(part);

    expect(parts.map((p) => p.message.content)).toEqual(['Hel', 'lo ', 'there', '']);
    expect(parts.slice(0, -1).every((p) => !p.done)).toBe(true);
    const last = parts.at(-1);
    expect(last?.done).toBe(true);
    expect(last?.done_reason).toBe('stop');
    expect(last?.prompt_eval_count).toBe(9);
    expect(last?.eval_count).toBe(3);
    // Counts belong to the closing object only, as with real Ollama.
    expect(parts[0]?.eval_count).toBeUndefined();
  });

  it('streams by default when the request has no stream field', async () => {
    fake.enqueue({ text: 'streamed anyway' });

    const res = await fetch(`${fake.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    });

    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = (await res.text()).trim().split('\n').map((line) => JSON.parse(line) as Record<string, any>);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.map((l) => l.message.content).join('')).toBe('streamed anyway');
    expect(lines.at(-1)?.done).toBe(true);
  });

  it('reports done_reason "length" when the scripted answer was cut off', async () => {
    fake.enqueue({ text: 'truncat', finish: 'length' });

    const response = await client.chat({ model: MODEL, messages: [{ role: 'user', content: 'long story' }] });

    expect(response.done_reason).toBe('length');
  });

  it('answers /api/generate, streamed and not', async () => {
    fake.enqueue({ text: 'Why is the sky blue? Rayleigh.', usage: { input: 5, output: 6 } }, { chunks: ['a', 'b'] });

    const whole = await client.generate({ model: MODEL, prompt: 'Why is the sky blue?', system: 'Be brief.' });
    expect(whole.response).toBe('Why is the sky blue? Rayleigh.');
    expect(whole.done).toBe(true);
    expect(whole.prompt_eval_count).toBe(5);
    expect(whole.eval_count).toBe(6);
    expect(whole.context.length).toBeGreaterThan(0);

    const stream = await client.generate({ model: MODEL, prompt: 'ab', stream: true });
    let text = '';
    for await (const part of stream) text += part.response;
    expect(text).toBe('ab');

    const [first] = fake.generationRequests();
    expect(first?.path).toBe('/api/generate');
    expect(first?.body.system).toBe('Be brief.');
  });

  it('lists models and reports its version', async () => {
    const list = await client.list();
    expect(list.models.map((m) => m.name)).toEqual(FAKE_OLLAMA_MODELS.map((m) => m.name));
    expect(list.models[0]?.details.family).toBe('llama');

    expect(await client.version()).toEqual({ version: FAKE_OLLAMA_VERSION });
    // Model listing is not generation.
    expect(fake.generationRequests()).toHaveLength(0);
  });

  it('records the system prompt as a system message', async () => {
    await client.chat({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'hi' },
      ],
    });

    expect(fake.generationRequests()[0]?.body.messages[0]).toEqual({ role: 'system', content: 'You are terse.' });
  });

  it('answers a JSON-schema format with the scripted JSON as message content', async () => {
    fake.enqueue({ json: { name: 'Ada', age: 36 } }, { json: { ok: true } });

    const response = await client.chat({
      model: MODEL,
      messages: [{ role: 'user', content: 'Who wrote the first program?' }],
      format: personSchema,
    });
    expect(JSON.parse(response.message.content)).toEqual({ name: 'Ada', age: 36 });
    expect(fake.generationRequests()[0]?.body.format).toEqual(personSchema);

    const jsonMode = await client.chat({ model: MODEL, messages: [{ role: 'user', content: 'ok?' }], format: 'json' });
    expect(JSON.parse(jsonMode.message.content)).toEqual({ ok: true });
  });

  it('surfaces scripted errors as the package ResponseError with the status', async () => {
    fake.enqueue({ status: 503 }, { status: 429, errorMessage: 'slow down', headers: { 'retry-after': '2' } });

    const busy = await rejectionOf(client.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }));
    expect(busy.name).toBe('ResponseError');
    expect(busy.status_code).toBe(503);
    expect(busy.error).toBe('server busy, please try again.  maximum pending requests exceeded');

    const limited = await rejectionOf(client.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true }));
    expect(limited.status_code).toBe(429);
    expect(limited.error).toBe('slow down');
  });

  it('answers 404 for a model that is not pulled, without using up a scripted reply', async () => {
    fake.enqueue({ text: 'for the next call' });

    const missing = await rejectionOf(client.chat({ model: MISSING_OLLAMA_MODEL, messages: [{ role: 'user', content: 'hi' }] }));
    expect(missing.status_code).toBe(404);
    expect(missing.error).toBe(`model '${MISSING_OLLAMA_MODEL}' not found`);

    const next = await client.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    expect(next.message.content).toBe('for the next call');
  });

  it('rejects what real Ollama rejects: bad format, bad think, mistyped options and fields', async () => {
    fake.enqueue({ text: 'kept for a valid request' });
    const ask = (extra: Record<string, unknown>) =>
      fetch(`${fake.url}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: false, ...extra }),
      }).then(async (res) => ({ status: res.status, body: (await res.json()) as { error: string } }));

    expect(await ask({ format: 'yaml' })).toEqual({
      status: 500,
      body: { error: 'invalid format: "\\"yaml\\""; expected "json" or a valid JSON Schema object' },
    });
    expect(await ask({ think: 'max' })).toEqual({
      status: 400,
      body: { error: 'invalid think value: "max" (must be "high", "medium", "low", true, or false)' },
    });
    expect(await ask({ options: { temperature: 'hot' } })).toEqual({
      status: 500,
      body: { error: 'option "temperature" must be of type float32' },
    });
    expect(await ask({ stream: 'no' })).toEqual({
      status: 400,
      body: { error: 'json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool' },
    });
    expect(await ask({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] })).toEqual({
      status: 400,
      body: { error: 'json: cannot unmarshal array into Go struct field Message.messages.content of type string' },
    });
    // None of these reached the model, so the scripted reply is still waiting.
    const ok = await ask({});
    expect(ok.status).toBe(200);
    expect((ok.body as unknown as { message: { content: string } }).message.content).toBe('kept for a valid request');
  });

  it('answers unknown routes like gin does', async () => {
    const res = await fetch(`${fake.url}/v2/nothing`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('404 page not found');
    expect((await fetch(`${fake.url}/api/chat`)).status).toBe(405);
    expect(await (await fetch(fake.url)).text()).toBe('Ollama is running');
  });
});

describe('fake ollama with requireAuth (hosted API)', () => {
  beforeEach(async () => {
    fake = await startFakeOllama({ requireAuth: true, apiKey: 'ollama-key-123' });
  });

  it('accepts the Bearer key and answers 401 echoing any other key', async () => {
    const good = new Ollama({ host: fake.url, headers: { Authorization: 'Bearer ollama-key-123' } });
    expect((await good.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] })).message.content).toBe(
      'Hello from the fake ollama.',
    );

    const wrong = new Ollama({ host: fake.url, headers: { Authorization: 'Bearer sk-wrong-999' } });
    const denied = await rejectionOf(wrong.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }));
    expect(denied.status_code).toBe(401);
    expect(denied.error).toBe('unauthorized: sk-wrong-999');

    const anonymous = await rejectionOf(new Ollama({ host: fake.url }).list());
    expect(anonymous.status_code).toBe(401);
    expect(anonymous.error).toBe('unauthorized');
  });

  it('lets ollama-ai-provider-v2 authenticate through its headers option', async () => {
    const provider = createOllama({ baseURL: `${fake.url}/api`, headers: { Authorization: 'Bearer ollama-key-123' } });
    const result = await generateText({ model: provider(MODEL), prompt: 'hi', maxRetries: 0 });
    expect(result.text).toBe('Hello from the fake ollama.');
  });
});

describe('fake ollama, driven by ollama-ai-provider-v2 through the AI SDK', () => {
  let provider: ReturnType<typeof createOllama>;

  beforeEach(async () => {
    fake = await startFakeOllama();
    provider = createOllama({ baseURL: `${fake.url}/api` });
  });

  it('generates text with usage, over /api/chat with stream false', async () => {
    fake.enqueue({ text: 'Four.', usage: { input: 17, output: 2 } });

    const result = await generateText({
      model: provider(MODEL),
      instructions: 'Answer with one word.',
      prompt: 'What is 2 + 2?',
      temperature: 0.2,
      maxOutputTokens: 50,
      maxRetries: 0,
    });

    expect(result.text).toBe('Four.');
    expect(result.finishReason).toBe('stop');
    expect(result.usage.inputTokens).toBe(17);
    expect(result.usage.outputTokens).toBe(2);

    const [request] = fake.generationRequests();
    expect(request?.path).toBe('/api/chat');
    expect(request?.body).toMatchObject({
      model: MODEL,
      stream: false,
      think: false,
      messages: [
        { role: 'system', content: 'Answer with one word.' },
        { role: 'user', content: 'What is 2 + 2?' },
      ],
    });
    // The provider puts the standard settings at the top level, where Ollama ignores them...
    expect(request?.body.temperature).toBe(0.2);
    expect(request?.body.max_output_tokens).toBe(50);
    // ...and sends no `options`, so real Ollama samples with the model's defaults.
    expect(request?.body.options).toBeUndefined();
  });

  it('forwards temperature and num_predict in options when given as provider options', async () => {
    await generateText({
      model: provider(MODEL),
      prompt: 'hi',
      providerOptions: { ollama: { options: { temperature: 0.1, num_predict: 32, top_p: 0.5, stop: ['END'] } } },
      maxRetries: 0,
    });

    expect(fake.generationRequests()[0]?.body.options).toEqual({ temperature: 0.1, num_predict: 32, top_p: 0.5, stop: ['END'] });
  });

  it('streams text and reads usage from the closing done object', async () => {
    fake.enqueue({ chunks: ['One, ', 'two, ', 'three.'], usage: { input: 12, output: 5 }, finish: 'length' });

    const result = streamText({ model: provider(MODEL), prompt: 'Count to three.', maxRetries: 0 });
    const deltas: string[] = [];
    for await (const delta of result.textStream) deltas.push(delta);

    expect(deltas.join('')).toBe('One, two, three.');
    expect(await result.text).toBe('One, two, three.');
    expect(await result.finishReason).toBe('length');
    const usage = await result.usage;
    expect(usage.inputTokens).toBe(12);
    expect(usage.outputTokens).toBe(5);
    expect(fake.generationRequests()[0]?.body.stream).toBe(true);
  });

  it('returns structured output, sending the schema as format', async () => {
    fake.enqueue({ json: { name: 'Grace', age: 85 } });

    const result = await generateText({
      model: provider(MODEL),
      prompt: 'Name a computing pioneer.',
      output: Output.object({ schema: jsonSchema<Person>(personSchema) }),
      maxRetries: 0,
    });

    expect(result.output).toEqual({ name: 'Grace', age: 85 });
    expect(fake.generationRequests()[0]?.body.format).toEqual(personSchema);
  });

  it('streams structured output', async () => {
    fake.enqueue({ json: { name: 'Linus', age: 55 }, chunkDelayMs: 2 });

    const result = streamText({
      model: provider(MODEL),
      prompt: 'Name a kernel author.',
      output: Output.object({ schema: jsonSchema<Person>(personSchema) }),
      maxRetries: 0,
    });
    for await (const partial of result.partialOutputStream) expect(typeof partial).toBe('object');

    expect(await result.output).toEqual({ name: 'Linus', age: 55 });
    expect(fake.generationRequests()[0]?.body).toMatchObject({ stream: true, format: personSchema });
  });

  it('surfaces Ollama errors as APICallError with status and the raw body', async () => {
    fake.enqueue({ status: 503 });

    const err = await generateText({ model: provider(MODEL), prompt: 'hi', maxRetries: 0 }).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(APICallError.isInstance(err)).toBe(true);
    const apiError = err as APICallError;
    expect(apiError.statusCode).toBe(503);
    expect(apiError.isRetryable).toBe(true);
    // Ollama's `{"error": "..."}` does not match the provider's OpenAI-shaped error schema, so the
    // vendor's words are only in the raw body.
    expect(JSON.parse(apiError.responseBody ?? '{}')).toEqual({
      error: 'server busy, please try again.  maximum pending requests exceeded',
    });
  });
});

describe('fake ollama tool calls, driven by the official ollama client', () => {
  let client: Ollama;
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];

  beforeEach(async () => {
    fake = await startFakeOllama();
    client = new Ollama({ host: fake.url });
  });

  it('answers message.tool_calls with object arguments, and accepts role tool messages', async () => {
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }, { id: 'call_2', name: 'get_weather', args: { city: 'Rome' } }] }, { text: 'Both mild.' });
    const first = await client.chat({ model: MODEL, messages: [{ role: 'user', content: 'Paris and Rome?' }], tools, stream: false });
    expect(first.done_reason).toBe('stop');
    expect(first.message.tool_calls).toEqual([
      { function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } },
      { id: 'call_2', function: { index: 1, name: 'get_weather', arguments: { city: 'Rome' } } },
    ]);
    const second = await client.chat({
      model: MODEL,
      tools,
      stream: false,
      messages: [
        { role: 'user', content: 'Paris and Rome?' },
        first.message,
        { role: 'tool', content: '18', tool_name: 'get_weather' },
        { role: 'tool', content: '24', tool_name: 'get_weather' },
      ],
    });
    expect(second.message.content).toBe('Both mild.');
  });

  it('streams the calls whole in one chunk before the closing one', async () => {
    fake.enqueue({ text: 'Looking.', toolCalls: [{ name: 'get_weather', args: { city: 'Oslo' } }] });
    const chunks = [];
    for await (const chunk of await client.chat({ model: MODEL, messages: [{ role: 'user', content: 'Oslo?' }], tools, stream: true })) chunks.push(chunk);
    const withCalls = chunks.filter((c) => c.message.tool_calls?.length);
    expect(withCalls).toHaveLength(1);
    expect(withCalls[0]!.done).toBe(false);
    expect(withCalls[0]!.message.tool_calls).toEqual([{ function: { index: 0, name: 'get_weather', arguments: { city: 'Oslo' } } }]);
    expect(chunks.at(-1)?.done).toBe(true);
    expect(chunks.map((c) => c.message.content).join('')).toBe('Looking.');
  });
});
