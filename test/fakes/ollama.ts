/**
 * Fake Ollama server speaking the native REST API (`/api/chat`, `/api/generate`, `/api/tags`,
 * `/api/version`) the way `ollama serve` does, so both the official `ollama` client and
 * `ollama-ai-provider-v2` can talk to it unchanged.
 *
 * Fidelity notes (from ollama/ollama `server/routes.go`, `api/types.go`, `llm/server.go`):
 * - Generation streams NDJSON unless the body says `"stream": false`; absent or null streams.
 * - Errors are `{"error": "<text>"}`, never the OpenAI-style `{"error": {"message"}}`.
 * - Request fields Ollama does not know are ignored silently (Go's JSON decoding), so top-level
 *   `temperature`/`max_output_tokens` do nothing; only `options.*` steers sampling. The fake
 *   records everything and leaves it to tests to assert where a field landed.
 * - Metrics are Go `omitempty`: a zero count is left out, not sent as 0.
 * - Tool calls (a reply with `toolCalls`, /api/chat only) come as `message.tool_calls` with
 *   `function.arguments` as an object, never a JSON string; streamed, whole, in one object of
 *   their own before the closing one. `done_reason` stays "stop". Tool results come back as
 *   `role: "tool"` messages, which Ollama accepts without cross-checking ids.
 */
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import {
  applyDelay,
  header,
  replyChunks,
  replyText,
  replyUsage,
  sleep,
  splitText,
  startFake,
  startStream,
  toolReplyText,
  type FakeReply,
  type FakeVendor,
  type StartOptions,
  type VendorContext,
} from './harness.ts';

export interface FakeOllamaOptions extends StartOptions {
  /**
   * Behave like Ollama's hosted API (ollama.com), which wants `Authorization: Bearer <key>`.
   * A local `ollama serve` has no auth, which is the default here.
   */
  requireAuth?: boolean;
}

/** What `GET /api/version` reports. */
export const FAKE_OLLAMA_VERSION = '0.12.6';

/** The model name the fake treats as not pulled: answered with Ollama's 404. */
export const MISSING_OLLAMA_MODEL = 'missing-model';

/** Models `GET /api/tags` lists. Generation accepts any other name too (except the missing one). */
export const FAKE_OLLAMA_MODELS: readonly { name: string; family: string; parameterSize: string }[] = [
  { name: 'llama3.2:latest', family: 'llama', parameterSize: '3.2B' },
  { name: 'qwen3:8b', family: 'qwen3', parameterSize: '8.2B' },
  { name: 'gemma3:4b', family: 'gemma3', parameterSize: '4.3B' },
];

const FALLBACK_TEXT = 'Hello from the fake ollama.';

/** Methods per route; any other method on a known path gets gin's 405 (HandleMethodNotAllowed). */
const ROUTES: Record<string, readonly string[]> = {
  '/': ['GET', 'HEAD'],
  '/api/version': ['GET', 'HEAD'],
  '/api/tags': ['GET', 'HEAD'],
  '/api/chat': ['POST'],
  '/api/generate': ['POST'],
};

const GENERATION_PATHS = new Set(['/api/chat', '/api/generate']);

/** Messages Ollama (or the hosted API in front of it) uses for these statuses. */
const DEFAULT_ERROR_MESSAGES: Record<number, string> = {
  400: 'invalid request',
  401: 'unauthorized',
  403: 'forbidden',
  429: 'too many requests',
  500: 'llama runner process has terminated: exit status 2',
  // The scheduler's ErrMaxQueue, verbatim (two spaces included).
  503: 'server busy, please try again.  maximum pending requests exceeded',
};

export async function startFakeOllama(options: FakeOllamaOptions = {}): Promise<FakeVendor> {
  const requireAuth = options.requireAuth ?? false;
  return startFake((ctx) => handle(ctx, requireAuth), (url) => url, {
    ...options,
    isGeneration: (path) => GENERATION_PATHS.has(path),
  });
}

