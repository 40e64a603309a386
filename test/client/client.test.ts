/** ensemble/client against a real server: every operation of the OpenAPI document, round-tripped. */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_OPERATIONS, createClient, EnsembleApiError, type EnsembleClient, type RunEvent, type RunEventType as ClientEventType } from '../../src/client/index.ts';
import type { RunEventType as ServerEventType } from '../../src/workflow/index.ts';
import { ADMIN_TOKEN, startEnsemble, type Ensemble } from '../support/ensemble.ts';

// The client stands alone (it imports nothing of the server), so its event names are its own
// copy: the type checker holds them to the server's.
const sameEventTypes: [ClientEventType, ServerEventType] extends [ServerEventType, ClientEventType] ? true : false = true;
void sameEventTypes;

let e: Ensemble;
let admin: EnsembleClient;
let client: EnsembleClient;
const used = new Set<string>();

beforeAll(async () => {
  e = await startEnsemble();
  admin = createClient({ baseUrl: e.server.url, token: ADMIN_TOKEN });
  client = admin.withToken(e.token);
});
afterAll(() => e.close());

async function collect(events: AsyncIterable<RunEvent>): Promise<RunEvent[]> {
  const all: RunEvent[] = [];
  for await (const event of events) all.push(event);
  return all;
}

describe('ensemble/client', () => {
  it('has a method for every operation of the OpenAPI document, and no other', async () => {
    const doc = await client.openapi();
    used.add('GET /api/v1/openapi.json');
    const operations = Object.entries(doc.paths)
      .filter(([path]) => path.startsWith('/api/v1/'))
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
    // The document does not list itself.
    expect([...operations, 'GET /api/v1/openapi.json'].sort()).toEqual(Object.keys(CLIENT_OPERATIONS).sort());
  });

  it('round-trips apps, tokens, agents and their errors', async () => {
    expect((await client.health()).status).toBe('ok');
    used.add('GET /api/v1/health');
    const app = await admin.apps.create('client-app');
    used.add('POST /api/v1/apps');
    expect((await admin.apps.list()).map((a) => a.name)).toContain('client-app');
    used.add('GET /api/v1/apps');
    expect((await admin.apps.update(app.id, { audit_payloads: false })).settings).toEqual({ audit_payloads: false });
    used.add('PATCH /api/v1/apps/{app_id}');
    const extra = await admin.apps.createToken(app.id, 'second');
    used.add('POST /api/v1/apps/{app_id}/tokens');
    await admin.apps.revokeToken(app.id, extra.id);
    used.add('DELETE /api/v1/apps/{app_id}/tokens/{token_id}');
    const revoked = await admin.withToken(extra.token).agents.list().catch((error: unknown) => error);
    expect(revoked).toBeInstanceOf(EnsembleApiError);
    expect(revoked).toMatchObject({ status: 401, code: 'unauthorized' });

    const agent = await client.agents.create({ name: 'client-agent', provider: 'openai', model: 'gpt-4.1-mini', api_key: 'key-openai-e2e-123456', config: { base_url: e.fake('openai').baseUrl } });
    used.add('POST /api/v1/agents');
    expect(agent).toMatchObject({ name: 'client-agent', api_key_set: true });
    expect((await client.agents.list({ provider: 'openai' })).map((a) => a.name)).toContain('client-agent');
    used.add('GET /api/v1/agents');
    expect((await client.agents.get('client-agent')).id).toBe(agent.id);
    used.add('GET /api/v1/agents/{id_or_name}');
    expect((await client.agents.update('client-agent', { role: 'coder' })).role).toBe('coder');
    used.add('PATCH /api/v1/agents/{id_or_name}');
    const tested = await client.agents.test('client-agent', 'hello');
    expect(tested.ok).toBe(true);
    used.add('POST /api/v1/agents/{id_or_name}/test');
    expect((await client.agents.health('client-agent')).status).toBe('healthy');
    used.add('GET /api/v1/agents/{id_or_name}/health');
    const conflict = await client.agents.create({ name: 'client-agent', provider: 'ollama', model: 'x' }).catch((error: unknown) => error);
    expect(conflict).toMatchObject({ status: 409, code: 'conflict' });
    const missing = await client.agents.get('nobody').catch((error: unknown) => error);
    expect(missing).toMatchObject({ status: 404, code: 'not_found' });
  });

  it('round-trips workflows, runs, events, chat, usage, audit, users and triggers', async () => {
    const saved = await client.workflows.create('workflow: client-flow\ntrigger: client_event\nsteps:\n  - id: one\n    agent: client-agent\n');
    used.add('POST /api/v1/workflows');
    expect(saved).toMatchObject({ name: 'client-flow', version: 1, format: 'yaml' });
    expect((await client.workflows.list()).map((w) => w.name)).toContain('client-flow');
    used.add('GET /api/v1/workflows');
    expect((await client.workflows.get('client-flow')).trigger).toBe('client_event');
    used.add('GET /api/v1/workflows/{id_or_name}');
    expect((await client.workflows.replace('client-flow', { name: 'client-flow', trigger: 'client_event', steps: [{ id: 'one', agent: 'client-agent' }] })).version).toBe(2);
    used.add('PUT /api/v1/workflows/{id_or_name}');

    const run = await client.workflows.execute('client-flow', { input: 'go', user: 'u1' }, { idempotencyKey: 'client-1' });
    used.add('POST /api/v1/workflows/{id_or_name}/execute');
    expect(run).toMatchObject({ status: 'completed', workflow_version: 2, user: 'u1' });
    expect((await client.workflows.execute('client-flow', { input: 'go' }, { idempotencyKey: 'client-1' })).run_id).toBe(run.run_id);
    const streamed = await collect(client.workflows.stream('client-flow', { input: 'stream' }));
    expect(streamed[0]!.event).toBe('run.started');
    expect(streamed.at(-1)!.event).toBe('run.completed');
    const started = await client.workflows.start('client-flow', { input: 'later' });
    expect(started.status).toBe('queued');

    expect((await client.runs.list({ workflow: 'client-flow' })).length).toBeGreaterThanOrEqual(3);
    used.add('GET /api/v1/runs');
    expect((await client.runs.get(run.run_id)).steps[0]!.status).toBe('completed');
    used.add('GET /api/v1/runs/{run_id}');
    const replay = await collect(client.runs.events(run.run_id, { lastEventId: 2 }));
    used.add('GET /api/v1/runs/{run_id}/events');
    expect(replay[0]!.id).toBe(3);
    expect((await client.runs.cancel(run.run_id)).status).toBe('completed');
    used.add('POST /api/v1/runs/{run_id}/cancel');

    const chat = await client.chat.multi({ message: 'hi', agents: ['client-agent'], mode: 'parallel', user: 'u2' });
    used.add('POST /api/v1/chat/multi');
    expect(chat.status).toBe('completed');
    const chatEvents = await collect(client.chat.stream({ message: 'hi', agents: ['client-agent'] }));
    expect(chatEvents.some((ev) => ev.event === 'step.delta')).toBe(true);

    const usage = await client.usage({ groupBy: ['agent', 'user'] });
    used.add('GET /api/v1/usage');
    expect(usage.totals.requests).toBeGreaterThan(0);
    expect(usage.data.find((row) => row.key === 'client-agent,u1')?.requests).toBe(1);
    expect((await client.audit({ action: 'workflow.update' })).length).toBe(1);
    used.add('GET /api/v1/audit');

    expect(await client.users.setBudget('u1', { limit_usd: 5, period: 'day' })).toMatchObject({ user: 'u1', limit_usd: 5 });
    used.add('PUT /api/v1/users/{user}/budget');
    expect((await client.users.getBudget('u1')).period).toBe('day');
    used.add('GET /api/v1/users/{user}/budget');
    expect((await client.users.list()).map((b) => b.user)).toEqual(['u1']);
    used.add('GET /api/v1/users');
    await client.users.deleteBudget('u1');
    used.add('DELETE /api/v1/users/{user}/budget');

    const fired = await client.triggers.fire('client_event', { input: 'event!' });
    used.add('POST /api/v1/triggers/{trigger}');
    expect(fired.runs.map((r) => r.workflow)).toEqual(['client-flow']);
    const apps = await admin.apps.list();
    const appId = apps.find((a) => a.name === 'e2e')!.id;
    const { secret } = await admin.apps.rotateWebhookSecret(appId);
    used.add('POST /api/v1/apps/{app_id}/webhook-secret');
    const body = JSON.stringify({ input: 'hooked' });
    const t = Math.floor(Date.now() / 1000);
    const hooked = await fetch(`${e.server.url}/hooks/${appId}/client_event`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-Ensemble-Signature': `t=${t},v1=${createHmac('sha256', secret).update(`${t}.client_event.${body}`).digest('hex')}` },
      body,
    });
    expect(hooked.status).toBe(202);

    // Run control: retry from failure, approve and reject.
    await client.agents.create({ name: 'client-gem', provider: 'gemini', model: 'gemini-2.5-flash', api_key: 'key-gemini-e2e-123456', config: { base_url: e.fake('gemini').baseUrl } });
    await client.workflows.create({ name: 'fail-flow', steps: [{ id: 'one', agent: 'client-gem' }] });
    e.fake('gemini').enqueue({ status: 400, errorMessage: 'broken' });
    const failed = await client.workflows.execute('fail-flow', { input: 'will fail' });
    expect(failed.status).toBe('failed');
    const retried = await client.runs.retry(failed.run_id);
    used.add('POST /api/v1/runs/{run_id}/retry');
    expect(retried.attempt).toBe(2);
    await client.workflows.create({ name: 'gate-flow', steps: [{ id: 'gate', type: 'approval', message: 'ok?' }, { id: 'after', agent: 'client-agent' }] });
    const waiting = await client.workflows.execute('gate-flow', { input: 'x' });
    expect(waiting.status).toBe('waiting');
    expect((await client.runs.approve(waiting.run_id, 'gate', 'fine')).status).toBe('queued');
    used.add('POST /api/v1/runs/{run_id}/steps/{step_id}/approve');
    const waitingAgain = await client.workflows.execute('gate-flow', { input: 'y' });
    await client.runs.reject(waitingAgain.run_id, 'gate', 'no');
    used.add('POST /api/v1/runs/{run_id}/steps/{step_id}/reject');
    const notWaiting = await client.runs.approve(waitingAgain.run_id, 'gate').catch((error: unknown) => error);
    expect(notWaiting).toMatchObject({ status: 409, code: 'conflict' });

    await client.workflows.delete('client-flow');
    used.add('DELETE /api/v1/workflows/{id_or_name}');
    await client.agents.delete('client-agent');
    used.add('DELETE /api/v1/agents/{id_or_name}');
  });

  it('used every operation', () => {
    expect([...used].sort()).toEqual(Object.keys(CLIENT_OPERATIONS).sort());
  });
});
