/** Triggers, signed webhooks (GitHub pull_request → pr_review) and per-user cost. */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, promptOf, startEnsemble, type Ensemble } from '../support/ensemble.ts';

let e: Ensemble;
let appId: string;
let secret: string;

beforeAll(async () => {
  e = await startEnsemble();
  for (const [name, provider] of [['claude-leader', 'anthropic'], ['gpt-coder', 'openai'], ['gemini-security', 'gemini']] as const) await e.agent(name, provider);
  await e.workflow(readFileSync(new URL('../../examples/pr_review.yaml', import.meta.url), 'utf8'));
  appId = (await e.server.call('GET', '/api/v1/apps', { token: ADMIN_TOKEN })).body.data.find((a: any) => a.name === 'e2e').id;
  const created = await e.server.call('POST', `/api/v1/apps/${appId}/webhook-secret`, { token: ADMIN_TOKEN });
  expect(created.status).toBe(201);
  secret = created.body.secret;
});
afterAll(() => e.close());

const pullRequest = {
  action: 'opened',
  number: 42,
  repository: { full_name: 'acme/shop' },
  pull_request: { number: 42, title: 'Add checkout', body: 'Adds the checkout page.', diff_url: 'https://github.com/acme/shop/pull/42.diff', html_url: 'https://github.com/acme/shop/pull/42', user: { login: 'octocat' } },
};

