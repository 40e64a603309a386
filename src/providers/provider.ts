import {
  APICallError,
  dynamicTool,
  generateText,
  jsonSchema,
  Output,
  stepCountIs,
  streamText,
  type JSONValue,
  type LanguageModel,
  type LanguageModelUsage,
  type ModelMessage,
  type ToolSet,
} from 'ai';
import type { ProviderError} from './errors.ts';
import { toProviderError } from './errors.ts';
import { DEFAULT_RETRY_POLICY, retryDelayMs, shouldRetry, sleep, type RetryPolicy } from './retry.ts';
import { singleModelCall, type ModelCallPart, type ModelCallSettings } from './single-call.ts';
import type {
  CallOptions,
  FinishReason,
  GenerateOptions,
  GenerateResult,
  HealthReport,
  OutputSchema,
  Provider,
  ProviderName,
  ProviderSettings,
  StreamPart,
  ToolCallRecord,
  ToolDefinition,
  ToolEvent,
  Usage,
} from './types.ts';
import { DEFAULT_MAX_TOOL_STEPS } from './types.ts';
import { bindVendor, toolErrorOutput, vendorProviderOptions, type VendorBinding } from './vendors.ts';

/** Time limit of one HTTP attempt when the agent sets no `timeout_ms`. */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Time limit of a health check. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 10_000;
/** Retries are ours (they honour retry-after and produce ProviderErrors): the AI SDK makes none. */
const NO_SDK_RETRIES = { maxRetries: 0 } as const;

export interface ProviderDeps {
  /** Retry settings; `maxRetries` is overridden by the agent's `max_retries`. */
  retryPolicy?: Partial<RetryPolicy>;
  /** Source of jitter; tests pin it. */
  random?: () => number;
  /** Used by the vendor packages and health checks. Defaults to the global fetch. */
  fetch?: typeof fetch;
}

/** A {@link Provider} built on one Vercel AI SDK language model. */
export class AiSdkProvider implements Provider {
  readonly name: ProviderName;
  readonly model: string;
  readonly #settings: ProviderSettings;
  readonly #apiKey: string | undefined;
  readonly #binding: VendorBinding;
  readonly #policy: RetryPolicy;
  readonly #random: () => number;
  readonly #fetch: typeof fetch;

  constructor(settings: ProviderSettings, apiKey: string | undefined, deps: ProviderDeps = {}) {
    this.name = settings.provider;
    this.model = settings.model;
    this.#settings = settings;
    this.#apiKey = apiKey;
    this.#binding = bindVendor(settings, apiKey, deps.fetch);
    this.#policy = { ...DEFAULT_RETRY_POLICY, ...deps.retryPolicy };
    this.#random = deps.random ?? Math.random;
    this.#fetch = deps.fetch ?? globalThis.fetch;
  }

