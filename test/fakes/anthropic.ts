/**
 * Fake Anthropic Messages API (https://docs.anthropic.com/en/api/messages) on loopback.
 *
 * Speaks the documented wire format closely enough that the official `@anthropic-ai/sdk` and
 * `@ai-sdk/anthropic` both accept it unchanged (see anthropic.sdk.test.ts):
 *
 * - POST /v1/messages: JSON, or SSE when `stream: true` (message_start, content_block_start,
 *   ping, content_block_delta*, content_block_stop, message_delta, message_stop).
 * - GET /v1/models and GET /v1/models/{id}: the model catalogue, paginated like the real API.
 * - Auth through `x-api-key` (or `Authorization: Bearer <key>`, which `@anthropic-ai/sdk` 1.x
 *   sends); `anthropic-version` is required on every call.
 *
 * Tool use: a reply with `toolCalls` answers with `tool_use` content blocks (after a text block
 * when the script has text) and stop_reason "tool_use"; streamed, each block opens with
 * content_block_start and its input arrives as `input_json_delta` pieces. A follow-up request
 * must answer every `tool_use` with a `tool_result` block in the next user turn, as the API
 * checks (400 otherwise), and must still define its tools.
 *
 * Structured output is answered the way the request asked for it:
 * - Forced tool use (`tool_choice` `{type:"tool"}` or `{type:"any"}`), which is how
 *   `@ai-sdk/anthropic` asks models without native structured output (e.g.
 *   `claude-3-5-haiku-latest`) through a tool named "json": a `tool_use` block whose input is
 *   `reply.json`, stop_reason "tool_use"; streamed as `input_json_delta` pieces.
 * - Native structured output (`output_config.format` / the older beta `output_format` of type
 *   "json_schema"), which `@ai-sdk/anthropic` uses for e.g. `claude-sonnet-4-5`: the JSON
 *   serialized as the answer's text.
 *
 * Token counts: {@link FakeUsage} is read the way the AI SDK normalizes usage, so every fake
 * yields `result.usage.inputTokens === usage.input` whatever the vendor. Anthropic's own
 * `input_tokens` excludes cache reads, hence `input_tokens = input - cached` on the wire and
 * `cache_read_input_tokens = cached`; `output_tokens` already includes thinking tokens.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import {
  applyDelay,
  argumentPieces,
  header,
  replyChunks,
  replyText,
  replyUsage,
  sendJson,
  sleep,
  splitText,
  startFake,
  startStream,
  toolReplyText,
  writeSse,
} from './harness.ts';
import type { FakeReply, FakeUsage, FakeVendor, RecordedRequest, StartOptions, VendorContext } from './harness.ts';

export const ANTHROPIC_DEFAULT_TEXT = 'Hello from the fake anthropic.';

/** The version header value `@ai-sdk/anthropic` sends; any value is accepted, absence is not. */
export const ANTHROPIC_VERSION = '2023-06-01';

/** Models the fake lists. Generation accepts any model id, like a proxy in front of new models. */
export const ANTHROPIC_MODELS: readonly { id: string; display_name: string; created_at: string }[] = [
  { id: 'claude-sonnet-4-6', display_name: 'Claude Sonnet 4.6', created_at: '2026-02-17T00:00:00Z' },
  { id: 'claude-opus-4-6', display_name: 'Claude Opus 4.6', created_at: '2026-02-05T00:00:00Z' },
  { id: 'claude-sonnet-4-5-20250929', display_name: 'Claude Sonnet 4.5', created_at: '2025-09-29T00:00:00Z' },
  { id: 'claude-haiku-4-5-20251001', display_name: 'Claude Haiku 4.5', created_at: '2025-10-01T00:00:00Z' },
  { id: 'claude-opus-4-1-20250805', display_name: 'Claude Opus 4.1', created_at: '2025-08-05T00:00:00Z' },
  { id: 'claude-3-5-haiku-20241022', display_name: 'Claude Haiku 3.5', created_at: '2024-10-22T00:00:00Z' },
];

/** Error `type` the real API pairs with each HTTP status. */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 409:
      return 'conflict_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 504:
      return 'timeout_error';
    case 529:
      return 'overloaded_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

const DEFAULT_ERROR_MESSAGES: Record<string, string> = {
  invalid_request_error: 'Invalid request.',
  authentication_error: 'invalid x-api-key',
  billing_error: 'Your credit balance is too low to access the Anthropic API.',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'The requested resource could not be found.',
  conflict_error: 'Conflict.',
  request_too_large: 'Request exceeds the maximum allowed number of bytes.',
  rate_limit_error: 'Number of request tokens has exceeded your per-minute rate limit.',
  timeout_error: 'Request timed out.',
  overloaded_error: 'Overloaded',
  api_error: 'Internal server error',
};