async function handle(ctx: VendorContext, requireAuth: boolean): Promise<boolean> {
  const { record, res } = ctx;
  const methods = ROUTES[record.path];
  // gin answers unknown routes in plain text, not JSON; clients that probe paths see this.
  if (!methods) return sendText(res, 404, '404 page not found');
  if (!methods.includes(record.method)) return sendText(res, 405, '405 method not allowed');

  // The root is a liveness probe; the hosted API guards the /api routes.
  if (requireAuth && record.path !== '/' && !checkAuth(ctx)) return true;

  switch (record.path) {
    case '/':
      return sendText(res, 200, 'Ollama is running');
    case '/api/version':
      return sendOllamaJson(res, 200, { version: FAKE_OLLAMA_VERSION });
    case '/api/tags':
      return sendOllamaJson(res, 200, { models: FAKE_OLLAMA_MODELS.map(listEntry) });
    case '/api/chat':
      await generate(ctx, 'chat');
      return true;
    case '/api/generate':
      await generate(ctx, 'generate');
      return true;
    default:
      return false;
  }
}

/**
 * Enforces the hosted API's Bearer key. Echoing the key in the 401 body is deliberate (ollama.com
 * itself answers a bare "unauthorized"): it lets tests check that vendor error text carrying a
 * secret is scrubbed before Ensemble logs or returns it.
 */
function checkAuth(ctx: VendorContext): boolean {
  const authorization = header(ctx.record, 'authorization');
  const sent = authorization?.replace(/^Bearer\s+/i, '');
  if (sent === ctx.apiKey) return true;
  const message = sent === undefined ? 'unauthorized' : `unauthorized: ${sent}`;
  sendOllamaJson(ctx.res, 401, { error: message });
  return false;
}

type Endpoint = 'chat' | 'generate';

/** The request fields the fake acts on; the full body stays on the recorded request. */
interface GenerationRequest {
  model: string;
  stream: boolean;
  /** True when there is nothing to generate from, which Ollama treats as "load the model". */
  loadOnly: boolean;
  /** /api/generate `raw`: prompt sent to the model untemplated. */
  raw: boolean;
}

async function generate(ctx: VendorContext, endpoint: Endpoint): Promise<void> {
  const { res } = ctx;
  const request = parseRequest(ctx, endpoint);
  if (!request) return;

  // Validation failures below happen before Ollama runs the model, so they do not use up a
  // scripted reply: the script describes what the model says, not what the server rejects.
  const body = ctx.record.body as Record<string, unknown>;
  const rejection = validate(body, request, endpoint);
  if (rejection) {
    sendOllamaJson(res, rejection.status, { error: rejection.message });
    return;
  }

  if (request.loadOnly) {
    // Empty prompt / no messages loads the model and returns at once, never streamed.
    sendOllamaJson(res, 200, loadResponse(request.model, endpoint));
    return;
  }

  const reply = ctx.nextReply();
  if (!(await applyDelay(ctx, reply))) return;

  if (reply.status !== undefined && reply.status >= 400) {
    const message = reply.errorMessage ?? defaultErrorMessage(reply.status, request.model);
    sendOllamaJson(res, reply.status, { error: message }, reply.headers);
    return;
  }

  const startedNs = BigInt(ctx.record.startedAt) * 1_000_000n;
  if (request.stream) {
    await streamAnswer(ctx, endpoint, request, reply, startedNs);
    return;
  }
  const text = reply.toolCalls?.length ? (toolReplyText(reply) ?? '') : replyText(reply, FALLBACK_TEXT);
  const whole = finalObject(endpoint, request, reply, text, startedNs, true);
  sendOllamaJson(res, 200, whole, reply.headers);
}

/**
 * Mirrors gin's ShouldBindJSON into Go structs: wrong JSON types are 400s with Go's wording.
 * Returns undefined after answering when the body cannot be bound.
 */
function parseRequest(ctx: VendorContext, endpoint: Endpoint): GenerationRequest | undefined {
  const { record, res } = ctx;
  if (record.rawBody.trim() === '') {
    sendOllamaJson(res, 400, { error: 'missing request body' });
    return undefined;
  }
  const body: unknown = record.body;
  if (body === undefined) {
    sendOllamaJson(res, 400, { error: `invalid character in request body: ${jsonParseError(record.rawBody)}` });
    return undefined;
  }
  const structName = endpoint === 'chat' ? 'ChatRequest' : 'GenerateRequest';
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    sendOllamaJson(res, 400, { error: `json: cannot unmarshal ${goJsonType(body)} into Go value of type api.${structName}` });
    return undefined;
  }
  const fields = body as Record<string, unknown>;
  const typeError = checkFieldTypes(fields, structName, endpoint);
  if (typeError) {
    sendOllamaJson(res, 400, { error: typeError });
    return undefined;
  }

  const model = typeof fields.model === 'string' ? fields.model : '';
  const loadOnly =
    endpoint === 'chat'
      ? !Array.isArray(fields.messages) || fields.messages.length === 0
      : typeof fields.prompt !== 'string' || fields.prompt === '';
  // `stream` is a *bool in Go: only an explicit false turns streaming off.
  return { model, stream: fields.stream !== false, loadOnly, raw: fields.raw === true };
}