  async generate<T = unknown>(prompt: string, options: GenerateOptions = {}): Promise<GenerateResult<T>> {
    const started = performance.now();
    const { value, attempts } = await this.#withRetries(options, async (attempt) => {
      const loop = options.tools?.length ? new ToolLoop(this.name, options, attempt, 'execute') : undefined;
      try {
        const common = { ...this.#callSettings(prompt, options, attempt.signal), ...NO_SDK_RETRIES, ...loop?.settings() };
        const result = options.schema
          ? await generateText({
              ...common,
              output: Output.object({ schema: toFlexibleSchema(options.schema), name: options.schemaName ?? 'output' }),
            })
          : await generateText(common);
        const finishReason = toFinishReason(result.finishReason);
        return {
          text: result.text,
          // A tool loop cut off by maxToolSteps ends on tool calls: there is no answer to parse.
          object: options.schema && finishReason !== 'tool-calls' ? (result.output as T) : undefined,
          usage: toUsage(result.totalUsage),
          finishReason,
          providerCostUsd: sumCosts(result.steps.map((step) => step.providerMetadata)),
          toolCalls: loop?.records() ?? [],
          steps: result.steps.length,
        };
      } catch (error) {
        // Tools have run (side effects): a retry would run them again.
        if (loop?.started) throw new NoRetry(error);
        throw error;
      }
    });
    return { ...value, latencyMs: performance.now() - started, attempts };
  }

  async *stream(prompt: string, options: CallOptions = {}): AsyncGenerator<StreamPart> {
    const started = performance.now();
    const policy = this.#retryPolicy(options);
    let firstTokenAt: number | undefined;
    // True once anything reached the consumer: a retry would repeat it.
    let emitted = false;
    for (let retry = 0; ; retry++) {
      const attempt = this.#startAttempt(options);
      const loop = options.tools?.length ? new ToolLoop(this.name, options, attempt, 'stream') : undefined;
      // True once the vendor's stream has ended: the request is over, there is nothing to abort.
      let drained = false;
      try {
        const call = this.#callSettings(prompt, options, attempt.signal);
        // Without tools there is one model call: the lean path (single-call.ts) holds a fraction
        // of streamText's memory while the call is in flight, with the same bytes and parts.
        const parts: AsyncIterable<ModelCallPart | SdkToolPart | { type: 'start-step' | 'abort' }> = loop
          ? (streamText({ ...call, ...NO_SDK_RETRIES, ...loop.settings(), onError: () => {} }).fullStream as AsyncIterable<ModelCallPart | SdkToolPart>)
          : singleModelCall(call);
        let usage: Usage | undefined;
        let finishReason: FinishReason = 'other';
        const costs: unknown[] = [];
        let stepText = '';
        let steps = 0;
        for await (const part of parts) {
          if (part.type === 'text-delta') {
            if (part.text.length === 0) continue;
            firstTokenAt ??= performance.now();
            emitted = true;
            stepText += part.text;
            yield { type: 'text-delta', text: part.text };
          } else if (part.type === 'start-step') {
            stepText = '';
          } else if (part.type === 'tool-call' || part.type === 'tool-result' || part.type === 'tool-error') {
            const event = loop?.fromStreamPart(part);
            if (!event) continue;
            emitted = true;
            yield event;
          } else if (part.type === 'finish-step') {
            steps++;
            costs.push(part.providerMetadata);
          } else if (part.type === 'finish') {
            usage = toUsage(part.totalUsage);
            finishReason = toFinishReason(part.finishReason);
          } else if (part.type === 'error') {
            throw part.error;
          } else if (part.type === 'abort') {
            throw new DOMException('aborted', 'AbortError');
          }
        }
        drained = true;
        // The consumer may hold the finish part a long while (it records usage first): the
        // attempt's timer and its listener on the caller's signal are not needed any more.
        attempt.dispose(false);
        const providerCostUsd = sumCosts(costs);
        yield {
          type: 'finish',
          text: stepText,
          usage: usage ?? emptyUsage(),
          finishReason,
          latencyMs: performance.now() - started,
          timeToFirstTokenMs: firstTokenAt === undefined ? undefined : firstTokenAt - started,
          attempts: retry + 1,
          ...(providerCostUsd === undefined ? {} : { providerCostUsd }),
          toolCalls: loop?.records() ?? [],
          steps,
        };
        return;
      } catch (error) {
        const failure = this.#toError(error, attempt, options);
        // Once text or a tool event reached the caller, or a tool ran, a retry would repeat it.
        if (emitted || loop?.started || !shouldRetry(policy, retry, failure)) throw failure;
        await this.#backoff(policy, retry, failure, options);
      } finally {
        // Also reached when the consumer stops iterating early or the call failed: the HTTP request
        // must stop too. After a stream that ended, aborting would only make errors for nothing
        // (a DOMException and the abort listeners of every layer, for each call).
        attempt.dispose(!drained);
      }
    }
  }

  async healthCheck(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<HealthReport> {
    const started = performance.now();
    const checkedAt = new Date().toISOString();
    const { url, headers } = this.#binding.healthRequest;
    const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      const response = await this.#fetch(url, { headers, signal });
      const body = await response.text();
      const latencyMs = Math.round(performance.now() - started);
      if (response.ok) return { status: 'healthy', latencyMs, checkedAt, error: null };
      const failure = toProviderError(httpFailure(url, response, body), this.#failureContext(false, false));
      return { status: 'unhealthy', latencyMs, checkedAt, error: { code: failure.code, message: failure.message, status: response.status } };
    } catch (error) {
      const failure = toProviderError(error, this.#failureContext(timeout.aborted, options.signal?.aborted ?? false));
      const report: HealthReport['error'] = { code: failure.code, message: failure.message };
      if (failure.status !== undefined) report.status = failure.status;
      return { status: 'unhealthy', latencyMs: Math.round(performance.now() - started), checkedAt, error: report };
    }
  }

  #callSettings(prompt: string, options: CallOptions, signal: AbortSignal): ModelCallSettings {
    const s = this.#settings;
    const messages: ModelMessage[] | undefined = options.history?.length
      ? [...options.history.map((m) => ({ role: m.role, content: m.content })), { role: 'user', content: prompt }]
      : undefined;
    const sampling = {
      temperature: options.temperature ?? s.temperature,
      maxTokens: options.maxTokens ?? s.maxTokens,
      topP: options.topP ?? s.topP,
      stop: options.stop ?? s.stop,
    };
    const providerOptions = vendorProviderOptions(this.name, sampling);
    return {
      model: this.#binding.model as LanguageModel,
      ...(options.systemPrompt ? { instructions: options.systemPrompt } : {}),
      ...(messages ? { messages } : { prompt }),
      ...(providerOptions ? { providerOptions } : {}),
      temperature: sampling.temperature,
      maxOutputTokens: sampling.maxTokens,
      topP: sampling.topP,
      stopSequences: sampling.stop,
      abortSignal: signal,
    };
  }

  #retryPolicy(options: CallOptions): RetryPolicy {
    return { ...this.#policy, maxRetries: options.maxRetries ?? this.#settings.maxRetries ?? this.#policy.maxRetries };
  }

  async #withRetries<T>(options: CallOptions, call: (attempt: Attempt) => Promise<T>): Promise<{ value: T; attempts: number }> {
    const policy = this.#retryPolicy(options);
    for (let retry = 0; ; retry++) {
      const attempt = this.#startAttempt(options);
      try {
        const value = await call(attempt);
        return { value, attempts: retry + 1 };
      } catch (error) {
        const final = error instanceof NoRetry;
        const failure = this.#toError(final ? error.cause : error, attempt, options);
        if (final || !shouldRetry(policy, retry, failure)) throw failure;
        await this.#backoff(policy, retry, failure, options);
      } finally {
        attempt.dispose(false);
      }
    }
  }

  async #backoff(policy: RetryPolicy, retry: number, failure: ProviderError, options: CallOptions): Promise<void> {
    try {
      await sleep(retryDelayMs(policy, retry, failure, this.#random), options.signal);
    } catch {
      throw toProviderError(new Error('cancelled'), this.#failureContext(false, true));
    }
  }

  /**
   * One attempt's signal: the caller's signal joined with the attempt's timeout. The timeout
   * limits the model's time, not the tools': it stops while tools run and starts afresh when they
   * are done (see {@link ToolLoop}).
   */
  #startAttempt(options: CallOptions): Attempt {
    const controller = new AbortController();
    const limitMs = options.timeoutMs ?? this.#settings.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let timedOut = false;
    let disposed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort(new DOMException('timeout', 'TimeoutError'));
      }, limitMs);
    };
    arm();
    const onCallerAbort = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) controller.abort(options.signal.reason);
    else options.signal?.addEventListener('abort', onCallerAbort, { once: true });
    return {
      signal: controller.signal,
      timedOut: () => timedOut,
      pauseTimeout: () => clearTimeout(timer),
      restartTimeout: () => {
        clearTimeout(timer);
        if (!disposed && !controller.signal.aborted) arm();
      },
      dispose: (abort) => {
        disposed = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onCallerAbort);
        if (abort && !controller.signal.aborted) controller.abort(new DOMException('done', 'AbortError'));
      },
    };
  }

  #toError(error: unknown, attempt: Attempt, options: CallOptions): ProviderError {
    return toProviderError(error, this.#failureContext(attempt.timedOut(), options.signal?.aborted ?? false));
  }

  #failureContext(timedOut: boolean, cancelled: boolean) {
    return { provider: this.name, secrets: [this.#apiKey], timedOut, cancelled };
  }
}