function newId(prefix: string): string {
  return `${prefix}_fake${randomBytes(9).toString('hex')}`;
}

/** Sends the documented error envelope; `request_id` mirrors the `request-id` header as the API does. */
export function sendAnthropicError(
  res: ServerResponse,
  status: number,
  message?: string,
  headers: Record<string, string> = {},
): void {
  const type = anthropicErrorType(status);
  const requestId = newId('req');
  sendJson(
    res,
    status,
    { type: 'error', error: { type, message: message ?? DEFAULT_ERROR_MESSAGES[type] ?? 'Error' }, request_id: requestId },
    { 'request-id': requestId, ...headers },
  );
}

/** The input side of the wire usage, shared by the message and both stream events. */
function inputUsage(usage: FakeUsage) {
  const cached = usage.cached ?? 0;
  return {
    input_tokens: Math.max(0, usage.input - cached),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
  };
}

/** Output tokens, with the thinking breakdown only when the script has one. */
function outputUsage(usage: FakeUsage) {
  return {
    output_tokens: usage.output,
    ...(usage.reasoning !== undefined && { output_tokens_details: { thinking_tokens: usage.reasoning } }),
  };
}

/** Wire usage of a complete message. */
function wireUsage(usage: FakeUsage) {
  return {
    ...inputUsage(usage),
    cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    ...outputUsage(usage),
    service_tier: 'standard',
  };
}

function isRecord(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The tool the request forces, if any. `{type:"any"}` lets the model pick; with the AI SDK's
 * JSON tool present it is the one a model would pick, otherwise the first declared tool.
 */
export function forcedToolName(body: Record<string, any>): string | undefined {
  const choice: unknown = body.tool_choice;
  if (!isRecord(choice)) return undefined;
  if (choice.type === 'tool' && typeof choice.name === 'string') return choice.name;
  if (choice.type !== 'any' || !Array.isArray(body.tools)) return undefined;
  const names = (body.tools as unknown[])
    .map((t) => (isRecord(t) && typeof t.name === 'string' ? t.name : undefined))
    .filter((n): n is string => n !== undefined);
  return names.includes('json') ? 'json' : names[0];
}

/** True when the request asks for native JSON-schema output rather than a tool. */
export function wantsNativeJson(body: Record<string, any>): boolean {
  const format = isRecord(body.output_config) ? body.output_config.format : body.output_format;
  return isRecord(format) && format.type === 'json_schema';
}

/** A forced tool must be called with an object; fall back to the text when it parses as one. */
function toolInput(reply: FakeReply): unknown {
  if (reply.json !== undefined) return reply.json;
  try {
    const parsed: unknown = JSON.parse(replyText(reply, ''));
    if (isRecord(parsed)) return parsed;
  } catch {
    // not JSON: an empty object is still a valid tool call
  }
  return {};
}

/** First validation failure the real API would report, as its message. */
function validateMessagesBody(body: unknown): string | undefined {
  if (!isRecord(body)) return 'There was an error parsing the body of your request.';
  if (typeof body.model !== 'string') return 'model: Field required';
  if (body.max_tokens === undefined) return 'max_tokens: Field required';
  if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens) || body.max_tokens < 1) {
    return 'max_tokens: Input should be a valid integer greater than or equal to 1';
  }
  if (!Array.isArray(body.messages)) return 'messages: Field required';
  if (body.messages.length === 0) return 'messages: at least one message is required';
  const toolTurn = toolTurnError(body.messages as unknown[]);
  if (toolTurn) return toolTurn;
  const usesTools = (body.messages as unknown[]).some(
    (m) => isRecord(m) && Array.isArray(m.content) && (m.content as unknown[]).some((b) => isRecord(b) && (b.type === 'tool_use' || b.type === 'tool_result')),
  );
  if (usesTools && !(Array.isArray(body.tools) && body.tools.length > 0)) {
    return 'Requests which include `tool_use` or `tool_result` blocks must define tools.';
  }
  return undefined;
}

/** Waits between chunks; false when the client went away meanwhile (stop writing then). */
async function pause(ctx: VendorContext, ms: number | undefined): Promise<boolean> {
  if (ms) {
    await Promise.race([sleep(ms), new Promise<void>((resolve) => ctx.res.once('close', () => resolve()))]);
  }
  return !ctx.res.destroyed && !ctx.record.closedEarly;
}

