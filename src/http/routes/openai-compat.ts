/**
 * The OpenAI-compatible surface: `POST /v1/chat/completions`, `GET /v1/models` and
 * `GET /v1/models/{model}`, so that OpenAI clients (the official SDKs, LangChain, ...) can call
 * Ensemble agents, workflows and multi-agent chats as models. The app token is the API key.
 * Every answer of these routes — errors included — has OpenAI's shape, not the contract's.
 * See docs/openai-compatible.md.
 */
import { z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { isEnsembleError, type EnsembleError } from '../../core/index.ts';
import type { AppSettingsCache, RateLimits } from '../../governance/index.ts';
import { answerStepOf, buildSingleAgent, type ChatMode, type ConversationTurn } from '../../orchestrator/chat.ts';
import type { ChatService, RunService, RunView, WorkflowService } from '../../orchestrator/index.ts';
import type { Actor, AgentService, AppService } from '../../registry/index.ts';
import type { CompiledStep, CompiledWorkflow } from '../../workflow/index.ts';
import type { AppEnv } from '../env.ts';
import { tokenRateLimit } from '../middleware/auth.ts';

export interface OpenAICompatDeps {
  apps: AppService;
  agents: AgentService;
  workflows: WorkflowService;
  runs: RunService;
  chat: ChatService;
  /** When given, the app's per-token request limit applies to these routes as to `/api/v1/*`. */
  governance?: { settings: AppSettingsCache; limits: RateLimits } | undefined;
}

/** Most agents a `multi/` model may name (as `chat/multi`). */
const MAX_MULTI_AGENTS = 32;
/** A comment line this often keeps idle streams (long steps) open through proxies. */
const KEEP_ALIVE_MS = 15_000;
const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\b/i;
const MODES: readonly ChatMode[] = ['parallel', 'sequential', 'orchestrated'];

// ---------------------------------------------------------------------------------------------
// Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}

/** An error answered in OpenAI's shape. */
class OpenAIError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(status: number, message: string, options: { type?: string; code?: string | null; param?: string | null; headers?: Record<string, string> } = {}) {
    super(message);
    this.name = 'OpenAIError';
    this.status = status;
    this.type = options.type ?? typeForStatus(status);
    this.code = options.code ?? null;
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function typeForStatus(status: number): string {
  if (status === 402) return 'insufficient_quota';
  if (status === 429) return 'rate_limit_error';
  if (status === 504) return 'timeout_error';
  if (status >= 500) return status === 500 ? 'server_error' : 'api_error';
  return 'invalid_request_error';
}

function retryAfter(details: unknown): Record<string, string> {
  const ms = (details as { retry_after_ms?: unknown } | null)?.retry_after_ms;
  return typeof ms === 'number' ? { 'Retry-After': String(Math.max(1, Math.ceil(ms / 1000))) } : {};
}

/** A service error (no run was created) in OpenAI's terms. */
function fromEnsembleError(error: EnsembleError, param: string | null = null): OpenAIError {
  const firstPath = Array.isArray(error.details) ? (error.details[0] as { path?: unknown } | undefined)?.path : undefined;
  switch (error.code) {
    case 'unauthorized':
      return new OpenAIError(401, error.message, { code: 'invalid_api_key' });
    case 'forbidden':
      return new OpenAIError(403, error.message, { code: 'permission_denied' });
    case 'not_found':
      return new OpenAIError(404, error.message, { code: param === 'model' ? 'model_not_found' : 'not_found', param });
    case 'invalid_request':
    case 'invalid_workflow':
      return new OpenAIError(400, error.message, { code: 'invalid_value', param: param ?? (typeof firstPath === 'string' && firstPath ? firstPath : null) });
    case 'budget_exceeded':
      return new OpenAIError(402, error.message, { code: 'insufficient_quota' });
    case 'rate_limited':
      return new OpenAIError(429, error.message, { code: 'rate_limit_exceeded', headers: retryAfter(error.details) });
    case 'conflict':
      return new OpenAIError(409, error.message, { code: 'conflict' });
    case 'payload_too_large':
      return new OpenAIError(413, error.message, { code: 'request_too_large' });
    case 'unsupported_media_type':
      return new OpenAIError(415, error.message, { code: 'unsupported_media_type' });
    case 'provider_error':
      return new OpenAIError(502, error.message, { code: 'provider_error' });
    case 'timeout':
      return new OpenAIError(504, error.message, { code: 'timeout' });
    default:
      return new OpenAIError(500, 'Internal error', { code: 'internal_error' });
  }
}

function toOpenAIError(error: unknown, param: string | null = null): OpenAIError {
  if (error instanceof OpenAIError) return error;
  if (isEnsembleError(error)) return fromEnsembleError(error, param);
  return new OpenAIError(500, 'Internal error', { code: 'internal_error' });
}

/**
 * A run that ended without an answer (failed or cancelled). The run has already applied its own
 * retry policy, so the answer tells OpenAI clients not to retry (`x-should-retry: false`).
 */
function fromRunEnd(runId: string, status: string, error: unknown): OpenAIError {
  const headers = { 'x-should-retry': 'false' };
  if (status === 'cancelled') return new OpenAIError(500, `Run ${runId} was cancelled`, { type: 'server_error', code: 'run_cancelled', headers });
  const e = (error ?? {}) as { code?: unknown; message?: unknown; step_id?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'run_failed';
  const where = typeof e.step_id === 'string' && e.step_id ? ` at step ${e.step_id}` : '';
  const message = `Run ${runId} failed${where}: ${typeof e.message === 'string' ? e.message : code}`;
  switch (code) {
    case 'budget_exceeded':
      return new OpenAIError(402, message, { code: 'insufficient_quota', headers });
    case 'rate_limited':
      return new OpenAIError(429, message, { code: 'rate_limit_exceeded', headers });
    case 'timeout':
      return new OpenAIError(504, message, { code: 'timeout', headers });
    case 'internal_error':
      return new OpenAIError(500, message, { code: 'internal_error', headers });
    default:
      // A provider's failure (unavailable, overloaded, auth_failed, ...) or an unusable plan.
      return new OpenAIError(502, message, { code, headers });
  }
}

function sendOpenAIError(c: Context, error: OpenAIError): Response {
  for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
  return c.json(error.body(), error.status as ContentfulStatusCode);
}

/** Runs a handler; anything it throws is answered in OpenAI's shape. */
async function guarded(c: Context, handler: () => Promise<Response>): Promise<Response> {
  try {
    return await handler();
  } catch (error) {
    return sendOpenAIError(c, toOpenAIError(error));
  }
}

// ---------------------------------------------------------------------------------------------
// Models: agent/<name>, workflow/<name>, multi/<mode>:<a>,<b>[@<aggregator>]

type ModelSpec =
  | { kind: 'agent'; name: string }
  | { kind: 'workflow'; name: string }
  | { kind: 'multi'; mode: ChatMode; agents: string[]; aggregator: string | undefined };

const MODEL_HELP = 'Ensemble models are agent/<name>, workflow/<name> and multi/<parallel|sequential|orchestrated>:<agent>,<agent>,...[@<aggregator>] (GET /v1/models lists them)';

function modelNotFound(model: string, why?: string): OpenAIError {
  return new OpenAIError(404, `The model \`${model}\` does not exist${why ? ` (${why})` : ''}. ${MODEL_HELP}.`, { code: 'model_not_found', param: 'model' });
}

function badModel(model: string, why: string): OpenAIError {
  return new OpenAIError(400, `Invalid model \`${model}\`: ${why}`, { code: 'invalid_value', param: 'model' });
}

export function parseModel(model: string): ModelSpec {
  const slash = model.indexOf('/');
  const prefix = slash > 0 ? model.slice(0, slash) : '';
  const rest = slash > 0 ? model.slice(slash + 1) : '';
  if ((prefix === 'agent' || prefix === 'workflow') && rest) return { kind: prefix, name: rest };
  if (prefix !== 'multi') throw modelNotFound(model);
  const match = /^([a-z]+):([^@]*)(?:@(.*))?$/.exec(rest);
  if (!match) throw modelNotFound(model, 'a multi model is multi/<mode>:<agent>,<agent>,...');
  const mode = match[1] as ChatMode;
  if (!MODES.includes(mode)) throw modelNotFound(model, `unknown mode "${match[1]}"; use parallel, sequential or orchestrated`);
  const agents = match[2]!.split(',').map((a) => a.trim());
  if (agents.some((a) => !a)) throw badModel(model, 'list the agents by name, separated by commas');
  if (agents.length > MAX_MULTI_AGENTS) throw badModel(model, `at most ${MAX_MULTI_AGENTS} agents`);
  const aggregator = match[3]?.trim();
  if (match[3] !== undefined && !aggregator) throw badModel(model, 'name the aggregator after "@"');
  if (aggregator && mode === 'sequential') throw badModel(model, 'sequential mode has no aggregator (the last agent answers)');
  return { kind: 'multi', mode, agents, aggregator };
}

/**
 * The step whose output is a workflow's output when it completes, if its text can be passed on
 * as it streams: the step a `{{name}}` output template names, else the last step of the
 * document. Structured (`schema`) and `parallel_count` steps answer objects and lists, so they
 * cannot be streamed as text.
 */
function workflowAnswerStep(definition: CompiledWorkflow): string | undefined {
  const textual = (step: CompiledStep | undefined) => (step && !step.schema && !step.parallelCount ? step.id : undefined);
  if (definition.output !== undefined) {
    const name = /^\{\{\s*([A-Za-z0-9_-]+)\s*\}\}$/.exec(definition.output)?.[1];
    return name ? textual(definition.steps.find((s) => s.output === name || s.id === name)) : undefined;
  }
  return textual(definition.steps.reduce<CompiledStep | undefined>((last, s) => (!last || s.index > last.index ? s : last), undefined));
}

function unixSeconds(iso: string): number {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : Math.floor(Date.now() / 1000);
}

// ---------------------------------------------------------------------------------------------
// The request

const ContentPartSchema = z.object({ type: z.string(), text: z.string().optional() });

const MessageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([z.string(), z.array(ContentPartSchema), z.null()]).optional(),
  name: z.string().optional(),
});

/** Fields OpenAI defines that are not listed here are accepted and ignored (see the docs). */
const ChatCompletionRequestSchema = z.object({
  model: z.string().min(1),
  messages: z.array(MessageSchema).min(1),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  user: z.string().max(256).nullish(),
  n: z.number().int().nullish(),
  temperature: z.number().nullish(),
  top_p: z.number().nullish(),
  max_tokens: z.number().int().nullish(),
  max_completion_tokens: z.number().int().nullish(),
  tools: z.array(z.unknown()).nullish(),
  functions: z.array(z.unknown()).nullish(),
  response_format: z.object({ type: z.string() }).nullish(),
  ensemble: z
    .object({
      include_steps: z.boolean().optional(),
      context: z.record(z.string(), z.unknown()).optional(),
    })
    .strict()
    .nullish(),
});

type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

function paramOf(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}

async function readRequest(c: Context): Promise<ChatCompletionRequest> {
  const type = c.req.header('content-type') ?? '';
  if (!JSON_TYPE.test(type)) {
    throw new OpenAIError(415, `Content-Type must be application/json (got "${type || 'none'}")`, { code: 'unsupported_media_type' });
  }
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new OpenAIError(400, `We could not parse the JSON body of your request: ${error.message}`, { code: 'invalid_json' });
  }
  const parsed = ChatCompletionRequestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue ? paramOf(issue.path) : '';
    throw new OpenAIError(400, issue ? `Invalid value for '${param || '(body)'}': ${issue.message}` : 'Invalid request body', { code: 'invalid_value', param: param || null });
  }
  const body = parsed.data;
  if (body.n != null && body.n !== 1) throw new OpenAIError(400, 'Only n = 1 is supported', { code: 'invalid_value', param: 'n' });
  if (body.tools?.length || body.functions?.length) throw new OpenAIError(400, 'Tools (function calling) are not supported by Ensemble models', { code: 'unsupported_parameter', param: body.tools?.length ? 'tools' : 'functions' });
  if (body.response_format && body.response_format.type !== 'text') {
    throw new OpenAIError(400, `response_format "${body.response_format.type}" is not supported; only "text"`, { code: 'unsupported_parameter', param: 'response_format' });
  }
  return body;
}

