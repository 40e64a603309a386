/** Run control: retry from failure, approval steps, bounded loops — against the fake vendors. */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptOf, readEvents, startEnsemble, type Ensemble } from '../support/ensemble.ts';

let e: Ensemble;
const example = (name: string) => readFileSync(new URL(`../../examples/${name}.yaml`, import.meta.url), 'utf8');

beforeAll(async () => {
  e = await startEnsemble({ approvalSweepMs: 100 });
  await e.agent('claude-leader', 'anthropic');
  await e.agent('gpt-coder', 'openai');
  await e.agent('gemini-security', 'gemini');
  await e.agent('groq-joiner', 'groq');
  await e.agent('claude-reviewer', 'ollama');
});
afterAll(() => e.close());

const counts = (): Record<'anthropic' | 'openai' | 'gemini' | 'groq' | 'ollama', number> => {
  const n = (p: string) => e.fake(p).generationRequests().length;
  return { anthropic: n('anthropic'), openai: n('openai'), gemini: n('gemini'), groq: n('groq'), ollama: n('ollama') };
};
const execute = (workflow: string, input = 'go') => e.server.call('POST', `/api/v1/workflows/${workflow}/execute`, { token: e.token, body: { input } });
const getRun = async (runId: string) => (await e.server.call('GET', `/api/v1/runs/${runId}`, { token: e.token })).body;

async function until(runId: string, statuses: string[]): Promise<any> {
  for (let i = 0; i < 200; i++) {
    const run = await getRun(runId);
    if (statuses.includes(run.status)) return run;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`run ${runId} never reached ${statuses.join('|')}`);
}

describe('retry from failure', () => {
  it('runs again only the branch that failed and its dependents, after a restart too', async () => {
    await e.workflow({
      name: 'branches',
      steps: [
        { id: 'first', agent: 'claude-leader' },
        { parallel: [{ id: 'left', agent: 'gpt-coder' }, { id: 'right', agent: 'gemini-security', on_error: 'continue' }] },
        { id: 'join', agent: 'groq-joiner' },
      ],
    });
    e.fake('gemini').enqueue({ status: 400, errorMessage: 'right branch broke' });
    const failed = (await execute('branches')).body;
    expect(failed.status).toBe('partial');
    expect(failed.steps.find((s: any) => s.step_id === 'right').status).toBe('failed');

    await e.restart();
    const before = counts();
    e.fake('gemini').enqueue({ text: 'RIGHT FIXED' });
    e.fake('groq').enqueue({ text: 'JOINED AGAIN' });
    const retried = await e.server.call('POST', `/api/v1/runs/${failed.run_id}/retry`, { token: e.token, body: {} });
    expect(retried.status).toBe(202);
    expect(retried.body.attempt).toBe(2);
    const done = await until(failed.run_id, ['completed', 'failed', 'partial']);
    expect(done.status).toBe('completed');
    expect(done.output).toBe('JOINED AGAIN');
    const after = counts();
    expect(after.anthropic - before.anthropic).toBe(0);
    expect(after.openai - before.openai).toBe(0);
    expect(after.gemini - before.gemini).toBe(1);
    expect(after.groq - before.groq).toBe(1);
    expect(promptOf('groq', e.fake('groq').generationRequests().at(-1)!.body)).toContain('RIGHT FIXED');
    expect(done.attempts.map((a: any) => [a.attempt, a.status])).toEqual([[1, 'partial'], [2, 'completed']]);
    expect(done.attempts[1].reset_steps.sort()).toEqual(['join', 'right']);

    const events = await readEvents(await fetch(`${e.server.url}/api/v1/runs/${failed.run_id}/events`, { headers: { authorization: `Bearer ${e.token}` } }));
    const retriedAt = events.findIndex((ev) => ev.event === 'run.retried');
    expect(retriedAt).toBeGreaterThan(0);
    expect(events.slice(retriedAt).every((ev) => ev.data.run_attempt === 2)).toBe(true);
    expect(events.slice(0, retriedAt).every((ev) => ev.data.run_attempt === 1)).toBe(true);
    const invokes = (await e.server.call('GET', '/api/v1/audit?action=agent.invoke&limit=1000', { token: e.token })).body.data.filter((x: any) => x.details.run_id === failed.run_id);
    expect(invokes.filter((x: any) => x.details.run_attempt === 2).map((x: any) => x.details.step_id).sort()).toEqual(['join', 'right']);
  });

  it('names steps to run again, refuses running runs and runs with nothing to retry', async () => {
    await e.workflow({ name: 'twice', steps: [{ id: 'a', agent: 'claude-leader' }, { id: 'b', agent: 'gpt-coder' }] });
    const run = (await execute('twice')).body;
    expect((await e.server.call('POST', `/api/v1/runs/${run.run_id}/retry`, { token: e.token, body: {} })).status).toBe(409);
    const before = counts();
    const again = await e.server.call('POST', `/api/v1/runs/${run.run_id}/retry`, { token: e.token, body: { steps: ['b'], input_overrides: { input: 'new input' } } });
    expect(again.status).toBe(202);
    const done = await until(run.run_id, ['completed']);
    expect(done.input).toBe('new input');
    expect(counts().anthropic - before.anthropic).toBe(0);
    expect(counts().openai - before.openai).toBe(1);
    expect((await e.server.call('POST', `/api/v1/runs/${run.run_id}/retry`, { token: e.token, body: { steps: ['nope'] } })).status).toBe(400);
  });
});

