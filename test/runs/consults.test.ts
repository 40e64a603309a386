/** Agents that consult agents (tools ask_<name>) and shared conversation memory, on three vendors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptOf, readEvents, startEnsemble, type Ensemble } from '../support/ensemble.ts';

let e: Ensemble;
const PRICING = { input_per_million: 1000, output_per_million: 1000 };

beforeAll(async () => {
  e = await startEnsemble();
  await e.agent('coder', 'openai', { role: 'coder', system_prompt: 'You write code.', config: { pricing: PRICING } });
  await e.agent('reviewer', 'anthropic', { role: 'security reviewer', system_prompt: 'You review code for security.', config: { pricing: PRICING } });
  await e.agent('security', 'gemini', { role: 'security expert', config: { pricing: PRICING } });
  await e.agent('broke', 'groq', { role: 'reviewer', config: { pricing: PRICING, max_tokens: 100, budget: { limit_usd: 0.000001, period: 'total' } } });
});
afterAll(() => e.close());

const execute = (workflow: string) => e.server.call('POST', `/api/v1/workflows/${workflow}/execute`, { token: e.token, body: { input: 'write a login handler' } });

describe('consultations', () => {
  it('a step whose agent asks the reviewer twice gets both answers; the consultations are child steps with their own usage and cost', async () => {
    await e.workflow({ name: 'consulting', steps: [{ id: 'write', agent: 'coder', consults: ['reviewer', 'security'] }] });
    const gpt = e.fake('openai');
    const before = gpt.generationRequests().length;
    gpt.enqueue(
      { toolCalls: [{ name: 'ask_reviewer', args: { question: 'Is storing the password in a cookie safe?' } }], usage: { input: 100, output: 10 } },
      { toolCalls: [{ name: 'ask_reviewer', args: { question: 'Is bcrypt with cost 12 enough?' } }], usage: { input: 150, output: 10 } },
      { text: 'FINAL LOGIN HANDLER', usage: { input: 200, output: 50 } },
    );
    e.fake('anthropic').enqueue({ text: 'No: never store passwords in cookies.', usage: { input: 30, output: 8 } }, { text: 'Yes, cost 12 is fine.', usage: { input: 40, output: 6 } });
    const run = (await execute('consulting')).body;
    expect(run.status).toBe('completed');
    expect(run.output).toBe('FINAL LOGIN HANDLER');

    const requests = gpt.generationRequests().slice(before);
    expect(requests).toHaveLength(3);
    const tools = JSON.stringify(requests[0]!.body.tools);
    expect(tools).toContain('ask_reviewer');
    expect(tools).toContain('ask_security');
    expect(tools).toContain('security reviewer');
    const last = JSON.stringify(requests[2]!.body);
    expect(last).toContain('never store passwords in cookies');
    expect(last).toContain('cost 12 is fine');

    const children = run.steps.filter((s: any) => s.step_id.startsWith('write.consult'));
    expect(children.map((c: any) => [c.step_id, c.agent, c.status, c.output])).toEqual([
      ['write.consult1', 'reviewer', 'completed', 'No: never store passwords in cookies.'],
      ['write.consult2', 'reviewer', 'completed', 'Yes, cost 12 is fine.'],
    ]);
    expect(children[0].usage).toMatchObject({ input_tokens: 30, output_tokens: 8 });
    expect(children[0].cost_usd).toBeCloseTo(0.038, 9);
    const parent = run.steps.find((s: any) => s.step_id === 'write');
    expect(parent.cost_usd).toBeCloseTo((100 + 10 + 150 + 10 + 200 + 50) / 1000, 9);
    expect(run.cost_usd).toBeCloseTo(parent.cost_usd + 0.038 + 0.046, 9);
    expect(run.usage_by_agent.reviewer).toMatchObject({ calls: 2, usage: { input_tokens: 70, output_tokens: 14 } });
    const audit = (await e.server.call('GET', '/api/v1/audit?action=agent.invoke&limit=1000', { token: e.token })).body.data.filter((x: any) => x.details.run_id === run.run_id);
    expect(audit.filter((x: any) => x.details.agent === 'reviewer').map((x: any) => x.details.step_id).sort()).toEqual(['write.consult1', 'write.consult2']);
  });

  it('the count limit stops a runaway loop with a clear step error', async () => {
    await e.workflow({ name: 'runaway', steps: [{ id: 'write', agent: 'coder', consults: ['reviewer'], max_consults: 2 }] });
    const ask = { toolCalls: [{ name: 'ask_reviewer', args: { question: 'again?' } }] };
    e.fake('openai').enqueue(ask, ask, ask, { text: 'gave up' });
    e.fake('anthropic').enqueue({ text: 'answer 1' }, { text: 'answer 2' });
    const run = (await execute('runaway')).body;
    expect(run.status).toBe('failed');
    expect(run.error).toMatchObject({ code: 'consult_limit_exceeded', step_id: 'write' });
    expect(run.steps.filter((s: any) => s.step_id.startsWith('write.consult'))).toHaveLength(2);
  });

  it('depth limits: a consulted agent consults one level further, and no deeper', async () => {
    await e.workflow({ name: 'deep', steps: [{ id: 'write', agent: 'coder', consults: ['reviewer', 'security'], consult_depth: 2 }] });
    const claude = e.fake('anthropic');
    const gem = e.fake('gemini');
    const [c0, g0] = [claude.generationRequests().length, gem.generationRequests().length];
    e.fake('openai').enqueue({ toolCalls: [{ name: 'ask_reviewer', args: { question: 'is it safe?' } }] }, { text: 'DONE' });
    claude.enqueue({ toolCalls: [{ name: 'ask_security', args: { question: 'check the crypto' } }] }, { text: 'reviewer says ok' });
    gem.enqueue({ text: 'crypto fine' });
    const run = (await execute('deep')).body;
    expect(run.status).toBe('completed');
    expect(JSON.stringify(claude.generationRequests()[c0]!.body.tools)).toContain('ask_security');
    expect(JSON.stringify(claude.generationRequests()[c0]!.body.tools)).not.toContain('ask_reviewer');
    expect(gem.generationRequests()[g0]!.body.tools).toBeUndefined();
    expect(run.steps.filter((s: any) => s.step_id.startsWith('write.consult')).map((s: any) => s.agent)).toEqual(['reviewer', 'security']);

    const shallow = await e.server.call('POST', '/api/v1/workflows', { token: e.token, body: { name: 'self', steps: [{ id: 'x', agent: 'coder', consults: ['coder', 'ghost'] }] } });
    expect(shallow.status).toBe(422);
    expect(shallow.body.error.details.map((d: any) => d.code).sort()).toEqual(['cycle', 'unknown_agent']);
  });

  it('a consulted agent over its budget: the tool returns an error the model sees, not a crash', async () => {
    await e.workflow({ name: 'broke-consult', steps: [{ id: 'write', agent: 'coder', consults: ['broke'] }] });
    const gpt = e.fake('openai');
    const before = gpt.generationRequests().length;
    const groqBefore = e.fake('groq').generationRequests().length;
    gpt.enqueue({ toolCalls: [{ name: 'ask_broke', args: { question: 'review?' } }] }, { text: 'WENT ON WITHOUT REVIEW' });
    const run = (await execute('broke-consult')).body;
    expect(run.status).toBe('completed');
    expect(run.output).toBe('WENT ON WITHOUT REVIEW');
    expect(e.fake('groq').generationRequests().length).toBe(groqBefore);
    expect(JSON.stringify(gpt.generationRequests()[before + 1]!.body)).toContain('budget_exceeded');
    expect(run.steps.find((s: any) => s.step_id === 'write.consult1')).toMatchObject({ status: 'failed', error: { code: 'budget_exceeded' } });
  });

  it('streams consult events nested under the parent step', async () => {
    e.fake('openai').enqueue({ toolCalls: [{ name: 'ask_reviewer', args: { question: 'ok?' } }] }, { chunks: ['OK ', 'CODE'] });
    e.fake('anthropic').enqueue({ text: 'fine' });
    const res = await fetch(`${e.server.url}/api/v1/workflows/consulting/execute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${e.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'go', stream: true }),
    });
    const events = await readEvents(res);
    const types = events.map((ev) => `${ev.event}:${ev.data.parent_step_id ?? ev.data.step_id ?? ''}`);
    const started = types.indexOf('step.started:write');
    const consultStart = types.indexOf('step.consult.started:write');
    const consultDone = types.indexOf('step.consult.completed:write');
    const completed = types.indexOf('step.completed:write');
    expect(started).toBeGreaterThanOrEqual(0);
    expect(started < consultStart && consultStart < consultDone && consultDone < completed).toBe(true);
    const consult = events.find((ev) => ev.event === 'step.consult.completed')!;
    expect(consult.data).toMatchObject({ step_id: 'write.consult1', parent_step_id: 'write', agent: 'reviewer', output: 'fine', usage: expect.any(Object) });
  });
});

describe('shared context', () => {
  it('with share_context, a later agent sees earlier exchanges it does not reference', async () => {
    await e.workflow({ name: 'shared', share_context: true, steps: [{ id: 'one', agent: 'coder' }, { id: 'two', agent: 'security', prompt: 'Your turn: {{input}}' }] });
    await e.workflow({ name: 'private', steps: [{ id: 'one', agent: 'coder' }, { id: 'two', agent: 'security', prompt: 'Your turn: {{input}}' }] });
    e.fake('openai').enqueue({ text: 'SECRET PLAN FROM ONE' }, { text: 'SECRET PLAN FROM ONE' });
    const gem = e.fake('gemini');
    const g0 = gem.generationRequests().length;
    await execute('shared');
    await execute('private');
    expect(promptOf('gemini', gem.generationRequests()[g0]!.body)).toContain('SECRET PLAN FROM ONE');
    expect(promptOf('gemini', gem.generationRequests()[g0]!.body)).toContain('Conversation so far');
    expect(promptOf('gemini', gem.generationRequests()[g0 + 1]!.body)).not.toContain('SECRET PLAN FROM ONE');
  });
});
