import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { ChatService, RunService } from '../../orchestrator/index.ts';
import type { AppEnv } from '../env.ts';
import { requireApp } from '../middleware/auth.ts';
import { errorResponses } from '../schemas.ts';
import { sendRunEvents } from '../sse.ts';

const ChatRequestSchema = z
  .object({
    message: z.string().min(1).max(200_000),
    agents: z.array(z.string().min(1)).min(1).max(32),
    mode: z.enum(['parallel', 'sequential', 'orchestrated']).default('parallel'),
    aggregator: z.string().min(1).optional(),
    stream: z.boolean().default(false),
    context: z.record(z.string(), z.unknown()).default({}),
    fail_fast: z.boolean().default(false),
    user: z.string().min(1).max(256).optional(),
    consults: z
      .union([z.array(z.string().min(1)).min(1), z.record(z.string(), z.array(z.string().min(1)).min(1))])
      .optional()
      .openapi({ description: 'Agents the chat\'s agents may ask while they work (tools ask_<name>): a list for every agent, or per agent' }),
    share_context: z.boolean().optional().openapi({ description: 'Agents see the run\'s earlier exchanges (default false)' }),
  })
  .strict()
  .openapi('ChatMultiRequest');

const ChatResultSchema = z
  .object({
    run_id: z.string(),
    mode: z.string(),
    status: z.string().openapi({ description: 'completed | partial | failed | cancelled' }),
    output: z.unknown(),
    results: z.array(
      z.object({
        step_id: z.string(),
        agent: z.string(),
        status: z.string(),
        output: z.unknown(),
        error: z.unknown(),
        usage: z.record(z.string(), z.number()).nullable(),
        cost_usd: z.number(),
        latency_ms: z.number().nullable(),
      }),
    ),
    usage: z.record(z.string(), z.number()),
    cost_usd: z.number(),
    usage_by_agent: z.record(z.string(), z.object({ usage: z.record(z.string(), z.number()), cost_usd: z.number(), calls: z.number() })),
    plan: z.unknown().optional(),
    error: z.unknown(),
  })
  .openapi('ChatMultiResult');

const chatMulti = createRoute({
  method: 'post',
  path: '/api/v1/chat/multi',
  tags: ['chat'],
  summary: 'Several agents on one message: parallel, sequential or orchestrated (a run; stream: true for SSE)',
  security: [{ bearerAuth: [] }],
  request: { body: { required: true, content: { 'application/json': { schema: ChatRequestSchema } } } },
  responses: {
    200: { description: 'The finished run, or its SSE stream', content: { 'application/json': { schema: ChatResultSchema }, 'text/event-stream': { schema: z.string() } } },
    ...errorResponses(400, 401, 402, 403, 404, 413, 415, 429),
  },
});

export function registerChatRoutes(app: OpenAPIHono<AppEnv>, chat: ChatService, runs: RunService): void {
  app.openapi(chatMulti, async (c) => {
    const { appId, actor } = requireApp(c.get('principal'));
    const body = c.req.valid('json');
    const runId = await chat.start(appId, { message: body.message, agents: body.agents, mode: body.mode, aggregator: body.aggregator, failFast: body.fail_fast, context: body.context, user: body.user, consults: body.consults, shareContext: body.share_context }, actor);
    if (body.stream || (c.req.header('accept') ?? '').includes('text/event-stream')) {
      return sendRunEvents(c, (signal) => runs.events(appId, runId, 0, signal)) as never;
    }
    await runs.waitForEnd(runId);
    return c.json(await chat.result(appId, runId), 200);
  });
}
