/** The OpenAI-compatible endpoint's model list, its key check and its errors in OpenAI's shape. */
import OpenAI, { AuthenticationError, BadRequestError, NotFoundError, PermissionDeniedError, RateLimitError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, startEnsemble, type Ensemble } from '../support/ensemble.ts';

let e: Ensemble;
let client: OpenAI;

beforeAll(async () => {
  e = await startEnsemble();
  await e.agent('gpt-coder', 'openai');
  await e.agent('claude-lead', 'anthropic');
  await e.agent('retired', 'gemini', { is_active: false });
  await e.workflow({ name: 'review', steps: [{ agent: 'gpt-coder' }] });
  client = new OpenAI({ apiKey: e.token, baseURL: `${e.server.url}/v1`, maxRetries: 0 });
});
afterAll(() => e.close());

/** A raw request to /v1 with the app token (unless headers say otherwise). */
async function raw(method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${e.server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${e.token}`, ...init.headers },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

function expectOpenAIError(body: any) {
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof body.error.message).toBe('string');
}

describe('GET /v1/models', () => {
  it('lists every active agent and every workflow, in OpenAI’s list shape', async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toEqual(['agent/claude-lead', 'agent/gpt-coder', 'workflow/review']);
    for (const model of page.data) {
      expect(model).toMatchObject({ object: 'model', owned_by: 'ensemble' });
      expect(model.created).toBeGreaterThan(1_600_000_000);
    }
    const res = await raw('GET', '/v1/models');
    expect(res.body.object).toBe('list');
    expect(Object.keys(res.body.data[0]).sort()).toEqual(['created', 'id', 'object', 'owned_by']);
  });

  it('retrieves one model, multi/ models included; unknown ones are NotFoundError', async () => {
    expect(await client.models.retrieve('agent/gpt-coder')).toMatchObject({ id: 'agent/gpt-coder', object: 'model', owned_by: 'ensemble' });
    expect((await client.models.retrieve('workflow/review')).id).toBe('workflow/review');
    expect((await client.models.retrieve('multi/parallel:gpt-coder,claude-lead@gpt-coder')).id).toBe('multi/parallel:gpt-coder,claude-lead@gpt-coder');
    await expect(client.models.retrieve('agent/retired')).rejects.toBeInstanceOf(NotFoundError);
    await expect(client.models.retrieve('multi/parallel:gpt-coder,nobody')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('the API key', () => {
  it('a bad key is a 401 invalid_api_key: AuthenticationError', async () => {
    const bad = new OpenAI({ apiKey: 'not-a-token', baseURL: `${e.server.url}/v1`, maxRetries: 0 });
    const error = (await bad.chat.completions.create({ model: 'agent/gpt-coder', messages: [{ role: 'user', content: 'x' }] }).catch((err: unknown) => err)) as AuthenticationError;
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error.status).toBe(401);
    expect(error.code).toBe('invalid_api_key');
    await expect(bad.models.list()).rejects.toBeInstanceOf(AuthenticationError);
    const missing = await raw('GET', '/v1/models', { headers: { authorization: '' } });
    expect(missing.status).toBe(401);
    expectOpenAIError(missing.body);
    expect(missing.body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key', param: null });
  });

  it('the admin token is refused (403)', async () => {
    const admin = new OpenAI({ apiKey: ADMIN_TOKEN, baseURL: `${e.server.url}/v1`, maxRetries: 0 });
    await expect(admin.models.list()).rejects.toBeInstanceOf(PermissionDeniedError);
  });

  it('the app’s per-token rate limit applies, as a 429 RateLimitError with Retry-After', async () => {
    const created = await e.server.call('POST', '/api/v1/apps', { token: ADMIN_TOKEN, body: { name: 'throttled' } });
    await e.server.call('PATCH', `/api/v1/apps/${created.body.id}`, { token: ADMIN_TOKEN, body: { settings: { rate_limit: { requests_per_minute: 2 } } } });
    const throttled = new OpenAI({ apiKey: created.body.token, baseURL: `${e.server.url}/v1`, maxRetries: 0 });
    await throttled.models.list();
    await throttled.models.list();
    const error = (await throttled.models.list().catch((err: unknown) => err)) as RateLimitError;
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error.code).toBe('rate_limit_exceeded');
    expect(Number(error.headers?.get('retry-after'))).toBeGreaterThan(0);
  });
});

describe('errors in OpenAI’s shape', () => {
  const ask = (model: string) => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello' }] });

  it('an unknown model is a 404 model_not_found: NotFoundError', async () => {
    for (const model of ['agent/nobody', 'workflow/nothing', 'gpt-4o', 'multi/parallel:gpt-coder,nobody', 'multi/shuffled:gpt-coder', 'agent/retired', 'multi/parallel:gpt-coder,retired']) {
      const error = (await ask(model).catch((err: unknown) => err)) as NotFoundError;
      expect(error, model).toBeInstanceOf(NotFoundError);
      expect(error.status).toBe(404);
      expect(error.error).toMatchObject({ type: 'invalid_request_error', code: 'model_not_found', param: 'model' });
      expect(error.message).toContain(model);
    }
    const res = await raw('POST', '/v1/chat/completions', { body: JSON.stringify({ model: 'agent/nobody', messages: [{ role: 'user', content: 'x' }] }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(404);
    expectOpenAIError(res.body);
  });

  it('a malformed multi model is a 400 on param "model"', async () => {
    for (const model of ['multi/sequential:gpt-coder,claude-lead@gpt-coder', 'multi/orchestrated:gpt-coder', 'multi/parallel:gpt-coder,,claude-lead']) {
      const error = (await ask(model).catch((err: unknown) => err)) as BadRequestError;
      expect(error, model).toBeInstanceOf(BadRequestError);
      expect(error.error).toMatchObject({ type: 'invalid_request_error', param: 'model' });
    }
  });

  it('bad bodies are 400 invalid_request_error naming the param; no run is created', async () => {
    const runsBefore = (await e.server.call('GET', '/api/v1/runs', { token: e.token })).body.data.length;
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ model: 'agent/gpt-coder' }, 'messages'],
      [{ model: 'agent/gpt-coder', messages: [] }, 'messages'],
      [{ model: 'agent/gpt-coder', messages: [{ role: 'assistant', content: 'only me' }] }, 'messages'],
      [{ model: 'agent/gpt-coder', messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
      [{ model: 'agent/gpt-coder', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x' } }] }] }, 'messages[0].content[0]'],
      [{ model: 'agent/gpt-coder', messages: [{ role: 'user', content: '   ' }] }, 'messages[0].content'],
      [{ model: 'agent/gpt-coder', messages: [{ role: 'user', content: 'x' }], n: 2 }, 'n'],
      [{ model: 'agent/gpt-coder', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools'],
      [{ model: 'agent/gpt-coder', messages: [{ role: 'user', content: 'x' }], ensemble: { include_stepz: true } }, 'ensemble'],
      [{ messages: [{ role: 'user', content: 'x' }] }, 'model'],
    ];
    for (const [body, param] of cases) {
      const res = await raw('POST', '/v1/chat/completions', { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expectOpenAIError(res.body);
      expect(res.body.error.type).toBe('invalid_request_error');
      expect(res.body.error.param, JSON.stringify(body)).toBe(param);
    }
    expect((await e.server.call('GET', '/api/v1/runs', { token: e.token })).body.data.length).toBe(runsBefore);
  });

  it('malformed JSON is a 400 and a body that is not JSON a 415, both in OpenAI’s shape', async () => {
    const malformed = await raw('POST', '/v1/chat/completions', { body: '{"model":', headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(400);
    expectOpenAIError(malformed.body);
    const text = await raw('POST', '/v1/chat/completions', { body: 'model=agent/gpt-coder', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expectOpenAIError(text.body);
    expect(text.body.error.type).toBe('invalid_request_error');
  });

  it('an unknown /v1 path is a 404 in OpenAI’s shape', async () => {
    const res = await raw('GET', '/v1/completions');
    expect(res.status).toBe(404);
    expectOpenAIError(res.body);
    expect(res.body.error.code).toBe('unknown_url');
  });

  it('the contract’s /api/v1 errors keep their own shape', async () => {
    const res = await e.server.call('GET', '/api/v1/agents/nobody', { token: e.token });
    expect(res.body.error).toMatchObject({ code: 'not_found', details: null });
  });
});
