/** Limits that need time or several processes: a workflow step waiting for its rate limit, and one budget enforced by two servers. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from '../fakes/openai.ts';
import type { FakeVendor } from '../fakes/harness.ts';
import { estimateInputTokens, worstCaseCost } from '../../src/governance/index.ts';
import { startEnsemble, type Ensemble } from '../support/ensemble.ts';
import { createTestDatabase, HAS_POSTGRES, type TestDatabase } from '../support/postgres.ts';
import { spawnServer, type ServerProcess } from '../support/process.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('a workflow step over its rate limit', () => {
  let e: Ensemble;
  beforeAll(async () => {
    // A two-second window stands for the minute, so the wait is short.
    e = await startEnsemble({ rateLimitWindowSeconds: 2 });
    await e.agent('slowpoke', 'groq', { config: { rate_limit: { requests_per_minute: 2 } } });
  });
  afterAll(() => e.close());

  it('waits for its turn and then succeeds', async () => {
    await e.workflow({ name: 'three-calls', steps: [{ id: 's1', agent: 'slowpoke' }, { id: 's2', agent: 'slowpoke' }, { id: 's3', agent: 'slowpoke' }] });
    const before = e.fake('groq').generationRequests().length;
    const res = await e.server.call('POST', '/api/v1/workflows/three-calls/execute', { token: e.token, body: { input: 'go' } });
    expect(res.body.status).toBe('completed');
    expect(res.body.steps.map((s: any) => s.attempts)).toEqual([1, 1, 1]);
    const [first, , third] = e.fake('groq').generationRequests().slice(before);
    expect(third!.startedAt - first!.startedAt).toBeGreaterThanOrEqual(1500);
  });
});

describe.skipIf(!HAS_POSTGRES)('one budget, two server processes on PostgreSQL', () => {
  let fake: FakeVendor;
  let database: TestDatabase;
  let servers: ServerProcess[] = [];
  const dirs: string[] = [];
  const ADMIN = 'admin-token-two-procs-0123456789';

  beforeAll(async () => {
    fake = await startFakeOpenAI({ apiKey: 'two-procs-key-123456' });
    database = await createTestDatabase();
    const env = {
      DATABASE_URL: database.url,
      ENSEMBLE_ADMIN_TOKEN: ADMIN,
      ENSEMBLE_MASTER_KEYS: `tp:${Buffer.alloc(32, 4).toString('base64')}`,
      ENSEMBLE_ALLOWED_PRIVATE_HOSTS: new URL(fake.url).host,
    };
    for (let i = 0; i < 2; i++) {
      const dir = mkdtempSync(join(tmpdir(), 'ensemble-two-'));
      dirs.push(dir);
      servers.push(await spawnServer(['--data-dir', dir], env));
    }
  });
  afterAll(async () => {
    for (const server of servers) await server.stop();
    servers = [];
    await fake.close();
    await database.drop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('50 concurrent calls spread over both: at most 10 reach the vendor and spend stays within the limit', async () => {
    const call = async (url: string, method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
      return { status: res.status, body: (await res.json()) as any };
    };
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const token = (await call(a.url, 'POST', '/api/v1/apps', ADMIN, { name: 'shared' })).body.token;
    const pricing = { input_per_million: 1000, output_per_million: 1000 };
    const prompt = 'Shared budget?';
    const characters = prompt.length;
    const worst = worstCaseCost({ provider: 'openai', model: 'gpt-4.1-mini', pricing, promptCharacters: characters, maxTokens: 100 }).costUsd;
    const created = await call(a.url, 'POST', '/api/v1/agents', token, {
      name: 'shared-agent',
      provider: 'openai',
      model: 'gpt-4.1-mini',
      api_key: 'two-procs-key-123456',
      config: { base_url: fake.baseUrl, max_tokens: 100, pricing, budget: { limit_usd: worst * 10.5, period: 'total' }, max_retries: 0 },
    });
    expect(created.status).toBe(201);
    fake.setDefault({ usage: { input: estimateInputTokens(characters), output: 100 }, delayMs: 50 });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => call(i % 2 ? a.url : b.url, 'POST', '/api/v1/agents/shared-agent/test', token, { prompt })));
    const ok = results.filter((r) => r.status === 200).length;
    expect(ok).toBe(10);
    expect(results.filter((r) => r.status === 402)).toHaveLength(40);
    expect(fake.generationRequests()).toHaveLength(10);
    const usage = (await call(b.url, 'GET', '/api/v1/usage', token)).body;
    expect(usage.totals.requests).toBe(10);
    expect(usage.totals.cost_usd).toBeLessThanOrEqual(worst * 10.5);
  });
});
