import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { RunService } from '../../orchestrator/index.ts';
import type { AppEnv } from '../env.ts';
import { requireApp } from '../middleware/auth.ts';
import { errorResponses } from '../schemas.ts';
import { sendRunEvents } from '../sse.ts';

const security = [{ bearerAuth: [] }];
const RunParam = z.object({ run_id: z.string().min(1) });

export const StepResultSchema = z
  .object({
    step_id: z.string(),
    agent: z.string(),
    output_name: z.string(),
    status: z.string().openapi({ description: 'pending | running | completed | failed | skipped | cancelled' }),
    attempts: z.number().int(),
    output: z.unknown(),
    error: z.unknown(),
    usage: z.record(z.string(), z.number()).nullable().openapi({ description: 'Usage: input_tokens, output_tokens, total_tokens, …' }),
    cost_usd: z.number(),
    latency_ms: z.number().nullable(),
    reason: z.string().nullable(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
  })
  .openapi('StepResult');

export const RunSchema = z
  .object({
    run_id: z.string(),
    kind: z.string().openapi({ description: 'workflow | chat' }),
    status: z.string().openapi({ description: 'queued | running | waiting | completed | partial | failed | cancelled' }),
    workflow: z.string().nullable(),
    workflow_id: z.string().nullable(),
    workflow_version: z.number().int().nullable(),
    mode: z.string().nullable(),
    input: z.string(),
    context: z.record(z.string(), z.unknown()),
    output: z.unknown(),
    outputs: z.record(z.string(), z.unknown()),
    steps: z.array(StepResultSchema),
    usage: z.record(z.string(), z.number()),
    cost_usd: z.number(),
    error: z.unknown(),
    user: z.string().nullable(),
    attempt: z.number().int(),
    attempts: z.array(z.object({ attempt: z.number().int(), status: z.string(), started_at: z.string(), finished_at: z.string().nullable(), error: z.unknown(), reset_steps: z.array(z.string()), input_overrides: z.record(z.string(), z.unknown()).nullable() })),
    waiting_for: z.array(z.object({ step_id: z.string(), message: z.string().nullable(), since: z.string().nullable(), timeout_at: z.string().nullable() })),
    usage_by_agent: z.record(z.string(), z.object({ usage: z.record(z.string(), z.number()), cost_usd: z.number(), calls: z.number() })),
    created_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
  })
  .openapi('Run');

const list = createRoute({
  method: 'get',
  path: '/api/v1/runs',
  tags: ['runs'],
  summary: 'List runs, newest first',
  security,
  request: {
    query: z.object({
      workflow: z.string().optional(),
      status: z.enum(['queued', 'running', 'waiting', 'completed', 'partial', 'failed', 'cancelled']).optional(),
      limit: z.coerce.number().int().min(1).max(500).default(50),
      before: z.string().optional().openapi({ description: 'A run id: list runs created before it' }),
    }),
  },
  responses: { 200: { description: 'Runs (without steps)', content: { 'application/json': { schema: z.object({ data: z.array(RunSchema) }) } } }, ...errorResponses(400, 401, 403) },
});

const get = createRoute({
  method: 'get',
  path: '/api/v1/runs/{run_id}',
  tags: ['runs'],
  summary: 'A run with every step',
  security,
  request: { params: RunParam },
  responses: { 200: { description: 'The run', content: { 'application/json': { schema: RunSchema } } }, ...errorResponses(401, 403, 404) },
});

const cancel = createRoute({
  method: 'post',
  path: '/api/v1/runs/{run_id}/cancel',
  tags: ['runs'],
  summary: 'Cancel a run: running provider calls are aborted',
  security,
  request: { params: RunParam },
  responses: { 202: { description: 'Cancellation accepted', content: { 'application/json': { schema: RunSchema } } }, ...errorResponses(401, 403, 404) },
});

const events = createRoute({
  method: 'get',
  path: '/api/v1/runs/{run_id}/events',
  tags: ['runs'],
  summary: "The run's events (SSE): replayed from the start, then live until the run ends; Last-Event-ID resumes after that sequence number",
  security,
  request: {
    params: RunParam,
    headers: z.object({ 'last-event-id': z.string().regex(/^\d+$/).optional() }),
  },
  responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: z.string() } } }, ...errorResponses(401, 403, 404) },
});