function textOf(content: ChatCompletionRequest['messages'][number]['content'], index: number): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      if (part.type !== 'text' || part.text === undefined) {
        throw new OpenAIError(400, `Only text content parts are supported (got "${part.type}")`, { code: 'invalid_value', param: `messages[${index}].content[${j}]` });
      }
      return part.text;
    })
    .join('');
}

/** The last user message is the input; the messages before it are the conversation so far. */
function splitConversation(messages: ChatCompletionRequest['messages']): { message: string; history: ConversationTurn[] } {
  let last = -1;
  messages.forEach((m, i) => {
    if (m.role === 'user') last = i;
  });
  if (last < 0) throw new OpenAIError(400, 'messages must contain a user message (the last one is the input)', { code: 'invalid_value', param: 'messages' });
  const message = textOf(messages[last]!.content, last);
  if (!message.trim()) throw new OpenAIError(400, 'The last user message is empty', { code: 'invalid_value', param: `messages[${last}].content` });
  const history: ConversationTurn[] = [];
  messages.slice(0, last).forEach((m, i) => {
    const content = textOf(m.content, i);
    const role = m.role === 'developer' ? 'system' : m.role === 'function' ? 'tool' : m.role;
    if (content.trim()) history.push({ role, content });
  });
  return { message, history };
}

