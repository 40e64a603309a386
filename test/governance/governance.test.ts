/** Budgets, rate limits, usage analytics and the audit log, over HTTP against the fake vendors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { estimateInputTokens, worstCaseCost } from '../../src/governance/index.ts';
import { ADMIN_TOKEN, startEnsemble, type Ensemble } from '../support/ensemble.ts';

let e: Ensemble;
beforeAll(async () => {
  e = await startEnsemble();
});
afterAll(() => e.close());

const PRICING = { input_per_million: 1000, output_per_million: 1000 };
const PROMPT = 'Is the budget respected?';

/** The worst case the server reserves for one /test call of an agent named `name`. */
function reservationFor(name: string, maxTokens: number) {
  const characters = PROMPT.length + `You are ${name}.`.length;
  return { worst: worstCaseCost({ provider: 'openai', model: 'gpt-4.1-mini', pricing: PRICING, promptCharacters: characters, maxTokens }).costUsd, input: estimateInputTokens(characters) };
}

describe('hard budgets', () => {
  it('50 concurrent calls against a budget of exactly 10 worst-case calls: at most 10 reach the vendor, the rest get 402', async () => {
    const { worst, input } = reservationFor('budgeted', 100);
    await e.agent('budgeted', 'openai', { config: { max_tokens: 100, pricing: PRICING, budget: { limit_usd: worst * 10.5, period: 'total' } } });
    // Each call costs exactly its worst case, so no settlement frees room for an eleventh.
    e.fake('openai').setDefault({ usage: { input, output: 100 }, delayMs: 30 });
    const before = e.fake('openai').generationRequests().length;
    const results = await Promise.all(
      Array.from({ length: 50 }, () => e.server.call('POST', '/api/v1/agents/budgeted/test', { token: e.token, body: { prompt: PROMPT } })),
    );
    e.fake('openai').setDefault({});
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 402)).toHaveLength(40);
    expect(e.fake('openai').generationRequests().length - before).toBe(10);
    const refused = results.find((r) => r.status === 402)!;
    expect(refused.body.error).toMatchObject({ code: 'budget_exceeded', details: { scope: 'agent budgeted', period: 'total' } });
    const agent = (await e.server.call('GET', '/api/v1/agents/budgeted', { token: e.token })).body;
    const ledger = await e.server.service.storage.budgets.ledger(`agent:${agent.id}`, 'total');
    expect(ledger.reservedNano).toBe(0);
    expect(ledger.spentNano / 1e9).toBeLessThanOrEqual(worst * 10.5);
    expect(ledger.spentNano / 1e9).toBeCloseTo(worst * 10, 9);
  });

  it('a workflow budget refuses the step before the vendor is called', async () => {
    await e.agent('wf-budget-agent', 'gemini', { config: { pricing: PRICING, max_tokens: 1000 } });
    await e.workflow({ name: 'cheap', budget: { limit_usd: 0.0001, period: 'day' }, steps: [{ id: 'only', agent: 'wf-budget-agent' }] });
    const before = e.fake('gemini').generationRequests().length;
    const res = await e.server.call('POST', '/api/v1/workflows/cheap/execute', { token: e.token, body: { input: 'x' } });
    expect(res.body.status).toBe('failed');
    expect(res.body.steps[0].error.code).toBe('budget_exceeded');
    expect(e.fake('gemini').generationRequests().length).toBe(before);
  });

  it('an app budget set by the admin applies to every agent of the app', async () => {
    const apps = (await e.server.call('GET', '/api/v1/apps', { token: ADMIN_TOKEN })).body.data;
    const appId = apps.find((a: any) => a.name === 'e2e').id;
    await e.agent('app-budget-agent', 'groq', { config: { pricing: PRICING, max_tokens: 10 } });
    const patched = await e.server.call('PATCH', `/api/v1/apps/${appId}`, { token: ADMIN_TOKEN, body: { settings: { budget: { limit_usd: 0.000001, period: 'month' } } } });
    expect(patched.status).toBe(200);
    const res = await e.server.call('POST', '/api/v1/agents/app-budget-agent/test', { token: e.token, body: { prompt: 'x' } });
    expect(res.status).toBe(402);
    expect(res.body.error.details.scope).toBe('app');
    await e.server.call('PATCH', `/api/v1/apps/${appId}`, { token: ADMIN_TOKEN, body: { settings: { budget: { limit_usd: 1_000_000, period: 'month' } } } });
  });
});

