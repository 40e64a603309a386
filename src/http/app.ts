import { OpenAPIHono } from '@hono/zod-openapi';
import type { Hook } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import type { Logger } from '../config/index.ts';
import { EnsembleError, VERSION } from '../core/index.ts';
import type { AppSettingsCache, RateLimits, UserBudgetCache } from '../governance/index.ts';
import type { ChatService, RunService, TriggerService, WorkflowService } from '../orchestrator/index.ts';
import type { AgentService, AppService, AuditWriter } from '../registry/index.ts';
import type { Storage } from '../storage/index.ts';
import type { AppEnv } from './env.ts';
import { sendError, toEnsembleError } from './errors.ts';
import { authenticate, tokenRateLimit } from './middleware/auth.ts';
import { jsonBody } from './middleware/body.ts';
import { registerAgentRoutes } from './routes/agents.ts';
import { registerAppRoutes } from './routes/apps.ts';
import { registerChatRoutes } from './routes/chat.ts';
import { registerGovernanceRoutes } from './routes/governance.ts';
import { registerHealthRoutes, type HealthSource } from './routes/health.ts';
import { registerOpenAICompatRoutes } from './routes/openai-compat.ts';
import { registerRunRoutes } from './routes/runs.ts';
import { registerTriggerRoutes } from './routes/triggers.ts';
import { registerUserRoutes } from './routes/users.ts';
import { registerWorkflowRoutes, YAML_TYPES } from './routes/workflows.ts';

export type { AppEnv };

export interface HttpDeps {
  logger: Logger;
  health: HealthSource;
  bodyLimitBytes: number;
  apps: AppService;
  agents: AgentService;
  workflows: WorkflowService;
  runs: RunService;
  chat: ChatService;
  governance: { storage: Storage; settings: AppSettingsCache; audit: AuditWriter; limits: RateLimits; userBudgets: UserBudgetCache };
  triggers: TriggerService;
}

/** Validation failures of any route become the contract's 400 with the failing field paths. */
export const validationHook: Hook<unknown, AppEnv, string, unknown> = (result, c) => {
  if (!result.success) {
    const details = result.error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
    const first = details[0];
    const message = first ? `Invalid request: ${first.path || '(body)'}: ${first.message}` : 'Invalid request';
    return sendError(c, new EnsembleError('invalid_request', message, details));
  }
  return undefined;
};

/** Hono's own HTTP errors (e.g. a validator that met no body) in the contract's codes. */
function fromHttpException(error: HTTPException): EnsembleError {
  switch (error.status) {
    case 400:
      return new EnsembleError('invalid_request', error.message || 'Invalid request');
    case 413:
      return new EnsembleError('payload_too_large', error.message);
    case 415:
      return new EnsembleError('unsupported_media_type', error.message);
    default:
      return new EnsembleError('internal_error', 'Internal error');
  }
}

/** Most clients read no answer until they have sent their whole body, so the rest is read and dropped. */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024;

async function discardBody(body: ReadableStream<Uint8Array> | null): Promise<void> {
  if (!body || body.locked) return;
  const reader = body.getReader();
  let seen = 0;
  try {
    while (seen < MAX_DISCARD_BYTES) {
      const { done, value } = await reader.read();
      if (done) return;
      seen += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // The client went away; nothing left to discard.
  }
}

/** Builds the Hono application: middleware, every route, and the OpenAPI document. */
export function createHttpApp(deps: HttpDeps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.use('*', requestId({ headerName: 'X-Request-Id' }));
  app.use('*', async (c, next) => {
    const started = performance.now();
    await next();
    deps.logger.info(
      {
        request_id: c.get('requestId'),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
      },
      'request',
    );
  });
  app.use(
    '*',
    bodyLimit({
      maxSize: deps.bodyLimitBytes,
      onError: async (c) => {
        await discardBody(c.req.raw.body);
        return sendError(c, new EnsembleError('payload_too_large', `Request body is larger than ${deps.bodyLimitBytes} bytes`));
      },
    }),
  );
  app.use('/api/v1/*', authenticate(deps.apps));
  app.use('/api/v1/*', tokenRateLimit(deps.governance.settings, deps.governance.limits));
  app.use('/api/v1/*', jsonBody((path, type) => path.startsWith('/api/v1/workflows') && YAML_TYPES.test(type)));

  registerHealthRoutes(app, deps.health);
  registerAppRoutes(app, deps.apps);
  registerAgentRoutes(app, deps.agents);
  registerWorkflowRoutes(app, deps.workflows, deps.runs);
  registerRunRoutes(app, deps.runs);
  registerChatRoutes(app, deps.chat, deps.runs);
  registerOpenAICompatRoutes(app, { apps: deps.apps, agents: deps.agents, workflows: deps.workflows, runs: deps.runs, chat: deps.chat, governance: deps.governance });
  registerGovernanceRoutes(app, deps.governance);
  registerUserRoutes(app, deps.governance.storage, (appId, user) => deps.governance.userBudgets.forget(appId, user));
  registerTriggerRoutes(app, deps.triggers, deps.apps);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer' });
  app.doc31('/api/v1/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Ensemble API', version: VERSION, description: 'Multi-agent LLM orchestration service.' },
  });

  app.notFound((c) => sendError(c, new EnsembleError('not_found', `No route for ${c.req.method} ${c.req.path}`)));
  app.onError((error, c) => {
    const known = error instanceof HTTPException ? fromHttpException(error) : toEnsembleError(error);
    if (known.code === 'internal_error') {
      const err = error as Error;
      deps.logger.error({ request_id: c.get('requestId'), err: { name: err.name, message: err.message, stack: err.stack } }, 'unhandled error');
    }
    return sendError(c, known);
  });
  return app;
}
