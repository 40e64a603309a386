/**
 * A streamed call without tools: one model call, through the AI SDK's single-call primitive
 * (`experimental_streamLanguageModelCall`, which `streamText` itself runs for each step: the same
 * prompt conversion, the same request bytes, the same stream parts), without `streamText`'s
 * multi-step machinery around it. That machinery (stitchable streams, replay buffers, step
 * transforms, result promises, telemetry channels) holds about 70 KB of heap per call for as long
 * as the call is in flight, against about 30 KB for the call itself; with thousands of runs each
 * waiting on a vendor, it was most of the server's memory (bench/FIXES.md, "Many runs in flight").
 *
 * What `streamText` adds to a single tool-less call is reproduced here: the vendor's warnings are
 * logged as `streamText` logs them, `maxOutputTokens` is checked the same way, a stream that ends
 * without output or a finish chunk is a `NoOutputGeneratedError`, and the parts come out as the
 * subset of `streamText`'s full stream that {@link AiSdkProvider.stream} reads.
 */
import {
  experimental_streamLanguageModelCall as streamLanguageModelCall,
  InvalidArgumentError,
  NoOutputGeneratedError,
  type JSONValue,
  type LanguageModel,
  type LanguageModelUsage,
  type ModelMessage,
  type ProviderMetadata,
  type Warning,
} from 'ai';

/** What {@link AiSdkProvider} passes to the AI SDK for one call (tools aside). */
export type ModelCallSettings = {
  model: LanguageModel;
  instructions?: string;
  providerOptions?: Record<string, Record<string, JSONValue>>;
  temperature: number | undefined;
  maxOutputTokens: number | undefined;
  topP: number | undefined;
  stopSequences: string[] | undefined;
  abortSignal: AbortSignal;
} & ({ prompt: string; messages?: undefined } | { messages: ModelMessage[]; prompt?: undefined });

/** The parts of `streamText`'s full stream that the provider reads (tool parts aside). */
export type ModelCallPart =
  | { type: 'text-delta'; text: string }
  | { type: 'finish-step'; providerMetadata: ProviderMetadata | undefined }
  | { type: 'finish'; totalUsage: LanguageModelUsage | undefined; finishReason: string }
  | { type: 'error'; error: unknown };

/** One model call, as the parts `streamText` would emit for it. */
export async function* singleModelCall(settings: ModelCallSettings): AsyncGenerator<ModelCallPart> {
  checkMaxOutputTokens(settings.maxOutputTokens);
  const { stream } = await streamLanguageModelCall(settings);
  let usage: LanguageModelUsage | undefined;
  let finishReason = 'other';
  let providerMetadata: ProviderMetadata | undefined;
  let ended = false;
  let output = false;
  for await (const part of stream) {
    switch (part.type) {
      case 'model-call-start':
        logWarnings(part.warnings, settings.model);
        break;
      case 'text-delta':
        if (part.text.length > 0) output = true;
        yield part;
        break;
      case 'model-call-end':
        ended = true;
        usage = part.usage;
        finishReason = part.finishReason;
        providerMetadata = part.providerMetadata;
        break;
      case 'error':
        ended = true;
        yield part;
        break;
      case 'reasoning-delta':
        if (part.text.length > 0) output = true;
        break;
      case 'tool-input-delta':
        if (part.delta.length > 0) output = true;
        break;
      case 'file':
      case 'reasoning-file':
      case 'tool-call':
        output = true;
        break;
      default:
        break;
    }
  }
  if (!ended && !output) {
    yield { type: 'error', error: new NoOutputGeneratedError({ message: 'No output generated. The model stream ended without a finish chunk.' }) };
    return;
  }
  yield { type: 'finish-step', providerMetadata };
  yield { type: 'finish', totalUsage: usage, finishReason };
}

/** `streamText`'s check of `maxOutputTokens`, with its error. */
function checkMaxOutputTokens(value: number | undefined): void {
  if (value == null) return;
  if (!Number.isInteger(value)) {
    throw new InvalidArgumentError({ parameter: 'maxOutputTokens', value, message: 'maxOutputTokens must be an integer' });
  }
  if (value < 1) throw new InvalidArgumentError({ parameter: 'maxOutputTokens', value, message: 'maxOutputTokens must be >= 1' });
}

let loggedBefore = false;
const deprecationsLogged = new Set<string>();

/**
 * The vendor's warnings about a call, logged as `streamText` logs them: through the
 * `AI_SDK_LOG_WARNINGS` global when it is `false` (nothing) or a function, else with
 * `process.emitWarning` in the SDK's words (each deprecation once). The SDK does not export its
 * logger; with the default logger its one-time hint about `AI_SDK_LOG_WARNINGS` can appear once
 * from here and once from the SDK.
 */
function logWarnings(warnings: readonly Warning[], model: LanguageModel): void {
  if (warnings.length === 0) return;
  const { provider, modelId } = typeof model === 'string' ? { provider: undefined, modelId: model } : model;
  const logger = (globalThis as { AI_SDK_LOG_WARNINGS?: unknown }).AI_SDK_LOG_WARNINGS;
  if (logger === false) return;
  if (typeof logger === 'function') {
    (logger as (options: { warnings: Warning[]; provider: string | undefined; model: string }) => void)({ warnings: [...warnings], provider, model: modelId });
    return;
  }
  if (!loggedBefore) {
    loggedBefore = true;
    process.emitWarning('AI SDK Warning System: To turn off warning logging, set the AI_SDK_LOG_WARNINGS global to false.', { type: 'Warning' });
  }
  const prefix = `AI SDK Warning${provider != null ? ` (${provider} / ${modelId})` : ''}:`;
  for (const warning of warnings) {
    if (warning.type === 'deprecated') {
      const code = provider == null ? `AISDK_DEP_SETTING_${codePart(warning.setting)}` : `AISDK_DEP_PROVIDER_${codePart(provider)}__${codePart(warning.setting)}`;
      if (deprecationsLogged.has(code)) continue;
      deprecationsLogged.add(code);
      process.emitWarning(`${prefix} Deprecated: "${warning.setting}". ${warning.message}`, { type: 'DeprecationWarning', code });
    } else {
      process.emitWarning(warningText(prefix, warning), { type: 'Warning' });
    }
  }
}

function warningText(prefix: string, warning: Warning): string {
  switch (warning.type) {
    case 'unsupported':
      return `${prefix} The feature "${warning.feature}" is not supported.${warning.details ? ` ${warning.details}` : ''}`;
    case 'compatibility':
      return `${prefix} The feature "${warning.feature}" is used in a compatibility mode.${warning.details ? ` ${warning.details}` : ''}`;
    case 'other':
      return `${prefix} ${warning.message}`;
    default:
      return `${prefix} ${JSON.stringify(warning, null, 2)}`;
  }
}

/** The SDK's escaping of a setting or provider name in a deprecation code. */
function codePart(value: string): string {
  return value.replace(/[^a-zA-Z0-9]/g, (character) => `_${character.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`);
}
