/** Shapes of requests and responses, shared by the routes and the OpenAPI document. */
import { z } from '@hono/zod-openapi';

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'not_found' }),
      message: z.string(),
      details: z.unknown().openapi({ description: 'For 400: a list of {path, message}; null when there is nothing to add' }),
    }),
  })
  .openapi('Error');

export const UsageSchema = z
  .object({
    input_tokens: z.number().int(),
    output_tokens: z.number().int(),
    total_tokens: z.number().int(),
    cached_input_tokens: z.number().int().optional(),
    reasoning_tokens: z.number().int().optional(),
  })
  .openapi('Usage');

export const HealthStateSchema = z
  .object({
    status: z.enum(['healthy', 'unhealthy', 'unknown']),
    checked_at: z.string().nullable(),
    latency_ms: z.number().nullable(),
    error: z.object({ code: z.string(), message: z.string(), status: z.number().optional() }).nullable(),
  })
  .openapi('AgentHealth');

export const AgentSchema = z
  .object({
    id: z.string().uuid(),
    app_id: z.string().uuid(),
    name: z.string(),
    provider: z.string().openapi({ example: 'anthropic' }),
    model: z.string(),
    role: z.string(),
    system_prompt: z.string(),
    config: z.record(z.string(), z.unknown()),
    is_active: z.boolean(),
    api_key_set: z.boolean(),
    api_key_hint: z.string().nullable(),
    health: HealthStateSchema,
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Agent');

export const AppSchema = z.object({ id: z.string().uuid(), name: z.string(), created_at: z.string() }).openapi('App');

/** Every error status a route can answer, in the contract's shape. */
export function errorResponses(...statuses: number[]) {
  const described: Record<number, string> = {
    400: 'Invalid request (details name the field paths)',
    401: 'Missing, unknown or revoked token',
    402: 'A spending limit would be passed; the provider was not called',
    403: 'Wrong kind of token for this route',
    404: 'No such object (or it belongs to another app)',
    409: 'Duplicate name',
    413: 'Body over the size limit',
    415: 'Body type not accepted',
    422: 'Workflow cannot run',
    429: 'Rate limited (see Retry-After)',
    502: 'The provider failed after retries',
    504: 'Timed out',
  };
  return Object.fromEntries(
    statuses.map((status) => [status, { description: described[status] ?? 'Error', content: { 'application/json': { schema: ErrorSchema } } }]),
  );
}