type GoType = 'string' | 'bool' | 'array' | 'object';

const FIELD_TYPES: Record<Endpoint, Record<string, GoType>> = {
  chat: { model: 'string', messages: 'array', stream: 'bool', options: 'object', tools: 'array' },
  generate: {
    model: 'string',
    prompt: 'string',
    suffix: 'string',
    system: 'string',
    template: 'string',
    stream: 'bool',
    raw: 'bool',
    images: 'array',
    context: 'array',
    options: 'object',
  },
};

/** Go's name for the destination type in "cannot unmarshal X into ... of type Y". */
const GO_TYPE_NAMES: Record<string, string> = {
  messages: '[]api.Message',
  tools: 'api.Tools',
  options: 'map[string]interface {}',
  images: '[]api.ImageData',
  context: '[]int',
};

function checkFieldTypes(fields: Record<string, unknown>, structName: string, endpoint: Endpoint): string | undefined {
  for (const [name, expected] of Object.entries(FIELD_TYPES[endpoint])) {
    const value = fields[name];
    // JSON null leaves a Go field at its zero value, so it is never a type error.
    if (value === undefined || value === null) continue;
    if (goJsonType(value) !== expected) {
      const goType = GO_TYPE_NAMES[name] ?? expected;
      return `json: cannot unmarshal ${goJsonType(value)} into Go struct field ${structName}.${name} of type ${goType}`;
    }
  }
  if (endpoint === 'chat' && Array.isArray(fields.messages)) {
    for (const message of fields.messages) {
      if (typeof message !== 'object' || message === null || Array.isArray(message)) {
        return `json: cannot unmarshal ${goJsonType(message)} into Go struct field ChatRequest.messages of type api.Message`;
      }
      // Message.content is a plain Go string: content-part arrays (OpenAI style) are rejected.
      for (const key of ['role', 'content'] as const) {
        const value = (message as Record<string, unknown>)[key];
        if (value !== undefined && value !== null && typeof value !== 'string') {
          return `json: cannot unmarshal ${goJsonType(value)} into Go struct field Message.messages.${key} of type string`;
        }
      }
    }
  }
  return undefined;
}

interface Rejection {
  status: number;
  message: string;
}

/** The checks Ollama runs after binding and before generating, in Ollama's order. */
function validate(body: Record<string, unknown>, request: GenerationRequest, endpoint: Endpoint): Rejection | undefined {
  if (request.model === '') return { status: 400, message: 'model is required' };
  if (isMissingModel(request.model)) return { status: 404, message: `model '${request.model}' not found` };

  if (endpoint === 'generate' && body.raw === true) {
    const hasContext = Array.isArray(body.context) && body.context.length > 0;
    if (nonEmptyString(body.template) || nonEmptyString(body.system) || hasContext) {
      return { status: 400, message: 'raw mode does not support template, system, or context' };
    }
  }

  const think = thinkError(body.think);
  if (think) return { status: 400, message: think };

  // Option type errors surface from the scheduler as plain errors, hence 500 rather than 400.
  const option = optionError(body.options);
  if (option) return { status: 500, message: option };

  if (!request.loadOnly) {
    const format = formatError(body.format);
    if (format) return { status: 500, message: format };
  }
  return undefined;
}

/** `think` is a bool or a level name (api.ThinkValue.UnmarshalJSON). */
function thinkError(think: unknown): string | undefined {
  if (think === undefined || think === null || typeof think === 'boolean') return undefined;
  if (typeof think === 'string') {
    if (think === 'high' || think === 'medium' || think === 'low') return undefined;
    return `invalid think value: ${JSON.stringify(think)} (must be "high", "medium", "low", true, or false)`;
  }
  return 'think must be a boolean or string ("high", "medium", "low", true, or false)';
}