describe('approval steps', () => {
  beforeAll(async () => {
    await e.workflow(example('approval'));
  });

  it('waits durably across a restart, is approved over the API, and completes with the comment', async () => {
    e.fake('openai').enqueue({ text: 'DRAFT NOTES' });
    const waiting = (await execute('publish_with_approval', 'v2.0')).body;
    expect(waiting.status).toBe('waiting');
    expect(waiting.waiting_for).toEqual([expect.objectContaining({ step_id: 'editor_ok', message: expect.stringContaining('DRAFT NOTES') })]);
    expect(waiting.waiting_for[0].timeout_at).toBeTruthy();

    await e.restart();
    expect((await getRun(waiting.run_id)).status).toBe('waiting');
    const before = counts();
    e.fake('anthropic').enqueue({ text: 'PUBLISHED NOTES' });
    const approved = await e.server.call('POST', `/api/v1/runs/${waiting.run_id}/steps/editor_ok/approve`, { token: e.token, body: { comment: 'ship it, mention the fix' } });
    expect(approved.status).toBe(200);
    const done = await until(waiting.run_id, ['completed', 'failed']);
    expect(done).toMatchObject({ status: 'completed', output: 'PUBLISHED NOTES' });
    expect(done.outputs.editor_ok).toMatchObject({ approved: true, comment: 'ship it, mention the fix', decided_by: expect.stringMatching(/^token:/) });
    expect(counts().anthropic - before.anthropic).toBe(1);
    expect(promptOf('anthropic', e.fake('anthropic').generationRequests().at(-1)!.body)).toContain('ship it, mention the fix');
    expect((await e.server.call('POST', `/api/v1/runs/${waiting.run_id}/steps/editor_ok/approve`, { token: e.token, body: {} })).status).toBe(409);

    const events = (await readEvents(await fetch(`${e.server.url}/api/v1/runs/${waiting.run_id}/events`, { headers: { authorization: `Bearer ${e.token}` } }))).map((ev) => ev.event);
    expect(events).toEqual(expect.arrayContaining(['step.waiting', 'run.waiting', 'step.approved', 'run.completed']));
    const audit = (await e.server.call('GET', '/api/v1/audit?action=run.step_approve', { token: e.token })).body.data;
    expect(audit[0]).toMatchObject({ actor: expect.stringMatching(/^token:/), target_id: waiting.run_id, details: { step_id: 'editor_ok', comment: 'ship it, mention the fix' } });
  });

  it('a rejection fails the run (the documented default) and nothing after it runs', async () => {
    e.fake('openai').enqueue({ text: 'BAD DRAFT' });
    const waiting = (await execute('publish_with_approval', 'v2.1')).body;
    const before = counts();
    const rejected = await e.server.call('POST', `/api/v1/runs/${waiting.run_id}/steps/editor_ok/reject`, { token: e.token, body: { comment: 'too vague' } });
    expect(rejected.status).toBe(200);
    const done = await until(waiting.run_id, ['completed', 'failed']);
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ code: 'rejected', step_id: 'editor_ok', message: 'Rejected: too vague' });
    expect(done.steps.find((s: any) => s.step_id === 'published').status).toBe('cancelled');
    expect(counts().anthropic - before.anthropic).toBe(0);
    expect((await e.server.call('GET', '/api/v1/audit?action=run.step_reject', { token: e.token })).body.data[0].details.comment).toBe('too vague');
  });

  it('on_reject: continue lets the run branch on {{step.approved}}; a timeout decides by itself', async () => {
    await e.workflow({
      name: 'gated',
      steps: [
        { id: 'gate', type: 'approval', message: 'Go on?', on_reject: 'continue', timeout_ms: 200, on_timeout: 'approve' },
        { parallel: [
          { id: 'yes', agent: 'gpt-coder', condition: '{{gate.approved}}' },
          { id: 'no', agent: 'groq-joiner', condition: '!gate.approved' },
        ] },
      ],
    });
    const rejected = (await execute('gated')).body;
    await e.server.call('POST', `/api/v1/runs/${rejected.run_id}/steps/gate/reject`, { token: e.token, body: { comment: 'no thanks' } });
    const branched = await until(rejected.run_id, ['completed', 'failed']);
    expect(branched.status).toBe('completed');
    expect(branched.steps.find((s: any) => s.step_id === 'yes').status).toBe('skipped');
    expect(branched.steps.find((s: any) => s.step_id === 'no').status).toBe('completed');

    const timed = (await execute('gated')).body;
    expect(timed.status).toBe('waiting');
    const decided = await until(timed.run_id, ['completed', 'failed']);
    expect(decided.outputs.gate).toMatchObject({ approved: true, decided_by: 'system:approval-timeout' });
    expect(decided.steps.find((s: any) => s.step_id === 'yes').status).toBe('completed');
  });
});

