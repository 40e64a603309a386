/**
 * The OpenAI-compatible endpoint, driven by the official `openai` client: agents, workflows and
 * multi-agent chats as models, plain and streamed, with the run's usage totals.
 */
import OpenAI from 'openai';
import type { ChatCompletion, ChatCompletionChunk } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptOf, startEnsemble, type Ensemble } from '../support/ensemble.ts';

let e: Ensemble;
let client: OpenAI;

beforeAll(async () => {
  e = await startEnsemble();
  await e.agent('claude-lead', 'anthropic', { role: 'leader' });
  await e.agent('gpt-coder', 'openai', { role: 'coder' });
  await e.agent('gemini-reviewer', 'gemini', { role: 'reviewer' });
  await e.agent('groq-aggregator', 'groq', { role: 'aggregator' });
  await e.workflow({
    name: 'review',
    steps: [
      { agent: 'gpt-coder', output: 'code' },
      { agent: 'gemini-reviewer', output: 'review' },
    ],
  });
  await e.workflow({
    name: 'maybe',
    steps: [
      { agent: 'gpt-coder', output: 'draft' },
      { agent: 'gemini-reviewer', output: 'polish', condition: 'false' },
    ],
  });
  await e.workflow({
    name: 'templated',
    output: 'Code: {{code}}',
    steps: [{ agent: 'gpt-coder', output: 'code' }],
  });
  client = new OpenAI({ apiKey: e.token, baseURL: `${e.server.url}/v1`, maxRetries: 0 });
});
afterAll(() => e.close());

const getRun = async (runId: string) => (await e.server.call('GET', `/api/v1/runs/${runId}`, { token: e.token })).body;
const since = (provider: string, before: number) => e.fake(provider).generationRequests().slice(before);
const count = (provider: string) => e.fake(provider).generationRequests().length;

/** The usage OpenAI clients should see for a run. */
function usageOf(run: any) {
  const u = run.usage;
  return {
    prompt_tokens: u.input_tokens,
    completion_tokens: u.output_tokens,
    total_tokens: u.total_tokens,
    ...(u.cached_input_tokens !== undefined ? { prompt_tokens_details: { cached_tokens: u.cached_input_tokens } } : {}),
    ...(u.reasoning_tokens !== undefined ? { completion_tokens_details: { reasoning_tokens: u.reasoning_tokens } } : {}),
  };
}

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<{ chunks: ChatCompletionChunk[]; text: string }> {
  const chunks: ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return { chunks, text: chunks.map((c) => c.choices[0]?.delta.content ?? '').join('') };
}