type OptionKind = 'integer' | 'float32' | 'boolean' | 'array';

/** The option keys Ollama knows and their Go kinds; unknown keys are ignored with a log line. */
const OPTION_KINDS: Record<string, OptionKind> = {
  num_keep: 'integer',
  seed: 'integer',
  num_predict: 'integer',
  top_k: 'integer',
  repeat_last_n: 'integer',
  num_ctx: 'integer',
  num_batch: 'integer',
  num_gpu: 'integer',
  main_gpu: 'integer',
  num_thread: 'integer',
  top_p: 'float32',
  min_p: 'float32',
  typical_p: 'float32',
  temperature: 'float32',
  repeat_penalty: 'float32',
  presence_penalty: 'float32',
  frequency_penalty: 'float32',
  use_mmap: 'boolean',
  stop: 'array',
};

/** Same checks and wording as api.Options.FromMap. */
function optionError(options: unknown): string | undefined {
  if (typeof options !== 'object' || options === null) return undefined;
  for (const [key, value] of Object.entries(options)) {
    const kind = OPTION_KINDS[key];
    if (kind === undefined || value === null) continue;
    switch (kind) {
      case 'integer':
      case 'float32':
        if (typeof value !== 'number') return `option "${key}" must be of type ${kind}`;
        break;
      case 'boolean':
        if (typeof value !== 'boolean') return `option "${key}" must be of type boolean`;
        break;
      case 'array':
        if (!Array.isArray(value)) return `option "${key}" must be of type array`;
        if (!value.every((item) => typeof item === 'string')) return `option "${key}" must be of an array of strings`;
        break;
    }
  }
  return undefined;
}

/** `format` is "json" or a JSON Schema object; null and "" mean unset (llm.Completion). */
function formatError(format: unknown): string | undefined {
  if (format === undefined || format === null || format === '' || format === 'json') return undefined;
  if (typeof format === 'object' && !Array.isArray(format)) return undefined;
  // Go quotes the raw JSON bytes with %q, e.g. "\"yaml\"" for the string "yaml".
  return `invalid format: ${JSON.stringify(JSON.stringify(format))}; expected "json" or a valid JSON Schema object`;
}

function isMissingModel(model: string): boolean {
  const [base] = model.split(':');
  return base === MISSING_OLLAMA_MODEL || base?.endsWith(`/${MISSING_OLLAMA_MODEL}`) === true;
}

function defaultErrorMessage(status: number, model: string): string {
  if (status === 404) return `model '${model}' not found`;
  return DEFAULT_ERROR_MESSAGES[status] ?? `fake ollama error (status ${status})`;
}