describe('rate limits', () => {
  it('requests_per_minute 2: the third direct call gets 429 with Retry-After', async () => {
    await e.agent('limited', 'anthropic', { config: { rate_limit: { requests_per_minute: 2 } } });
    const call = () => e.server.call('POST', '/api/v1/agents/limited/test', { token: e.token, body: { prompt: 'hi' } });
    expect((await call()).status).toBe(200);
    expect((await call()).status).toBe(200);
    const third = await call();
    expect(third.status).toBe(429);
    expect(third.body.error.code).toBe('rate_limited');
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('a per-token limit set by the admin answers 429 on any route', async () => {
    const created = await e.server.call('POST', '/api/v1/apps', { token: ADMIN_TOKEN, body: { name: 'throttled' } });
    await e.server.call('PATCH', `/api/v1/apps/${created.body.id}`, { token: ADMIN_TOKEN, body: { settings: { rate_limit: { requests_per_minute: 3 } } } });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await e.server.call('GET', '/api/v1/agents', { token: created.body.token })).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});

describe('usage and audit', () => {
  it('/usage groupings sum to the totals', async () => {
    for (const by of ['agent', 'provider', 'model', 'day', 'agent,day', 'provider,model']) {
      const report = (await e.server.call('GET', `/api/v1/usage?group_by=${by}`, { token: e.token })).body;
      expect(report.totals.requests).toBeGreaterThan(10);
      for (const field of ['requests', 'errors', 'input_tokens', 'output_tokens', 'cost_usd']) {
        const sum = report.data.reduce((n: number, row: any) => n + row[field], 0);
        expect(sum).toBeCloseTo(report.totals[field], 9);
      }
      expect(report.data.every((row: any) => row.key.split(',').length === by.split(',').length)).toBe(true);
    }
    const budgeted = (await e.server.call('GET', '/api/v1/usage?group_by=agent', { token: e.token })).body.data.find((r: any) => r.key === 'budgeted');
    expect(budgeted.requests).toBe(10);
    const future = (await e.server.call('GET', '/api/v1/usage?from=2999-01-01', { token: e.token })).body;
    expect(future.totals.requests).toBe(0);
    expect((await e.server.call('GET', '/api/v1/usage?group_by=color', { token: e.token })).status).toBe(400);
  });

  it('each call of a workflow run has its agent.invoke entry with tokens and cost; the run shows its cost', async () => {
    await e.agent('audited-a', 'openai', { config: { pricing: PRICING } });
    await e.agent('audited-b', 'gemini', { config: { pricing: PRICING } });
    await e.workflow({ name: 'audited', steps: [{ id: 'a', agent: 'audited-a' }, { id: 'b', agent: 'audited-b' }] });
    e.fake('openai').enqueue({ usage: { input: 100, output: 50 } });
    e.fake('gemini').enqueue({ usage: { input: 30, output: 20 } });
    const run = (await e.server.call('POST', '/api/v1/workflows/audited/execute', { token: e.token, body: { input: 'x' } })).body;
    expect(run.status).toBe('completed');
    expect(run.cost_usd).toBeCloseTo(0.2, 9);
    expect(run.steps.map((s: any) => s.cost_usd)).toEqual([0.15, 0.05]);
    const entries = (await e.server.call('GET', '/api/v1/audit?action=agent.invoke&limit=1000', { token: e.token })).body.data.filter((x: any) => x.details.run_id === run.run_id);
    expect(entries).toHaveLength(2);
    const byAgent = Object.fromEntries(entries.map((x: any) => [x.details.agent, x]));
    expect(byAgent['audited-a']).toMatchObject({ action: 'agent.invoke', outcome: 'success', target_type: 'agent', details: { model: 'gpt-4.1-mini', usage: { input_tokens: 100, output_tokens: 50 }, cost_usd: 0.15, step_id: 'a' } });
    expect(byAgent['audited-b'].details.cost_usd).toBeCloseTo(0.05, 9);
    expect(byAgent['audited-a'].details.latency_ms).toBeGreaterThanOrEqual(0);
    expect(byAgent['audited-a'].details.prompt).toBeUndefined();
    const perRun = (await e.server.call('GET', `/api/v1/runs/${run.run_id}`, { token: e.token })).body;
    expect(perRun.cost_usd).toBeCloseTo(0.2, 9);
  });

  it('failed and refused calls are audited too, and the audit log pages backwards', async () => {
    const refused = (await e.server.call('GET', '/api/v1/audit?action=agent.invoke&limit=1000', { token: e.token })).body.data.filter((x: any) => x.outcome === 'denied');
    expect(refused.some((x: any) => x.details.reason === 'budget_exceeded')).toBe(true);
    expect(refused.some((x: any) => x.details.reason === 'rate_limited')).toBe(true);
    const first = (await e.server.call('GET', '/api/v1/audit?limit=3', { token: e.token })).body.data;
    const next = (await e.server.call('GET', `/api/v1/audit?limit=3&before=${first[2].id}`, { token: e.token })).body.data;
    expect(next[0].at <= first[2].at).toBe(true);
    expect(new Set([...first, ...next].map((x: any) => x.id)).size).toBe(6);
    expect((await e.server.call('DELETE', `/api/v1/audit/${first[0].id}`, { token: e.token })).status).toBe(404);
  });
});