const retry = createRoute({
  method: 'post',
  path: '/api/v1/runs/{run_id}/retry',
  tags: ['runs'],
  summary: 'Retry a run from where it broke: a new attempt; completed steps keep their results, failed and cancelled steps (or `steps`) and their dependents run again',
  security,
  request: {
    params: RunParam,
    body: {
      required: false,
      content: {
        'application/json': {
          schema: z
            .object({
              steps: z.array(z.string().min(1)).optional().openapi({ description: 'Steps (ids or output names) to run again, with their dependents; default: the failed and cancelled ones' }),
              input_overrides: z.object({ input: z.string().optional(), context: z.record(z.string(), z.unknown()).optional() }).strict().optional().openapi({ description: 'A new input, and context keys merged over the old' }),
            })
            .strict(),
        },
      },
    },
  },
  responses: { 202: { description: 'The new attempt is queued', content: { 'application/json': { schema: RunSchema } } }, ...errorResponses(400, 401, 403, 404, 409, 415) },
});

const DecisionParams = RunParam.extend({ step_id: z.string().min(1) });
const DecisionBody = { required: false, content: { 'application/json': { schema: z.object({ comment: z.string().max(10_000).optional() }).strict() } } };

const approve = createRoute({
  method: 'post',
  path: '/api/v1/runs/{run_id}/steps/{step_id}/approve',
  tags: ['runs'],
  summary: 'Approve a waiting approval step; the run goes on ({{step.approved}} is true, {{step.comment}} the comment)',
  security,
  request: { params: DecisionParams, body: DecisionBody },
  responses: { 200: { description: 'The run, queued again', content: { 'application/json': { schema: RunSchema } } }, ...errorResponses(400, 401, 403, 404, 409, 415) },
});

const reject = createRoute({
  method: 'post',
  path: '/api/v1/runs/{run_id}/steps/{step_id}/reject',
  tags: ['runs'],
  summary: 'Reject a waiting approval step: it fails (on_reject: fail, the default) or completes with approved false (on_reject: continue)',
  security,
  request: { params: DecisionParams, body: DecisionBody },
  responses: { 200: { description: 'The run, queued again', content: { 'application/json': { schema: RunSchema } } }, ...errorResponses(400, 401, 403, 404, 409, 415) },
});

export function registerRunRoutes(app: OpenAPIHono<AppEnv>, runs: RunService): void {
  app.openapi(retry, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    const hasBody = (c.req.header('content-length') ?? '0') !== '0' || c.req.header('transfer-encoding') !== undefined;
    const body = hasBody ? c.req.valid('json') : {};
    const overrides = body.input_overrides ? { ...(body.input_overrides.input !== undefined ? { input: body.input_overrides.input } : {}), ...(body.input_overrides.context ? { context: body.input_overrides.context } : {}) } : undefined;
    return c.json(await runs.retry(appId, c.req.valid('param').run_id, { ...(body.steps ? { steps: body.steps } : {}), ...(overrides ? { inputOverrides: overrides } : {}) }, actor), 202);
  });

  for (const [route, decision] of [
    [approve, 'approve'],
    [reject, 'reject'],
  ] as const) {
    app.openapi(route, async (c) => {
      const { appId, actor } = requireApp(c.get('principal'));
      const hasBody = (c.req.header('content-length') ?? '0') !== '0' || c.req.header('transfer-encoding') !== undefined;
      const comment = hasBody ? c.req.valid('json').comment : undefined;
      const { run_id, step_id } = c.req.valid('param');
      return c.json(await runs.decide(appId, run_id, step_id, decision, comment, actor), 200);
    });
  }

  app.openapi(list, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    const q = c.req.valid('query');
    const query = { limit: q.limit, ...(q.before ? { before: q.before } : {}), ...(q.workflow ? { workflow: q.workflow } : {}), ...(q.status ? { status: q.status } : {}) };
    return c.json({ data: await runs.list(appId, query) }, 200);
  });

  app.openapi(get, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    return c.json(await runs.get(appId, c.req.valid('param').run_id), 200);
  });

  app.openapi(cancel, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    return c.json(await runs.cancel(appId, c.req.valid('param').run_id, actor), 202);
  });

  app.openapi(events, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    const runId = c.req.valid('param').run_id;
    const after = Number(c.req.valid('header')['last-event-id'] ?? 0);
    await runs.get(appId, runId);
    return sendRunEvents(c, (signal) => runs.events(appId, runId, after, signal)) as never;
  });
}
