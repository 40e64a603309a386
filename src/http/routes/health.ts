import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { VERSION } from '../../core/index.ts';
import type { AppEnv } from '../app.ts';

export interface HealthSource {
  storage(): 'sqlite' | 'postgres';
  queue(): 'local' | 'redis';
}

const HealthSchema = z
  .object({
    status: z.literal('ok'),
    version: z.string(),
    storage: z.enum(['sqlite', 'postgres']),
    queue: z.enum(['local', 'redis']),
  })
  .openapi('Health');

const healthRoute = createRoute({
  method: 'get',
  path: '/api/v1/health',
  summary: 'Service health (no token needed)',
  responses: { 200: { description: 'The service is up', content: { 'application/json': { schema: HealthSchema } } } },
});

export function registerHealthRoutes(app: OpenAPIHono<AppEnv>, source: HealthSource): void {
  app.openapi(healthRoute, (c) => c.json({ status: 'ok' as const, version: VERSION, storage: source.storage(), queue: source.queue() }, 200));
}