function flag(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes)$/i.test(value.trim());
}

// ---------------------------------------------------------------------------------------------
// Starting the run

interface Started {
  runId: string;
  /** The step whose deltas are the answer as it is written (undefined: the answer comes whole). */
  answerStep: string | undefined;
}

async function startRun(
  deps: OpenAICompatDeps,
  appId: string,
  actor: Actor,
  model: string,
  request: { message: string; history: ConversationTurn[]; context: Record<string, unknown>; user: string | undefined; idempotencyKey: string | undefined },
): Promise<Started> {
  const spec = parseModel(model);
  const input = { input: request.message, context: request.context, user: request.user };
  switch (spec.kind) {
    case 'agent': {
      const agent = await deps.agents.getRecord(appId, spec.name).catch((error: unknown) => {
        throw isEnsembleError(error) && error.code === 'not_found' ? modelNotFound(model, `no agent "${spec.name}"`) : error;
      });
      if (!agent.is_active) throw modelNotFound(model, `the agent "${spec.name}" is inactive`);
      const definition = buildSingleAgent(agent, request.history);
      const { run } = await deps.runs.startAdHocRun(appId, definition, 'agent', input, actor);
      return { runId: run.id, answerStep: definition.steps[0]?.id };
    }
    case 'workflow': {
      const workflow = await deps.workflows.get(appId, spec.name).catch((error: unknown) => {
        throw isEnsembleError(error) && error.code === 'not_found' ? modelNotFound(model, `no workflow "${spec.name}"`) : error;
      });
      const { run } = await deps.runs.startWorkflowRun(appId, workflow, { ...input, idempotencyKey: request.idempotencyKey }, actor);
      return { runId: run.id, answerStep: workflowAnswerStep(workflow.definition) };
    }
    case 'multi': {
      try {
        const runId = await deps.chat.start(
          appId,
          { message: request.message, agents: spec.agents, mode: spec.mode, aggregator: spec.aggregator, failFast: false, context: request.context, user: request.user },
          actor,
        );
        return { runId, answerStep: answerStepOf(spec.mode, spec.agents, spec.aggregator) };
      } catch (error) {
        if (isEnsembleError(error) && error.code === 'not_found') throw modelNotFound(model, error.message);
        // An inactive agent is not a model to run, as for agent/ models.
        const detail = isEnsembleError(error) && Array.isArray(error.details) ? (error.details[0] as { message?: unknown } | undefined)?.message : undefined;
        if (typeof detail === 'string' && detail.startsWith('inactive')) throw modelNotFound(model, (error as Error).message);
        throw toOpenAIError(error, 'model');
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The answer

interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
  completion_tokens_details?: { reasoning_tokens: number };
}

/** The run's token totals in OpenAI's names. */
function toUsage(usage: unknown): OpenAIUsage {
  const u = (usage ?? {}) as Record<string, unknown>;
  const num = (key: string) => (typeof u[key] === 'number' ? (u[key] as number) : 0);
  const prompt = num('input_tokens');
  const completion = num('output_tokens');
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: typeof u.total_tokens === 'number' ? u.total_tokens : prompt + completion,
    ...(typeof u.cached_input_tokens === 'number' ? { prompt_tokens_details: { cached_tokens: u.cached_input_tokens } } : {}),
    ...(typeof u.reasoning_tokens === 'number' ? { completion_tokens_details: { reasoning_tokens: u.reasoning_tokens } } : {}),
  };
}

/** An output as message text: strings as they are, objects and lists as JSON. */
function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  return JSON.stringify(value);
}

/** Whether a step id is one instance of a `parallel_count` step (the group has its own row). */
function isInstance(stepId: string): boolean {
  return /\[\d+\]$/.test(stepId);
}

/** One step's labelled section (the `include_steps` extension). */
function section(step: { step_id: string; agent: unknown; status: string; output?: unknown; error?: unknown; reason?: unknown }): string {
  const head = `### ${step.step_id}${typeof step.agent === 'string' && step.agent && step.status !== 'skipped' && step.status !== 'cancelled' ? ` (${step.agent})` : ''}`;
  if (step.status === 'completed') return `${head}\n${asText(step.output)}\n\n`;
  if (step.status === 'failed') {
    const e = (step.error ?? {}) as { code?: unknown; message?: unknown };
    return `${head} — failed: ${String(e.code ?? 'error')}: ${String(e.message ?? '')}\n\n`;
  }
  return `${head} — skipped${typeof step.reason === 'string' && step.reason ? `: ${step.reason}` : ''}\n\n`;
}

const OUTPUT_HEADING = '### output\n';

function completionBody(run: RunView, o: { model: string; created: number; answerStep: string | undefined; includeSteps: boolean }) {
  let content = asText(run.output);
  if (o.includeSteps) {
    const sections = run.steps.filter((s) => !isInstance(s.step_id) && !(s.step_id === o.answerStep && s.status === 'completed')).map((s) => section(s));
    content = `${sections.join('')}${OUTPUT_HEADING}${content}`;
  }
  return {
    id: `chatcmpl-${run.run_id}`,
    object: 'chat.completion',
    created: o.created,
    model: o.model,
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: toUsage(run.usage),
    system_fingerprint: null,
    ensemble: {
      run_id: run.run_id,
      status: run.status,
      cost_usd: run.cost_usd,
      ...(o.includeSteps ? { steps: run.steps.map((s) => ({ step_id: s.step_id, agent: s.agent, status: s.status, output: s.output, error: s.error, usage: s.usage })) } : {}),
    },
  };
}

/**
 * Streams the run as `chat.completion.chunk`s. Without `include_steps` the answer step's deltas
 * are passed on as they come; with it, each step's section is sent when the step ends and the
 * output section when the run ends. The stream ends with `data: [DONE]`.
 */
function streamCompletion(
  c: Context,
  runs: RunService,
  o: { appId: string; runId: string; model: string; created: number; answerStep: string | undefined; includeSteps: boolean; includeUsage: boolean },
): Response {
  c.header('Cache-Control', 'no-cache');
  c.header('X-Accel-Buffering', 'no');
  const base = { id: `chatcmpl-${o.runId}`, object: 'chat.completion.chunk', created: o.created, model: o.model, system_fingerprint: null };
  return streamSSE(
    c,
    async (stream) => {
      const controller = new AbortController();
      stream.onAbort(() => controller.abort());
      const keepAlive = setInterval(() => void stream.write(': keep-alive\n\n').catch(() => {}), KEEP_ALIVE_MS);
      keepAlive.unref();
      const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
        stream.writeSSE({ data: JSON.stringify({ ...base, choices, ...(o.includeUsage ? { usage: null } : {}), ...extra }) });
      const text = async (content: string) => {
        if (content) await chunk([{ index: 0, delta: { content }, logprobs: null, finish_reason: null }]);
      };
      const fail = async (error: OpenAIError) => {
        await stream.writeSSE({ data: JSON.stringify(error.body()) });
        await stream.writeSSE({ data: '[DONE]' });
      };
      try {
        await chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
        /** What was passed on of the answer step's text; `broken` once an attempt of it failed after writing. */
        let live = '';
        let broken = false;
        for await (const event of runs.events(o.appId, o.runId, 0, controller.signal)) {
          if (stream.aborted) return;
          const d = event.data;
          const stepId = typeof d.step_id === 'string' ? d.step_id : '';
          switch (event.type) {
            case 'step.delta':
              if (!o.includeSteps && !broken && stepId === o.answerStep && typeof d.text === 'string') {
                live += d.text;
                await text(d.text);
              }
              break;
            case 'step.failed':
              if (stepId === o.answerStep && live) broken = true;
              if (o.includeSteps && d.will_retry === false && !isInstance(stepId)) await text(section({ step_id: stepId, agent: d.agent, status: 'failed', error: d.error }));
              break;
            case 'step.completed':
              if (o.includeSteps && stepId !== o.answerStep && !isInstance(stepId)) await text(section({ step_id: stepId, agent: d.agent, status: 'completed', output: d.output }));
              break;
            case 'step.skipped':
              if (o.includeSteps && !isInstance(stepId)) await text(section({ step_id: stepId, agent: d.agent, status: 'skipped', reason: d.reason }));
              break;
            case 'run.completed': {
              const output = asText(d.output);
              if (o.includeSteps) await text(`${OUTPUT_HEADING}${output}`);
              // The answer step was not the output (a template, a skipped step) or was retried after writing.
              else if (output !== live) await text(output.startsWith(live) ? output.slice(live.length) : `\n\n${output}`);
              await chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], { ensemble: { run_id: o.runId, status: d.status, cost_usd: d.cost_usd } });
              if (o.includeUsage) await stream.writeSSE({ data: JSON.stringify({ ...base, choices: [], usage: toUsage(d.usage) }) });
              await stream.writeSSE({ data: '[DONE]' });
              return;
            }
            case 'run.failed':
              await fail(fromRunEnd(o.runId, 'failed', d.error));
              return;
            case 'run.cancelled':
              await fail(fromRunEnd(o.runId, 'cancelled', null));
              return;
          }
        }
      } catch {
        // Storage failed under the stream: say so in OpenAI's shape, without internals.
        await fail(new OpenAIError(500, `Internal error while streaming run ${o.runId}`, { code: 'internal_error' }));
      } finally {
        clearInterval(keepAlive);
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Routes

/** `Authorization: Bearer <app token>`, in OpenAI's error shape; the app's token rate limit when configured. */
function authenticate(deps: OpenAICompatDeps): MiddlewareHandler<AppEnv> {
  const rateLimit = deps.governance ? tokenRateLimit(deps.governance.settings, deps.governance.limits) : undefined;
  return async (c, next) => {
    try {
      const header = c.req.header('authorization') ?? '';
      const token = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
      if (!token) throw new OpenAIError(401, "You didn't provide an API key. Send your Ensemble app token as the API key (Authorization: Bearer <token>).", { code: 'invalid_api_key' });
      const principal = await deps.apps.authenticate(token);
      if (!principal) throw new OpenAIError(401, 'Incorrect API key provided: unknown or revoked token.', { code: 'invalid_api_key' });
      if (principal.kind !== 'app') throw new OpenAIError(403, 'The admin token cannot call models; use an app token.', { code: 'permission_denied' });
      c.set('principal', principal);
      if (rateLimit) await rateLimit(c, async () => {});
    } catch (error) {
      return sendOpenAIError(c, toOpenAIError(error));
    }
    return next();
  };
}

function requireAppPrincipal(c: Context<AppEnv>): { appId: string; actor: Actor } {
  const principal = c.get('principal');
  if (principal?.kind !== 'app') throw new OpenAIError(401, 'Missing API key', { code: 'invalid_api_key' });
  return { appId: principal.appId, actor: principal };
}

export function registerOpenAICompatRoutes(app: OpenAPIHono<AppEnv>, deps: OpenAICompatDeps): void {
  app.use('/v1/*', authenticate(deps));

  app.get('/v1/models', (c) =>
    guarded(c, async () => {
      const { appId } = requireAppPrincipal(c);
      const agents = await deps.agents.list(appId, { is_active: true });
      const workflows = await deps.workflows.list(appId);
      const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
      const data = [
        ...[...agents].sort(byName).map((a) => ({ id: `agent/${a.name}`, object: 'model', created: unixSeconds(a.created_at), owned_by: 'ensemble' })),
        ...[...workflows].sort(byName).map((w) => ({ id: `workflow/${w.name}`, object: 'model', created: unixSeconds(w.created_at), owned_by: 'ensemble' })),
      ];
      return c.json({ object: 'list', data });
    }),
  );

  app.get('/v1/models/:model{.+}', (c) =>
    guarded(c, async () => {
      const { appId } = requireAppPrincipal(c);
      const model = c.req.param('model');
      const spec = parseModel(model);
      let created = 0;
      if (spec.kind === 'agent') {
        const agent = await deps.agents.getRecord(appId, spec.name).catch(() => undefined);
        if (!agent?.is_active) throw modelNotFound(model);
        created = unixSeconds(agent.created_at);
      } else if (spec.kind === 'workflow') {
        const workflow = await deps.workflows.get(appId, spec.name).catch(() => undefined);
        if (!workflow) throw modelNotFound(model);
        created = unixSeconds(workflow.created_at);
      } else {
        for (const name of [...spec.agents, ...(spec.aggregator ? [spec.aggregator] : [])]) {
          const agent = await deps.agents.getRecord(appId, name).catch(() => undefined);
          if (!agent?.is_active) throw modelNotFound(model, `no active agent "${name}"`);
        }
      }
      return c.json({ id: model, object: 'model', created, owned_by: 'ensemble' });
    }),
  );

  app.post('/v1/chat/completions', (c) =>
    guarded(c, async () => {
      const { appId, actor } = requireAppPrincipal(c);
      const body = await readRequest(c);
      const { message, history } = splitConversation(body.messages);
      const includeSteps = body.ensemble?.include_steps ?? flag(c.req.header('x-ensemble-include-steps'));
      const idempotencyKey = c.req.header('idempotency-key') || undefined;
      if (idempotencyKey && idempotencyKey.length > 255) throw new OpenAIError(400, 'Idempotency-Key is longer than 255 characters', { code: 'invalid_value', param: 'Idempotency-Key' });
      const created = Math.floor(Date.now() / 1000);
      const { runId, answerStep } = await startRun(deps, appId, actor, body.model, {
        message,
        history,
        context: body.ensemble?.context ?? {},
        user: body.user || undefined,
        idempotencyKey,
      });
      c.header('x-ensemble-run-id', runId);
      if (body.stream) {
        return streamCompletion(c, deps.runs, { appId, runId, model: body.model, created, answerStep, includeSteps, includeUsage: body.stream_options?.include_usage === true });
      }
      await deps.runs.waitForEnd(runId);
      const run = await deps.runs.get(appId, runId);
      if (run.status === 'failed' || run.status === 'cancelled') return sendOpenAIError(c, fromRunEnd(runId, run.status, run.error));
      return c.json(completionBody(run, { model: body.model, created, answerStep, includeSteps }));
    }),
  );

  // Anything else under /v1 (an unknown path, or a known one with the wrong method).
  app.all('/v1/*', (c) => sendOpenAIError(c, new OpenAIError(404, `Invalid URL (${c.req.method} ${c.req.path})`, { code: 'unknown_url' })));
}