interface Attempt {
  signal: AbortSignal;
  timedOut(): boolean;
  /** Stops the timeout clock (tools are running). */
  pauseTimeout(): void;
  /** Starts the timeout clock again from zero (the model's turn again). */
  restartTimeout(): void;
  /** Stops the timer; with `abort`, also cancels the request if it is still open. */
  dispose(abort: boolean): void;
}

function toFlexibleSchema(schema: OutputSchema) {
  if ('~standard' in schema) return schema as Parameters<typeof Output.object>[0]['schema'];
  return jsonSchema(schema as Parameters<typeof jsonSchema>[0]);
}

function toUsage(usage: LanguageModelUsage | undefined): Usage {
  if (!usage) return emptyUsage();
  const input = usage.inputTokens ?? 0;
  const output = usage.outputTokens ?? 0;
  const result: Usage = {
    input_tokens: input,
    output_tokens: output,
    total_tokens: usage.totalTokens ?? input + output,
  };
  const cached = usage.inputTokenDetails?.cacheReadTokens;
  if (cached !== undefined) result.cached_input_tokens = cached;
  const reasoning = usage.outputTokenDetails?.reasoningTokens;
  if (reasoning !== undefined) result.reasoning_tokens = reasoning;
  return result;
}

function emptyUsage(): Usage {
  return { input_tokens: 0, output_tokens: 0, total_tokens: 0 };
}

