/**
 * Fake OpenAI-format vendors: OpenAI itself, Groq and OpenRouter. All three speak the Chat
 * Completions wire format, so one implementation serves them; a {@link Quirks} record carries what
 * differs (API root, how streams report usage, error bodies, extra fields and routes). OpenAI also
 * serves the Responses API, which is what `@ai-sdk/openai` uses by default.
 *
 * Wire details follow the vendors' documentation and recorded real traffic:
 * - OpenAI streams a usage chunk (`choices: []`) only when `stream_options.include_usage` is true;
 *   every other chunk then carries `usage: null`.
 * - Groq always reports usage in the final chunk's `x_groq.usage`; with `include_usage` it also puts
 *   `usage` on that chunk and sends OpenAI's trailing usage chunk.
 * - OpenRouter always ends a stream with a usage chunk that includes `cost` (its include flags are
 *   deprecated no-ops), and opens streams with `: OPENROUTER PROCESSING` SSE comments.
 *
 * Tool calls (a reply with `toolCalls`): Chat Completions answers `message.tool_calls` (arguments
 * as a JSON string) with finish_reason "tool_calls"; streamed, each call's first delta carries its
 * `index`, `id` and name and later deltas append arguments. The Responses API answers
 * `function_call` output items; streamed as output_item.added,
 * `response.function_call_arguments.delta`* / `.done`, output_item.done. Follow-up requests are
 * checked the way the APIs check them: every call answered by a `role: "tool"` message (Chat) or a
 * `function_call_output` item (Responses), and no result without its call (400 otherwise).
 */
import { randomBytes } from 'node:crypto';
import {
  applyDelay,
  argumentPieces,
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
  type FakeReply,
  type FakeUsage,
  type FakeVendor,
  type StartOptions,
  type VendorContext,
} from './harness.ts';

/** A scripted reply for these fakes; OpenRouter also reports what the call cost. */
export interface OpenAIFamilyReply extends FakeReply {
  /** OpenRouter only: `usage.cost` in credits. Default: the fake's `cost` option. */
  cost?: number;
}

export interface OpenAIFamilyOptions extends StartOptions {
  defaultReply?: OpenAIFamilyReply;
  /** OpenRouter only: `usage.cost` when a reply sets none. Default {@link DEFAULT_OPENROUTER_COST}. */
  cost?: number;
}

/** A {@link FakeVendor} whose script accepts {@link OpenAIFamilyReply} (e.g. OpenRouter's cost). */
export interface OpenAIFamilyFake extends FakeVendor {
  enqueue(...replies: OpenAIFamilyReply[]): void;
  setDefault(reply: OpenAIFamilyReply): void;
}

/** Deterministic so budget tests can assert exact sums. */
export const DEFAULT_OPENROUTER_COST = 0.000123;

export function startFakeOpenAI(options: OpenAIFamilyOptions = {}): Promise<OpenAIFamilyFake> {
  return startOpenAIFamily(OPENAI, options);
}

export function startFakeGroq(options: OpenAIFamilyOptions = {}): Promise<OpenAIFamilyFake> {
  return startOpenAIFamily(GROQ, options);
}

export function startFakeOpenRouter(options: OpenAIFamilyOptions = {}): Promise<OpenAIFamilyFake> {
  return startOpenAIFamily(OPENROUTER, options);
}

// ---------------------------------------------------------------------------------------------
// Vendor quirks

type Vendor = 'openai' | 'groq' | 'openrouter';
type Json = Record<string, unknown>;

interface Quirks {
  vendor: Vendor;
  /** The documented API root below the server root. */
  root: string;
  fallbackText: string;
  /** Only OpenAI serves /responses. */
  responsesApi: boolean;
  /** OpenRouter's model list is public; OpenAI's and Groq's need a key. */
  modelsNeedAuth: boolean;
  /** OpenAI and Groq tag every answer with a request id (the openai SDK exposes it on errors). */
  requestIdHeader: boolean;
  completionIdPrefix: string;
  modelList(): Json;
  /** The usage block of a chat completion (JSON answer and stream alike). */
  chatUsage(usage: FakeUsage, cost: number): Json;
  errorBody(status: number, message: string, kind: ErrorKind): Json;
}

type ErrorKind = 'missing_key' | 'bad_key' | 'bad_request' | 'not_found' | 'rate_limit' | 'server' | 'other';

const CREATED = 1_715_000_000;

