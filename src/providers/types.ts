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
  /**
   * Time limit of one HTTP attempt, in ms. Default 60 000. In a tool loop the clock stops while
   * tools run and starts again from zero for the next model step: it limits each stretch of
   * model time, never a tool (the caller's signal does that).
   */
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

/** Model steps a tool loop may take when a call sets no `maxToolSteps`. */
export const DEFAULT_MAX_TOOL_STEPS = 5;

/**
 * A tool the model may call during one provider call. The provider runs `execute` itself and
 * sends its result back to the model, in the vendor's wire format, until the model answers.
 */
export interface ToolDefinition {
  /** What the model calls the tool by; vendors allow letters, digits, `_` and `-` (max 64). */
  name: string;
  description: string;
  /** JSON Schema of the arguments object the model must send. */
  parameters: Record<string, unknown>;
  /**
   * Runs the tool with the model's arguments (parsed JSON, not validated against `parameters`).
   * The result is sent to the model: a string as text, anything else as JSON. A thrown error is
   * not a failed call: the model receives `{ error: <message> }` and decides what to do next.
   * `signal` aborts when the call is cancelled; honour it to stop work early.
   */
  execute(args: unknown, ctx: { signal: AbortSignal; toolCallId: string }): Promise<unknown>;
}

/** The model asked for a tool, or a tool's result went back to the model. */
export type ToolEvent =
  | { type: 'tool-call'; toolCallId: string; toolName: string; args: unknown }
  | {
      type: 'tool-result';
      toolCallId: string;
      toolName: string;
      /** What the model received: the tool's JSON result, or `{ error: message }`. */
      result: unknown;
      /** True when the tool threw, was unknown, got unparsable arguments or was not run. */
      isError: boolean;
    };

/** One tool call of a finished call, with the result the model received. */
export interface ToolCallRecord {
  toolCallId: string;
  toolName: string;
  args: unknown;
  result: unknown;
  isError: boolean;
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
  /**
   * Tools the model may call. The provider runs the tool loop: model step, tool executions,
   * model step with the results, ... until the model answers without calling a tool or
   * `maxToolSteps` model steps were made. Tool calls of one step run concurrently.
   */
  tools?: ToolDefinition[];
  /**
   * Cap of model steps in the tool loop (each is one vendor request). Default
   * {@link DEFAULT_MAX_TOOL_STEPS}. Tools the model asks for in the last allowed step are not run
   * (their results would never reach the model): the call ends with finishReason `tool-calls`,
   * and those calls are reported with `isError` and an error result.
   */
  maxToolSteps?: number;
  /** Told about every tool call and tool result as they happen (stream parts carry the same). */
  onToolEvent?: (event: ToolEvent) => void;
}

export interface GenerateOptions extends CallOptions {
  /** Ask for structured output of this shape, in the vendor's structured-output mode. */
  schema?: OutputSchema;
  /** Name of the structured output, used by vendors that name their schema or tool. */
  schemaName?: string;
}

export interface GenerateResult<T = unknown> {
  /** The answer: text of the final model step (with tools, what the model wrote after the last results). */
  text: string;
  /**
   * The parsed object, when a schema was given. Undefined when a tool loop stopped at
   * `maxToolSteps` (finishReason `tool-calls`): the model never gave its answer.
   */
  object: T | undefined;
  /** Total over every model step of the tool loop. */
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
  /** Every tool call of the tool loop, in the order the model made them; empty without tools. */
  toolCalls: ToolCallRecord[];
  /** Model steps (vendor requests) of the successful attempt; 1 without tool calls. */
  steps: number;
}

export type StreamPart =
  | { type: 'text-delta'; text: string }
  | ToolEvent
  | {
      type: 'finish';
      /** Text of the final model step (text written before a tool call was streamed, not kept here). */
      text: string;
      /** Total over every model step of the tool loop. */
      usage: Usage;
      finishReason: FinishReason;
      latencyMs: number;
      /** Time from the call's start to the first text delta. */
      timeToFirstTokenMs: number | undefined;
      attempts: number;
      providerCostUsd?: number;
      /** The call's cost, when cost-tracking middleware priced it. */
      costUsd?: number;
      toolCalls: ToolCallRecord[];
      steps: number;
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
   * With `tools`, `tool-call` and `tool-result` parts come in between, in the order they happen
   * (a call always before its result); text of every step streams as deltas. Consumers must
   * switch on `type` rather than treat every non-delta part as the finish.
   * Errors are thrown from the iterator as {@link ProviderError}s.
   */
  stream(prompt: string, options?: CallOptions): AsyncIterable<StreamPart>;
  /** The vendor's cheapest authenticated call; never throws. */
  healthCheck(options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<HealthReport>;
}