function toFinishReason(reason: string | undefined): FinishReason {
  switch (reason) {
    case 'stop':
    case 'length':
    case 'content-filter':
    case 'tool-calls':
    case 'error':
      return reason;
    default:
      return 'other';
  }
}

/** OpenRouter reports the cost it charged in its usage block. */
function providerCost(metadata: unknown): number | undefined {
  const usage = (metadata as { openrouter?: { usage?: { cost?: unknown } } } | undefined)?.openrouter?.usage;
  return typeof usage?.cost === 'number' ? usage.cost : undefined;
}

/** The vendor-reported cost of every model step together; undefined when no step reported one. */
function sumCosts(metadata: readonly unknown[]): number | undefined {
  let total: number | undefined;
  for (const m of metadata) {
    const cost = providerCost(m);
    if (cost !== undefined) total = (total ?? 0) + cost;
  }
  return total;
}

/** A non-2xx health answer, as the SDK's own API error so one mapping covers both. */
function httpFailure(url: string, response: Response, body: string): APICallError {
  const responseHeaders: Record<string, string> = {};
  response.headers.forEach((value, key) => {
    responseHeaders[key] = value;
  });
  return new APICallError({
    message: `HTTP ${response.status}`,
    url,
    requestBodyValues: undefined,
    statusCode: response.status,
    responseHeaders,
    responseBody: body,
  });
}

/** Wraps a failure that must not be retried: tools have already run. */
class NoRetry extends Error {
  constructor(cause: unknown) {
    super('not retryable', { cause });
  }
}

/** A tool's failure, handed to the AI SDK as the tool's output so the loop goes on. */
class ToolFailure {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

/** The parts of the AI SDK's stream (and step content) that concern tools. */
type SdkToolPart =
  | { type: 'tool-call'; toolCallId: string; toolName: string; input: unknown }
  | { type: 'tool-result'; toolCallId: string; toolName: string; output: unknown; preliminary?: boolean }
  | { type: 'tool-error'; toolCallId: string; toolName: string; error: unknown };

/**
 * One attempt's tool loop. Each {@link ToolDefinition} becomes an AI SDK dynamic tool whose
 * execute never throws (but on abort): a failure is returned as a {@link ToolFailure}, which the
 * model receives as `{ error: message }` in the vendor's error form. It also keeps the attempt's
 * timeout off while tools run, refuses to run tools the model asks for in the last allowed step,
 * and reports every call and result once (to `onToolEvent` and into `toolCalls`).
 *
 * In `execute` mode (generate) events come from the tool wrappers as the tools run, and from the
 * finished step for calls the AI SDK never hands to a tool (unknown tool, unparsable arguments).
 * In `stream` mode they come from the stream parts, in stream order.
 */
class ToolLoop {
  /** True once a tool began executing: the call has had side effects and must not be retried. */
  started = false;
  readonly #provider: ProviderName;
  readonly #definitions: readonly ToolDefinition[];
  readonly #maxSteps: number;
  readonly #attempt: Attempt;
  readonly #mode: 'execute' | 'stream';
  readonly #onEvent: CallOptions['onToolEvent'];
  readonly #records = new Map<string, ToolCallRecord>();
  readonly #answered = new Set<string>();
  #step = 0;
  #running = 0;

  constructor(provider: ProviderName, options: CallOptions, attempt: Attempt, mode: 'execute' | 'stream') {
    this.#provider = provider;
    this.#definitions = options.tools ?? [];
    this.#maxSteps = toolStepCap(options.maxToolSteps);
    this.#attempt = attempt;
    this.#mode = mode;
    this.#onEvent = options.onToolEvent;
  }