async function handleMessages(ctx: VendorContext): Promise<void> {
  const { res, record } = ctx;
  const invalid = validateMessagesBody(record.body);
  if (invalid) {
    sendAnthropicError(res, 400, invalid);
    return;
  }
  const body = record.body as Record<string, any>;
  const reply = ctx.nextReply();
  if (!(await applyDelay(ctx, reply))) return;
  if (reply.status !== undefined && reply.status >= 400) {
    sendAnthropicError(res, reply.status, reply.errorMessage, reply.headers);
    return;
  }

  const model = body.model as string;
  const usage = replyUsage(reply);
  const blocks = planBlocks(body, reply);
  const calling = blocks.some((b) => b.type === 'tool_use');
  // Native structured output needs no branch: replyText already serializes reply.json.
  const stopReason = reply.finish === 'length' ? 'max_tokens' : calling ? 'tool_use' : 'end_turn';
  const id = newId('msg');
  const requestId = newId('req');
  const headers = { 'request-id': requestId, ...reply.headers };

  if (body.stream !== true) {
    const content = blocks.map((b) =>
      b.type === 'text' ? { type: 'text', text: b.pieces.join('') } : { type: 'tool_use', id: b.id, name: b.name, input: b.input },
    );
    sendJson(
      res,
      200,
      {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content,
        stop_reason: stopReason,
        stop_sequence: null,
        usage: wireUsage(usage),
      },
      headers,
    );
    return;
  }

  startStream(res, 'text/event-stream; charset=utf-8', headers);
  // Like the API, message_start carries the input counts and a placeholder output count.
  const startUsage = {
    ...inputUsage(usage),
    cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    output_tokens: Math.min(1, usage.output),
    service_tier: 'standard',
  };
  writeSse(
    res,
    {
      type: 'message_start',
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: startUsage,
      },
    },
    'message_start',
  );

  let first = true;
  for (const [index, b] of blocks.entries()) {
    const start = b.type === 'text' ? { type: 'text', text: '' } : { type: 'tool_use', id: b.id, name: b.name, input: {} };
    writeSse(res, { type: 'content_block_start', index, content_block: start }, 'content_block_start');
    if (index === 0) writeSse(res, { type: 'ping' }, 'ping');
    // Like the API, a tool_use block's input starts with an empty partial_json.
    const pieces = b.type === 'tool_use' ? ['', ...b.pieces] : b.pieces;
    for (const piece of pieces) {
      if (!first && piece !== '' && !(await pause(ctx, reply.chunkDelayMs))) return;
      if (piece !== '') first = false;
      const delta = b.type === 'tool_use' ? { type: 'input_json_delta', partial_json: piece } : { type: 'text_delta', text: piece };
      writeSse(res, { type: 'content_block_delta', index, delta }, 'content_block_delta');
    }
    if (!(await pause(ctx, reply.chunkDelayMs))) return;
    writeSse(res, { type: 'content_block_stop', index }, 'content_block_stop');
  }

  // The documented message_delta usage is cumulative, so it repeats the input counts.
  writeSse(
    res,
    {
      type: 'message_delta',
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { ...inputUsage(usage), ...outputUsage(usage) },
    },
    'message_delta',
  );
  writeSse(res, { type: 'message_stop' }, 'message_stop');
  res.end();
}

type Block =
  | { type: 'text'; pieces: string[] }
  | { type: 'tool_use'; id: string; name: string; input: unknown; pieces: string[] };

/**
 * The content blocks of the answer: the scripted tool calls (after any scripted text), else a
 * forced tool's call carrying the JSON answer, else text.
 */
function planBlocks(body: Record<string, any>, reply: FakeReply): Block[] {
  if (reply.toolCalls?.length) {
    const text = toolReplyText(reply);
    const blocks: Block[] = text ? [{ type: 'text', pieces: reply.chunks ?? splitText(text) }] : [];
    for (const call of reply.toolCalls) {
      blocks.push({ type: 'tool_use', id: call.id ?? newId('toolu'), name: call.name, input: call.args, pieces: argumentPieces(JSON.stringify(call.args)) });
    }
    return blocks;
  }
  const toolName = forcedToolName(body);
  if (toolName) {
    const input = toolInput(reply);
    return [{ type: 'tool_use', id: newId('toolu'), name: toolName, input, pieces: splitText(JSON.stringify(input)) }];
  }
  return [{ type: 'text', pieces: replyChunks(reply, ANTHROPIC_DEFAULT_TEXT) }];
}

/**
 * The API's check of a tool round trip: every `tool_use` of an assistant turn must be answered
 * by a `tool_result` in the user turn right after it, and every `tool_result` must answer one.
 */
