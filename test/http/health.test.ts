import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/config/index.ts';
import { createHttpApp } from '../../src/http/index.ts';

function silentLogger() {
  return createLogger('info', new Writable({ write: (_chunk, _encoding, done) => done() }));
}

const app = createHttpApp({
  apps: {} as never,
  agents: {} as never,
  workflows: {} as never,
  runs: {} as never,
  chat: {} as never,
  governance: {} as never,
  triggers: {} as never,
  logger: silentLogger(),
  bodyLimitBytes: 1024 * 1024,
  health: { storage: () => 'sqlite', queue: () => 'local' },
});

describe('HTTP basics', () => {
  it('GET /api/v1/health answers without a token', async () => {
    const res = await app.request('/api/v1/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', version: expect.any(String), storage: 'sqlite', queue: 'local' });
    expect(res.headers.get('x-request-id')).toBeTruthy();
  });

  it("unknown routes answer 404 in the contract's error shape", async () => {
    const res = await app.request('/nothing-here', { method: 'POST' });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: expect.stringContaining('/nothing-here'), details: null } });
  });

  it('serves an OpenAPI 3.1 document that lists the health route', async () => {
    const res = await app.request('/api/v1/openapi.json');
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/api/v1/health');
  });
});