  /** What generateText / streamText need for the loop. */
  settings() {
    return {
      tools: this.#toolSet(),
      stopWhen: stepCountIs(this.#maxSteps),
      prepareStep: ({ stepNumber }: { stepNumber: number }) => {
        this.#step = stepNumber;
        return undefined;
      },
      onStepEnd: (step: { content: ReadonlyArray<{ type: string }> }) => {
        if (this.#mode !== 'execute') return;
        for (const part of step.content) {
          if (isSdkToolPart(part)) this.#report(this.#fromSdkPart(part));
        }
      },
    };
  }

  /** The tool calls with their results, in the order the model made them. */
  records(): ToolCallRecord[] {
    return [...this.#records.values()];
  }

  /** A stream part as our event (recorded and reported), or undefined when it is not one to pass on. */
  fromStreamPart(part: SdkToolPart): ToolEvent | undefined {
    if (part.type === 'tool-result' && part.preliminary) return undefined;
    return this.#report(this.#fromSdkPart(part));
  }

  #toolSet(): ToolSet {
    const tools: ToolSet = {};
    for (const definition of this.#definitions) {
      tools[definition.name] = dynamicTool({
        description: definition.description,
        inputSchema: jsonSchema(definition.parameters as Parameters<typeof jsonSchema>[0]),
        execute: (args, { toolCallId, abortSignal }) => this.#execute(definition, args, toolCallId, abortSignal ?? this.#attempt.signal),
        toModelOutput: ({ output }) => {
          if (output instanceof ToolFailure) return toolErrorOutput(this.#provider, output.message);
          return typeof output === 'string' ? { type: 'text', value: output } : { type: 'json', value: output as JSONValue };
        },
      });
    }
    return tools;
  }

  async #execute(definition: ToolDefinition, args: unknown, toolCallId: string, signal: AbortSignal): Promise<unknown> {
    const toolName = definition.name;
    if (this.#mode === 'execute') this.#report({ type: 'tool-call', toolCallId, toolName, args });
    let output: unknown;
    if (this.#step >= this.#maxSteps - 1) {
      output = new ToolFailure(`not run: the call reached its limit of ${this.#maxSteps} model steps`);
    } else {
      this.started = true;
      if (this.#running++ === 0) this.#attempt.pauseTimeout();
      try {
        // Promise.resolve: a caller's execute written without async still works.
        output = toModelValue(await untilAborted(Promise.resolve(definition.execute(args, { signal, toolCallId })), signal));
      } catch (error) {
        // A cancelled call stops here; any other failure is the model's to handle.
        if (signal.aborted) throw error;
        output = new ToolFailure(errorMessage(error));
      } finally {
        if (--this.#running === 0) this.#attempt.restartTimeout();
      }
    }
    if (this.#mode === 'execute') this.#report(resultEvent(toolCallId, toolName, output));
    return output;
  }

  #fromSdkPart(part: SdkToolPart): ToolEvent {
    const { toolCallId, toolName } = part;
    if (part.type === 'tool-call') return { type: 'tool-call', toolCallId, toolName, args: part.input };
    if (part.type === 'tool-result') return resultEvent(toolCallId, toolName, part.output);
    return resultEvent(toolCallId, toolName, new ToolFailure(errorMessage(part.error)));
  }

  /** Records an event and tells the caller, once per call and once per result. */
  #report(event: ToolEvent): ToolEvent | undefined {
    const known = this.#records.get(event.toolCallId);
    if (event.type === 'tool-call') {
      if (known) return undefined;
      this.#records.set(event.toolCallId, { toolCallId: event.toolCallId, toolName: event.toolName, args: event.args, result: undefined, isError: false });
    } else {
      if (this.#answered.has(event.toolCallId)) return undefined;
      this.#answered.add(event.toolCallId);
      this.#records.set(event.toolCallId, { toolCallId: event.toolCallId, toolName: event.toolName, args: known?.args, result: event.result, isError: event.isError });
    }
    try {
      this.#onEvent?.(event);
    } catch {
      // The caller's listener failing is no reason to fail the vendor call.
    }
    return event;
  }
}

/** The step cap of a tool loop: a whole number of at least 1 (one model call, no tool runs). */
function toolStepCap(value: number | undefined): number {
  if (value === undefined || !Number.isFinite(value)) return DEFAULT_MAX_TOOL_STEPS;
  return Math.max(1, Math.floor(value));
}

function isSdkToolPart(part: { type: string }): part is SdkToolPart {
  return part.type === 'tool-call' || part.type === 'tool-result' || part.type === 'tool-error';
}

function resultEvent(toolCallId: string, toolName: string, output: unknown): ToolEvent {
  return output instanceof ToolFailure
    ? { type: 'tool-result', toolCallId, toolName, result: { error: output.message }, isError: true }
    : { type: 'tool-result', toolCallId, toolName, result: output, isError: false };
}

/** A tool's result as the JSON the model receives: strings stay text, `undefined` is `null`. */
function toModelValue(value: unknown): unknown {
  if (typeof value === 'string') return value;
  if (value === undefined) return null;
  try {
    const json = JSON.stringify(value);
    return json === undefined ? null : (JSON.parse(json) as unknown);
  } catch (error) {
    return new ToolFailure(`the tool's result is not JSON: ${errorMessage(error)}`);
  }
}

/** Settles with `promise`, or rejects with the abort reason as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}