function toolTurnError(messages: unknown[]): string | undefined {
  for (const [i, message] of messages.entries()) {
    if (!isRecord(message)) continue;
    const blocks = Array.isArray(message.content) ? (message.content as unknown[]).filter(isRecord) : [];
    const previous = messages[i - 1];
    if (message.role === 'user') {
      const asked = new Set(
        (isRecord(previous) && previous.role === 'assistant' && Array.isArray(previous.content) ? (previous.content as unknown[]) : [])
          .filter(isRecord)
          .filter((b) => b.type === 'tool_use')
          .map((b) => b.id as string),
      );
      for (const block of blocks) {
        if (block.type === 'tool_result' && !asked.has(block.tool_use_id as string)) {
          return `messages.${i}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(block.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`;
        }
      }
    }
    if (message.role === 'assistant') {
      const next = messages[i + 1];
      if (next === undefined) continue;
      const answered = new Set(
        (isRecord(next) && Array.isArray(next.content) ? (next.content as unknown[]) : [])
          .filter(isRecord)
          .filter((b) => b.type === 'tool_result')
          .map((b) => b.tool_use_id as string),
      );
      const missing = blocks.filter((b) => b.type === 'tool_use' && !answered.has(b.id as string)).map((b) => String(b.id));
      if (missing.length > 0) {
        return `messages.${i + 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
      }
    }
  }
  return undefined;
}

function handleModels(ctx: VendorContext): void {
  const { res, record } = ctx;
  const models = ANTHROPIC_MODELS.map((m) => ({ type: 'model', ...m }));
  const single = /^\/v1\/models\/(.+)$/.exec(record.path);
  if (single) {
    const id = decodeURIComponent(single[1] ?? '');
    const model = models.find((m) => m.id === id);
    if (model) sendJson(res, 200, model);
    else sendAnthropicError(res, 404, `model: ${id}`);
    return;
  }
  // Cursor pagination as documented: limit (default 20), after_id / before_id.
  const limit = Math.min(1000, Math.max(1, Number(record.query.get('limit') ?? 20) || 20));
  const afterId = record.query.get('after_id');
  const beforeId = record.query.get('before_id');
  let start = 0;
  let end = models.length;
  if (afterId) start = models.findIndex((m) => m.id === afterId) + 1;
  if (beforeId) end = Math.max(0, models.findIndex((m) => m.id === beforeId));
  const page = beforeId ? models.slice(Math.max(start, end - limit), end) : models.slice(start, start + limit);
  const hasMore = beforeId ? end - limit > start : start + limit < end;
  sendJson(res, 200, {
    data: page,
    has_more: hasMore,
    first_id: page[0]?.id ?? null,
    last_id: page.at(-1)?.id ?? null,
  });
}

/**
 * The key a request carries. `@ai-sdk/anthropic` sends `x-api-key`; `@anthropic-ai/sdk` 1.x
 * sends the same API key as `Authorization: Bearer`, which the API accepts too.
 */
function sentApiKey(record: RecordedRequest): string | undefined {
  const apiKey = header(record, 'x-api-key');
  if (apiKey) return apiKey;
  const bearer = /^Bearer\s+(.+)$/i.exec(header(record, 'authorization') ?? '');
  return bearer?.[1];
}

async function handle(ctx: VendorContext): Promise<boolean> {
  const { record, res } = ctx;
  if (!record.path.startsWith('/v1/')) return false;

  const sentKey = sentApiKey(record);
  if (!sentKey) {
    sendAnthropicError(res, 401, 'x-api-key header is required');
    return true;
  }
  if (sentKey !== ctx.apiKey) {
    // Echoes the key verbatim on purpose: the worst case our log/error redaction must survive.
    sendAnthropicError(res, 401, `invalid x-api-key: ${sentKey}`);
    return true;
  }
  if (!header(record, 'anthropic-version')) {
    sendAnthropicError(res, 400, 'anthropic-version: header is required');
    return true;
  }

  if (record.path === '/v1/messages') {
    if (record.method !== 'POST') sendAnthropicError(res, 405, `Method ${record.method} not allowed`);
    else await handleMessages(ctx);
    return true;
  }
  if (record.method === 'GET' && (record.path === '/v1/models' || record.path.startsWith('/v1/models/'))) {
    handleModels(ctx);
    return true;
  }
  sendAnthropicError(res, 404, 'Not Found');
  return true;
}

/** Starts a fake Anthropic server; point clients at `baseUrl` (`${url}/v1`). */
export function startFakeAnthropic(options: StartOptions = {}): Promise<FakeVendor> {
  return startFake(handle, (url) => `${url}/v1`, {
    ...options,
    isGeneration: (path) => path === '/v1/messages',
  });
}
