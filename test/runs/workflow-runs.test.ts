/** Workflow runs over HTTP against the fake vendors: failures, cancellation, idempotency, streaming. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEvents, startEnsemble, type Ensemble } from '../support/ensemble.ts';

let e: Ensemble;

beforeAll(async () => {
  e = await startEnsemble();
  await e.agent('claude-writer', 'anthropic');
  await e.agent('gpt-writer', 'openai');
  await e.agent('gemini-writer', 'gemini');
  await e.agent('groq-writer', 'groq');
});
afterAll(() => e.close());

async function execute(workflow: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return e.server.call('POST', `/api/v1/workflows/${workflow}/execute`, { token: e.token, body: { input: 'the input', ...body }, headers });
}

describe('step failures', () => {
  it('retries a failed step and records the attempts', async () => {
    await e.workflow({ name: 'retrying', steps: [{ id: 'only', agent: 'groq-writer', retry: { attempts: 3, backoff_ms: 10 } }] });
    e.fake('groq').enqueue({ status: 503, errorMessage: 'busy' }, { status: 500, errorMessage: 'oops' }, { text: 'third time' });
    const res = await execute('retrying');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'completed', output: 'third time' });
    expect(res.body.steps[0]).toMatchObject({ step_id: 'only', status: 'completed', attempts: 3 });
    const failedEvents = await e.server.call('GET', `/api/v1/runs/${res.body.run_id}`, { token: e.token });
    expect(failedEvents.body.steps[0].attempts).toBe(3);
  });

  it('uses the fallback agent when the agent fails', async () => {
    await e.workflow({ name: 'falling-back', steps: [{ id: 'answer', agent: 'groq-writer', fallback: ['gemini-writer'] }] });
    e.fake('groq').enqueue({ status: 401, errorMessage: 'bad key' });
    e.fake('gemini').enqueue({ text: 'from gemini' });
    const res = await execute('falling-back');
    expect(res.body).toMatchObject({ status: 'completed', output: 'from gemini' });
    expect(res.body.steps[0]).toMatchObject({ agent: 'gemini-writer', attempts: 2 });
  });

  it('on_error: continue lets the run go on and ends it partial', async () => {
    await e.workflow({
      name: 'continuing',
      steps: [
        { parallel: [
          { id: 'flaky', agent: 'groq-writer', on_error: 'continue' },
          { id: 'steady', agent: 'gemini-writer' },
        ] },
        { id: 'after', agent: 'claude-writer' },
      ],
    });
    e.fake('groq').enqueue({ status: 400, errorMessage: 'bad request' });
    e.fake('gemini').enqueue({ text: 'steady output' });
    e.fake('anthropic').enqueue({ text: 'after output' });
    const before = e.fake('anthropic').generationRequests().length;
    const res = await execute('continuing');
    expect(res.body.status).toBe('partial');
    const byId = Object.fromEntries(res.body.steps.map((s: any) => [s.step_id, s]));
    expect(byId.flaky).toMatchObject({ status: 'failed', error: { code: 'bad_request' } });
    expect(byId.after).toMatchObject({ status: 'completed', output: 'after output' });
    const prompt = JSON.stringify(e.fake('anthropic').generationRequests()[before]!.body);
    expect(prompt).toContain('steady output');
  });

  it('a failing step without on_error fails the run and says which step', async () => {
    await e.workflow({ name: 'failing', steps: [{ id: 'first', agent: 'groq-writer' }, { id: 'second', agent: 'gemini-writer' }] });
    e.fake('groq').enqueue({ status: 401, errorMessage: 'no' });
    const res = await execute('failing');
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('failed');
    expect(res.body.error).toMatchObject({ code: 'auth_failed', step_id: 'first' });
    expect(res.body.steps.find((s: any) => s.step_id === 'second').status).toBe('cancelled');
  });

  it('a step over its timeout_ms fails with timeout', async () => {
    await e.workflow({ name: 'slow', steps: [{ id: 'slow', agent: 'gemini-writer', timeout_ms: 200 }] });
    e.fake('gemini').enqueue({ delayMs: 3000 });
    const res = await execute('slow');
    expect(res.body.status).toBe('failed');
    expect(res.body.steps[0].error.code).toBe('timeout');
  });
});

describe('cancellation and idempotency', () => {
  it('cancel mid-run aborts the in-flight call (the vendor sees the connection closed)', async () => {
    await e.workflow({ name: 'cancellable', steps: [{ id: 'one', agent: 'claude-writer' }, { id: 'two', agent: 'gemini-writer' }] });
    e.fake('gemini').enqueue({ delayMs: 10_000 });
    const before = e.fake('gemini').generationRequests().length;
    const started = await execute('cancellable', { async: true });
    expect(started.status).toBe(202);
    expect(started.body.status).toBe('queued');
    const deadline = Date.now() + 5000;
    while (e.fake('gemini').generationRequests().length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const cancel = await e.server.call('POST', `/api/v1/runs/${started.body.run_id}/cancel`, { token: e.token });
    expect(cancel.status).toBe(202);
    let run: any;
    while (Date.now() < deadline) {
      run = (await e.server.call('GET', `/api/v1/runs/${started.body.run_id}`, { token: e.token })).body;
      if (run.status === 'cancelled') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(run.status).toBe('cancelled');
    const request = e.fake('gemini').generationRequests()[before]!;
    while (!request.closedEarly && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(request.closedEarly).toBe(true);
    expect(run.steps.find((s: any) => s.step_id === 'one').status).toBe('completed');
  });

  it('the same Idempotency-Key returns the same run', async () => {
    await e.workflow({ name: 'once', steps: [{ id: 'only', agent: 'claude-writer' }] });
    const before = e.fake('anthropic').generationRequests().length;
    const first = await execute('once', {}, { 'Idempotency-Key': 'order-42' });
    const second = await execute('once', {}, { 'Idempotency-Key': 'order-42' });
    const other = await execute('once', {}, { 'Idempotency-Key': 'order-43' });
    expect(second.body.run_id).toBe(first.body.run_id);
    expect(other.body.run_id).not.toBe(first.body.run_id);
    expect(e.fake('anthropic').generationRequests().length - before).toBe(2);
  });
});

describe('streaming', () => {
  it('streams events in order; deltas of parallel steps interleave with distinct step_ids; Last-Event-ID resumes without gaps', async () => {
    await e.workflow({
      name: 'streamed',
      steps: [{ parallel: [{ id: 'left', agent: 'gpt-writer' }, { id: 'right', agent: 'gemini-writer' }] }, { id: 'join', agent: 'claude-writer' }],
    });
    e.fake('openai').enqueue({ chunks: ['L1 ', 'L2 ', 'L3 ', 'L4'], chunkDelayMs: 40 });
    e.fake('gemini').enqueue({ chunks: ['R1 ', 'R2 ', 'R3 ', 'R4'], chunkDelayMs: 40 });
    e.fake('anthropic').enqueue({ chunks: ['J1 ', 'J2'] });
    const res = await fetch(`${e.server.url}/api/v1/workflows/streamed/execute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${e.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'go', stream: true }),
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const events = await readEvents(res);
    expect(events.map((ev) => ev.id)).toEqual(events.map((_, i) => i + 1));
    expect(events.every((ev) => ev.data.seq === ev.id && typeof ev.data.run_id === 'string')).toBe(true);
    expect(events[0]!.event).toBe('run.started');
    expect(events.at(-1)!.event).toBe('run.completed');
    const deltas = events.filter((ev) => ev.event === 'step.delta');
    const order = deltas.map((d) => d.data.step_id).filter((id) => id !== 'join');
    const switches = order.filter((id, i) => i > 0 && id !== order[i - 1]).length;
    expect(new Set(order)).toEqual(new Set(['left', 'right']));
    expect(switches).toBeGreaterThanOrEqual(2);
    expect(deltas.filter((d) => d.data.step_id === 'left').map((d) => d.data.text).join('')).toBe('L1 L2 L3 L4');
    expect(events.at(-1)!.data.output).toBe('J1 J2');

    const runId = events[0]!.data.run_id;
    const cut = Math.floor(events.length / 2);
    const resumed = await fetch(`${e.server.url}/api/v1/runs/${runId}/events`, { headers: { authorization: `Bearer ${e.token}`, 'Last-Event-ID': String(cut) } });
    const rest = await readEvents(resumed);
    expect(rest.map((ev) => ev.id)).toEqual(events.slice(cut).map((ev) => ev.id));
    expect(rest.map((ev) => ev.event)).toEqual(events.slice(cut).map((ev) => ev.event));
  });

  it('a client following a run live receives every event once, in order', async () => {
    await e.workflow({ name: 'followed', steps: [{ id: 'a', agent: 'gpt-writer' }, { id: 'b', agent: 'gemini-writer' }] });
    e.fake('openai').enqueue({ chunks: ['x', 'y', 'z'], chunkDelayMs: 60 });
    const started = await execute('followed', { async: true });
    const res = await fetch(`${e.server.url}/api/v1/runs/${started.body.run_id}/events`, { headers: { authorization: `Bearer ${e.token}` } });
    const events = await readEvents(res);
    expect(events.map((ev) => ev.id)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)!.event).toBe('run.completed');
    expect(events.filter((ev) => ev.event === 'step.delta' && ev.data.step_id === 'a').map((ev) => ev.data.text).join('')).toBe('xyz');
  });
});

describe('runs API', () => {
  it('lists runs newest first with filters and paging, and hides other apps', async () => {
    const list = await e.server.call('GET', '/api/v1/runs?limit=2', { token: e.token });
    expect(list.body.data).toHaveLength(2);
    const next = await e.server.call('GET', `/api/v1/runs?limit=2&before=${list.body.data[1].run_id}`, { token: e.token });
    expect(next.body.data[0].created_at <= list.body.data[1].created_at).toBe(true);
    const byWorkflow = await e.server.call('GET', '/api/v1/runs?workflow=once', { token: e.token });
    expect(byWorkflow.body.data.length).toBeGreaterThan(0);
    expect(byWorkflow.body.data.every((r: any) => r.workflow === 'once')).toBe(true);
    const failed = await e.server.call('GET', '/api/v1/runs?status=failed', { token: e.token });
    expect(failed.body.data.length).toBeGreaterThan(0);
    expect(failed.body.data.every((r: any) => r.status === 'failed')).toBe(true);
    const other = await e.server.call('POST', '/api/v1/apps', { token: 'admin-token-e2e-0123456789abcdef', body: { name: 'other-app' } });
    expect((await e.server.call('GET', `/api/v1/runs/${list.body.data[0].run_id}`, { token: other.body.token })).status).toBe(404);
    expect((await e.server.call('GET', '/api/v1/runs', { token: other.body.token })).body.data).toEqual([]);
  });

  it('a run records the workflow version it ran; PUT raises the version', async () => {
    const saved = await e.workflow({ name: 'versioned', steps: [{ id: 'v', agent: 'claude-writer' }] });
    expect(saved.version).toBe(1);
    const put = await e.server.call('PUT', '/api/v1/workflows/versioned', { token: e.token, body: { name: 'versioned', steps: [{ id: 'v2', agent: 'gpt-writer' }] } });
    expect(put.body.version).toBe(2);
    const run = await execute('versioned');
    expect(run.body).toMatchObject({ workflow: 'versioned', workflow_version: 2, outputs: { v2: expect.any(String) } });
    expect((await e.server.call('DELETE', '/api/v1/workflows/versioned', { token: e.token })).status).toBe(204);
    expect((await e.server.call('GET', `/api/v1/runs/${run.body.run_id}`, { token: e.token })).status).toBe(200);
  });

  it('answers 422 with every problem of a workflow that cannot run', async () => {
    const res = await e.server.call('POST', '/api/v1/workflows', {
      token: e.token,
      body: { name: 'broken', steps: [{ id: 'a', agent: 'nobody' }, { id: 'b', agent: 'gpt-writer', input: '{{missing}}' }] },
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('invalid_workflow');
    const codes = res.body.error.details.map((d: any) => `${d.step}:${d.code}`);
    expect(codes).toEqual(expect.arrayContaining(['a:unknown_agent', 'b:unknown_reference']));
    const yaml = await e.server.call('POST', '/api/v1/workflows', { token: e.token, rawBody: 'workflow: x\nsteps:\n  - agent: [unclosed\n', headers: { 'content-type': 'application/yaml' } });
    expect(yaml.status).toBe(400);
    expect(yaml.body.error.details[0]).toMatchObject({ line: expect.any(Number), column: expect.any(Number) });
  });
});
