import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppService } from '../../registry/index.ts';
import type { AppEnv } from '../env.ts';
import { requireAdmin } from '../middleware/auth.ts';
import { AppSchema, errorResponses } from '../schemas.ts';

const security = [{ bearerAuth: [] }];
const json = <T extends z.ZodType>(schema: T) => ({ content: { 'application/json': { schema } } });

const createApp = createRoute({
  method: 'post',
  path: '/api/v1/apps',
  tags: ['apps'],
  summary: 'Create an app (admin token); its first token is shown once',
  security,
  request: { body: { required: true, ...json(z.object({ name: z.string().min(1).max(64).regex(/^[A-Za-z0-9][A-Za-z0-9._ -]*$/) }).strict()) } },
  responses: {
    201: { description: 'Created', ...json(AppSchema.extend({ token: z.string() }).openapi('AppCreated')) },
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

const listApps = createRoute({
  method: 'get',
  path: '/api/v1/apps',
  tags: ['apps'],
  summary: 'List apps (admin token)',
  security,
  responses: { 200: { description: 'Apps', ...json(z.object({ data: z.array(AppSchema) })) }, ...errorResponses(401, 403) },
});

const AppIdParam = z.object({ app_id: z.string().min(1) });

const createToken = createRoute({
  method: 'post',
  path: '/api/v1/apps/{app_id}/tokens',
  tags: ['apps'],
  summary: 'Create another token for an app (admin token); shown once',
  security,
  request: { params: AppIdParam, body: { required: false, ...json(z.object({ name: z.string().min(1).max(64).optional() }).strict()) } },
  responses: {
    201: { description: 'Created', ...json(z.object({ id: z.string(), token: z.string() }).openapi('TokenCreated')) },
    ...errorResponses(400, 401, 403, 404, 415),
  },
});

const revokeToken = createRoute({
  method: 'delete',
  path: '/api/v1/apps/{app_id}/tokens/{token_id}',
  tags: ['apps'],
  summary: 'Revoke a token at once (admin token)',
  security,
  request: { params: AppIdParam.extend({ token_id: z.string().min(1) }) },
  responses: { 204: { description: 'Revoked' }, ...errorResponses(401, 403, 404) },
});

export function registerAppRoutes(app: OpenAPIHono<AppEnv>, apps: AppService): void {
  app.openapi(createApp, async (c) => {
    const actor = requireAdmin(c.get('principal'));
    const { name } = c.req.valid('json');
    const created = await apps.create(name, actor);
    return c.json({ id: created.app.id, name: created.app.name, created_at: created.app.created_at, token: created.token }, 201);
  });

  app.openapi(listApps, async (c) => {
    requireAdmin(c.get('principal'));
    const list = await apps.list();
    return c.json({ data: list.map((a) => ({ id: a.id, name: a.name, created_at: a.created_at })) }, 200);
  });

  app.openapi(createToken, async (c) => {
    const actor = requireAdmin(c.get('principal'));
    const { app_id } = c.req.valid('param');
    const body = (c.req.header('content-length') ?? '0') === '0' ? {} : c.req.valid('json');
    const created = await apps.createToken(app_id, body.name ?? 'token', actor);
    return c.json(created, 201);
  });

  app.openapi(revokeToken, async (c) => {
    const actor = requireAdmin(c.get('principal'));
    const { app_id, token_id } = c.req.valid('param');
    await apps.revokeToken(app_id, token_id, actor);
    return c.body(null, 204);
  });
}
