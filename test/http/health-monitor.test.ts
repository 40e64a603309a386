/** The background monitor checks active agents on its interval and stores their health. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGroq } from '../fakes/openai.ts';
import type { FakeVendor } from '../fakes/harness.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

describe('background health monitoring', () => {
  let fake: FakeVendor;
  let server: TestServer;
  let dataDir: string;
  beforeAll(async () => {
    fake = await startFakeGroq({ apiKey: 'gsk_monitor_key_123456' });
    dataDir = mkdtempSync(join(tmpdir(), 'ensemble-monitor-'));
    server = await startTestServer({ dataDir, adminToken: 'admin-monitor-token-0123456789', masterKeys: `m:${Buffer.alloc(32, 3).toString('base64')}`, allowedPrivateHosts: [new URL(fake.url).host], healthIntervalMs: 1000, healthMonitor: true });
  });
  afterAll(async () => {
    await server.stop();
    await fake.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('marks a good agent healthy and a bad one unhealthy, and leaves inactive agents alone', async () => {
    const token = (await server.call('POST', '/api/v1/apps', { token: 'admin-monitor-token-0123456789', body: { name: 'mon' } })).body.token;
    const base = { provider: 'groq', model: 'llama-3.3-70b-versatile', config: { base_url: fake.baseUrl } };
    await server.call('POST', '/api/v1/agents', { token, body: { ...base, name: 'good', api_key: 'gsk_monitor_key_123456' } });
    await server.call('POST', '/api/v1/agents', { token, body: { ...base, name: 'bad', api_key: 'gsk_wrong_key_987654' } });
    await server.call('POST', '/api/v1/agents', { token, body: { ...base, name: 'off', api_key: 'gsk_monitor_key_123456', is_active: false } });
    const deadline = Date.now() + 10_000;
    let states: Record<string, string> = {};
    while (Date.now() < deadline) {
      const list = await server.call('GET', '/api/v1/agents', { token });
      states = Object.fromEntries(list.body.data.map((a: { name: string; health: { status: string } }) => [a.name, a.health.status]));
      if (states.good !== 'unknown' && states.bad !== 'unknown') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(states).toEqual({ good: 'healthy', bad: 'unhealthy', off: 'unknown' });
    const bad = await server.call('GET', '/api/v1/agents/bad', { token });
    expect(bad.body.health.error.code).toBe('auth_failed');
    expect(JSON.stringify(bad.body)).not.toContain('gsk_wrong_key_987654');
  });
});
