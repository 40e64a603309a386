import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { EnsembleError } from '../../core/index.ts';
import { AppSettingsSchema, usageReport, type AppSettingsCache } from '../../governance/index.ts';
import type { AuditWriter } from '../../registry/index.ts';
import { USAGE_GROUPS, type Storage, type UsageGroup } from '../../storage/index.ts';
import type { AppEnv } from '../env.ts';
import { requireAdmin, requireApp } from '../middleware/auth.ts';
import { errorResponses } from '../schemas.ts';

const security = [{ bearerAuth: [] }];
const time = z
  .string()
  .refine((v) => !Number.isNaN(Date.parse(v)), 'must be an RFC 3339 time or a date')
  .transform((v) => new Date(v).toISOString());

const Totals = z.object({
  requests: z.number(),
  errors: z.number(),
  input_tokens: z.number(),
  output_tokens: z.number(),
  total_tokens: z.number(),
  cost_usd: z.number(),
});

const usage = createRoute({
  method: 'get',
  path: '/api/v1/usage',
  tags: ['governance'],
  summary: 'Usage and cost, grouped (agent, provider, model, workflow, day, user, or combinations like agent,day)',
  security,
  request: {
    query: z.object({
      from: time.optional(),
      to: time.optional(),
      group_by: z
        .string()
        .optional()
        .openapi({ example: 'agent,day' })
        .refine((v) => v === undefined || v.split(',').every((g) => (USAGE_GROUPS as readonly string[]).includes(g.trim())), `each group must be one of ${USAGE_GROUPS.join(', ')}`),
    }),
  },
  responses: {
    200: {
      description: 'Groups and totals (every provider call counts as a request, failed ones included)',
      content: { 'application/json': { schema: z.object({ data: z.array(Totals.extend({ key: z.string(), group: z.record(z.string(), z.string().nullable()) })), totals: Totals }).openapi('UsageReport') } },
    },
    ...errorResponses(400, 401, 403),
  },
});

const AuditEntrySchema = z
  .object({
    id: z.string(),
    at: z.string(),
    actor: z.string(),
    action: z.string(),
    target_type: z.string(),
    target_id: z.string(),
    outcome: z.string(),
    details: z.record(z.string(), z.unknown()),
  })
  .openapi('AuditEntry');

const audit = createRoute({
  method: 'get',
  path: '/api/v1/audit',
  tags: ['governance'],
  summary: "The app's audit log, newest first (read-only: entries are never changed or deleted through the API)",
  security,
  request: {
    query: z.object({
      limit: z.coerce.number().int().min(1).max(1000).default(100),
      before: z.string().optional().openapi({ description: 'An entry id: entries older than it' }),
      action: z.string().optional(),
      actor: z.string().optional(),
      target_id: z.string().optional(),
      from: time.optional(),
      to: time.optional(),
    }),
  },
  responses: { 200: { description: 'Entries', content: { 'application/json': { schema: z.object({ data: z.array(AuditEntrySchema) }) } } }, ...errorResponses(400, 401, 403) },
});

const updateApp = createRoute({
  method: 'patch',
  path: '/api/v1/apps/{app_id}',
  tags: ['apps'],
  summary: "Change an app's settings (admin token): budget, per-token rate limit, audit payloads",
  security,
  request: { params: z.object({ app_id: z.string() }), body: { required: true, content: { 'application/json': { schema: z.object({ settings: AppSettingsSchema }).strict() } } } },
  responses: {
    200: { description: 'The app', content: { 'application/json': { schema: z.object({ id: z.string(), name: z.string(), created_at: z.string(), settings: z.record(z.string(), z.unknown()) }) } } },
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerGovernanceRoutes(app: OpenAPIHono<AppEnv>, deps: { storage: Storage; settings: AppSettingsCache; audit: AuditWriter }): void {
  app.openapi(usage, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    const q = c.req.valid('query');
    const groupBy = (q.group_by ? q.group_by.split(',').map((g) => g.trim()) : []) as UsageGroup[];
    return c.json(await usageReport(deps.storage, appId, { ...(q.from ? { from: q.from } : {}), ...(q.to ? { to: q.to } : {}), groupBy }), 200);
  });

  app.openapi(audit, async (c) => {
    const { appId } = requireApp(c.get('principal'));
    const q = c.req.valid('query');
    const entries = await deps.storage.audit.list(appId, {
      limit: q.limit,
      ...(q.before ? { before: q.before } : {}),
      ...(q.action ? { action: q.action } : {}),
      ...(q.actor ? { actor: q.actor } : {}),
      ...(q.target_id ? { target_id: q.target_id } : {}),
      ...(q.from ? { from: q.from } : {}),
      ...(q.to ? { to: q.to } : {}),
    });
    return c.json({ data: entries.map(({ app_id: _app, ...entry }) => entry) }, 200);
  });

  app.openapi(updateApp, async (c) => {
    const actor = requireAdmin(c.get('principal'));
    const { app_id } = c.req.valid('param');
    const current = await deps.storage.apps.get(app_id);
    if (!current) throw new EnsembleError('not_found', 'No such app');
    const settings = { ...current.settings, ...c.req.valid('json').settings };
    await deps.storage.apps.updateSettings(app_id, settings);
    deps.settings.forget(app_id);
    await deps.audit.record({ actor, app_id, action: 'app.update', target_type: 'app', target_id: app_id, outcome: 'success', details: { settings } });
    return c.json({ id: current.id, name: current.name, created_at: current.created_at, settings }, 200);
  });
}
