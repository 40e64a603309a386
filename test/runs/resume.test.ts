/** A server killed (SIGKILL) in the middle of a run resumes it on restart without calling completed steps again. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from '../fakes/anthropic.ts';
import { startFakeGemini } from '../fakes/gemini.ts';
import type { FakeVendor } from '../fakes/harness.ts';
import { spawnServer } from '../support/process.ts';

const ADMIN = 'admin-token-resume-0123456789';
let anthropic: FakeVendor;
let gemini: FakeVendor;
let dataDir: string;

beforeAll(async () => {
  anthropic = await startFakeAnthropic({ apiKey: 'resume-anthropic-key-1' });
  gemini = await startFakeGemini({ apiKey: 'resume-gemini-key-1' });
  dataDir = mkdtempSync(join(tmpdir(), 'ensemble-resume-'));
});
afterAll(async () => {
  await anthropic.close();
  await gemini.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(url: string, method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as any };
}

describe('crash and restart', () => {
  it('resumes a run killed in its second step; the first step is called exactly once', async () => {
    const env = {
      ENSEMBLE_ADMIN_TOKEN: ADMIN,
      ENSEMBLE_MASTER_KEYS: `r1:${Buffer.alloc(32, 5).toString('base64')}`,
      ENSEMBLE_ALLOWED_PRIVATE_HOSTS: [anthropic.url, gemini.url].map((u) => new URL(u).host).join(','),
    };
    const first = await spawnServer(['--data-dir', dataDir], env);
    const token = (await call(first.url, 'POST', '/api/v1/apps', ADMIN, { name: 'resume' })).body.token;
    for (const [name, provider, model, key, fake] of [
      ['claude-one', 'anthropic', 'claude-sonnet-4-5', 'resume-anthropic-key-1', anthropic],
      ['gemini-two', 'gemini', 'gemini-2.5-flash', 'resume-gemini-key-1', gemini],
    ] as const) {
      const created = await call(first.url, 'POST', '/api/v1/agents', token, { name, provider, model, api_key: key, config: { base_url: fake.baseUrl, max_retries: 0 } });
      expect(created.status).toBe(201);
    }
    expect((await call(first.url, 'POST', '/api/v1/workflows', token, { name: 'two-steps', steps: [{ id: 'one', agent: 'claude-one' }, { id: 'two', agent: 'gemini-two' }] })).status).toBe(201);

    anthropic.enqueue({ text: 'first step done' });
    gemini.enqueue({ delayMs: 60_000 }, { text: 'second step done' });
    const started = await call(first.url, 'POST', '/api/v1/workflows/two-steps/execute', token, { input: 'go', async: true });
    expect(started.status).toBe(202);
    const deadline = Date.now() + 10_000;
    while (gemini.generationRequests().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(gemini.generationRequests()).toHaveLength(1);
    await first.kill();

    const second = await spawnServer(['--data-dir', dataDir], env);
    try {
      let run: any;
      while (Date.now() < deadline + 10_000) {
        run = (await call(second.url, 'GET', `/api/v1/runs/${started.body.run_id}`, token)).body;
        if (['completed', 'failed', 'partial', 'cancelled'].includes(run.status)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(run.status).toBe('completed');
      expect(run.output).toBe('second step done');
      expect(run.outputs.one).toBe('first step done');
      expect(anthropic.generationRequests()).toHaveLength(1);
      expect(gemini.generationRequests()).toHaveLength(2);
      expect(run.steps.find((s: any) => s.step_id === 'two').attempts).toBe(2);
      expect(second.output()).toContain('resuming unfinished runs');
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});
