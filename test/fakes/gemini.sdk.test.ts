/**
 * Fidelity tests for the fake Gemini server: the vendor's own SDK and the AI SDK provider are the
 * clients, so a wire-format mistake in the fake shows up as a parse failure or a wrong value.
 */
import { ApiError, GoogleGenAI } from '@google/genai';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { APICallError, generateText, jsonSchema, Output, streamText, tool } from 'ai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GEMINI_DEFAULT_TEXT, startFakeGemini } from './gemini.ts';
import type { FakeVendor } from './harness.ts';

const MODEL = 'gemini-2.5-flash';

let fake: FakeVendor;

beforeAll(async () => {
  fake = await startFakeGemini();
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.setDefault({});
});

function sdk(apiKey = fake.apiKey, apiVersion?: string): GoogleGenAI {
  // The SDK appends /{apiVersion}/... itself (v1 by default), so it gets the server root;
  // one attempt = no retries.
  return new GoogleGenAI({
    apiKey,
    httpOptions: { baseUrl: fake.url, retryOptions: { attempts: 1 }, ...(apiVersion && { apiVersion }) },
  });
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

describe('fake Gemini through @google/genai', () => {
  it('answers generateContent with the scripted text, usage and system instruction', async () => {
    fake.enqueue({ text: 'Hallo.', usage: { input: 21, output: 9, cached: 8, reasoning: 4 } });
    const response = await sdk().models.generateContent({
      model: MODEL,
      contents: 'Say hello in German.',
      config: { systemInstruction: 'You are terse.', maxOutputTokens: 64 },
    });

    expect(response.text).toBe('Hallo.');
    expect(response.candidates?.[0]?.finishReason).toBe('STOP');
    expect(response.modelVersion).toBe(MODEL);
    expect(response.usageMetadata).toMatchObject({
      promptTokenCount: 21,
      cachedContentTokenCount: 8,
      thoughtsTokenCount: 4,
      // candidates exclude thinking: 9 output tokens in total, 4 of them thoughts
      candidatesTokenCount: 5,
      totalTokenCount: 30,
    });

    const record = lastGeneration();
    expect(record.path).toBe(`/v1/models/${MODEL}:generateContent`);
    expect(record.headers['x-goog-api-key']).toBe(fake.apiKey);
    expect(record.body.systemInstruction).toMatchObject({ parts: [{ text: 'You are terse.' }] });
    expect(record.body.generationConfig).toMatchObject({ maxOutputTokens: 64 });
  });

  it('uses the default text and usage when the script says nothing (v1beta too)', async () => {
    const response = await sdk(fake.apiKey, 'v1beta').models.generateContent({ model: MODEL, contents: 'hi' });
    expect(lastGeneration().path).toBe(`/v1beta/models/${MODEL}:generateContent`);
    expect(response.text).toBe(GEMINI_DEFAULT_TEXT);
    expect(response.usageMetadata).toMatchObject({ promptTokenCount: 11, candidatesTokenCount: 7, totalTokenCount: 18 });
  });

  it('streams SSE chunks that concatenate to the scripted text, usage on the last one', async () => {
    fake.enqueue({ chunks: ['Gu', 'ten ', 'Tag'], usage: { input: 3, output: 2 }, finish: 'length' });
    const stream = await sdk().models.generateContentStream({
      model: MODEL,
      contents: 'hi',
      config: { systemInstruction: 'Stream it.' },
    });
    const texts: string[] = [];
    const finishes: (string | undefined)[] = [];
    let usage: unknown;
    for await (const chunk of stream) {
      texts.push(chunk.text ?? '');
      finishes.push(chunk.candidates?.[0]?.finishReason);
      if (chunk.usageMetadata) usage = chunk.usageMetadata;
    }
    expect(texts).toEqual(['Gu', 'ten ', 'Tag']);
    expect(finishes).toEqual([undefined, undefined, 'MAX_TOKENS']);
    expect(usage).toMatchObject({ promptTokenCount: 3, candidatesTokenCount: 2, totalTokenCount: 5 });

    const record = lastGeneration();
    expect(record.path).toBe(`/v1/models/${MODEL}:streamGenerateContent`);
    expect(record.query.get('alt')).toBe('sse');
    expect(record.body.systemInstruction).toMatchObject({ parts: [{ text: 'Stream it.' }] });
  });

  it('answers JSON mode with the scripted JSON as text', async () => {
    fake.enqueue({ json: { name: 'Ada', age: 36 } });
    const response = await sdk().models.generateContent({
      model: MODEL,
      contents: 'who?',
      config: {
        responseMimeType: 'application/json',
        responseJsonSchema: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'number' } } },
      },
    });
    expect(JSON.parse(response.text ?? '')).toEqual({ name: 'Ada', age: 36 });
  });

  it('accepts the key as ?key= too', async () => {
    const response = await fetch(`${fake.baseUrl}/models/${MODEL}:generateContent?key=${fake.apiKey}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    });
    expect(response.status).toBe(200);
  });

  it('streams a JSON array when alt=sse is absent, like the API default', async () => {
    fake.enqueue({ chunks: ['a', 'b'] });
    const response = await fetch(`${fake.baseUrl}/models/${MODEL}:streamGenerateContent`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-goog-api-key': fake.apiKey },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    });
    const records = (await response.json()) as { candidates: { content: { parts: { text: string }[] } }[] }[];
    expect(records.map((r) => r.candidates[0]?.content.parts[0]?.text)).toEqual(['a', 'b']);
  });

  it('rejects a bad key with an ApiError 401 carrying the key', async () => {
    const badKey = 'AIza-bad-key-987654';
    const error = await sdk(badKey)
      .models.generateContent({ model: MODEL, contents: 'x' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(401);
    expect((error as ApiError).message).toContain(badKey);
    expect(JSON.parse((error as ApiError).message)).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED' } });
  });

  it('surfaces a scripted 429 as ApiError 429 RESOURCE_EXHAUSTED with a RetryInfo detail', async () => {
    fake.enqueue({ status: 429, errorMessage: 'quota', headers: { 'retry-after': '5' } });
    const error = await sdk()
      .models.generateContent({ model: MODEL, contents: 'x' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(429);
    expect(JSON.parse((error as ApiError).message)).toMatchObject({
      error: {
        code: 429,
        status: 'RESOURCE_EXHAUSTED',
        message: 'quota',
        details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '5s' }],
      },
    });
  });

  it('maps 503 and 500 to UNAVAILABLE and INTERNAL', async () => {
    fake.enqueue({ status: 503 }, { status: 500 });
    for (const [code, status] of [
      [503, 'UNAVAILABLE'],
      [500, 'INTERNAL'],
    ] as const) {
      const error = await sdk()
        .models.generateContentStream({ model: MODEL, contents: 'x' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).status).toBe(code);
      expect(JSON.parse((error as ApiError).message)).toMatchObject({ error: { code, status } });
    }
  });

  it('rejects a request without contents like the API', async () => {
    const response = await fetch(`${fake.baseUrl}/models/${MODEL}:generateContent`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-goog-api-key': fake.apiKey },
      body: JSON.stringify({}),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT' } });
  });

  it('honours chunkDelayMs and records a client that went away mid-stream', async () => {
    fake.enqueue({ chunks: ['one ', 'two ', 'three'], chunkDelayMs: 300 });
    const controller = new AbortController();
    const stream = await sdk().models.generateContentStream({
      model: MODEL,
      contents: 'x',
      config: { abortSignal: controller.signal },
    });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const chunk of stream) {
          seen.push(chunk.text ?? '');
          controller.abort();
        }
      })(),
    ).rejects.toThrow();
    expect(seen).toEqual(['one ']);
    const record = lastGeneration();
    await expect.poll(() => record.closedEarly).toBe(true);
  });

  it('lists and gets models', async () => {
    const names: string[] = [];
    const pager = await sdk().models.list({ config: { pageSize: 2 } });
    for await (const model of pager) names.push(model.name ?? '');
    expect(names).toContain(`models/${MODEL}`);
    expect(names.length).toBeGreaterThan(2);
    const one = await sdk().models.get({ model: MODEL });
    expect(one.displayName).toBe('Gemini 2.5 Flash');
    await expect(sdk('nope').models.list()).rejects.toBeInstanceOf(ApiError);
  });
});

describe('fake Gemini through @ai-sdk/google', () => {
  const provider = () => createGoogleGenerativeAI({ baseURL: fake.baseUrl, apiKey: fake.apiKey });

  it('generateText: text, usage and the system instruction', async () => {
    fake.enqueue({ text: 'Generated.', usage: { input: 40, output: 9, cached: 25, reasoning: 2 } });
    const result = await generateText({
      model: provider()(MODEL),
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
    expect(body.systemInstruction).toEqual({ parts: [{ text: 'Be kind.' }] });
    expect(body.generationConfig).toMatchObject({ maxOutputTokens: 50 });
  });

  it('streamText: text, usage and finish reason', async () => {
    fake.enqueue({ chunks: ['a', 'b', 'c'], usage: { input: 5, output: 3, cached: 1 }, finish: 'length', chunkDelayMs: 5 });
    const result = streamText({ model: provider()(MODEL), instructions: 'Stream.', prompt: 'go', maxRetries: 0 });
    const parts: string[] = [];
    for await (const delta of result.textStream) parts.push(delta);
    expect(parts.join('')).toBe('abc');
    expect(await result.finishReason).toBe('length');
    const usage = await result.usage;
    expect(usage.inputTokens).toBe(5);
    expect(usage.outputTokens).toBe(3);
    expect(usage.inputTokenDetails.cacheReadTokens).toBe(1);
  });

  it('structured output through responseMimeType + responseJsonSchema', async () => {
    fake.enqueue({ json: { name: 'Ada', age: 36 } });
    const result = await generateText({
      model: provider()(MODEL),
      prompt: 'who?',
      output: Output.object({ schema: PERSON_SCHEMA }),
      maxRetries: 0,
    });
    expect(result.output).toEqual({ name: 'Ada', age: 36 });
    expect(lastGeneration().body.generationConfig).toMatchObject({
      responseMimeType: 'application/json',
      responseJsonSchema: expect.objectContaining({ type: 'object' }),
    });
  });

  it('streamed structured output', async () => {
    fake.enqueue({ json: { name: 'Grace', age: 85 } });
    const result = streamText({
      model: provider()(MODEL),
      prompt: 'who?',
      output: Output.object({ schema: PERSON_SCHEMA }),
      maxRetries: 0,
    });
    expect(await result.output).toEqual({ name: 'Grace', age: 85 });
  });

  // Gemini before 3 rejects JSON mode together with function tools, so @ai-sdk/google adds a
  // "json" function and forces a call (mode ANY); the fake must answer with a functionCall.
  it('structured output alongside function tools goes through the forced json function', async () => {
    fake.enqueue({ json: { name: 'Linus', age: 55 } });
    const result = await generateText({
      model: provider()(MODEL),
      prompt: 'who?',
      tools: {
        lookup: tool({ description: 'Look someone up', inputSchema: jsonSchema<{ q: string }>({ type: 'object', properties: { q: { type: 'string' } } }) }),
      },
      output: Output.object({ schema: PERSON_SCHEMA }),
      maxRetries: 0,
    });
    const body = lastGeneration().body;
    expect(body.toolConfig).toMatchObject({ functionCallingConfig: { mode: 'ANY' } });
    expect(body.tools[0].functionDeclarations.map((d: { name: string }) => d.name)).toContain('json');
    expect(result.output).toEqual({ name: 'Linus', age: 55 });

    fake.enqueue({ json: { name: 'Streamed', age: 1 } });
    const streamed = streamText({
      model: provider()(MODEL),
      prompt: 'who?',
      tools: { lookup: tool({ description: 'Look someone up', inputSchema: jsonSchema<{ q: string }>({ type: 'object', properties: { q: { type: 'string' } } }) }) },
      output: Output.object({ schema: PERSON_SCHEMA }),
      maxRetries: 0,
    });
    expect(await streamed.output).toEqual({ name: 'Streamed', age: 1 });
  });

  it('a bad key becomes an APICallError 401 carrying the vendor message', async () => {
    const badKey = 'AIza-wrong-0000';
    const error = await generateText({
      model: createGoogleGenerativeAI({ baseURL: fake.baseUrl, apiKey: badKey })(MODEL),
      prompt: 'x',
      maxRetries: 0,
    }).catch((e: unknown) => e);
    expect(APICallError.isInstance(error)).toBe(true);
    expect((error as APICallError).statusCode).toBe(401);
    expect((error as APICallError).message).toContain(badKey);
  });

  it('a scripted 429 becomes a retryable APICallError with the retry-after header', async () => {
    fake.enqueue({ status: 429, headers: { 'retry-after': '2' } });
    const error = await generateText({ model: provider()(MODEL), prompt: 'x', maxRetries: 0 }).catch((e: unknown) => e);
    expect(APICallError.isInstance(error)).toBe(true);
    expect((error as APICallError).statusCode).toBe(429);
    expect((error as APICallError).isRetryable).toBe(true);
    expect((error as APICallError).responseHeaders?.['retry-after']).toBe('2');
  });
});

describe('fake Gemini function calling through @google/genai', () => {
  const tools = [{ functionDeclarations: [{ name: 'get_weather', description: 'Weather', parametersJsonSchema: { type: 'object', properties: { city: { type: 'string' } } } }] }];

  it('answers functionCall parts, and accepts the functionResponse parts that answer them', async () => {
    fake.enqueue({ toolCalls: [{ name: 'get_weather', args: { city: 'Paris' } }, { id: 'fc-2', name: 'get_weather', args: { city: 'Rome' } }] }, { text: 'Both mild.' });
    const first = await sdk().models.generateContent({ model: MODEL, contents: 'Paris and Rome?', config: { tools } });
    expect(first.functionCalls).toEqual([
      { name: 'get_weather', args: { city: 'Paris' } },
      { id: 'fc-2', name: 'get_weather', args: { city: 'Rome' } },
    ]);
    expect(first.candidates?.[0]?.finishReason).toBe('STOP');

    const history = [
      { role: 'user', parts: [{ text: 'Paris and Rome?' }] },
      first.candidates![0]!.content!,
    ];
    const second = await sdk().models.generateContent({
      model: MODEL,
      config: { tools },
      contents: [
        ...history,
        { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { celsius: 18 } } }, { functionResponse: { id: 'fc-2', name: 'get_weather', response: { celsius: 24 } } }] },
      ],
    });
    expect(second.text).toBe('Both mild.');

    // One response for two calls is refused, as the API does.
    const short = await sdk()
      .models.generateContent({ model: MODEL, config: { tools }, contents: [...history, { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: {} } }] }] })
      .catch((e: unknown) => e);
    expect(short).toBeInstanceOf(ApiError);
    expect((short as ApiError).status).toBe(400);
  });

  it('streams the calls whole, in the last chunk', async () => {
    fake.enqueue({ text: 'Looking.', toolCalls: [{ name: 'get_weather', args: { city: 'Oslo' } }] });
    const chunks = [];
    for await (const chunk of await sdk().models.generateContentStream({ model: MODEL, contents: 'Oslo?', config: { tools } })) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.at(-1)?.functionCalls).toEqual([{ name: 'get_weather', args: { city: 'Oslo' } }]);
    expect(chunks.slice(0, -1).map((c) => c.text).join('')).toBe('Looking.');
  });
});
