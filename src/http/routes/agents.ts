import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { AgentCreateSchema, AgentPatchSchema, type AgentService } from '../../registry/index.ts';
import type { AppEnv } from '../env.ts';
import { requireApp } from '../middleware/auth.ts';
import { AgentSchema, errorResponses, HealthStateSchema, UsageSchema } from '../schemas.ts';

const security = [{ bearerAuth: [] }];
const json = <T extends z.ZodType>(schema: T) => ({ content: { 'application/json': { schema } } });
const IdParam = z.object({ id_or_name: z.string().min(1).openapi({ description: 'Agent id or name' }) });

const create = createRoute({
  method: 'post',
  path: '/api/v1/agents',
  tags: ['agents'],
  summary: 'Register an agent',
  security,
  request: { body: { required: true, ...json(AgentCreateSchema) } },
  responses: { 201: { description: 'Created', ...json(AgentSchema) }, ...errorResponses(400, 401, 403, 409, 413, 415) },
});

const list = createRoute({
  method: 'get',
  path: '/api/v1/agents',
  tags: ['agents'],
  summary: "List the app's agents",
  security,
  request: {
    query: z.object({
      role: z.string().optional(),
      provider: z.string().optional(),
      is_active: z.enum(['true', 'false']).optional(),
    }),
  },
  responses: { 200: { description: 'Agents', ...json(z.object({ data: z.array(AgentSchema) })) }, ...errorResponses(400, 401, 403) },
});

const get = createRoute({
  method: 'get',
  path: '/api/v1/agents/{id_or_name}',
  tags: ['agents'],
  summary: 'Get an agent by id or name',
  security,
  request: { params: IdParam },
  responses: { 200: { description: 'The agent', ...json(AgentSchema) }, ...errorResponses(401, 403, 404) },
});

const patch = createRoute({
  method: 'patch',
  path: '/api/v1/agents/{id_or_name}',
  tags: ['agents'],
  summary: 'Change an agent; `api_key` rotates its key, `config` is merged (null removes a key)',
  security,
  request: { params: IdParam, body: { required: true, ...json(AgentPatchSchema) } },
  responses: { 200: { description: 'The agent', ...json(AgentSchema) }, ...errorResponses(400, 401, 403, 404, 409, 413, 415) },
});

const remove = createRoute({
  method: 'delete',
  path: '/api/v1/agents/{id_or_name}',
  tags: ['agents'],
  summary: 'Delete an agent',
  security,
  request: { params: IdParam },
  responses: { 204: { description: 'Deleted' }, ...errorResponses(401, 403, 404) },
});

const TestResultSchema = z
  .union([
    z.object({ ok: z.literal(true), output: z.string(), latency_ms: z.number(), usage: UsageSchema, cost_usd: z.number() }),
    z.object({ ok: z.literal(false), error: z.object({ code: z.string(), message: z.string(), status: z.number().nullable() }) }),
  ])
  .openapi('AgentTestResult');

const test = createRoute({
  method: 'post',
  path: '/api/v1/agents/{id_or_name}/test',
  tags: ['agents'],
  summary: 'Call the agent once; a provider failure answers 200 with ok=false',
  security,
  request: { params: IdParam, body: { required: false, ...json(z.object({ prompt: z.string().min(1).max(100_000).default('Hello, are you working?'), user: z.string().min(1).max(256).optional() }).strict()) } },
  responses: { 200: { description: 'The result', ...json(TestResultSchema) }, ...errorResponses(400, 401, 402, 403, 404, 415, 429) },
});

const health = createRoute({
  method: 'get',
  path: '/api/v1/agents/{id_or_name}/health',
  tags: ['agents'],
  summary: "Check the agent's provider now",
  security,
  request: { params: IdParam },
  responses: { 200: { description: 'Health', ...json(HealthStateSchema) }, ...errorResponses(401, 403, 404) },
});

export function registerAgentRoutes(app: OpenAPIHono<AppEnv>, agents: AgentService): void {
  app.openapi(create, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    return c.json(await agents.create(appId, c.req.valid('json'), actor), 201);
  });

  app.openapi(list, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    const query = c.req.valid('query');
    const filter = {
      ...(query.role !== undefined ? { role: query.role } : {}),
      ...(query.provider !== undefined ? { provider: query.provider } : {}),
      ...(query.is_active !== undefined ? { is_active: query.is_active === 'true' } : {}),
    };
    return c.json({ data: await agents.list(appId, filter) }, 200);
  });

  app.openapi(get, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    return c.json(await agents.get(appId, c.req.valid('param').id_or_name), 200);
  });

  app.openapi(patch, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    return c.json(await agents.update(appId, c.req.valid('param').id_or_name, c.req.valid('json'), actor), 200);
  });

  app.openapi(remove, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    await agents.delete(appId, c.req.valid('param').id_or_name, actor);
    return c.body(null, 204);
  });

  app.openapi(test, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    const hasBody = (c.req.header('content-length') ?? '0') !== '0';
    const body = hasBody ? c.req.valid('json') : { prompt: 'Hello, are you working?', user: undefined };
    const tokenId = actor.kind === 'app' ? actor.tokenId : undefined;
    const call = { kind: 'direct' as const, ...(tokenId ? { tokenId } : {}), ...(body.user ? { user: body.user } : {}) };
    return c.json(await agents.test(appId, c.req.valid('param').id_or_name, body.prompt, call, c.req.raw.signal), 200);
  });

  app.openapi(health, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    return c.json(await agents.health(appId, c.req.valid('param').id_or_name), 200);
  });
}