describe('bounded loops', () => {
  const schema = { type: 'object', properties: { approved: { type: 'boolean' }, comments: { type: 'string' } }, required: ['approved', 'comments'] };

  beforeAll(async () => {
    await e.workflow(example('review_loop'));
  });

  it('stops when the reviewer approves in round 2', async () => {
    const before = counts();
    e.fake('openai').enqueue({ text: 'CODE v1' }, { text: 'CODE v2' });
    e.fake('ollama').enqueue({ json: { approved: false, comments: 'handle empty lists' } }, { json: { approved: true, comments: 'good' } });
    const run = (await execute('code_review_loop', 'sum a list')).body;
    expect(run.status).toBe('completed');
    expect(run.output).toBe('CODE v2');
    expect(counts().openai - before.openai).toBe(2);
    expect(counts().ollama - before.ollama).toBe(2);
    const second = promptOf('openai', e.fake('openai').generationRequests()[before.openai + 1]!.body);
    expect(second).toContain('CODE v1');
    expect(second).toContain('handle empty lists');
    const byId = Object.fromEntries(run.steps.map((s: any) => [s.step_id, s]));
    expect(byId['code@3'].status).toBe('skipped');
    expect(byId['code@3'].reason).toMatch(/until is true after iteration 2/);
    expect(byId.revise.output).toEqual({ iterations: 2, converged: true, max_iterations: 3 });
    expect(run.outputs.review).toEqual({ approved: true, comments: 'good' });
    void schema;
  });

  it('a reviewer that never approves stops the loop at max_iterations with the reason', async () => {
    const before = counts();
    e.fake('openai').enqueue({ text: 'A' }, { text: 'B' }, { text: 'C' });
    e.fake('ollama').enqueue({ json: { approved: false, comments: 'no 1' } }, { json: { approved: false, comments: 'no 2' } }, { json: { approved: false, comments: 'no 3' } });
    const run = (await execute('code_review_loop', 'x')).body;
    expect(run.status).toBe('completed');
    expect(run.output).toBe('C');
    expect(counts().openai - before.openai).toBe(3);
    const marker = run.steps.find((s: any) => s.step_id === 'revise');
    expect(marker.output).toEqual({ iterations: 3, converged: false, max_iterations: 3 });
    expect(marker.reason).toMatch(/stopped at max_iterations \(3\) without until being true/);
  });

  it('keeps every iteration: {{name.history}}; loops without max_iterations are refused', async () => {
    await e.workflow({
      name: 'history',
      steps: [
        { loop: { max_iterations: 2, until: 'false', steps: [{ id: 'draft', agent: 'gpt-coder' }] } },
        { id: 'summary', agent: 'groq-joiner', prompt: 'All drafts: {{draft.history}} / last: {{draft}}' },
      ],
    });
    e.fake('openai').enqueue({ text: 'D1' }, { text: 'D2' });
    const run = (await execute('history')).body;
    expect(run.status).toBe('completed');
    const prompt = promptOf('groq', e.fake('groq').generationRequests().at(-1)!.body);
    expect(prompt).toContain('All drafts: [\\"D1\\",\\"D2\\"] / last: D2');

    const refused = await e.server.call('POST', '/api/v1/workflows', { token: e.token, body: { name: 'endless', steps: [{ loop: { until: 'false', steps: [{ id: 's', agent: 'gpt-coder' }] } }] } });
    expect(refused.status).toBe(422);
    expect(refused.body.error.details[0]).toMatchObject({ code: 'invalid_loop' });
    const tooMany = await e.server.call('POST', '/api/v1/workflows', { token: e.token, body: { name: 'endless', steps: [{ loop: { until: 'false', max_iterations: 50, steps: [{ id: 's', agent: 'gpt-coder' }] } }] } });
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.error.details[0]).toMatchObject({ code: 'limit_exceeded' });
  });
});

