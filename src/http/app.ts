import { OpenAPIHono } from '@hono/zod-openapi';
import type { Hook } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import type { Logger } from '../config/index.ts';
import { EnsembleError, VERSION } from '../core/index.ts';
import { sendError, toEnsembleError } from './errors.ts';
import { registerHealthRoutes, type HealthSource } from './routes/health.ts';

export interface HttpDeps {
  logger: Logger;
  health: HealthSource;
  bodyLimitBytes: number;
}

export type AppEnv = { Variables: { requestId: string } };

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
      onError: (c) =>
        sendError(c, new EnsembleError('payload_too_large', `Request body is larger than ${deps.bodyLimitBytes} bytes`)),
    }),
  );

  registerHealthRoutes(app, deps.health);

  app.doc31('/api/v1/openapi.json', {
    openapi: '3.1.0',
    info: { title: 'Ensemble API', version: VERSION, description: 'Multi-agent LLM orchestration service.' },
  });

  app.notFound((c) => sendError(c, new EnsembleError('not_found', `No route for ${c.req.method} ${c.req.path}`)));
  app.onError((error, c) => {
    const known = toEnsembleError(error);
    if (known.code === 'internal_error') {
      deps.logger.error({ request_id: c.get('requestId'), err: { name: (error as Error).name, message: (error as Error).message } }, 'unhandled error');
    }
    return sendError(c, known);
  });
  return app;
}
