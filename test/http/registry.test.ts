/**
 * Apps, tokens and the agent registry over HTTP, against both storage adapters, with the agents
 * pointed at the fake vendor servers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeVendor } from '../fakes/harness.ts';
import { header } from '../fakes/harness.ts';
import { VENDOR_CASES } from '../providers/vendors.ts';
import { createTestDatabase, HAS_POSTGRES } from '../support/postgres.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const ADMIN = 'admin-token-for-tests-0123456789';
const MASTER = `t1:${Buffer.alloc(32, 7).toString('base64')}`;

const engines: Array<'sqlite' | 'postgres'> = HAS_POSTGRES ? ['sqlite', 'postgres'] : ['sqlite'];

describe.each(engines)('registry over HTTP on %s', (engine) => {
  const fakes = new Map<string, FakeVendor>();
  let server: TestServer;
  let dataDir: string;
  let dropDb: (() => Promise<void>) | undefined;
  let tokenA: string;
  let tokenB: string;
  let appA: string;

  beforeAll(async () => {
    for (const vendor of VENDOR_CASES) fakes.set(vendor.provider, await vendor.start({ apiKey: `vendor-key-${vendor.provider}-AbC123xyz` }));
    dataDir = mkdtempSync(join(tmpdir(), 'ensemble-registry-'));
    let databaseUrl: string | undefined;
    if (engine === 'postgres') {
      const db = await createTestDatabase();
      databaseUrl = db.url;
      dropDb = db.drop;
    }
    server = await startTestServer({
      dataDir,
      databaseUrl,
      adminToken: ADMIN,
      masterKeys: MASTER,
      allowedPrivateHosts: [...fakes.values()].map((f) => new URL(f.url).host),
    });
    const a = await server.call('POST', '/api/v1/apps', { token: ADMIN, body: { name: 'team-a' } });
    const b = await server.call('POST', '/api/v1/apps', { token: ADMIN, body: { name: 'team-b' } });
    expect(a.status).toBe(201);
    tokenA = a.body.token;
    tokenB = b.body.token;
    appA = a.body.id;
  });

  afterAll(async () => {
    await server?.stop();
    for (const fake of fakes.values()) await fake.close();
    await dropDb?.();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const agentBody = (name: string, provider = 'anthropic', extra: Record<string, unknown> = {}) => {
    const vendor = VENDOR_CASES.find((v) => v.provider === provider)!;
    return {
      name,
      provider,
      model: vendor.model,
      api_key: `vendor-key-${provider}-AbC123xyz`,
      role: 'reviewer',
      system_prompt: 'You review code.',
      config: { temperature: 0.2, max_tokens: 256, base_url: fakes.get(provider)!.baseUrl },
      ...extra,
    };
  };

  describe('apps and tokens', () => {
    it('answers 401 for a missing, unknown or revoked token', async () => {
      expect((await server.call('GET', '/api/v1/agents')).status).toBe(401);
      const bad = await server.call('GET', '/api/v1/agents', { token: 'ens_not-a-real-token' });
      expect(bad.status).toBe(401);
      expect(bad.body.error.code).toBe('unauthorized');

      const created = await server.call('POST', `/api/v1/apps/${appA}/tokens`, { token: ADMIN, body: { name: 'ci' } });
      expect(created.status).toBe(201);
      expect(created.body.token).toMatch(/^ens_[A-Za-z0-9_-]{43}$/);
      expect((await server.call('GET', '/api/v1/agents', { token: created.body.token })).status).toBe(200);
      const revoked = await server.call('DELETE', `/api/v1/apps/${appA}/tokens/${created.body.id}`, { token: ADMIN });
      expect(revoked.status).toBe(204);
      expect((await server.call('GET', '/api/v1/agents', { token: created.body.token })).status).toBe(401);
    });

    it('keeps admin routes and app routes apart (403)', async () => {
      expect((await server.call('GET', '/api/v1/apps', { token: tokenA })).status).toBe(403);
      expect((await server.call('GET', '/api/v1/agents', { token: ADMIN })).status).toBe(403);
      const list = await server.call('GET', '/api/v1/apps', { token: ADMIN });
      expect(list.body.data.map((a: { name: string }) => a.name)).toEqual(expect.arrayContaining(['team-a', 'team-b']));
      expect(JSON.stringify(list.body)).not.toContain('token');
    });

    it('refuses a duplicate app name and an unknown app', async () => {
      expect((await server.call('POST', '/api/v1/apps', { token: ADMIN, body: { name: 'team-a' } })).status).toBe(409);
      expect((await server.call('POST', '/api/v1/apps/00000000-0000-4000-8000-000000000000/tokens', { token: ADMIN, body: {} })).status).toBe(404);
    });
  });

  describe('agents', () => {
    it('round-trips create, get by id and name, list with filters, patch and delete', async () => {
      const created = await server.call('POST', '/api/v1/agents', { token: tokenA, body: agentBody('crud-agent') });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({
        app_id: appA,
        name: 'crud-agent',
        provider: 'anthropic',
        role: 'reviewer',
        is_active: true,
        api_key_set: true,
        api_key_hint: '…3xyz',
        health: { status: 'unknown' },
      });
      expect(JSON.stringify(created.body)).not.toContain('vendor-key-anthropic');
      const id = created.body.id;

      expect((await server.call('GET', `/api/v1/agents/${id}`, { token: tokenA })).body.name).toBe('crud-agent');
      expect((await server.call('GET', '/api/v1/agents/crud-agent', { token: tokenA })).body.id).toBe(id);

      await server.call('POST', '/api/v1/agents', { token: tokenA, body: agentBody('crud-coder', 'openai', { role: 'coder', is_active: false }) });
      const coders = await server.call('GET', '/api/v1/agents?role=coder', { token: tokenA });
      expect(coders.body.data.map((a: { name: string }) => a.name)).toEqual(['crud-coder']);
      const inactive = await server.call('GET', '/api/v1/agents?is_active=false', { token: tokenA });
      expect(inactive.body.data.map((a: { name: string }) => a.name)).toEqual(['crud-coder']);
      const byProvider = await server.call('GET', '/api/v1/agents?provider=anthropic', { token: tokenA });
      expect(byProvider.body.data.map((a: { name: string }) => a.name)).toContain('crud-agent');

      const patched = await server.call('PATCH', '/api/v1/agents/crud-agent', { token: tokenA, body: { role: 'leader', config: { temperature: 0.7, max_tokens: null } } });
      expect(patched.status).toBe(200);
      expect(patched.body.role).toBe('leader');
      expect(patched.body.config).toEqual({ temperature: 0.7, base_url: fakes.get('anthropic')!.baseUrl });
      expect(patched.body.updated_at >= created.body.updated_at).toBe(true);

      expect((await server.call('DELETE', `/api/v1/agents/${id}`, { token: tokenA })).status).toBe(204);
      expect((await server.call('GET', `/api/v1/agents/${id}`, { token: tokenA })).status).toBe(404);
    });

    it("answers 404 for another app's agent on get, patch, delete, test and health", async () => {
      const created = await server.call('POST', '/api/v1/agents', { token: tokenA, body: agentBody('private-agent') });
      const id = created.body.id;
      for (const ref of [id, 'private-agent']) {
        expect((await server.call('GET', `/api/v1/agents/${ref}`, { token: tokenB })).status).toBe(404);
        expect((await server.call('PATCH', `/api/v1/agents/${ref}`, { token: tokenB, body: { role: 'x' } })).status).toBe(404);
        expect((await server.call('POST', `/api/v1/agents/${ref}/test`, { token: tokenB, body: { prompt: 'hi' } })).status).toBe(404);
        expect((await server.call('GET', `/api/v1/agents/${ref}/health`, { token: tokenB })).status).toBe(404);
        expect((await server.call('DELETE', `/api/v1/agents/${ref}`, { token: tokenB })).status).toBe(404);
      }
      expect((await server.call('GET', '/api/v1/agents', { token: tokenB })).body.data).toEqual([]);
      expect((await server.call('GET', `/api/v1/agents/${id}`, { token: tokenA })).status).toBe(200);
    });

    it('answers 409 for a duplicate name in the app, and allows it in another app', async () => {
      expect((await server.call('POST', '/api/v1/agents', { token: tokenA, body: agentBody('dup') })).status).toBe(201);
      const again = await server.call('POST', '/api/v1/agents', { token: tokenA, body: agentBody('dup') });
      expect(again.status).toBe(409);
      expect(again.body.error.code).toBe('conflict');
      expect((await server.call('POST', '/api/v1/agents', { token: tokenB, body: agentBody('dup') })).status).toBe(201);
    });

    it.each([
      ['an unknown provider', { provider: 'watson' }, 'provider'],
      ['a missing key', { api_key: undefined }, 'api_key'],
      ['a malformed config', { config: { temprature: 0.2 } }, 'config'],
      ['an out-of-range temperature', { config: { temperature: 7 } }, 'config.temperature'],
      ['a bad name', { name: 'Bad Name!' }, 'name'],
      ['a private base_url', { config: { base_url: 'http://10.1.2.3:8000/v1' } }, 'config.base_url'],
      ['a loopback base_url not allowed', { config: { base_url: 'http://127.0.0.1:1/v1' } }, 'config.base_url'],
    ])('answers 400 with the field path for %s', async (_label, override, path) => {
      const body = { ...agentBody('bad-input'), ...override } as Record<string, unknown>;
      if ('api_key' in override && override.api_key === undefined) delete body.api_key;
      const res = await server.call('POST', '/api/v1/agents', { token: tokenA, body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_request');
      expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    });

    it('answers malformed JSON, wrong content type, oversized bodies and unknown routes in the contract shape', async () => {
      const malformed = await server.call('POST', '/api/v1/agents', { token: tokenA, rawBody: '{"name": ', headers: { 'content-type': 'application/json' } });
      expect(malformed.status).toBe(400);
      expect(malformed.body.error.code).toBe('invalid_request');
      const wrongType = await server.call('POST', '/api/v1/agents', { token: tokenA, rawBody: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(wrongType.status).toBe(415);
      expect(wrongType.body.error.code).toBe('unsupported_media_type');
      const huge = await server.call('POST', '/api/v1/agents', { token: tokenA, body: { ...agentBody('huge'), system_prompt: 'x'.repeat(1_100_000) } });
      expect(huge.status).toBe(413);
      expect(huge.body.error.code).toBe('payload_too_large');
      const unknown = await server.call('GET', '/api/v1/no-such-thing', { token: tokenA });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.code).toBe('not_found');
      // The server is still up.
      expect((await server.call('GET', '/api/v1/health')).body).toMatchObject({ status: 'ok', storage: engine });
    });

    it.each(VENDOR_CASES.map((v) => v.provider))('POST /agents/{id}/test returns output, usage and latency for %s', async (provider) => {
      const fake = fakes.get(provider)!;
      fake.enqueue({ text: `${provider} is working`, usage: { input: 12, output: 5 } });
      const created = await server.call('POST', '/api/v1/agents', { token: tokenA, body: agentBody(`test-${provider}`, provider) });
      expect(created.status).toBe(201);
      const res = await server.call('POST', `/api/v1/agents/test-${provider}/test`, { token: tokenA, body: { prompt: 'Hello, are you working?' } });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ ok: true, output: `${provider} is working`, usage: { input_tokens: 12, output_tokens: 5, total_tokens: 17 } });
      expect(res.body.latency_ms).toBeGreaterThanOrEqual(0);
      const health = await server.call('GET', `/api/v1/agents/test-${provider}/health`, { token: tokenA });
      expect(health.body.status).toBe('healthy');
      expect((await server.call('GET', `/api/v1/agents/test-${provider}`, { token: tokenA })).body.health.status).toBe('healthy');
    });

    it('a provider failure is ok=false with the code, and never the key', async () => {
      await server.call('POST', '/api/v1/agents', { token: tokenA, body: agentBody('wrong-key', 'openai', { api_key: 'sk-wrong-key-ZZZ999888777' }) });
      const res = await server.call('POST', '/api/v1/agents/wrong-key/test', { token: tokenA, body: { prompt: 'hi' } });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ ok: false, error: { code: 'auth_failed', status: 401 } });
      expect(JSON.stringify(res.body)).not.toContain('ZZZ999888777');
    });

    it('PATCH api_key rotates the key: the next call carries the new one', async () => {
      const fake = fakes.get('groq')!;
      await server.call('POST', '/api/v1/agents', { token: tokenA, body: agentBody('rotating', 'groq', { api_key: 'gsk_oldkeyOLDKEY0001' }) });
      await server.call('POST', '/api/v1/agents/rotating/test', { token: tokenA, body: { prompt: 'one' } });
      expect(header(fake.generationRequests().at(-1)!, 'authorization')).toBe('Bearer gsk_oldkeyOLDKEY0001');
      const patched = await server.call('PATCH', '/api/v1/agents/rotating', { token: tokenA, body: { api_key: 'vendor-key-groq-AbC123xyz' } });
      expect(patched.body.api_key_hint).toBe('…3xyz');
      const res = await server.call('POST', '/api/v1/agents/rotating/test', { token: tokenA, body: { prompt: 'two' } });
      expect(res.body.ok).toBe(true);
      expect(header(fake.generationRequests().at(-1)!, 'authorization')).toBe('Bearer vendor-key-groq-AbC123xyz');
      const audit = await server.service.storage.audit.list(appA, { limit: 50, action: 'agent.key_rotate' });
      expect(audit.some((e) => e.details.name === 'rotating')).toBe(true);
    });

    it('writes audit entries for every change, without keys', async () => {
      await server.call('POST', '/api/v1/agents', { token: tokenA, body: agentBody('audited') });
      await server.call('PATCH', '/api/v1/agents/audited', { token: tokenA, body: { model: 'claude-opus-4' } });
      await server.call('DELETE', '/api/v1/agents/audited', { token: tokenA });
      const entries = await server.service.storage.audit.list(appA, { limit: 200 });
      const mine = entries.filter((e) => e.details.name === 'audited').map((e) => e.action);
      expect(mine).toEqual(['agent.delete', 'agent.update', 'agent.create']);
      const all = JSON.stringify(entries);
      expect(all).not.toContain('vendor-key-');
      expect(entries.find((e) => e.action === 'agent.create')?.actor).toMatch(/^token:/);
      expect(entries.some((e) => e.action === 'app.create')).toBe(true);
      expect(entries.some((e) => e.action === 'token.revoke')).toBe(true);
    });
  });
});

describe('a stored key is not sent to a new endpoint', () => {
  it('changing provider or base_url needs the api_key again', async () => {
    const { startEnsemble } = await import('../support/ensemble.ts');
    const e = await startEnsemble();
    try {
      await e.agent('moving', 'openai');
      const moved = await e.server.call('PATCH', '/api/v1/agents/moving', { token: e.token, body: { config: { base_url: 'https://api.example.com/v1' } } });
      expect(moved.status).toBe(400);
      expect(moved.body.error.details[0].path).toBe('api_key');
      const switched = await e.server.call('PATCH', '/api/v1/agents/moving', { token: e.token, body: { provider: 'groq' } });
      expect(switched.status).toBe(400);
      const fine = await e.server.call('PATCH', '/api/v1/agents/moving', { token: e.token, body: { role: 'other' } });
      expect(fine.status).toBe(200);
    } finally {
      await e.close();
    }
  });
});
