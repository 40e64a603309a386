/**
 * Cluster mode for real: one API process and two worker processes on the local PostgreSQL and
 * Redis. Fails (not skips) under CI=true when either is unreachable.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI, type OpenAIFamilyFake } from '../fakes/openai.ts';
import { readEvents } from '../support/ensemble.ts';
import { createTestDatabase, HAS_POSTGRES, type TestDatabase } from '../support/postgres.ts';
import { spawnServer, type ServerProcess } from '../support/process.ts';
import { freshRedisDb, HAS_REDIS } from '../support/redis.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const ADMIN = 'admin-token-cluster-0123456789';
const RUNS = 200;

interface Cluster {
  api: ServerProcess;
  workers: ServerProcess[];
  token: string;
  env: Record<string, string>;
  dirs: string[];
}

async function call(url: string, method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  return { status: res.status, body: (await res.json()) as any };
}

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function startCluster(fake: OpenAIFamilyFake, database: TestDatabase, redisUrl: string, workerRedisUrl = redisUrl, apiRedisUrl = redisUrl): Promise<Cluster> {
  const dirs = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'ensemble-cluster-')));
  const env = {
    DATABASE_URL: database.url,
    ENSEMBLE_ADMIN_TOKEN: ADMIN,
    ENSEMBLE_MASTER_KEYS: `cl:${Buffer.alloc(32, 8).toString('base64')}`,
    ENSEMBLE_ALLOWED_PRIVATE_HOSTS: new URL(fake.url).host,
    ENSEMBLE_QUEUE_LOCK_MS: '3000',
    ENSEMBLE_QUEUE_STALLED_INTERVAL_MS: '1000',
    ENSEMBLE_LEASE_TTL_MS: '3000',
    ENSEMBLE_RECONCILE_INTERVAL_MS: '1000',
    ENSEMBLE_WORKER_CONCURRENCY: '40',
  };
  const api = await spawnServer(['--role', 'api', '--data-dir', dirs[0]!], { ...env, REDIS_URL: apiRedisUrl });
  const workers = [await spawnServer(['--data-dir', dirs[1]!], { ...env, REDIS_URL: workerRedisUrl }, { worker: true }), await spawnServer(['--data-dir', dirs[2]!], { ...env, REDIS_URL: workerRedisUrl }, { worker: true })];
  const token = (await call(api.url, 'POST', '/api/v1/apps', ADMIN, { name: 'cluster' })).body.token;
  const agent = await call(api.url, 'POST', '/api/v1/agents', token, { name: 'worker-agent', provider: 'openai', model: 'gpt-4.1-mini', api_key: 'cluster-key-123456', config: { base_url: fake.baseUrl, max_retries: 0 } });
  expect(agent.status).toBe(201);
  const workflow = await call(api.url, 'POST', '/api/v1/workflows', token, { name: 'two-steps', steps: [{ id: 'a', agent: 'worker-agent', prompt: 'A {{input}}' }, { id: 'b', agent: 'worker-agent', prompt: 'B {{input}} after {{a}}' }] });
  expect(workflow.status).toBe(201);
  return { api, workers, token, env, dirs };
}

async function stopCluster(cluster: Cluster | undefined): Promise<void> {
  if (!cluster) return;
  for (const process of [cluster.api, ...cluster.workers]) if (process.child.exitCode === null) await process.stop();
  for (const dir of cluster.dirs) rmSync(dir, { recursive: true, force: true });
}

/** `run-<i>:<step>` of every step stored as completed right now. */
async function completedStepsNow(databaseUrl: string, runIds: string[]): Promise<Set<string>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ input: string; step_id: string }>(
      "select r.input, s.step_id from run_steps s join runs r on r.id = s.run_id where s.status = 'completed' and r.id = any($1)",
      [runIds],
    );
    return new Set(rows.map((row) => `${row.input}:${row.step_id}`));
  } finally {
    await client.end();
  }
}

function promptText(body: any): string {
  return JSON.stringify(body.input ?? body.messages);
}

