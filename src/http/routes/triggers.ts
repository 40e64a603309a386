import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { EnsembleError } from '../../core/index.ts';
import { pullRequestInput, type TriggerService } from '../../orchestrator/index.ts';
import type { AppService } from '../../registry/index.ts';
import type { AppEnv } from '../env.ts';
import { requireAdmin, requireApp } from '../middleware/auth.ts';
import { errorResponses } from '../schemas.ts';

const security = [{ bearerAuth: [] }];
const TriggeredSchema = z
  .object({ trigger: z.string(), runs: z.array(z.object({ run_id: z.string(), workflow: z.string() })), ignored: z.string().optional() })
  .openapi('TriggeredRuns');

const fire = createRoute({
  method: 'post',
  path: '/api/v1/triggers/{trigger}',
  tags: ['triggers'],
  summary: 'Start every active workflow of the app bound to this trigger, with the request body as input',
  security,
  request: {
    params: z.object({ trigger: z.string().min(1).max(128) }),
    body: {
      required: false,
      description: '`input` (a string) and `context` (an object) when given; otherwise the whole body, as JSON text, is the input. `user` names the end user.',
      content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
    },
  },
  responses: { 202: { description: 'Runs started', content: { 'application/json': { schema: TriggeredSchema } } }, ...errorResponses(400, 401, 402, 403, 404, 415) },
});

const secret = createRoute({
  method: 'post',
  path: '/api/v1/apps/{app_id}/webhook-secret',
  tags: ['apps'],
  summary: "Create (or replace) the app's webhook signing secret (admin token); shown once",
  security,
  request: { params: z.object({ app_id: z.string() }) },
  responses: { 201: { description: 'The secret', content: { 'application/json': { schema: z.object({ secret: z.string() }) } } }, ...errorResponses(401, 403, 404) },
});

export function registerTriggerRoutes(app: OpenAPIHono<AppEnv>, triggers: TriggerService, apps: AppService): void {
  app.openapi(fire, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    const hasBody = (c.req.header('content-length') ?? '0') !== '0' || c.req.header('transfer-encoding') !== undefined;
    const body = hasBody ? c.req.valid('json') : {};
    const input = typeof body.input === 'string' ? body.input : JSON.stringify(body);
    const context = body.context && typeof body.context === 'object' && !Array.isArray(body.context) ? (body.context as Record<string, unknown>) : {};
    const trigger = c.req.valid('param').trigger;
    const runs = await triggers.fire(appId, trigger, { input, context, user: typeof body.user === 'string' ? body.user : undefined }, actor);
    return c.json({ trigger, runs }, 202);
  });

  app.openapi(secret, async (c) => {
    const actor = requireAdmin(c.get('principal'));
    return c.json({ secret: await apps.rotateWebhookSecret(c.req.valid('param').app_id, actor) }, 201);
  });

  // Signed inbound webhooks: no bearer token, the signature is the authentication.
  app.post('/hooks/:app_id/:trigger', async (c) => {
    const appId = c.req.param('app_id');
    const trigger = c.req.param('trigger');
    const raw = await c.req.text();
    const scheme = await triggers.verify(appId, trigger, (name) => c.req.header(name), raw);
    const actor = { kind: 'system' as const, name: `webhook:${scheme}` };
    let parsed: unknown;
    try {
      parsed = raw ? JSON.parse(raw) : {};
    } catch {
      parsed = undefined;
    }
    if (scheme === 'github' && c.req.header('x-github-event') === 'pull_request') {
      const event = pullRequestInput(parsed);
      if (!event) return c.json({ trigger, runs: [], ignored: `pull_request action "${String((parsed as { action?: unknown })?.action)}" starts nothing` }, 202);
      return c.json({ trigger, runs: await triggers.fire(appId, trigger, event, actor) }, 202);
    }
    if (scheme === 'github' && c.req.header('x-github-event') === 'ping') return c.json({ trigger, runs: [], ignored: 'ping' }, 202);
    if (parsed === undefined && raw.length > 0 && (c.req.header('content-type') ?? '').includes('json')) throw new EnsembleError('invalid_request', 'Malformed JSON');
    const body = (parsed ?? {}) as Record<string, unknown>;
    const input = typeof body.input === 'string' ? body.input : raw;
    const context = body.context && typeof body.context === 'object' ? (body.context as Record<string, unknown>) : {};
    return c.json({ trigger, runs: await triggers.fire(appId, trigger, { input, context, user: typeof body.user === 'string' ? body.user : undefined }, actor) }, 202);
  });
}
