/** POST /chat/multi in its three modes, three agents on three vendors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { overlapped, promptOf, readEvents, startEnsemble, type Ensemble } from '../support/ensemble.ts';

let e: Ensemble;
beforeAll(async () => {
  e = await startEnsemble();
  await e.agent('claude-lead', 'anthropic', { role: 'leader' });
  await e.agent('gpt-coder', 'openai', { role: 'coder' });
  await e.agent('gemini-reviewer', 'gemini', { role: 'reviewer' });
  await e.agent('groq-aggregator', 'groq', { role: 'aggregator' });
});
afterAll(() => e.close());

const chat = (body: Record<string, unknown>) => e.server.call('POST', '/api/v1/chat/multi', { token: e.token, body });
const counts = () => Object.fromEntries(['anthropic', 'openai', 'gemini', 'groq'].map((p) => [p, e.fake(p).generationRequests().length]));
const since = (provider: string, before: Record<string, number>) => e.fake(provider).generationRequests().slice(before[provider]);

describe('parallel', () => {
  it('asks every agent at once and aggregates their answers, labelled by agent and role', async () => {
    const before = counts();
    e.fake('anthropic').enqueue({ text: 'ANSWER-CLAUDE', delayMs: 250 });
    e.fake('openai').enqueue({ text: 'ANSWER-GPT', delayMs: 250 });
    e.fake('gemini').enqueue({ text: 'ANSWER-GEMINI', delayMs: 250 });
    e.fake('groq').enqueue({ text: 'SYNTHESIS' });
    const res = await chat({ message: 'Review this code: x=1', agents: ['claude-lead', 'gpt-coder', 'gemini-reviewer'], mode: 'parallel', aggregator: 'groq-aggregator' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ mode: 'parallel', status: 'completed', output: 'SYNTHESIS' });
    expect(res.body.results.map((r: any) => [r.agent, r.status, r.output])).toEqual([
      ['claude-lead', 'completed', 'ANSWER-CLAUDE'],
      ['gpt-coder', 'completed', 'ANSWER-GPT'],
      ['gemini-reviewer', 'completed', 'ANSWER-GEMINI'],
      ['groq-aggregator', 'completed', 'SYNTHESIS'],
    ]);
    const [a] = since('anthropic', before);
    const [b] = since('openai', before);
    const [c] = since('gemini', before);
    expect(overlapped(a!, b!) && overlapped(b!, c!) && overlapped(a!, c!)).toBe(true);
    for (const [provider, request] of [['anthropic', a], ['openai', b], ['gemini', c]] as const) expect(promptOf(provider, request!.body)).toContain('Review this code: x=1');
    const aggregation = promptOf('groq', since('groq', before)[0]!.body);
    for (const text of ['ANSWER-CLAUDE', 'ANSWER-GPT', 'ANSWER-GEMINI', 'claude-lead, leader', 'gpt-coder, coder', 'gemini-reviewer, reviewer', 'Review this code: x=1']) expect(aggregation).toContain(text);
    expect(res.body.usage_by_agent['gpt-coder']).toMatchObject({ calls: 1, usage: { input_tokens: 11, output_tokens: 7 } });
    expect(res.body.usage.total_tokens).toBe(4 * 18);
    const listed = await e.server.call('GET', `/api/v1/runs/${res.body.run_id}`, { token: e.token });
    expect(listed.body).toMatchObject({ kind: 'chat', mode: 'parallel', status: 'completed' });
  });

  it('one failing agent makes the run partial; the aggregator is told which and why', async () => {
    const before = counts();
    e.fake('gemini').enqueue({ status: 500, errorMessage: 'gemini exploded' });
    e.fake('groq').enqueue({ text: 'SYNTHESIS WITHOUT GEMINI' });
    const res = await chat({ message: 'hello', agents: ['claude-lead', 'gpt-coder', 'gemini-reviewer'], aggregator: 'groq-aggregator' });
    expect(res.body.status).toBe('partial');
    const failed = res.body.results.find((r: any) => r.agent === 'gemini-reviewer');
    expect(failed).toMatchObject({ status: 'failed', error: { code: 'unavailable', message: 'gemini exploded' } });
    expect(res.body.output).toBe('SYNTHESIS WITHOUT GEMINI');
    expect(promptOf('groq', since('groq', before)[0]!.body)).toContain('failed: unavailable: gemini exploded');
  });

  it('fail_fast makes one failure fail the run', async () => {
    e.fake('gemini').enqueue({ status: 500, errorMessage: 'down', delayMs: 10 });
    e.fake('openai').enqueue({ delayMs: 2000 });
    const res = await chat({ message: 'hello', agents: ['gpt-coder', 'gemini-reviewer'], fail_fast: true });
    expect(res.body.status).toBe('failed');
    expect(res.body.error).toMatchObject({ code: 'unavailable', step_id: 'gemini-reviewer' });
  });

  it('refuses unknown agents before creating a run', async () => {
    const res = await chat({ message: 'x', agents: ['gpt-coder', 'nobody'] });
    expect(res.status).toBe(404);
    expect(res.body.error.details).toEqual({ agents: ['nobody'] });
    expect((await chat({ message: 'x', agents: ['gpt-coder'], mode: 'orchestrated' })).status).toBe(400);
    expect((await chat({ message: 'x', agents: [] })).status).toBe(400);
  });
});

describe('sequential', () => {
  it('passes each output to the next agent with the original message', async () => {
    const before = counts();
    e.fake('openai').enqueue({ text: 'DRAFT-1' });
    e.fake('gemini').enqueue({ text: 'REVIEWED-2' });
    e.fake('anthropic').enqueue({ text: 'FINAL-3' });
    const res = await chat({ message: 'Write a haiku', agents: ['gpt-coder', 'gemini-reviewer', 'claude-lead'], mode: 'sequential' });
    expect(res.body).toMatchObject({ status: 'completed', output: 'FINAL-3' });
    const second = promptOf('gemini', since('gemini', before)[0]!.body);
    expect(second).toContain('Write a haiku');
    expect(second).toContain('DRAFT-1');
    expect(second).toContain('gpt-coder, coder');
    const third = promptOf('anthropic', since('anthropic', before)[0]!.body);
    expect(third).toContain('REVIEWED-2');
    expect(third).not.toContain('DRAFT-1');
    expect(since('gemini', before)[0]!.startedAt).toBeGreaterThanOrEqual(since('openai', before)[0]!.endedAt!);
  });
});

describe('orchestrated', () => {
  const plan = {
    subtasks: [
      { id: 't1', agent: 'gpt-coder', task: 'Write the function', depends_on: [] },
      { id: 't2', agent: 'gemini-reviewer', task: 'Review the function', depends_on: ['t1'] },
    ],
  };

  it('runs the leader’s plan as a DAG and synthesizes; the plan is in the run and the events', async () => {
    const before = counts();
    e.fake('anthropic').enqueue({ json: plan }, { text: 'LEADER SYNTHESIS' });
    e.fake('openai').enqueue({ text: 'FUNCTION CODE' });
    e.fake('gemini').enqueue({ text: 'REVIEW NOTES' });
    const res = await chat({ message: 'Build a sum function', agents: ['claude-lead', 'gpt-coder', 'gemini-reviewer'], mode: 'orchestrated' });
    expect(res.body).toMatchObject({ mode: 'orchestrated', status: 'completed', output: 'LEADER SYNTHESIS', plan });
    const planning = since('anthropic', before)[0]!;
    expect(JSON.stringify(planning.body)).toContain('subtasks');
    expect(promptOf('anthropic', planning.body)).toContain('gpt-coder (coder)');
    const review = promptOf('gemini', since('gemini', before)[0]!.body);
    expect(review).toContain('Review the function');
    expect(review).toContain('FUNCTION CODE');
    const synthesis = promptOf('anthropic', since('anthropic', before)[1]!.body);
    expect(synthesis).toContain('FUNCTION CODE');
    expect(synthesis).toContain('REVIEW NOTES');
    expect(res.body.results.map((r: any) => r.step_id)).toEqual(['plan', 'task_t1', 'task_t2', 'synthesis']);
    const events = await readEvents(await fetch(`${e.server.url}/api/v1/runs/${res.body.run_id}/events`, { headers: { authorization: `Bearer ${e.token}` } }));
    const created = events.find((ev) => ev.event === 'plan.created');
    expect(created?.data.plan).toEqual(plan);
    expect(events.map((ev) => ev.id)).toEqual(events.map((_, i) => i + 1));
  });

  it('an invalid plan gets one corrective retry listing the problems', async () => {
    const before = counts();
    e.fake('anthropic').enqueue({ json: { subtasks: [{ id: 't1', agent: 'nobody', task: 'x', depends_on: [] }] } }, { json: plan }, { text: 'OK AFTER RETRY' });
    const res = await chat({ message: 'Build it', agents: ['claude-lead', 'gpt-coder', 'gemini-reviewer'], mode: 'orchestrated' });
    expect(res.body.status).toBe('completed');
    expect(res.body.output).toBe('OK AFTER RETRY');
    const retryPrompt = promptOf('anthropic', since('anthropic', before)[1]!.body);
    expect(retryPrompt).toContain('unknown agent \\"nobody\\"');
  });

  it('a second invalid plan fails the run clearly', async () => {
    e.fake('anthropic').enqueue({ json: { subtasks: [] } }, { json: { subtasks: [{ id: 'a', agent: 'gpt-coder', task: 't', depends_on: ['b'] }, { id: 'b', agent: 'gpt-coder', task: 't', depends_on: ['a'] }] } });
    const res = await chat({ message: 'Build it', agents: ['claude-lead', 'gpt-coder'], mode: 'orchestrated' });
    expect(res.body.status).toBe('failed');
    expect(res.body.error.code).toBe('invalid_plan');
    expect(res.body.error.message).toMatch(/cycle/);
  });
});

describe('streaming', () => {
  it('interleaves deltas of different agents; run.completed output equals the aggregator’s deltas', async () => {
    e.fake('openai').enqueue({ chunks: ['o1 ', 'o2 ', 'o3'], chunkDelayMs: 40 });
    e.fake('gemini').enqueue({ chunks: ['g1 ', 'g2 ', 'g3'], chunkDelayMs: 40 });
    e.fake('groq').enqueue({ chunks: ['Final ', 'merged ', 'answer'] });
    const res = await fetch(`${e.server.url}/api/v1/chat/multi`, {
      method: 'POST',
      headers: { authorization: `Bearer ${e.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'stream it', agents: ['gpt-coder', 'gemini-reviewer'], aggregator: 'groq-aggregator', stream: true }),
    });
    const events = await readEvents(res);
    expect(events[0]!.event).toBe('run.started');
    const deltas = events.filter((ev) => ev.event === 'step.delta');
    const workers = deltas.filter((d) => d.data.step_id !== 'aggregate').map((d) => d.data.agent);
    expect(workers.filter((a, i) => i > 0 && a !== workers[i - 1]).length).toBeGreaterThanOrEqual(2);
    const aggregatorText = deltas.filter((d) => d.data.step_id === 'aggregate').map((d) => d.data.text).join('');
    const completed = events.at(-1)!;
    expect(completed.event).toBe('run.completed');
    expect(completed.data.output).toBe(aggregatorText);
    expect(aggregatorText).toBe('Final merged answer');
  });
});

describe('the same agent twice', () => {
  it('gets two steps and two calls, in parallel and sequential modes', async () => {
    const before = e.fake('openai').generationRequests().length;
    const parallel = await chat({ message: 'twice', agents: ['gpt-coder', 'gpt-coder'], mode: 'parallel' });
    expect(parallel.body.results.map((r: any) => r.step_id)).toEqual(['gpt-coder', 'gpt-coder_1']);
    const sequential = await chat({ message: 'thrice', agents: ['gpt-coder', 'gemini-reviewer', 'gpt-coder'], mode: 'sequential' });
    expect(sequential.body.results.map((r: any) => r.step_id)).toEqual(['gpt-coder', 'gemini-reviewer', 'gpt-coder_2']);
    expect(e.fake('openai').generationRequests().length - before).toBe(4);
  });

  it('chat agents may consult others (tools ask_<name>)', async () => {
    const gpt = e.fake('openai');
    const before = gpt.generationRequests().length;
    gpt.enqueue({ toolCalls: [{ name: 'ask_gemini-reviewer', args: { question: 'ok?' } }] }, { text: 'consulted answer' });
    e.fake('gemini').enqueue({ text: 'looks fine' });
    const res = await chat({ message: 'review with help', agents: ['gpt-coder'], consults: { 'gpt-coder': ['gemini-reviewer'] } });
    expect(res.body.status).toBe('completed');
    expect(res.body.output).toBe('consulted answer');
    expect(JSON.stringify(gpt.generationRequests()[before]!.body.tools)).toContain('ask_gemini-reviewer');
    expect(res.body.results.find((r: any) => r.step_id === 'gpt-coder.consult1')).toMatchObject({ agent: 'gemini-reviewer', output: 'looks fine' });
  });
});
