/**
 * The one seam between Ensemble and LLM vendors. Everything outside `providers/` talks to a
 * vendor only through {@link Provider}; no other folder imports a vendor package.
 */

export const PROVIDER_NAMES = ['ollama', 'anthropic', 'openai', 'gemini', 'openrouter', 'groq'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

export function isProviderName(value: string): value is ProviderName {
  return (PROVIDER_NAMES as readonly string[]).includes(value);
}

/** Token counts in one shape for every vendor; always the vendor's own counts. */
export interface Usage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  /** Input tokens served from the vendor's prompt cache, when the vendor reports them. */
  cached_input_tokens?: number;
  /** Output tokens spent on hidden reasoning, when the vendor reports them. */
  reasoning_tokens?: number;
}

export type FinishReason = 'stop' | 'length' | 'content-filter' | 'tool-calls' | 'error' | 'other';

/** What a provider is built from: the agent's settings (see the contract's Agent `config`). */
export interface ProviderSettings {
  provider: ProviderName;
  model: string;
  /** The vendor key. Falls back to the vendor's usual environment variable when absent. */
  apiKey?: string;
  /** The vendor's API root as the vendor documents it (the contract's table). */
  baseUrl?: string;
  temperature?: number;
  maxTokens?: number;
  topP?: number;
  stop?: string[];
  /** Time limit of one HTTP attempt, in ms. Default 60 000. */
  timeoutMs?: number;
  /** Retries after the first attempt on retryable errors. Default 2. */
  maxRetries?: number;
  /** OpenAI only: which OpenAI API to speak. Default `responses`; `chat` for compatible servers. */
  openaiApi?: 'responses' | 'chat';
}

/** A JSON Schema object, or any Standard Schema (zod) the AI SDK accepts. */
export type OutputSchema = Record<string, unknown> | { readonly '~standard': unknown };

/** One message of a conversation, for callers that pass a transcript rather than a prompt. */
export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

/** Per-call options; each overrides the provider's setting of the same name for one call. */
export interface CallOptions {
  systemPrompt?: string;
  /** Earlier turns sent before the prompt. */
  history?: ChatMessage[];
  temperature?: number;
  maxTokens?: number;
  topP?: number;
  stop?: string[];
  timeoutMs?: number;
  maxRetries?: number;
  /** Aborts the call: the HTTP request is cancelled and the call rejects with `cancelled`. */
  signal?: AbortSignal;
}

export interface GenerateOptions extends CallOptions {
  /** Ask for structured output of this shape, in the vendor's structured-output mode. */
  schema?: OutputSchema;
  /** Name of the structured output, used by vendors that name their schema or tool. */
  schemaName?: string;
}

export interface GenerateResult<T = unknown> {
  text: string;
  /** The parsed object, when a schema was given. */
  object: T | undefined;
  usage: Usage;
  finishReason: FinishReason;
  /** Wall time of the whole call, retries included. */
  latencyMs: number;
  /** HTTP attempts made, 1 when the first succeeded. */
  attempts: number;
  /** Cost the vendor itself reported (OpenRouter does), in USD. */
  providerCostUsd?: number;
  /** The call's cost, when cost-tracking middleware priced it. */
  costUsd?: number;
}

export type StreamPart =
  | { type: 'text-delta'; text: string }
  | {
      type: 'finish';
      text: string;
      usage: Usage;
      finishReason: FinishReason;
      latencyMs: number;
      /** Time from the call's start to the first text delta. */
      timeToFirstTokenMs: number | undefined;
      attempts: number;
      providerCostUsd?: number;
      /** The call's cost, when cost-tracking middleware priced it. */
      costUsd?: number;
    };

export interface HealthReport {
  status: 'healthy' | 'unhealthy';
  latencyMs: number;
  checkedAt: string;
  /** Why the check failed, with keys redacted; null when healthy. */
  error: { code: string; message: string; status?: number } | null;
}

export interface Provider {
  readonly name: ProviderName;
  readonly model: string;
  /** One completion. With `schema`, `object` holds the parsed structured output. */
  generate<T = unknown>(prompt: string, options?: GenerateOptions): Promise<GenerateResult<T>>;
  /**
   * A streamed completion: text deltas in order, then exactly one `finish` part with usage.
   * Errors are thrown from the iterator as {@link ProviderError}s.
   */
  stream(prompt: string, options?: CallOptions): AsyncIterable<StreamPart>;
  /** The vendor's cheapest authenticated call; never throws. */
  healthCheck(options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<HealthReport>;
}