async function streamAnswer(
  ctx: VendorContext,
  endpoint: Endpoint,
  request: GenerationRequest,
  reply: FakeReply,
  startedNs: bigint,
): Promise<void> {
  const { res } = ctx;
  startStream(res, 'application/x-ndjson', reply.headers);
  const calls = endpoint === 'chat' ? toolCallsOf(reply) : undefined;
  let chunks: string[];
  if (calls) {
    const text = toolReplyText(reply);
    chunks = text ? (reply.chunks ?? splitText(text)) : [];
  } else {
    chunks = replyChunks(reply, FALLBACK_TEXT);
  }
  for (const [index, chunk] of chunks.entries()) {
    if (index > 0 && reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
    if (clientGone(ctx)) return;
    writeLine(res, deltaObject(endpoint, request.model, chunk));
  }
  if (calls) {
    // The parser hands over whole tool calls, in one object of their own.
    if (chunks.length > 0 && reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
    if (clientGone(ctx)) return;
    writeLine(res, { model: request.model, created_at: new Date().toISOString(), message: { role: 'assistant', content: '', tool_calls: calls }, done: false });
  }
  if (reply.chunkDelayMs) await sleep(reply.chunkDelayMs);
  if (clientGone(ctx)) return;
  // The closing object carries no text: the runner reports completion separately from tokens.
  writeLine(res, finalObject(endpoint, request, reply, '', startedNs, false));
  res.end();
}

/** A scripted reply's tool calls as `message.tool_calls` (arguments as an object, like Ollama). */
function toolCallsOf(reply: FakeReply): Record<string, unknown>[] | undefined {
  if (!reply.toolCalls?.length) return undefined;
  return reply.toolCalls.map((call, index) => ({
    ...(call.id !== undefined && { id: call.id }),
    function: { index, name: call.name, arguments: call.args ?? {} },
  }));
}

function deltaObject(endpoint: Endpoint, model: string, text: string): Record<string, unknown> {
  const head = { model, created_at: new Date().toISOString() };
  return endpoint === 'chat'
    ? { ...head, message: { role: 'assistant', content: text }, done: false }
    : { ...head, response: text, done: false };
}

/** The `done: true` object: the whole answer when not streamed, the closing line when streamed. */
function finalObject(
  endpoint: Endpoint,
  request: GenerationRequest,
  reply: FakeReply,
  text: string,
  startedNs: bigint,
  withCalls: boolean,
): Record<string, unknown> {
  const head = { model: request.model, created_at: new Date().toISOString() };
  // Ollama says "stop" after tool calls too; clients look at message.tool_calls.
  const tail = { done: true, done_reason: reply.finish ?? 'stop', ...metrics(reply, startedNs) };
  if (endpoint === 'chat') {
    const calls = withCalls ? toolCallsOf(reply) : undefined;
    return { ...head, message: { role: 'assistant', content: text, ...(calls && { tool_calls: calls }) }, ...tail };
  }
  if (request.raw) return { ...head, response: text, ...tail };
  return { ...head, response: text, ...tail, context: contextTokens(reply) };
}

/**
 * /api/generate still returns the deprecated `context` token array on its final object (unless
 * `raw`); clients such as ollama-ai-provider-v2's completion model require it. Its length stands
 * in for prompt + answer tokens.
 */
function contextTokens(reply: FakeReply): number[] {
  const usage = replyUsage(reply);
  return Array.from({ length: Math.max(1, usage.input + usage.output) }, (_, i) => 1000 + i);
}

/** Durations in nanoseconds (Go time.Duration), counts as Go ints; zeros omitted (omitempty). */
function metrics(reply: FakeReply, startedNs: bigint): Record<string, number> {
  const usage = replyUsage(reply);
  const total = Math.max(4, Number(BigInt(Date.now()) * 1_000_000n - startedNs));
  const load = Math.floor(total / 4);
  const promptEval = Math.floor(total / 4);
  const evalDuration = total - load - promptEval;
  const out: Record<string, number> = { total_duration: total, load_duration: load };
  if (usage.input > 0) {
    out.prompt_eval_count = usage.input;
    out.prompt_eval_duration = promptEval;
  }
  if (usage.output > 0) {
    out.eval_count = usage.output;
    out.eval_duration = evalDuration;
  }
  return out;
}

function loadResponse(model: string, endpoint: Endpoint): Record<string, unknown> {
  const head = { model, created_at: new Date().toISOString() };
  return endpoint === 'chat'
    ? { ...head, message: { role: 'assistant', content: '' }, done_reason: 'load', done: true }
    : { ...head, response: '', done: true, done_reason: 'load' };
}

function listEntry(model: { name: string; family: string; parameterSize: string }): Record<string, unknown> {
  return {
    name: model.name,
    model: model.name,
    modified_at: '2025-06-01T12:00:00.000000000Z',
    size: 2_019_393_189,
    digest: createHash('sha256').update(model.name).digest('hex'),
    details: {
      parent_model: '',
      format: 'gguf',
      family: model.family,
      families: [model.family],
      parameter_size: model.parameterSize,
      quantization_level: 'Q4_K_M',
    },
  };
}

function clientGone(ctx: VendorContext): boolean {
  return ctx.res.destroyed || ctx.record.closedEarly || ctx.req.socket.destroyed;
}

function writeLine(res: ServerResponse, value: unknown): void {
  res.write(`${JSON.stringify(value)}\n`);
}

/** gin's c.JSON: note the charset suffix, which some clients match on. */
function sendOllamaJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): true {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload).toString(),
    ...headers,
  });
  res.end(payload);
  return true;
}

function sendText(res: ServerResponse, status: number, text: string): true {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text).toString(),
  });
  res.end(text);
  return true;
}

function goJsonType(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  if (typeof value === 'boolean') return 'bool';
  return typeof value;
}

function nonEmptyString(value: unknown): boolean {
  return typeof value === 'string' && value !== '';
}

function jsonParseError(raw: string): string {
  try {
    JSON.parse(raw);
    return 'unexpected input';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
