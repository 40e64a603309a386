/**
 * Fake Google Gemini API (generativelanguage.googleapis.com, v1beta) on loopback.
 *
 * Speaks the documented REST format closely enough that the official `@google/genai` and
 * `@ai-sdk/google` both accept it unchanged (see gemini.sdk.test.ts):
 *
 * - POST /v1beta/models/{model}:generateContent → one GenerateContentResponse.
 * - POST /v1beta/models/{model}:streamGenerateContent?alt=sse → data-only SSE events, each a
 *   GenerateContentResponse; without `alt=sse` the same records as one streamed JSON array,
 *   which is the API's default framing.
 * - GET /v1beta/models (pageSize / pageToken) and GET /v1beta/models/{model}.
 * - The same routes under /v1, which the API also serves and `@google/genai` 3.x uses by default.
 * - Auth through `x-goog-api-key` or `?key=`.
 *
 * Structured output: `generationConfig.responseMimeType: "application/json"` (with
 * `responseSchema` or `responseJsonSchema`) gets the JSON serialized as the answer's text.
 * A forced function call (`toolConfig.functionCallingConfig.mode: "ANY"`, which `@ai-sdk/google`
 * uses for a "json" response tool when structured output is combined with function tools) gets a
 * `functionCall` part whose args are `reply.json`.
 *
 * Function calling: a reply with `toolCalls` answers `functionCall` parts (after a text part when
 * the script has text), finishReason STOP as the API does; streamed, the calls arrive whole in the
 * last record. The turn after a model turn with calls must carry one `functionResponse` part per
 * call (400 otherwise, as the API answers).
 *
 * Token counts: {@link FakeUsage} is read the way the AI SDK normalizes usage, so every fake
 * yields the same `result.usage` for the same script. Gemini's `promptTokenCount` already
 * includes cached tokens, while `candidatesTokenCount` excludes thinking, hence
 * `candidatesTokenCount = output - reasoning` and `thoughtsTokenCount = reasoning`.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import {
  applyDelay,
  header,
  replyChunks,
  replyText,
  replyUsage,
  sendJson,
  sleep,
  startFake,
  splitText,
  startStream,
  toolReplyText,
  writeSse,
} from './harness.ts';
import type { FakeReply, FakeUsage, FakeVendor, StartOptions, VendorContext } from './harness.ts';

export const GEMINI_DEFAULT_TEXT = 'Hello from the fake gemini.';

export interface GeminiModelInfo {
  name: string;
  version: string;
  displayName: string;
  description: string;
  inputTokenLimit: number;
  outputTokenLimit: number;
  supportedGenerationMethods: string[];
  temperature: number;
  maxTemperature: number;
  topP: number;
  topK: number;
  thinking: boolean;
}

const GENERATION_METHODS = ['generateContent', 'countTokens', 'createCachedContent', 'batchGenerateContent'];

function model(id: string, displayName: string): GeminiModelInfo {
  return {
    name: `models/${id}`,
    version: '001',
    displayName,
    description: `${displayName} (fake)`,
    inputTokenLimit: 1_048_576,
    outputTokenLimit: 65_536,
    supportedGenerationMethods: GENERATION_METHODS,
    temperature: 1,
    maxTemperature: 2,
    topP: 0.95,
    topK: 64,
    thinking: true,
  };
}

/** Models the fake lists. Generation accepts any model id, like the API accepts new models. */
export const GEMINI_MODELS: readonly GeminiModelInfo[] = [
  model('gemini-2.5-pro', 'Gemini 2.5 Pro'),
  model('gemini-2.5-flash', 'Gemini 2.5 Flash'),
  model('gemini-2.5-flash-lite', 'Gemini 2.5 Flash-Lite'),
  model('gemini-2.0-flash', 'Gemini 2.0 Flash'),
];

/** google.rpc status name the API pairs with each HTTP status. */
export function geminiRpcStatus(code: number): string {
  switch (code) {
    case 400:
      return 'INVALID_ARGUMENT';
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'PERMISSION_DENIED';
    case 404:
      return 'NOT_FOUND';
    case 409:
      return 'ABORTED';
    case 429:
      return 'RESOURCE_EXHAUSTED';
    case 499:
      return 'CANCELLED';
    case 500:
      return 'INTERNAL';
    case 501:
      return 'UNIMPLEMENTED';
    case 503:
      return 'UNAVAILABLE';
    case 504:
      return 'DEADLINE_EXCEEDED';
    default:
      return code >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION';
  }
}

