import { APICallError, generateText, jsonSchema, Output, streamText, type LanguageModel, type LanguageModelUsage, type ModelMessage } from 'ai';
import type { ProviderError} from './errors.ts';
import { toProviderError } from './errors.ts';
import { DEFAULT_RETRY_POLICY, retryDelayMs, shouldRetry, sleep, type RetryPolicy } from './retry.ts';
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
  Usage,
} from './types.ts';
import { bindVendor, vendorProviderOptions, type VendorBinding } from './vendors.ts';

/** Time limit of one HTTP attempt when the agent sets no `timeout_ms`. */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Time limit of a health check. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 10_000;

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
    const { value, attempts } = await this.#withRetries(options, async (signal) => {
      const common = this.#callSettings(prompt, options, signal);
      if (options.schema) {
        const result = await generateText({
          ...common,
          output: Output.object({ schema: toFlexibleSchema(options.schema), name: options.schemaName ?? 'output' }),
        });
        return {
          text: result.text,
          object: result.output as T,
          usage: toUsage(result.totalUsage),
          finishReason: toFinishReason(result.finishReason),
          providerCostUsd: providerCost(result.providerMetadata),
        };
      }
      const result = await generateText(common);
      return {
        text: result.text,
        object: undefined,
        usage: toUsage(result.totalUsage),
        finishReason: toFinishReason(result.finishReason),
        providerCostUsd: providerCost(result.providerMetadata),
      };
    });
    return { ...value, latencyMs: performance.now() - started, attempts };
  }

  async *stream(prompt: string, options: CallOptions = {}): AsyncGenerator<StreamPart> {
    const started = performance.now();
    const policy = this.#retryPolicy(options);
    let firstTokenAt: number | undefined;
    let text = '';
    for (let retry = 0; ; retry++) {
      const attempt = this.#startAttempt(options);
      try {
        const result = streamText({ ...this.#callSettings(prompt, options, attempt.signal), onError: () => {} });
        let usage: Usage | undefined;
        let finishReason: FinishReason = 'other';
        let providerCostUsd: number | undefined;
        for await (const part of result.fullStream) {
          if (part.type === 'text-delta') {
            if (part.text.length === 0) continue;
            firstTokenAt ??= performance.now();
            text += part.text;
            yield { type: 'text-delta', text: part.text };
          } else if (part.type === 'finish-step') {
            providerCostUsd = providerCost(part.providerMetadata) ?? providerCostUsd;
          } else if (part.type === 'finish') {
            usage = toUsage(part.totalUsage);
            finishReason = toFinishReason(part.finishReason);
          } else if (part.type === 'error') {
            throw part.error;
          } else if (part.type === 'abort') {
            throw new DOMException('aborted', 'AbortError');
          }
        }
        yield {
          type: 'finish',
          text,
          usage: usage ?? emptyUsage(),
          finishReason,
          latencyMs: performance.now() - started,
          timeToFirstTokenMs: firstTokenAt === undefined ? undefined : firstTokenAt - started,
          attempts: retry + 1,
          ...(providerCostUsd === undefined ? {} : { providerCostUsd }),
        };
        return;
      } catch (error) {
        const failure = this.#toError(error, attempt, options);
        // Once text has reached the caller a retry would repeat it, so only silent failures retry.
        if (firstTokenAt !== undefined || !shouldRetry(policy, retry, failure)) throw failure;
        await this.#backoff(policy, retry, failure, options);
      } finally {
        // Also reached when the consumer stops iterating early: the HTTP request must stop too.
        attempt.dispose(true);
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

  #callSettings(prompt: string, options: CallOptions, signal: AbortSignal) {
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
      // Retries are ours: they honour retry-after and produce ProviderErrors.
      maxRetries: 0,
      abortSignal: signal,
    };
  }

  #retryPolicy(options: CallOptions): RetryPolicy {
    return { ...this.#policy, maxRetries: options.maxRetries ?? this.#settings.maxRetries ?? this.#policy.maxRetries };
  }

  async #withRetries<T>(options: CallOptions, call: (signal: AbortSignal) => Promise<T>): Promise<{ value: T; attempts: number }> {
    const policy = this.#retryPolicy(options);
    for (let retry = 0; ; retry++) {
      const attempt = this.#startAttempt(options);
      try {
        const value = await call(attempt.signal);
        return { value, attempts: retry + 1 };
      } catch (error) {
        const failure = this.#toError(error, attempt, options);
        if (!shouldRetry(policy, retry, failure)) throw failure;
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

  /** One HTTP attempt's signal: the caller's signal joined with this attempt's timeout. */
  #startAttempt(options: CallOptions): Attempt {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new DOMException('timeout', 'TimeoutError'));
    }, options.timeoutMs ?? this.#settings.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const onCallerAbort = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) controller.abort(options.signal.reason);
    else options.signal?.addEventListener('abort', onCallerAbort, { once: true });
    return {
      signal: controller.signal,
      timedOut: () => timedOut,
      dispose: (abort) => {
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