/** Raw `data:` payloads of an SSE answer. */
async function rawEvents(body: Record<string, unknown>): Promise<{ res: Response; data: string[] }> {
  const res = await fetch(`${e.server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${e.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const data = text
    .split('\n\n')
    .map((block) => block.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n'))
    .filter(Boolean);
  return { res, data };
}

describe('a workflow as a model', () => {
  it('answers with the workflow output, the run id, the echoed model and the run’s usage; passes `user` on', async () => {
    const before = { openai: count('openai'), gemini: count('gemini') };
    e.fake('openai').enqueue({ text: 'CODE-1', usage: { input: 20, output: 5, cached: 4, reasoning: 2 } });
    e.fake('gemini').enqueue({ text: 'REVIEW-1', usage: { input: 30, output: 9 } });
    const { data, response } = await client.chat.completions
      .create({ model: 'workflow/review', messages: [{ role: 'user', content: 'Write a sum function' }], user: 'end-user-7', temperature: 0.3, max_tokens: 50 })
      .withResponse();
    const runId = response.headers.get('x-ensemble-run-id')!;
    expect(runId).toBeTruthy();
    expect(data).toMatchObject({ id: `chatcmpl-${runId}`, object: 'chat.completion', model: 'workflow/review' });
    expect(data.choices).toEqual([{ index: 0, message: { role: 'assistant', content: 'REVIEW-1', refusal: null }, logprobs: null, finish_reason: 'stop' }]);
    expect(typeof data.created).toBe('number');
    const run = await getRun(runId);
    expect(run).toMatchObject({ kind: 'workflow', workflow: 'review', status: 'completed', input: 'Write a sum function', user: 'end-user-7' });
    expect(data.usage).toEqual(usageOf(run));
    expect(data.usage).toMatchObject({ prompt_tokens: 50, completion_tokens: 14, total_tokens: 64, prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 2 } });
    expect(promptOf('openai', since('openai', before.openai)[0]!.body)).toContain('Write a sum function');
    expect(promptOf('gemini', since('gemini', before.gemini)[0]!.body)).toContain('CODE-1');
    // The intermediate step is not in the answer unless asked for.
    expect(data.choices[0]!.message.content).not.toContain('CODE-1');
  });

  it('streams the answer step’s deltas, then a usage chunk with empty choices, then [DONE]', async () => {
    e.fake('openai').enqueue({ text: 'CODE-2' });
    e.fake('gemini').enqueue({ chunks: ['REV', 'IEW', '-2'], usage: { input: 40, output: 3 } });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'workflow/review', messages: [{ role: 'user', content: 'stream it' }], stream: true, stream_options: { include_usage: true } })
      .withResponse();
    const runId = response.headers.get('x-ensemble-run-id')!;
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const { chunks, text } = await collect(stream);
    expect(text).toBe('REVIEW-2');
    expect(chunks.every((c) => c.id === `chatcmpl-${runId}` && c.object === 'chat.completion.chunk' && c.model === 'workflow/review')).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    // The answer arrives as the step wrote it: one content chunk per delta.
    expect(chunks.filter((c) => c.choices[0]?.delta.content).map((c) => c.choices[0]!.delta.content)).toEqual(['REV', 'IEW', '-2']);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish?.choices[0]!.finish_reason).toBe('stop');
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    const run = await getRun(runId);
    expect(last.usage).toEqual(usageOf(run));
    expect(last.usage!.total_tokens).toBe(18 + 43);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('without include_usage a stream has no usage at all, and ends with data: [DONE]', async () => {
    const { res, data } = await rawEvents({ model: 'workflow/review', messages: [{ role: 'user', content: 'raw' }], stream: true });
    expect(res.status).toBe(200);
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
  });

  it('include_steps adds each step as a labelled section, plain and streamed alike', async () => {
    e.fake('openai').enqueue({ text: 'CODE-3' }, { text: 'CODE-3' });
    e.fake('gemini').enqueue({ text: 'REVIEW-3' }, { text: 'REVIEW-3' });
    const request = { model: 'workflow/review', messages: [{ role: 'user' as const, content: 'with steps' }], ensemble: { include_steps: true } };
    const plain = (await client.chat.completions.create(request as any)) as ChatCompletion & { ensemble: any };
    const expected = '### code (gpt-coder)\nCODE-3\n\n### output\nREVIEW-3';
    expect(plain.choices[0]!.message.content).toBe(expected);
    expect(plain.ensemble).toMatchObject({ run_id: plain.id.slice('chatcmpl-'.length), status: 'completed' });
    expect(plain.ensemble.steps.map((s: any) => [s.step_id, s.output])).toEqual([
      ['code', 'CODE-3'],
      ['review', 'REVIEW-3'],
    ]);
    const streamed = await collect((await client.chat.completions.create({ ...request, stream: true } as any)) as unknown as AsyncIterable<ChatCompletionChunk>);
    expect(streamed.text).toBe(expected);
  });

  it('the header X-Ensemble-Include-Steps does the same', async () => {
    e.fake('openai').enqueue({ text: 'CODE-4' });
    e.fake('gemini').enqueue({ text: 'REVIEW-4' });
    const answer = await client.chat.completions.create(
      { model: 'workflow/review', messages: [{ role: 'user', content: 'header' }] },
      { headers: { 'X-Ensemble-Include-Steps': 'true' } },
    );
    expect(answer.choices[0]!.message.content).toBe('### code (gpt-coder)\nCODE-4\n\n### output\nREVIEW-4');
  });

  it('an output template is sent whole at the end of a stream', async () => {
    e.fake('openai').enqueue({ chunks: ['a', 'b'] });
    const { text } = await collect(await client.chat.completions.create({ model: 'workflow/templated', messages: [{ role: 'user', content: 'x' }], stream: true }));
    expect(text).toBe('Code: ab');
  });

  it('when the last step is skipped the output (an earlier step’s) is sent whole', async () => {
    e.fake('openai').enqueue({ chunks: ['dr', 'aft'] });
    const { text } = await collect(await client.chat.completions.create({ model: 'workflow/maybe', messages: [{ role: 'user', content: 'x' }], stream: true }));
    expect(text).toBe('draft');
  });

  it('include_steps lists a skipped answer step, and the output is the earlier step’s', async () => {
    e.fake('openai').enqueue({ text: 'DRAFT' }, { text: 'DRAFT' });
    const request = { model: 'workflow/maybe', messages: [{ role: 'user' as const, content: 'x' }], ensemble: { include_steps: true } };
    const expected = '### draft (gpt-coder)\nDRAFT\n\n### polish — skipped: condition is false: false\n\n### output\nDRAFT';
    const plain = await client.chat.completions.create(request as any);
    expect((plain as ChatCompletion).choices[0]!.message.content).toBe(expected);
    const streamed = await collect((await client.chat.completions.create({ ...request, stream: true } as any)) as unknown as AsyncIterable<ChatCompletionChunk>);
    expect(streamed.text).toBe(expected);
  });

  it('only the last user message is a workflow’s input', async () => {
    const before = count('openai');
    e.fake('openai').enqueue({ text: 'C' });
    e.fake('gemini').enqueue({ text: 'R' });
    const { response } = await client.chat.completions
      .create({
        model: 'workflow/review',
        messages: [
          { role: 'system', content: 'SYSTEM-TEXT' },
          { role: 'user', content: 'EARLIER-QUESTION' },
          { role: 'assistant', content: 'EARLIER-ANSWER' },
          { role: 'user', content: [{ type: 'text', text: 'LAST ' }, { type: 'text', text: 'QUESTION' }] },
        ],
      })
      .withResponse();
    const run = await getRun(response.headers.get('x-ensemble-run-id')!);
    expect(run.input).toBe('LAST QUESTION');
    const prompt = promptOf('openai', since('openai', before)[0]!.body);
    expect(prompt).toContain('LAST QUESTION');
    expect(prompt).not.toContain('EARLIER');
  });
});

describe('an agent as a model', () => {
  it('one agent answers; the earlier messages come first as a transcript', async () => {
    const before = count('anthropic');
    e.fake('anthropic').enqueue({ text: 'ANSWER-A', usage: { input: 61, output: 4 } });
    const { data, response } = await client.chat.completions
      .create({
        model: 'agent/claude-lead',
        messages: [
          { role: 'system', content: 'Answer in French.' },
          { role: 'user', content: 'What is 2+2?' },
          { role: 'assistant', content: 'Quatre.' },
          { role: 'user', content: 'And 3+3?' },
        ],
        user: 'u-42',
      })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe('ANSWER-A');
    expect(data.model).toBe('agent/claude-lead');
    const runId = response.headers.get('x-ensemble-run-id')!;
    const run = await getRun(runId);
    expect(run).toMatchObject({ kind: 'chat', mode: 'agent', status: 'completed', input: 'And 3+3?', user: 'u-42' });
    expect(run.steps).toHaveLength(1);
    expect(data.usage).toEqual(usageOf(run));
    expect(data.usage).toMatchObject({ prompt_tokens: 61, completion_tokens: 4, total_tokens: 65 });
    const request = since('anthropic', before)[0]!.body;
    const prompt = promptOf('anthropic', request);
    for (const text of ['[system]', 'Answer in French.', '[user]', 'What is 2+2?', '[assistant]', 'Quatre.', 'And 3+3?']) expect(prompt).toContain(text);
    expect(prompt.indexOf('Quatre.')).toBeLessThan(prompt.indexOf('And 3+3?'));
    // The agent's own system prompt stays its system prompt.
    expect(JSON.stringify(request.system)).toContain('You are claude-lead.');
  });

  it('a single user message reaches the agent exactly as sent', async () => {
    const before = count('openai');
    e.fake('openai').enqueue({ text: 'hi' });
    await client.chat.completions.create({ model: 'agent/gpt-coder', messages: [{ role: 'user', content: 'Just this {{input}}' }] });
    const body = since('openai', before)[0]!.body;
    const user = (body.input ?? body.messages).filter((m: any) => m.role === 'user');
    expect(JSON.stringify(user)).toContain('Just this {{input}}');
    expect(JSON.stringify(user)).not.toContain('conversation so far');
  });

  it('streams the agent’s deltas live', async () => {
    e.fake('gemini').enqueue({ chunks: ['one ', 'two ', 'three'], chunkDelayMs: 30 });
    const { chunks, text } = await collect(
      await client.chat.completions.create({ model: 'agent/gemini-reviewer', messages: [{ role: 'user', content: 'count' }], stream: true, stream_options: { include_usage: true } }),
    );
    expect(text).toBe('one two three');
    const runId = chunks[0]!.id.slice('chatcmpl-'.length);
    expect(chunks.at(-1)!.usage).toEqual(usageOf(await getRun(runId)));
  });
});

describe('a multi-agent chat as a model', () => {
  it('multi/parallel:a,b@aggregator answers with the aggregator’s synthesis and the whole run’s usage', async () => {
    e.fake('openai').enqueue({ text: 'GPT-VIEW' });
    e.fake('gemini').enqueue({ text: 'GEMINI-VIEW' });
    e.fake('groq').enqueue({ text: 'SYNTHESIS' });
    const { data, response } = await client.chat.completions
      .create({ model: 'multi/parallel:gpt-coder,gemini-reviewer@groq-aggregator', messages: [{ role: 'user', content: 'Review x=1' }], user: 'multi-user' })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe('SYNTHESIS');
    expect(data.model).toBe('multi/parallel:gpt-coder,gemini-reviewer@groq-aggregator');
    const run = await getRun(response.headers.get('x-ensemble-run-id')!);
    expect(run).toMatchObject({ kind: 'chat', mode: 'parallel', status: 'completed', user: 'multi-user' });
    expect(data.usage).toEqual(usageOf(run));
    expect(data.usage!.total_tokens).toBe(3 * 18);
  });

  it('an agent may repeat right after itself in a sequential model', async () => {
    e.fake('openai').enqueue({ text: 'FIRST' }, { text: 'SECOND' });
    const answer = await client.chat.completions.create({ model: 'multi/sequential:gpt-coder,gpt-coder', messages: [{ role: 'user', content: 'refine' }] });
    expect(answer.choices[0]!.message.content).toBe('SECOND');
    expect(answer.usage!.total_tokens).toBe(2 * 18);
  });

  it('multi/sequential streams the last agent’s answer', async () => {
    e.fake('openai').enqueue({ text: 'DRAFT' });
    e.fake('anthropic').enqueue({ chunks: ['FI', 'NAL'] });
    const { chunks, text } = await collect(
      await client.chat.completions.create({ model: 'multi/sequential:gpt-coder,claude-lead', messages: [{ role: 'user', content: 'haiku' }], stream: true, stream_options: { include_usage: true } }),
    );
    expect(text).toBe('FINAL');
    const run = await getRun(chunks[0]!.id.slice('chatcmpl-'.length));
    expect(run).toMatchObject({ mode: 'sequential', output: 'FINAL' });
    expect(chunks.at(-1)!.usage).toEqual(usageOf(run));
  });

  it('multi/orchestrated streams the synthesis; include_steps shows the plan and the subtasks', async () => {
    const plan = { subtasks: [{ id: 't1', agent: 'gpt-coder', task: 'Write it', depends_on: [] }] };
    e.fake('anthropic').enqueue({ json: plan }, { chunks: ['SYN', 'THESIS'] });
    e.fake('openai').enqueue({ text: 'WORK' });
    const { text } = await collect(
      (await client.chat.completions.create({
        model: 'multi/orchestrated:claude-lead,gpt-coder',
        messages: [{ role: 'user', content: 'Build it' }],
        stream: true,
        ensemble: { include_steps: true },
      } as any)) as unknown as AsyncIterable<ChatCompletionChunk>,
    );
    expect(text).toBe(`### plan (claude-lead)\n${JSON.stringify(plan)}\n\n### task_t1 (gpt-coder)\nWORK\n\n### output\nSYNTHESIS`);
  });
});