const OPENAI: Quirks = {
  vendor: 'openai',
  root: '/v1',
  fallbackText: 'Hello from the fake openai.',
  responsesApi: true,
  modelsNeedAuth: true,
  requestIdHeader: true,
  completionIdPrefix: 'chatcmpl-',
  modelList: () => ({
    object: 'list',
    data: ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1', 'o4-mini'].map((id) => ({
      id,
      object: 'model',
      created: CREATED,
      owned_by: 'system',
    })),
  }),
  chatUsage: (u) => ({
    prompt_tokens: u.input,
    completion_tokens: u.output,
    total_tokens: u.input + u.output,
    prompt_tokens_details: { cached_tokens: u.cached ?? 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: u.reasoning ?? 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  }),
  errorBody: (status, message, kind) => ({ error: openAIErrorFields(status, message, kind) }),
};

const GROQ: Quirks = {
  vendor: 'groq',
  root: '/openai/v1',
  fallbackText: 'Hello from the fake groq.',
  responsesApi: false,
  modelsNeedAuth: true,
  requestIdHeader: true,
  completionIdPrefix: 'chatcmpl-',
  modelList: () => ({
    object: 'list',
    data: ['llama-3.3-70b-versatile', 'llama-3.1-8b-instant', 'openai/gpt-oss-20b'].map((id) => ({
      id,
      object: 'model',
      created: CREATED,
      owned_by: id.startsWith('openai/') ? 'OpenAI' : 'Meta',
      active: true,
      context_window: 131072,
      public_apps: null,
      max_completion_tokens: 32768,
    })),
  }),
  // Groq adds timings; it reports the details blocks only when there is something to report.
  chatUsage: (u) => ({
    queue_time: 0.012,
    prompt_tokens: u.input,
    prompt_time: 0.004,
    completion_tokens: u.output,
    completion_time: 0.021,
    total_tokens: u.input + u.output,
    total_time: 0.025,
    ...(u.cached !== undefined ? { prompt_tokens_details: { cached_tokens: u.cached } } : {}),
    ...(u.reasoning !== undefined ? { completion_tokens_details: { reasoning_tokens: u.reasoning } } : {}),
  }),
  // Groq's error bodies are OpenAI's without `param`; @ai-sdk/groq requires `type`.
  errorBody: (status, message, kind) => {
    const fields = openAIErrorFields(status, message, kind);
    delete fields.param;
    if (kind === 'rate_limit') fields.type = 'tokens';
    if (kind === 'server') fields.type = 'internal_server_error';
    return { error: fields };
  },
};

const OPENROUTER: Quirks = {
  vendor: 'openrouter',
  root: '/api/v1',
  fallbackText: 'Hello from the fake openrouter.',
  responsesApi: false,
  modelsNeedAuth: false,
  requestIdHeader: false,
  completionIdPrefix: `gen-${CREATED}-`,
  modelList: () => ({
    data: ['openai/gpt-4o-mini', 'anthropic/claude-sonnet-4', 'meta-llama/llama-3.3-70b-instruct'].map(
      (id) => ({
        id,
        canonical_slug: id,
        name: id,
        created: CREATED,
        description: `Fake listing for ${id}.`,
        context_length: 128000,
        architecture: {
          modality: 'text->text',
          input_modalities: ['text'],
          output_modalities: ['text'],
          tokenizer: 'Other',
          instruct_type: null,
        },
        pricing: { prompt: '0.00000015', completion: '0.0000006', request: '0', image: '0' },
        top_provider: { context_length: 128000, max_completion_tokens: 16384, is_moderated: false },
        per_request_limits: null,
        supported_parameters: ['max_tokens', 'temperature', 'tools', 'tool_choice', 'response_format', 'structured_outputs'],
      }),
    ),
  }),
  // @openrouter/ai-sdk-provider requires both details blocks with numbers, as OpenRouter always sends them.
  chatUsage: (u, cost) => ({
    prompt_tokens: u.input,
    completion_tokens: u.output,
    total_tokens: u.input + u.output,
    cost,
    is_byok: false,
    prompt_tokens_details: { cached_tokens: u.cached ?? 0, cache_write_tokens: 0, audio_tokens: 0, video_tokens: 0 },
    cost_details: { upstream_inference_cost: cost },
    completion_tokens_details: { reasoning_tokens: u.reasoning ?? 0, image_tokens: 0, audio_tokens: 0 },
  }),
  // OpenRouter's error code is the HTTP status as a number, and there is no `type`.
  errorBody: (status, message) => ({ error: { code: status, message } }),
};