describe.skipIf(!HAS_POSTGRES || !HAS_REDIS)('cluster mode', () => {
  let fake: OpenAIFamilyFake;
  let database: TestDatabase;
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    fake = await startFakeOpenAI({ apiKey: 'cluster-key-123456' });
    database = await createTestDatabase();
    cluster = await startCluster(fake, database, await freshRedisDb(7));
  }, 60_000);
  afterAll(async () => {
    await stopCluster(cluster);
    await fake.close();
    await database.drop();
  }, 60_000);

  it('runs 200 workflows on two workers; one worker SIGKILLed mid-way; every run completes; no completed step is called again', async () => {
    const { api, token, workers } = cluster!;
    fake.setDefault({ delayMs: 150 });
    const started = await Promise.all(Array.from({ length: RUNS }, (_, i) => call(api.url, 'POST', '/api/v1/workflows/two-steps/execute', token, { input: `run-${i}`, async: true })));
    expect(started.every((r) => r.status === 202)).toBe(true);
    await until(async () => (fake.generationRequests().length >= 120 ? true : undefined), 60_000, 'calls in flight');
    await workers[0]!.kill();
    // What was stored when the worker died: those steps must never be asked of the vendor again.
    const stored = await completedStepsNow(database.url, started.map((r) => r.body.run_id));

    const finished = await until(
      async () => {
        const page = await call(api.url, 'GET', `/api/v1/runs?limit=500`, token);
        const done = page.body.data.filter((r: any) => ['completed', 'failed', 'partial', 'cancelled'].includes(r.status));
        return done.length === RUNS ? page.body.data : undefined;
      },
      90_000,
      'every run to finish',
    );
    expect(finished.every((r: any) => r.status === 'completed')).toBe(true);
    const sample = await call(api.url, 'GET', `/api/v1/runs/${started[7]!.body.run_id}`, token);
    expect(sample.body.outputs.b).toBeTypeOf('string');

    const byStep = new Map<string, number>();
    for (const request of fake.generationRequests()) {
      const match = promptText(request.body).match(/(A|B) (run-\d+)/);
      if (!match) continue;
      const key = `${match[2]}:${match[1]!.toLowerCase()}`;
      byStep.set(key, (byStep.get(key) ?? 0) + 1);
    }
    expect(byStep.size).toBe(RUNS * 2);
    expect(stored.size).toBeGreaterThan(0);
    for (const key of stored) expect(byStep.get(key), key).toBe(1);
    // Steps in flight on the killed worker were retried by the other one.
    const retried = [...byStep.values()].filter((count) => count > 1).length;
    expect(retried).toBeGreaterThan(0);
  }, 150_000);

  it('a client streaming from the API process receives every delta of a run executed by a worker', async () => {
    const { api, token } = cluster!;
    fake.setDefault({});
    fake.enqueue({ chunks: ['w1 ', 'w2 ', 'w3 ', 'w4'], chunkDelayMs: 50 }, { chunks: ['x1 ', 'x2'], chunkDelayMs: 50 });
    const res = await fetch(`${api.url}/api/v1/workflows/two-steps/execute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'streamed', stream: true }),
    });
    const events = await readEvents(res);
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.event === 'step.delta' && e.data.step_id === 'a').map((e) => e.data.text).join('')).toBe('w1 w2 w3 w4');
    expect(events.filter((e) => e.event === 'step.delta' && e.data.step_id === 'b').map((e) => e.data.text).join('')).toBe('x1 x2');
    expect(events.at(-1)!.event).toBe('run.completed');
  });
});

describe.skipIf(!HAS_POSTGRES || !HAS_REDIS)('cluster mode without Redis for a while', () => {
  let fake: OpenAIFamilyFake;
  let database: TestDatabase;
  let proxy: TcpProxy;
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    fake = await startFakeOpenAI({ apiKey: 'cluster-key-123456' });
    database = await createTestDatabase();
    const redisUrl = await freshRedisDb(8);
    proxy = await startTcpProxy('127.0.0.1', 6379);
    const proxied = `redis://127.0.0.1:${proxy.port}/8`;
    cluster = await startCluster(fake, database, redisUrl, proxied, proxied);
  }, 60_000);
  afterAll(async () => {
    await proxy.restore();
    await stopCluster(cluster);
    await proxy.close();
    await fake.close();
    await database.drop();
  }, 60_000);

  it('runs pause while Redis is away, health says so, and they resume when it is back', async () => {
    const { api, token } = cluster!;
    await proxy.cut();
    await until(async () => ((await fetch(`${api.url}/api/v1/health`)).status === 503 ? true : undefined), 10_000, 'health to report Redis down');
    const health = (await (await fetch(`${api.url}/api/v1/health`)).json()) as any;
    expect(health).toMatchObject({ status: 'degraded', dependencies: { storage: 'up', redis: 'down' } });

    const before = fake.generationRequests().length;
    const started = await Promise.all(Array.from({ length: 5 }, (_, i) => call(api.url, 'POST', '/api/v1/workflows/two-steps/execute', token, { input: `outage-${i}`, async: true })));
    expect(started.every((r) => r.status === 202)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(fake.generationRequests().length).toBe(before);
    const paused = await call(api.url, 'GET', `/api/v1/runs/${started[0]!.body.run_id}`, token);
    expect(paused.body.status).toBe('queued');

    await proxy.restore();
    for (const run of started) {
      const done = await until(
        async () => {
          const r = await call(api.url, 'GET', `/api/v1/runs/${run.body.run_id}`, token);
          return ['completed', 'failed'].includes(r.body.status) ? r.body : undefined;
        },
        30_000,
        'the run to resume',
      );
      expect(done.status).toBe('completed');
    }
    expect((await fetch(`${api.url}/api/v1/health`)).status).toBe(200);
  }, 90_000);
});
