import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { EnsembleError } from '../../core/index.ts';
import type { RunService, WorkflowFormat, WorkflowService } from '../../orchestrator/index.ts';
import type { AppEnv } from '../env.ts';
import { requireApp } from '../middleware/auth.ts';
import { errorResponses } from '../schemas.ts';
import { sendRunEvents } from '../sse.ts';
import { RunSchema } from './runs.ts';

const security = [{ bearerAuth: [] }];
const IdParam = z.object({ id_or_name: z.string().min(1).openapi({ description: 'Workflow id or name' }) });

/** Content types a workflow document may be sent as. */
export const YAML_TYPES = /^(application|text)\/(x-)?yaml\b/i;

const WorkflowSchema = z
  .object({
    id: z.string(),
    app_id: z.string(),
    name: z.string(),
    version: z.number().int(),
    trigger: z.string().nullable(),
    format: z.enum(['yaml', 'json']),
    source: z.string(),
    definition: z.record(z.string(), z.unknown()).openapi({ description: 'The compiled DAG' }),
    is_active: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Workflow');

const documentBody = {
  required: true,
  description: 'The workflow document: JSON, or YAML with Content-Type application/yaml (see docs/workflows.md)',
  content: {
    'application/json': { schema: z.record(z.string(), z.unknown()).openapi('WorkflowDocument') },
    'application/yaml': { schema: z.string() },
  },
};

const create = createRoute({
  method: 'post',
  path: '/api/v1/workflows',
  tags: ['workflows'],
  summary: 'Save a workflow (validated at once: 422 lists every problem)',
  security,
  request: { body: documentBody },
  responses: { 201: { description: 'Saved (version 1)', content: { 'application/json': { schema: WorkflowSchema } } }, ...errorResponses(400, 401, 403, 409, 413, 415, 422) },
});

const list = createRoute({
  method: 'get',
  path: '/api/v1/workflows',
  tags: ['workflows'],
  summary: "List the app's workflows",
  security,
  responses: { 200: { description: 'Workflows', content: { 'application/json': { schema: z.object({ data: z.array(WorkflowSchema) }) } } }, ...errorResponses(401, 403) },
});

const get = createRoute({
  method: 'get',
  path: '/api/v1/workflows/{id_or_name}',
  tags: ['workflows'],
  summary: 'Get a workflow',
  security,
  request: { params: IdParam },
  responses: { 200: { description: 'The workflow', content: { 'application/json': { schema: WorkflowSchema } } }, ...errorResponses(401, 403, 404) },
});

const replace = createRoute({
  method: 'put',
  path: '/api/v1/workflows/{id_or_name}',
  tags: ['workflows'],
  summary: 'Replace a workflow; its version goes up by one (runs keep the version they started with)',
  security,
  request: { params: IdParam, body: documentBody },
  responses: { 200: { description: 'The new version', content: { 'application/json': { schema: WorkflowSchema } } }, ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422) },
});

const remove = createRoute({
  method: 'delete',
  path: '/api/v1/workflows/{id_or_name}',
  tags: ['workflows'],
  summary: 'Delete a workflow (its runs stay)',
  security,
  request: { params: IdParam },
  responses: { 204: { description: 'Deleted' }, ...errorResponses(401, 403, 404) },
});

const ExecuteSchema = z
  .object({
    input: z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())]).default('').openapi({ description: 'The workflow input; non-strings are passed on as JSON text' }),
    context: z.record(z.string(), z.unknown()).default({}),
    stream: z.boolean().default(false),
    async: z.boolean().default(false),
    user: z.string().min(1).max(256).optional().openapi({ description: 'The end user the run is for (opaque id): stored on the run and its usage, checked against the user\'s budget' }),
  })
  .strict();

const execute = createRoute({
  method: 'post',
  path: '/api/v1/workflows/{id_or_name}/execute',
  tags: ['workflows'],
  summary: 'Run a workflow: wait for it (default), return at once (async), or stream its events (stream or Accept: text/event-stream)',
  security,
  request: {
    params: IdParam,
    headers: z.object({ 'idempotency-key': z.string().min(1).max(255).optional().openapi({ description: 'The same key within 24 h returns the same run' }) }),
    body: { required: false, content: { 'application/json': { schema: ExecuteSchema } } },
  },
  responses: {
    200: { description: 'The finished run (whatever its status), or an SSE stream of its events', content: { 'application/json': { schema: RunSchema }, 'text/event-stream': { schema: z.string() } } },
    202: { description: 'Queued (async)', content: { 'application/json': { schema: z.object({ run_id: z.string(), status: z.string() }) } } },
    ...errorResponses(400, 401, 402, 403, 404, 415, 429),
  },
});

async function readDocument(c: { req: { header(name: string): string | undefined; text(): Promise<string>; json(): Promise<unknown> } }): Promise<{ source: string; format: WorkflowFormat }> {
  const type = c.req.header('content-type') ?? '';
  if (YAML_TYPES.test(type)) return { source: await c.req.text(), format: 'yaml' };
  if (!/json/i.test(type)) throw new EnsembleError('unsupported_media_type', 'Send the workflow as application/json or application/yaml');
  return { source: JSON.stringify(await c.req.json(), null, 2), format: 'json' };
}

export function registerWorkflowRoutes(app: OpenAPIHono<AppEnv>, workflows: WorkflowService, runs: RunService): void {
  app.openapi(create, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    const { source, format } = await readDocument(c);
    return c.json(await workflows.create(appId, source, format, actor), 201);
  });

  app.openapi(list, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    return c.json({ data: await workflows.list(appId) }, 200);
  });

  app.openapi(get, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    return c.json(await workflows.get(appId, c.req.valid('param').id_or_name), 200);
  });

  app.openapi(replace, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    const { source, format } = await readDocument(c);
    return c.json(await workflows.replace(appId, c.req.valid('param').id_or_name, source, format, actor), 200);
  });

  app.openapi(remove, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    await workflows.delete(appId, c.req.valid('param').id_or_name, actor);
    return c.body(null, 204);
  });

  app.openapi(execute, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    const workflow = await workflows.get(appId, c.req.valid('param').id_or_name);
    const hasBody = (c.req.header('content-length') ?? '0') !== '0' || c.req.header('transfer-encoding') !== undefined;
    const body = hasBody ? c.req.valid('json') : ExecuteSchema.parse({});
    const input = typeof body.input === 'string' ? body.input : JSON.stringify(body.input);
    const { run } = await runs.startWorkflowRun(appId, workflow, { input, context: body.context, idempotencyKey: c.req.valid('header')['idempotency-key'], user: body.user }, actor);
    const wantsStream = body.stream || (c.req.header('accept') ?? '').includes('text/event-stream');
    if (wantsStream) return sendRunEvents(c, (signal) => runs.events(appId, run.id, 0, signal)) as never;
    if (body.async) return c.json({ run_id: run.id, status: run.status }, 202);
    await runs.waitForEnd(run.id);
    return c.json(await runs.get(appId, run.id), 200);
  });
}