const DEFAULT_ERROR_MESSAGES: Record<string, string> = {
  INVALID_ARGUMENT: 'Request contains an invalid argument.',
  UNAUTHENTICATED: 'Request had invalid authentication credentials.',
  PERMISSION_DENIED: 'The caller does not have permission',
  NOT_FOUND: 'Requested entity was not found.',
  RESOURCE_EXHAUSTED:
    'You exceeded your current quota, please check your plan and billing details.',
  INTERNAL: 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting',
  UNAVAILABLE: 'The model is overloaded. Please try again later.',
  DEADLINE_EXCEEDED: 'Deadline expired before operation could complete.',
};

/** Sends the documented google.rpc error envelope. */
export function sendGeminiError(
  res: ServerResponse,
  code: number,
  message?: string,
  headers: Record<string, string> = {},
  details?: unknown[],
): void {
  const status = geminiRpcStatus(code);
  sendJson(
    res,
    code,
    {
      error: {
        code,
        message: message ?? DEFAULT_ERROR_MESSAGES[status] ?? 'Error',
        status,
        ...(details && details.length > 0 && { details }),
      },
    },
    headers,
  );
}

/**
 * The API reports a retry hint as a RetryInfo detail (not as a header), so a scripted
 * `retry-after` header is mirrored there too.
 */
