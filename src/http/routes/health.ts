import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { VERSION } from '../../core/index.ts';
import type { AppEnv } from '../app.ts';

export interface HealthSource {
  storage(): 'sqlite' | 'postgres';
  queue(): 'local' | 'redis';
  /** Whether each dependency answers now. */
  dependencies?(): Promise<{ storage: 'up' | 'down'; redis?: 'up' | 'down' }>;
}

const HealthSchema = z
  .object({
    status: z.enum(['ok', 'degraded']),
    version: z.string(),
    storage: z.enum(['sqlite', 'postgres']),
    queue: z.enum(['local', 'redis']),
    dependencies: z.object({ storage: z.enum(['up', 'down']), redis: z.enum(['up', 'down']).optional() }).optional(),
  })
  .openapi('Health');

const healthRoute = createRoute({
  method: 'get',
  path: '/api/v1/health',
  summary: 'Service health (no token needed)',
  responses: {
    200: { description: 'The service and its dependencies are up', content: { 'application/json': { schema: HealthSchema } } },
    503: { description: 'A dependency is down (named in `dependencies`)', content: { 'application/json': { schema: HealthSchema } } },
  },
});

export function registerHealthRoutes(app: OpenAPIHono<AppEnv>, source: HealthSource): void {
  app.openapi(healthRoute, async (c) => {
    const dependencies = source.dependencies ? await source.dependencies() : undefined;
    const down = dependencies !== undefined && Object.values(dependencies).includes('down');
    const body = { status: down ? ('degraded' as const) : ('ok' as const), version: VERSION, storage: source.storage(), queue: source.queue(), ...(dependencies ? { dependencies } : {}) };
    return down ? c.json(body, 503) : c.json(body, 200);
  });
}