async function hook(body: string, headers: Record<string, string>, trigger = 'pr_review') {
  const res = await fetch(`${e.server.url}/hooks/${appId}/${trigger}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: res.status, body: (await res.json()) as any };
}

describe('signed webhooks', () => {
  it('a GitHub-style signed pull_request event starts the pr_review workflow with the PR as input', async () => {
    const body = JSON.stringify(pullRequest);
    const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
    const before = e.fake('anthropic').generationRequests().length;
    const res = await hook(body, { 'X-Hub-Signature-256': signature, 'X-GitHub-Event': 'pull_request', 'X-GitHub-Delivery': 'delivery-1' });
    expect(res.status).toBe(202);
    expect(res.body.runs).toHaveLength(1);
    expect(res.body.runs[0].workflow).toBe('pr_review');
    const run = await e.server.call('GET', `/api/v1/runs/${res.body.runs[0].run_id}`, { token: e.token });
    expect(run.body.input).toContain('Pull request #42: Add checkout');
    expect(run.body.input).toContain('https://github.com/acme/shop/pull/42.diff');
    expect(run.body.context).toMatchObject({ source: 'github', repository: 'acme/shop', number: 42, trigger: 'pr_review' });
    expect(run.body.user).toBe('octocat');
    // The run goes through.
    let status = run.body.status;
    for (let i = 0; i < 100 && !['completed', 'failed'].includes(status); i++) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      status = (await e.server.call('GET', `/api/v1/runs/${res.body.runs[0].run_id}`, { token: e.token })).body.status;
    }
    expect(status).toBe('completed');
    expect(promptOf('anthropic', e.fake('anthropic').generationRequests()[before]!.body)).toContain('Add checkout');

    const replay = await hook(body, { 'X-Hub-Signature-256': signature, 'X-GitHub-Event': 'pull_request', 'X-GitHub-Delivery': 'delivery-1' });
    expect(replay.status).toBe(401);
  });

  it('refuses unsigned, badly signed and stale requests, and starts nothing', async () => {
    const runsBefore = (await e.server.call('GET', '/api/v1/runs?limit=500', { token: e.token })).body.data.length;
    const body = JSON.stringify({ input: 'hello' });
    expect((await hook(body, {})).status).toBe(401);
    expect((await hook(body, { 'X-Hub-Signature-256': `sha256=${'0'.repeat(64)}`, 'X-GitHub-Event': 'pull_request', 'X-GitHub-Delivery': 'd-2' })).status).toBe(401);
    const now = Math.floor(Date.now() / 1000);
    const sign = (t: number, key = secret, trigger = 'pr_review') => `t=${t},v1=${createHmac('sha256', key).update(`${t}.${trigger}.${body}`).digest('hex')}`;
    expect((await hook(body, { 'X-Ensemble-Signature': sign(now - 3600) })).status).toBe(401);
    expect((await hook(body, { 'X-Ensemble-Signature': sign(now, 'whsec_wrong') })).status).toBe(401);
    // Signed for another trigger: not valid here.
    expect((await hook(body, { 'X-Ensemble-Signature': sign(now, secret, 'other_trigger') })).status).toBe(401);
    const refused = await hook(body, { 'X-Ensemble-Signature': sign(now - 3600) });
    expect(refused.body.error).toMatchObject({ code: 'unauthorized', message: expect.stringContaining('stale') });
    expect((await e.server.call('GET', '/api/v1/runs?limit=500', { token: e.token })).body.data.length).toBe(runsBefore);

    const good = await hook(body, { 'X-Ensemble-Signature': sign(now) });
    expect(good.status).toBe(202);
    const run = await e.server.call('GET', `/api/v1/runs/${good.body.runs[0].run_id}`, { token: e.token });
    expect(run.body.input).toBe('hello');
  });

  it('POST /triggers/{trigger} starts every workflow bound to it; 404 for an unbound trigger', async () => {
    await e.workflow({ name: 'second-reviewer', trigger: 'pr_review', steps: [{ id: 'one', agent: 'gpt-coder' }] });
    const res = await e.server.call('POST', '/api/v1/triggers/pr_review', { token: e.token, body: { input: 'PR text', context: { pr: 7 } } });
    expect(res.status).toBe(202);
    expect(res.body.runs.map((r: any) => r.workflow).sort()).toEqual(['pr_review', 'second-reviewer']);
    expect((await e.server.call('POST', '/api/v1/triggers/nothing_bound', { token: e.token, body: {} })).status).toBe(404);
  });
});

describe('cost per end user', () => {
  it('group_by=user sums match the calls made for each user; a user budget stops that user only', async () => {
    await e.agent('per-user', 'groq', { config: { pricing: { input_per_million: 1000, output_per_million: 1000 }, max_tokens: 50 } });
    const calls: Array<[string, number]> = [['alice', 3], ['bob', 2]];
    for (const [user, count] of calls) {
      for (let i = 0; i < count; i++) expect((await e.server.call('POST', '/api/v1/agents/per-user/test', { token: e.token, body: { prompt: 'hi', user } })).status).toBe(200);
    }
    await e.workflow({ name: 'for-users', steps: [{ id: 'a', agent: 'per-user' }] });
    expect((await e.server.call('POST', '/api/v1/workflows/for-users/execute', { token: e.token, body: { input: 'x', user: 'alice' } })).body.status).toBe('completed');
    await e.server.call('POST', '/api/v1/chat/multi', { token: e.token, body: { message: 'x', agents: ['per-user'], user: 'bob' } });

    const report = (await e.server.call('GET', '/api/v1/usage?group_by=user', { token: e.token })).body;
    const byUser = Object.fromEntries(report.data.map((r: any) => [r.key, r]));
    expect(byUser.alice.requests).toBe(4);
    expect(byUser.bob.requests).toBe(3);
    expect(byUser.alice.cost_usd).toBeCloseTo(4 * 0.018, 9);
    const sum = report.data.reduce((n: number, r: any) => n + r.requests, 0);
    expect(sum).toBe(report.totals.requests);

    const set = await e.server.call('PUT', '/api/v1/users/alice/budget', { token: e.token, body: { limit_usd: 0.08, period: 'month' } });
    expect(set.status).toBe(200);
    const aliceAgain = await e.server.call('POST', '/api/v1/agents/per-user/test', { token: e.token, body: { prompt: 'hi', user: 'alice' } });
    expect(aliceAgain.status).toBe(402);
    expect(aliceAgain.body.error.details.scope).toBe('user alice');
    expect((await e.server.call('POST', '/api/v1/agents/per-user/test', { token: e.token, body: { prompt: 'hi', user: 'bob' } })).status).toBe(200);
    expect((await e.server.call('POST', '/api/v1/agents/per-user/test', { token: e.token, body: { prompt: 'hi' } })).status).toBe(200);
    expect((await e.server.call('GET', '/api/v1/users/alice/budget', { token: e.token })).body).toMatchObject({ user: 'alice', limit_usd: 0.08, period: 'month' });
    expect((await e.server.call('DELETE', '/api/v1/users/alice/budget', { token: e.token })).status).toBe(204);
    expect((await e.server.call('POST', '/api/v1/agents/per-user/test', { token: e.token, body: { prompt: 'hi', user: 'alice' } })).status).toBe(200);
  });
});