function retryDetails(reply: FakeReply): unknown[] | undefined {
  const retryAfter = Object.entries(reply.headers ?? {}).find(([k]) => k.toLowerCase() === 'retry-after')?.[1];
  if (retryAfter === undefined || !Number.isFinite(Number(retryAfter))) return undefined;
  return [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${Number(retryAfter)}s` }];
}

function wireUsage(usage: FakeUsage): Record<string, unknown> {
  const reasoning = usage.reasoning ?? 0;
  const candidates = Math.max(0, usage.output - reasoning);
  return {
    promptTokenCount: usage.input,
    candidatesTokenCount: candidates,
    totalTokenCount: usage.input + candidates + reasoning,
    ...(usage.cached !== undefined && { cachedContentTokenCount: usage.cached }),
    ...(usage.reasoning !== undefined && { thoughtsTokenCount: usage.reasoning }),
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: usage.input }],
    ...(usage.cached !== undefined && { cacheTokensDetails: [{ modality: 'TEXT', tokenCount: usage.cached }] }),
  };
}

function isRecord(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The REST API accepts both proto JSON spellings (camelCase and snake_case) of a field. */
function field(obj: unknown, camel: string): any {
  if (!isRecord(obj)) return undefined;
  if (obj[camel] !== undefined) return obj[camel];
  return obj[camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)];
}

/** True when the request asks for a JSON answer through the generation config. */
export function wantsJson(body: Record<string, any>): boolean {
  return field(field(body, 'generationConfig'), 'responseMimeType') === 'application/json';
}

/**
 * The function the request forces (mode ANY), if any. Among the allowed declarations, a
 * response tool named "json…" (the AI SDK's) is the one a model would call.
 */
export function forcedFunctionName(body: Record<string, any>): string | undefined {
  const config = field(field(body, 'toolConfig'), 'functionCallingConfig');
  if (field(config, 'mode') !== 'ANY') return undefined;
  const declared: string[] = [];
  for (const tool of Array.isArray(body.tools) ? (body.tools as unknown[]) : []) {
    const decls = field(tool, 'functionDeclarations');
    for (const d of Array.isArray(decls) ? (decls as unknown[]) : []) {
      if (isRecord(d) && typeof d.name === 'string') declared.push(d.name);
    }
  }
  const allowed = field(config, 'allowedFunctionNames');
  const candidates = Array.isArray(allowed) && allowed.length > 0 ? (allowed as string[]) : declared;
  return candidates.find((n) => n.startsWith('json')) ?? candidates[0];
}

/** A forced call carries an object; fall back to the text when it parses as one. */
function functionArgs(reply: FakeReply): unknown {
  if (reply.json !== undefined) return reply.json;
  try {
    const parsed: unknown = JSON.parse(replyText(reply, ''));
    if (isRecord(parsed)) return parsed;
  } catch {
    // not JSON: an empty object is still a valid call
  }
  return {};
}

function validateGenerateBody(body: unknown): string | undefined {
  if (!isRecord(body)) return 'Invalid JSON payload received.';
  const contents = field(body, 'contents');
  if (!Array.isArray(contents) || contents.length === 0) {
    return '* GenerateContentRequest.contents: contents is not specified\n';
  }
  return functionTurnError(contents as unknown[]);
}

/** A scripted reply's function calls as `functionCall` parts (with an id only when scripted). */
function scriptedCalls(reply: FakeReply): unknown[] | undefined {
  if (!reply.toolCalls?.length) return undefined;
  return reply.toolCalls.map((call) => ({
    functionCall: { ...(call.id !== undefined && { id: call.id }), name: call.name, args: call.args ?? {} },
  }));
}

function partsOf(content: unknown): unknown[] {
  const parts = field(content, 'parts');
  return Array.isArray(parts) ? (parts as unknown[]) : [];
}

/**
 * The API's check of a function round trip: the turn after a model turn with function calls
 * must answer each of them with a `functionResponse` part.
 */
function functionTurnError(contents: unknown[]): string | undefined {
  for (const [i, content] of contents.entries()) {
    const calls = partsOf(content).filter((p) => field(p, 'functionCall') !== undefined).length;
    const next = contents[i + 1];
    if (calls === 0 || next === undefined) continue;
    const responses = partsOf(next).filter((p) => field(p, 'functionResponse') !== undefined).length;
    if (responses !== calls) {
      return 'Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.';
    }
  }
  return undefined;
}

async function pause(ctx: VendorContext, ms: number | undefined): Promise<boolean> {
  if (ms) {
    await Promise.race([sleep(ms), new Promise<void>((resolve) => ctx.res.once('close', () => resolve()))]);
  }
  return !ctx.res.destroyed && !ctx.record.closedEarly;
}

async function handleGenerate(ctx: VendorContext, modelId: string, streaming: boolean): Promise<void> {
  const { res, record } = ctx;
  const invalid = validateGenerateBody(record.body);
  if (invalid) {
    sendGeminiError(res, 400, invalid);
    return;
  }
  const body = record.body as Record<string, any>;
  const reply = ctx.nextReply();
  if (!(await applyDelay(ctx, reply))) return;
  if (reply.status !== undefined && reply.status >= 400) {
    sendGeminiError(res, reply.status, reply.errorMessage, reply.headers, retryDetails(reply));
    return;
  }

  const finishReason = reply.finish === 'length' ? 'MAX_TOKENS' : 'STOP';
  const usageMetadata = wireUsage(replyUsage(reply));
  const functionName = forcedFunctionName(body);
  // JSON mode needs no branch: replyText already serializes reply.json.
  const responseId = randomBytes(12).toString('base64url');
  const frame = (parts: unknown[], last: boolean): Record<string, unknown> => ({
    candidates: [
      {
        content: { parts, role: 'model' },
        ...(last && { finishReason }),
        index: 0,
      },
    ],
    ...(last && { usageMetadata }),
    modelVersion: modelId,
    responseId,
  });

  const scripted = scriptedCalls(reply);
  if (!streaming) {
    let parts: unknown[];
    if (scripted) {
      const text = toolReplyText(reply);
      parts = [...(text ? [{ text }] : []), ...scripted];
    } else {
      parts = functionName
        ? [{ functionCall: { name: functionName, args: functionArgs(reply) } }]
        : [{ text: replyText(reply, GEMINI_DEFAULT_TEXT) }];
    }
    sendJson(res, 200, frame(parts, true), reply.headers);
    return;
  }

  // Function calls arrive whole, together in the last record; text arrives in pieces before them.
  let partsPerFrame: unknown[][];
  if (scripted) {
    const text = toolReplyText(reply);
    const textFrames = text ? (reply.chunks ?? splitText(text)).map((t) => [{ text: t }]) : [];
    partsPerFrame = [...textFrames, scripted];
  } else {
    partsPerFrame = functionName
      ? [[{ functionCall: { name: functionName, args: functionArgs(reply) } }]]
      : replyChunks(reply, GEMINI_DEFAULT_TEXT).map((text) => [{ text }]);
  }
  const sse = record.query.get('alt') === 'sse';
  startStream(res, sse ? 'text/event-stream' : 'application/json; charset=UTF-8', reply.headers);
  if (!sse) res.write('[');
  for (const [i, parts] of partsPerFrame.entries()) {
    if (i > 0 && !(await pause(ctx, reply.chunkDelayMs))) return;
    const chunk = frame(parts, i === partsPerFrame.length - 1);
    if (sse) writeSse(res, chunk);
    else res.write(`${i > 0 ? ',\r\n' : ''}${JSON.stringify(chunk)}`);
  }
  if (!sse) res.write(']');
  res.end();
}

function handleModels(ctx: VendorContext, apiVersion: string, name: string | undefined): void {
  const { res, record } = ctx;
  if (name !== undefined) {
    const found = GEMINI_MODELS.find((m) => m.name === `models/${name}`);
    if (found) sendJson(res, 200, found);
    else sendGeminiError(res, 404, `models/${name} is not found for API version ${apiVersion}.`);
    return;
  }
  // The API pages with an opaque token; an offset is enough for a fake.
  const pageSize = Math.min(1000, Math.max(1, Number(record.query.get('pageSize') ?? 50) || 50));
  const offset = Number(record.query.get('pageToken') ?? 0) || 0;
  const page = GEMINI_MODELS.slice(offset, offset + pageSize);
  const next = offset + pageSize < GEMINI_MODELS.length ? String(offset + pageSize) : undefined;
  sendJson(res, 200, { models: page, ...(next && { nextPageToken: next }) });
}

// The API serves the same resources under /v1 and /v1beta; @google/genai 3.x defaults to /v1,
// @ai-sdk/google to /v1beta.
const VERSION_PREFIX = /^\/(v1|v1beta)\//;
const GENERATE_PATH = /^\/(?:v1|v1beta)\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;
const MODEL_PATH = /^\/(v1|v1beta)\/models(?:\/([^/:]+))?$/;

async function handle(ctx: VendorContext): Promise<boolean> {
  const { record, res } = ctx;
  if (!VERSION_PREFIX.test(record.path)) return false;

  const sentKey = header(record, 'x-goog-api-key') ?? record.query.get('key') ?? undefined;
  if (!sentKey) {
    sendGeminiError(
      res,
      403,
      "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    );
    return true;
  }
  if (sentKey !== ctx.apiKey) {
    // Real Gemini answers 400 API_KEY_INVALID; a 401 keeps auth failures classifiable by status.
    // The key is echoed verbatim on purpose: the worst case our redaction must survive.
    sendGeminiError(res, 401, `API key not valid: "${sentKey}". Please pass a valid API key.`, {}, [
      {
        '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
        reason: 'API_KEY_INVALID',
        domain: 'googleapis.com',
        metadata: { service: 'generativelanguage.googleapis.com' },
      },
    ]);
    return true;
  }

  const generate = GENERATE_PATH.exec(record.path);
  if (generate) {
    if (record.method !== 'POST') {
      sendGeminiError(res, 404, `fake: ${record.method} is not allowed on ${record.path}`);
      return true;
    }
    const modelId = decodeURIComponent(generate[1] ?? '');
    await handleGenerate(ctx, modelId, generate[2] === 'streamGenerateContent');
    return true;
  }
  const models = MODEL_PATH.exec(record.path);
  if (models && record.method === 'GET') {
    handleModels(ctx, models[1] ?? 'v1beta', models[2] === undefined ? undefined : decodeURIComponent(models[2]));
    return true;
  }
  sendGeminiError(res, 404, `fake: no route ${record.method} ${record.path}`);
  return true;
}

/** Starts a fake Gemini server; point clients at `baseUrl` (`${url}/v1beta`). */
export function startFakeGemini(options: StartOptions = {}): Promise<FakeVendor> {
  return startFake(handle, (url) => `${url}/v1beta`, {
    ...options,
    isGeneration: (path) => GENERATE_PATH.test(path),
  });
}