function openAIErrorFields(status: number, message: string, kind: ErrorKind): Json {
  switch (kind) {
    case 'missing_key':
      return { message, type: 'invalid_request_error', param: null, code: null };
    case 'bad_key':
      return { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' };
    case 'not_found':
      return { message, type: 'invalid_request_error', param: null, code: 'model_not_found' };
    case 'rate_limit':
      return { message, type: 'requests', param: null, code: 'rate_limit_exceeded' };
    case 'server':
      return { message, type: 'server_error', param: null, code: null };
    case 'bad_request':
      return { message, type: 'invalid_request_error', param: null, code: null };
    default:
      return { message, type: status === 403 ? 'permission_error' : 'invalid_request_error', param: null, code: null };
  }
}

function kindOfStatus(status: number): ErrorKind {
  if (status === 400) return 'bad_request';
  if (status === 401) return 'bad_key';
  if (status === 404) return 'not_found';
  if (status === 429) return 'rate_limit';
  if (status >= 500) return 'server';
  return 'other';
}

/** The vendor's usual wording; a scripted `errorMessage` replaces it. */
function defaultErrorMessage(q: Quirks, status: number, model: string): string {
  switch (kindOfStatus(status)) {
    case 'bad_request':
      return 'Invalid request.';
    case 'not_found':
      return `The model \`${model}\` does not exist or you do not have access to it.`;
    case 'rate_limit':
      return q.vendor === 'openrouter'
        ? 'Rate limit exceeded: limit_rpm/fake. Please try again later.'
        : `Rate limit reached for ${model} on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.`;
    case 'server':
      return status === 503
        ? 'The server is overloaded or not ready yet.'
        : 'The server had an error while processing your request. Sorry about that!';
    default:
      return `Request failed with status ${status}.`;
  }
}

/**
 * The 401 message echoes the rejected key verbatim (OpenAI's own wording did, before it started
 * masking keys). Every vendor here does it: it is the worst case the service's redaction must handle.
 */
function badKeyMessage(q: Quirks, key: string): string {
  switch (q.vendor) {
    case 'openai':
      return `Incorrect API key provided: ${key}. You can find your API key at https://platform.openai.com/account/api-keys.`;
    case 'groq':
      return `Invalid API Key: ${key}`;
    case 'openrouter':
      return `User not found for API key: ${key}`;
  }
}

function missingKeyMessage(q: Quirks): string {
  return q.vendor === 'openrouter'
    ? 'No auth credentials found'
    : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";
}

// ---------------------------------------------------------------------------------------------
// Server and routing

async function startOpenAIFamily(q: Quirks, options: OpenAIFamilyOptions): Promise<OpenAIFamilyFake> {
  const state: FamilyState = { defaultCost: options.cost ?? DEFAULT_OPENROUTER_COST, spent: 0 };
  const generationPaths = new Set([`${q.root}/chat/completions`, ...(q.responsesApi ? [`${q.root}/responses`] : [])]);
  return startFake((ctx) => route(q, state, ctx), (url) => `${url}${q.root}`, {
    ...options,
    isGeneration: (path) => generationPaths.has(path),
  });
}

interface FamilyState {
  defaultCost: number;
  /** OpenRouter: credits charged so far, reported by GET /key. */
  spent: number;
}

async function route(q: Quirks, state: FamilyState, ctx: VendorContext): Promise<boolean> {
  const { method, path } = ctx.record;
  const sub = path.startsWith(`${q.root}/`) ? path.slice(q.root.length) : undefined;
  if (sub === undefined) return false;

  if (method === 'GET' && sub === '/models') {
    if (q.modelsNeedAuth && !authorized(q, ctx)) return true;
    sendJson(ctx.res, 200, q.modelList(), baseHeaders(q));
    return true;
  }
  if (method === 'GET' && sub === '/key' && q.vendor === 'openrouter') {
    if (!authorized(q, ctx)) return true;
    sendJson(ctx.res, 200, openRouterKeyInfo(ctx.apiKey, state.spent));
    return true;
  }
  if (method === 'POST' && sub === '/chat/completions') {
    if (!authorized(q, ctx)) return true;
    await handleChat(q, state, ctx);
    return true;
  }
  if (method === 'POST' && sub === '/responses' && q.responsesApi) {
    if (!authorized(q, ctx)) return true;
    await handleResponses(q, ctx);
    return true;
  }
  return false;
}

/** Checks `Authorization: Bearer <key>`; answers the vendor's 401 and returns false when wrong. */
function authorized(q: Quirks, ctx: VendorContext): boolean {
  const auth = ctx.record.headers.authorization;
  const value = Array.isArray(auth) ? auth[0] : auth;
  const match = value?.match(/^Bearer\s+(.+)$/i);
  if (!match?.[1]) {
    sendError(q, ctx, 401, missingKeyMessage(q), 'missing_key');
    return false;
  }
  if (match[1] !== ctx.apiKey) {
    sendError(q, ctx, 401, badKeyMessage(q, match[1]), 'bad_key');
    return false;
  }
  return true;
}

function sendError(
  q: Quirks,
  ctx: VendorContext,
  status: number,
  message: string,
  kind: ErrorKind = kindOfStatus(status),
  headers: Record<string, string> = {},
): void {
  sendJson(ctx.res, status, q.errorBody(status, message, kind), { ...baseHeaders(q), ...headers });
}

/** A scripted failure: the vendor's error body for `reply.status`, with the reply's headers. */
function sendScriptedError(q: Quirks, ctx: VendorContext, reply: FakeReply, model: string): void {
  const status = reply.status ?? 500;
  const message =
    reply.errorMessage ?? (status === 401 ? badKeyMessage(q, bearerKey(ctx)) : defaultErrorMessage(q, status, model));
  sendError(q, ctx, status, message, kindOfStatus(status), reply.headers);
}

function bearerKey(ctx: VendorContext): string {
  const auth = ctx.record.headers.authorization;
  const value = Array.isArray(auth) ? auth[0] : auth;
  return value?.replace(/^Bearer\s+/i, '') ?? '';
}

function baseHeaders(q: Quirks): Record<string, string> {
  return q.requestIdHeader ? { 'x-request-id': `req_${hex(16)}` } : {};
}

function openRouterKeyInfo(key: string, spent: number): Json {
  // OpenRouter labels a key by its first and last characters, never the whole secret.
  return {
    data: {
      label: `${key.slice(0, 11)}...${key.slice(-3)}`,
      limit: null,
      limit_reset: null,
      limit_remaining: null,
      include_byok_in_limit: false,
      usage: spent,
      usage_daily: spent,
      usage_weekly: spent,
      usage_monthly: spent,
      byok_usage: 0,
      byok_usage_daily: 0,
      byok_usage_weekly: 0,
      byok_usage_monthly: 0,
      is_free_tier: false,
      is_provisioning_key: false,
      rate_limit: { requests: -1, interval: '10s', note: 'This field is deprecated and safe to ignore.' },
    },
  };
}

/** Rejects bodies the real API would reject before generating (no scripted reply is used). */
function invalidBody(body: unknown, required: string[]): string | undefined {
  if (typeof body !== 'object' || body === null) {
    return 'We could not parse the JSON body of your request. The API expects a JSON payload.';
  }
  for (const field of required) {
    if ((body as Json)[field] === undefined) return `Missing required parameter: '${field}'.`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// What to answer: text, tool calls, or both

/**
 * The model's answer: text (null when the model only calls tools) and the function calls it
 * makes, either scripted (`reply.toolCalls`) or the forced JSON tool of a structured-output request.
 */
interface Answer {
  text: string | null;
  chunks: string[];
  calls: PlannedCall[];
}

interface PlannedCall {
  callId: string;
  name: string;
  /** The arguments as the JSON string the wire carries. */
  args: string;
  chunks: string[];
}

function planAnswer(q: Quirks, reply: FakeReply, forcedTool: string | undefined): Answer {
  if (reply.toolCalls?.length) {
    const text = toolReplyText(reply) ?? null;
    const calls = reply.toolCalls.map((call) => {
      const args = JSON.stringify(call.args ?? {});
      return { callId: call.id ?? `call_${hex(12)}`, name: call.name, args, chunks: argumentPieces(args) };
    });
    return { text, chunks: text ? (reply.chunks ?? splitText(text)) : [], calls };
  }
  const text = replyText(reply, q.fallbackText);
  const chunks = replyChunks(reply, q.fallbackText).filter((c) => c.length > 0);
  if (reply.json !== undefined && forcedTool) {
    return { text: null, chunks: [], calls: [{ callId: `call_${hex(12)}`, name: forcedTool, args: text, chunks }] };
  }
  return { text, chunks, calls: [] };
}

/**
 * The function a structured-output request forces (e.g. @ai-sdk/groq's `json` tool when the model
 * cannot combine tools with a JSON schema). Undefined when the request uses a native JSON format.
 */
function forcedToolName(tools: unknown, toolChoice: unknown, nativeJson: boolean): string | undefined {
  if (nativeJson || !Array.isArray(tools) || tools.length === 0) return undefined;
  const names = tools
    .map((t: { name?: unknown; function?: { name?: unknown } }) => t.function?.name ?? t.name)
    .filter((n): n is string => typeof n === 'string');
  if (typeof toolChoice === 'object' && toolChoice !== null) {
    const choice = toolChoice as { name?: unknown; function?: { name?: unknown } };
    const name = choice.function?.name ?? choice.name;
    return typeof name === 'string' ? name : undefined;
  }
  if (toolChoice === 'required') return names.find((n) => /^json(_\d+)?$/.test(n)) ?? names[0];
  return undefined;
}

function costOf(state: FamilyState, reply: OpenAIFamilyReply): number {
  return reply.cost ?? state.defaultCost;
}

/** True once the client has gone away, so streams stop writing instead of erroring. */
function clientGone(ctx: VendorContext): boolean {
  return ctx.res.destroyed || ctx.record.closedEarly || ctx.req.socket.destroyed;
}

// ---------------------------------------------------------------------------------------------
// Chat Completions

async function handleChat(q: Quirks, state: FamilyState, ctx: VendorContext): Promise<void> {
  const body = ctx.record.body as Json | undefined;
  const invalid = invalidBody(body, ['model', 'messages']);
  if (invalid || !body) return sendError(q, ctx, 400, invalid ?? 'Invalid body.');
  const streaming = body.stream === true;
  const streamOptions = body.stream_options as { include_usage?: unknown } | null | undefined;
  // OpenAI rejects stream_options on a non-streamed call.
  if (q.vendor === 'openai' && !streaming && streamOptions != null) {
    return sendError(q, ctx, 400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
  }

  const toolTurn = chatToolTurnError(body.messages);
  if (toolTurn) return sendError(q, ctx, 400, toolTurn);

  const reply = ctx.nextReply() as OpenAIFamilyReply;
  const model = String(body.model);
  if (!(await applyDelay(ctx, reply))) return;
  if (reply.status && reply.status >= 400) return sendScriptedError(q, ctx, reply, model);

  const format = (body.response_format as { type?: unknown } | undefined)?.type;
  const nativeJson = format === 'json_schema' || format === 'json_object';
  const answer = planAnswer(q, reply, forcedToolName(body.tools, body.tool_choice, nativeJson));
  const usage = replyUsage(reply);
  const cost = costOf(state, reply);
  const finish = answer.calls.length > 0 ? 'tool_calls' : (reply.finish ?? 'stop');
  const meta: ChatMeta = { id: `${q.completionIdPrefix}${hex(12)}`, model, groqId: `req_${hex(13)}` };
  const headers = { ...baseHeaders(q), ...reply.headers };

  if (streaming) {
    const completed = await streamChat(q, ctx, reply, answer, finish, usage, cost, meta, headers, streamOptions?.include_usage === true);
    if (completed) state.spent += cost;
    return;
  }
  state.spent += cost;
  sendJson(ctx.res, 200, chatCompletion(q, answer, finish, usage, cost, meta), headers);
}

interface ChatMeta {
  id: string;
  model: string;
  /** Groq's `x_groq.id`. */
  groqId: string;
}

/** Fields every completion object (JSON or chunk) carries, per vendor. */
function completionHead(q: Quirks, meta: ChatMeta, object: string): Json {
  const head: Json = { id: meta.id, object, created: nowSeconds(), model: meta.model };
  if (q.vendor === 'openai') Object.assign(head, { service_tier: 'default', system_fingerprint: 'fp_fake0001' });
  if (q.vendor === 'groq') head.system_fingerprint = 'fp_fake0001';
  if (q.vendor === 'openrouter') head.provider = 'OpenAI';
  return head;
}

function chatCompletion(q: Quirks, answer: Answer, finish: string, usage: FakeUsage, cost: number, meta: ChatMeta): Json {
  const message: Json = { role: 'assistant', content: answer.text };
  if (answer.calls.length > 0) {
    message.tool_calls = answer.calls.map((c) => ({ id: c.callId, type: 'function', function: { name: c.name, arguments: c.args } }));
  }
  if (q.vendor === 'openai') Object.assign(message, { refusal: null, annotations: [] });
  if (q.vendor === 'openrouter') Object.assign(message, { refusal: null, reasoning: null });
  const choice: Json = { index: 0, message, logprobs: null, finish_reason: finish };
  if (q.vendor === 'openrouter') choice.native_finish_reason = finish;
  return {
    ...completionHead(q, meta, 'chat.completion'),
    choices: [choice],
    usage: q.chatUsage(usage, cost),
    ...(q.vendor === 'groq' ? { usage_breakdown: null, x_groq: { id: meta.groqId } } : {}),
  };
}

/** Streams chat.completion.chunk events; returns false when the client left before the end. */
async function streamChat(
  q: Quirks,
  ctx: VendorContext,
  reply: FakeReply,
  answer: Answer,
  finish: string,
  usage: FakeUsage,
  cost: number,
  meta: ChatMeta,
  headers: Record<string, string>,
  includeUsage: boolean,
): Promise<boolean> {
  const { res } = ctx;
  startStream(res, 'text/event-stream', headers);
  // OpenRouter keeps connections warm with SSE comments while the upstream model starts.
  if (q.vendor === 'openrouter') res.write(': OPENROUTER PROCESSING\n\n');

  const chunk = (delta: Json | undefined, finishReason: string | null, extra: Json = {}): Json => {
    const choice: Json = { index: 0, delta: delta ?? {}, logprobs: null, finish_reason: finishReason };
    if (q.vendor === 'openrouter') choice.native_finish_reason = finishReason;
    return {
      ...completionHead(q, meta, 'chat.completion.chunk'),
      choices: [choice],
      // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
      ...(q.vendor === 'openai' && includeUsage ? { usage: null } : {}),
      ...extra,
    };
  };

  const opening: Json = { role: 'assistant', content: answer.text === null ? null : '' };
  if (q.vendor === 'openai') opening.refusal = null;
  writeSse(res, chunk(opening, null, q.vendor === 'groq' ? { x_groq: { id: meta.groqId } } : {}));

  let sent = 0;
  const gap = async (): Promise<boolean> => {
    if (sent++ > 0 && reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
    return !clientGone(ctx);
  };
  for (const piece of answer.chunks) {
    if (!(await gap())) return false;
    writeSse(res, chunk({ content: piece }, null));
  }
  for (const [index, call] of answer.calls.entries()) {
    for (const [i, piece] of call.chunks.entries()) {
      if (!(await gap())) return false;
      // The first delta of a call names it; later ones only append arguments.
      const delta =
        i === 0
          ? { index, id: call.callId, type: 'function', function: { name: call.name, arguments: piece } }
          : { index, function: { arguments: piece } };
      writeSse(res, chunk({ tool_calls: [delta] }, null));
    }
  }
  if (reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
  if (clientGone(ctx)) return false;

  const vendorUsage = q.chatUsage(usage, cost);
  let finalExtra: Json = {};
  if (q.vendor === 'groq') {
    finalExtra = { x_groq: { id: meta.groqId, usage: vendorUsage }, ...(includeUsage ? { usage: vendorUsage } : {}) };
  }
  writeSse(res, chunk({}, finish, finalExtra));

  const trailingUsage = q.vendor === 'openrouter' || includeUsage;
  if (trailingUsage) {
    writeSse(res, {
      ...completionHead(q, meta, 'chat.completion.chunk'),
      choices: [],
      usage: vendorUsage,
    });
  }
  res.write('data: [DONE]\n\n');
  res.end();
  return true;
}

// ---------------------------------------------------------------------------------------------
// Responses API (OpenAI only)

async function handleResponses(q: Quirks, ctx: VendorContext): Promise<void> {
  const body = ctx.record.body as Json | undefined;
  const invalid = invalidBody(body, ['model']);
  if (invalid || !body) return sendError(q, ctx, 400, invalid ?? 'Invalid body.');

  const toolTurn = responsesToolTurnError(body.input);
  if (toolTurn) return sendError(q, ctx, 400, toolTurn);

  const reply = ctx.nextReply();
  const model = String(body.model);
  if (!(await applyDelay(ctx, reply))) return;
  if (reply.status && reply.status >= 400) return sendScriptedError(q, ctx, reply, model);

  const textFormat = (body.text as { format?: { type?: unknown } } | undefined)?.format;
  const nativeJson = textFormat?.type === 'json_schema' || textFormat?.type === 'json_object';
  const answer = planAnswer(q, reply, forcedToolName(body.tools, body.tool_choice, nativeJson));
  const incomplete = answer.calls.length === 0 && reply.finish === 'length';
  const r = new ResponseBuilder(body, answer, replyUsage(reply), incomplete);
  const headers = { ...baseHeaders(q), ...reply.headers };

  if (body.stream === true) {
    await streamResponse(ctx, reply, r, headers);
    return;
  }
  sendJson(ctx.res, 200, r.response('final'), headers);
}

/** One output item of a Response: the assistant message, or a function call. */
type OutputItem =
  | { kind: 'message'; id: string; text: string; chunks: string[] }
  | { kind: 'call'; id: string; call: PlannedCall };

/** Builds the Response object and its output items at each stage of generation. */
class ResponseBuilder {
  readonly id = `resp_${hex(24)}`;
  readonly createdAt = nowSeconds();
  readonly body: Json;
  readonly items: OutputItem[];
  readonly usage: FakeUsage;
  readonly incomplete: boolean;

  constructor(body: Json, answer: Answer, usage: FakeUsage, incomplete: boolean) {
    this.body = body;
    this.usage = usage;
    this.incomplete = incomplete;
    this.items = [];
    if (answer.text !== null) this.items.push({ kind: 'message', id: `msg_${hex(24)}`, text: answer.text, chunks: answer.chunks });
    for (const call of answer.calls) this.items.push({ kind: 'call', id: `fc_${hex(24)}`, call });
  }

  get finalStatus(): 'completed' | 'incomplete' {
    return this.incomplete ? 'incomplete' : 'completed';
  }

  textPart(text: string): Json {
    return { type: 'output_text', annotations: [], logprobs: [], text };
  }

  /** An output item: empty when just added, whole when done. */
  item(item: OutputItem, stage: 'added' | 'final'): Json {
    const done = stage === 'final';
    if (item.kind === 'call') {
      return {
        id: item.id,
        type: 'function_call',
        status: done ? 'completed' : 'in_progress',
        arguments: done ? item.call.args : '',
        call_id: item.call.callId,
        name: item.call.name,
      };
    }
    return {
      id: item.id,
      type: 'message',
      status: done ? this.finalStatus : 'in_progress',
      content: done ? [this.textPart(item.text)] : [],
      role: 'assistant',
    };
  }

  response(stage: 'in_progress' | 'final'): Json {
    const done = stage === 'final';
    const b = this.body;
    return {
      id: this.id,
      object: 'response',
      created_at: this.createdAt,
      status: done ? this.finalStatus : 'in_progress',
      background: false,
      error: null,
      incomplete_details: done && this.incomplete ? { reason: 'max_output_tokens' } : null,
      instructions: b.instructions ?? null,
      max_output_tokens: b.max_output_tokens ?? null,
      max_tool_calls: null,
      model: b.model,
      output: done ? this.items.map((item) => this.item(item, 'final')) : [],
      parallel_tool_calls: b.parallel_tool_calls ?? true,
      previous_response_id: b.previous_response_id ?? null,
      reasoning: { effort: null, summary: null },
      service_tier: 'default',
      store: b.store ?? true,
      temperature: b.temperature ?? 1,
      text: { format: (b.text as { format?: unknown } | undefined)?.format ?? { type: 'text' }, verbosity: 'medium' },
      tool_choice: b.tool_choice ?? 'auto',
      tools: b.tools ?? [],
      top_p: b.top_p ?? 1,
      truncation: 'disabled',
      usage: done ? this.responseUsage() : null,
      user: null,
      metadata: b.metadata ?? {},
    };
  }

  responseUsage(): Json {
    const u = this.usage;
    return {
      input_tokens: u.input,
      input_tokens_details: { cached_tokens: u.cached ?? 0 },
      output_tokens: u.output,
      output_tokens_details: { reasoning_tokens: u.reasoning ?? 0 },
      total_tokens: u.input + u.output,
    };
  }
}

/**
 * Streams the Responses API's named events. Every event repeats its name as `type` and carries a
 * `sequence_number` counting from 0; item events carry `output_index` (and `item_id`). Items are
 * streamed one after the other: the message's text deltas, then each function call's argument
 * deltas (`response.function_call_arguments.delta` / `.done`).
 */
async function streamResponse(
  ctx: VendorContext,
  reply: FakeReply,
  r: ResponseBuilder,
  headers: Record<string, string>,
): Promise<void> {
  const { res } = ctx;
  startStream(res, 'text/event-stream', headers);
  let seq = 0;
  const emit = (type: string, fields: Json): void => {
    writeSse(res, { type, sequence_number: seq++, ...fields }, type);
  };
  let sent = 0;
  const gap = async (): Promise<boolean> => {
    if (sent++ > 0 && reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
    return !clientGone(ctx);
  };

  emit('response.created', { response: r.response('in_progress') });
  emit('response.in_progress', { response: r.response('in_progress') });

  for (const [outputIndex, item] of r.items.entries()) {
    const at = { item_id: item.id, output_index: outputIndex };
    emit('response.output_item.added', { output_index: outputIndex, item: r.item(item, 'added') });
    if (item.kind === 'message') {
      emit('response.content_part.added', { ...at, content_index: 0, part: r.textPart('') });
      for (const piece of item.chunks) {
        if (!(await gap())) return;
        // `obfuscation` pads deltas against length side channels; clients must tolerate it.
        emit('response.output_text.delta', { ...at, content_index: 0, delta: piece, logprobs: [], obfuscation: hex(4) });
      }
      if (reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
      if (clientGone(ctx)) return;
      emit('response.output_text.done', { ...at, content_index: 0, text: item.text, logprobs: [] });
      emit('response.content_part.done', { ...at, content_index: 0, part: r.textPart(item.text) });
    } else {
      for (const piece of item.call.chunks) {
        if (!(await gap())) return;
        emit('response.function_call_arguments.delta', { ...at, delta: piece, obfuscation: hex(4) });
      }
      if (reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
      if (clientGone(ctx)) return;
      emit('response.function_call_arguments.done', { ...at, name: item.call.name, arguments: item.call.args });
    }
    emit('response.output_item.done', { output_index: outputIndex, item: r.item(item, 'final') });
  }
  // A response cut short by max_output_tokens ends with response.incomplete instead.
  emit(r.incomplete ? 'response.incomplete' : 'response.completed', { response: r.response('final') });
  // Unlike Chat Completions, the Responses stream has no [DONE] sentinel.
  res.end();
}

// ---------------------------------------------------------------------------------------------
// Tool round trips: the checks the APIs make on a request that carries tool results

/**
 * Chat Completions: a `tool` message must answer a call of the assistant message before it, and
 * an assistant message with `tool_calls` must be followed by a `tool` message for each call.
 */
function chatToolTurnError(messages: unknown): string | undefined {
  if (!Array.isArray(messages)) return undefined;
  const list = messages as Json[];
  for (const [i, message] of list.entries()) {
    if (message?.role !== 'assistant' || !Array.isArray(message.tool_calls)) continue;
    const ids = (message.tool_calls as Json[]).map((c) => String(c.id));
    const answered = new Set<string>();
    for (const next of list.slice(i + 1)) {
      if (next?.role !== 'tool') break;
      answered.add(String(next.tool_call_id));
    }
    const missing = ids.filter((id) => !answered.has(id));
    if (missing.length > 0) {
      return `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${missing.join(', ')}`;
    }
  }
  for (const [i, message] of list.entries()) {
    if (message?.role !== 'tool') continue;
    let j = i - 1;
    while (j >= 0 && list[j]?.role === 'tool') j--;
    const calls = list[j]?.role === 'assistant' && Array.isArray(list[j]?.tool_calls) ? (list[j]!.tool_calls as Json[]) : [];
    if (!calls.some((c) => c.id === message.tool_call_id)) {
      return `Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.`;
    }
  }
  return undefined;
}

/**
 * Responses: a `function_call_output` must answer a `function_call` sent earlier in `input`
 * (an `item_reference` may stand for a stored call, which the fake cannot look up).
 */
function responsesToolTurnError(input: unknown): string | undefined {
  if (!Array.isArray(input)) return undefined;
  const items = input as Json[];
  if (items.some((item) => item?.type === 'item_reference')) return undefined;
  const calls = new Set(items.filter((item) => item?.type === 'function_call').map((item) => String(item.call_id)));
  const orphan = items.find((item) => item?.type === 'function_call_output' && !calls.has(String(item.call_id)));
  return orphan ? `No tool call found for function call output with call_id ${String(orphan.call_id)}.` : undefined;
}

// ---------------------------------------------------------------------------------------------

function hex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