describe('runs that end without an answer', () => {
  it('a failed run is an OpenAI error (502, the step’s code) that clients do not retry, with the run id', async () => {
    const before = count('openai');
    e.fake('openai').enqueue({ status: 500, errorMessage: 'vendor exploded' });
    const retrying = new OpenAI({ apiKey: e.token, baseURL: `${e.server.url}/v1`, maxRetries: 2 });
    const error = await retrying.chat.completions.create({ model: 'agent/gpt-coder', messages: [{ role: 'user', content: 'fail' }] }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    const apiError = error as InstanceType<typeof OpenAI.APIError>;
    expect(apiError.status).toBe(502);
    expect(apiError.code).toBe('unavailable');
    expect(apiError.message).toContain('vendor exploded');
    const runId = apiError.headers?.get('x-ensemble-run-id');
    expect((await getRun(runId!)).status).toBe('failed');
    expect(since('openai', before)).toHaveLength(1);
  });

  it('a failure in a stream arrives as an error the client raises', async () => {
    e.fake('openai').enqueue({ status: 500, errorMessage: 'down again' });
    const stream = await client.chat.completions.create({ model: 'agent/gpt-coder', messages: [{ role: 'user', content: 'fail' }], stream: true });
    const error = await collect(stream).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as Error).message).toContain('down again');
  });

  it('a spending limit gives 402 insufficient_quota', async () => {
    await e.agent('broke', 'openai', { config: { max_tokens: 1000, pricing: { input_per_million: 1000, output_per_million: 1000 }, budget: { limit_usd: 0.0001, period: 'day' } } });
    const error = (await client.chat.completions.create({ model: 'agent/broke', messages: [{ role: 'user', content: 'x' }] }).catch((err: unknown) => err)) as InstanceType<typeof OpenAI.APIError>;
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error.status).toBe(402);
    expect(error.error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota' });
  });
});
