import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { EnsembleError } from '../../core/index.ts';
import type { Storage } from '../../storage/index.ts';
import type { AppEnv } from '../env.ts';
import { requireApp } from '../middleware/auth.ts';
import { errorResponses } from '../schemas.ts';

const security = [{ bearerAuth: [] }];
const UserParam = z.object({ user: z.string().min(1).max(256).openapi({ description: 'The opaque end-user id the app passes as `user`' }) });
const UserBudgetSchema = z.object({ user: z.string(), limit_usd: z.number(), period: z.enum(['day', 'month', 'total']), updated_at: z.string() }).openapi('UserBudget');

const put = createRoute({
  method: 'put',
  path: '/api/v1/users/{user}/budget',
  tags: ['users'],
  summary: "Set an end user's budget: every call made for this user reserves against it (402 when it would be passed)",
  security,
  request: { params: UserParam, body: { required: true, content: { 'application/json': { schema: z.object({ limit_usd: z.number().nonnegative(), period: z.enum(['day', 'month', 'total']) }).strict() } } } },
  responses: { 200: { description: 'The budget', content: { 'application/json': { schema: UserBudgetSchema } } }, ...errorResponses(400, 401, 403, 415) },
});

const get = createRoute({
  method: 'get',
  path: '/api/v1/users/{user}/budget',
  tags: ['users'],
  summary: "An end user's budget",
  security,
  request: { params: UserParam },
  responses: { 200: { description: 'The budget', content: { 'application/json': { schema: UserBudgetSchema } } }, ...errorResponses(401, 403, 404) },
});

const remove = createRoute({
  method: 'delete',
  path: '/api/v1/users/{user}/budget',
  tags: ['users'],
  summary: "Remove an end user's budget",
  security,
  request: { params: UserParam },
  responses: { 204: { description: 'Removed' }, ...errorResponses(401, 403, 404) },
});

const list = createRoute({
  method: 'get',
  path: '/api/v1/users',
  tags: ['users'],
  summary: 'End users that have a budget',
  security,
  responses: { 200: { description: 'Budgets', content: { 'application/json': { schema: z.object({ data: z.array(UserBudgetSchema) }) } } }, ...errorResponses(401, 403) },
});

export function registerUserRoutes(app: OpenAPIHono<AppEnv>, storage: Storage, forget: (appId: string, user: string) => void): void {
  app.openapi(put, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    const { user } = c.req.valid('param');
    const budget = { user, ...c.req.valid('json'), updated_at: new Date().toISOString() };
    await storage.users.setBudget(appId, budget);
    forget(appId, user);
    return c.json(budget, 200);
  });
  app.openapi(get, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    const budget = await storage.users.getBudget(appId, c.req.valid('param').user);
    if (!budget) throw new EnsembleError('not_found', 'This user has no budget');
    return c.json(budget, 200);
  });
  app.openapi(remove, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    const { user } = c.req.valid('param');
    if (!(await storage.users.deleteBudget(appId, user))) throw new EnsembleError('not_found', 'This user has no budget');
    forget(appId, user);
    return c.body(null, 204);
  });
  app.openapi(list, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    return c.json({ data: await storage.users.listBudgets(appId) }, 200);
  });
}