describe('edges found in review', () => {
  it('cancelling a waiting run ends it at once', async () => {
    await e.workflow({ name: 'gate-only', steps: [{ id: 'gate', type: 'approval', message: 'ok?' }, { id: 'after', agent: 'gpt-coder' }] });
    const waiting = (await execute('gate-only')).body;
    expect(waiting.status).toBe('waiting');
    const cancelled = await e.server.call('POST', `/api/v1/runs/${waiting.run_id}/cancel`, { token: e.token });
    expect(cancelled.status).toBe(202);
    expect(cancelled.body.status).toBe('cancelled');
    expect(cancelled.body.steps.find((s: any) => s.step_id === 'gate').status).toBe('cancelled');
  });

  it('a loop that ended skips its later iterations even where a body step also waits for an outside step', async () => {
    await e.workflow({
      name: 'loop-outside',
      steps: [
        { id: 'pre', agent: 'groq-joiner' },
        { loop: { max_iterations: 3, until: 'true', steps: [{ id: 'draft', agent: 'gpt-coder' }, { id: 'review', agent: 'gemini-security', depends_on: ['draft', 'pre'] }] } },
      ],
    });
    const before = counts();
    const run = (await execute('loop-outside')).body;
    expect(run.status).toBe('completed');
    expect(counts().openai - before.openai).toBe(1);
    expect(counts().gemini - before.gemini).toBe(1);
    expect(run.steps.find((s: any) => s.step_id === 'review@2').status).toBe('skipped');
  });

  it('a workflow step refuses an inactive agent', async () => {
    await e.agent('sleepy', 'groq', { is_active: false });
    await e.workflow({ name: 'uses-sleepy', steps: [{ id: 'one', agent: 'sleepy' }] });
    const before = counts();
    const run = (await execute('uses-sleepy')).body;
    expect(run.status).toBe('failed');
    expect(run.error.code).toBe('agent_inactive');
    expect(counts().groq).toBe(before.groq);
  });
});
