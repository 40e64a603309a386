/**
 * Per-vendor knowledge: default API roots, key environment variables, how to build the AI SDK
 * language model, and which endpoint answers a health check. This is the only file that imports
 * vendor packages.
 */
import { createAnthropic } from '@ai-sdk/anthropic';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { createGroq } from '@ai-sdk/groq';
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenRouter } from '@openrouter/ai-sdk-provider';
import type { JSONValue, LanguageModel } from 'ai';
import { createOllama } from 'ollama-ai-provider-v2';
import type { ProviderName, ProviderSettings } from './types.ts';

/** The vendor's API root when an agent sets no `base_url` (the contract's table). */
export const DEFAULT_BASE_URLS: Readonly<Record<ProviderName, string>> = {
  anthropic: 'https://api.anthropic.com/v1',
  openai: 'https://api.openai.com/v1',
  gemini: 'https://generativelanguage.googleapis.com/v1beta',
  ollama: 'http://127.0.0.1:11434',
  openrouter: 'https://openrouter.ai/api/v1',
  groq: 'https://api.groq.com/openai/v1',
};

/** Where a key comes from when an agent has none of its own. */
export const KEY_ENV_VARS: Readonly<Record<ProviderName, string | undefined>> = {
  anthropic: 'ANTHROPIC_API_KEY',
  openai: 'OPENAI_API_KEY',
  gemini: 'GOOGLE_GENERATIVE_AI_API_KEY',
  openrouter: 'OPENROUTER_API_KEY',
  groq: 'GROQ_API_KEY',
  ollama: undefined,
};

/** Providers that cannot be called without a key (Ollama runs locally without one). */
export function requiresApiKey(provider: ProviderName): boolean {
  return provider !== 'ollama';
}

/** The API root without trailing slashes; Ollama's is the server root, with or without `/api`. */
export function normalizeBaseUrl(provider: ProviderName, baseUrl: string | undefined): string {
  const root = (baseUrl ?? DEFAULT_BASE_URLS[provider]).replace(/\/+$/, '');
  if (provider === 'ollama') return root.replace(/\/api$/, '');
  return root;
}

export interface VendorBinding {
  model: LanguageModel;
  /** The authenticated request that checks the agent without spending tokens. */
  healthRequest: { url: string; headers: Record<string, string> };
}

/** Builds the AI SDK model and the health request for resolved settings. */
export function bindVendor(settings: ProviderSettings, apiKey: string | undefined, fetchImpl?: typeof fetch): VendorBinding {
  const root = normalizeBaseUrl(settings.provider, settings.baseUrl);
  const key = apiKey ?? '';
  const common = fetchImpl ? { fetch: fetchImpl } : {};
  switch (settings.provider) {
    case 'anthropic': {
      const vendor = createAnthropic({ apiKey: key, baseURL: root, ...common });
      return {
        model: vendor(settings.model),
        healthRequest: { url: `${root}/models?limit=1`, headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' } },
      };
    }
    case 'openai': {
      const vendor = createOpenAI({ apiKey: key, baseURL: root, ...common });
      return {
        model: settings.openaiApi === 'chat' ? vendor.chat(settings.model) : vendor.responses(settings.model),
        healthRequest: { url: `${root}/models`, headers: { authorization: `Bearer ${key}` } },
      };
    }
    case 'gemini': {
      const vendor = createGoogleGenerativeAI({ apiKey: key, baseURL: root, ...common });
      return {
        model: vendor(settings.model),
        healthRequest: { url: `${root}/models?pageSize=1`, headers: { 'x-goog-api-key': key } },
      };
    }
    case 'ollama': {
      // Hosted Ollama takes a bearer key; a local server needs none.
      const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
      const vendor = createOllama({ baseURL: `${root}/api`, headers, ...common });
      return { model: vendor(settings.model), healthRequest: { url: `${root}/api/tags`, headers } };
    }
    case 'openrouter': {
      // `strict` makes the package ask for usage (and cost) in streams, as OpenRouter documents.
      const vendor = createOpenRouter({ apiKey: key, baseURL: root, compatibility: 'strict', ...common });
      return {
        model: vendor.chat(settings.model, { usage: { include: true } }),
        // /models answers without a key; /key is OpenRouter's cheapest call that checks the key.
        healthRequest: { url: `${root}/key`, headers: { authorization: `Bearer ${key}` } },
      };
    }
    case 'groq': {
      const vendor = createGroq({ apiKey: key, baseURL: root, ...common });
      return {
        model: vendor(settings.model),
        healthRequest: { url: `${root}/models`, headers: { authorization: `Bearer ${key}` } },
      };
    }
  }
}

export interface SamplingSettings {
  temperature: number | undefined;
  maxTokens: number | undefined;
  topP: number | undefined;
  stop: string[] | undefined;
}

/**
 * Vendor-specific request options. ollama-ai-provider-v2 sends the standard sampling settings
 * at the top level of the body, where Ollama ignores them; Ollama reads them from `options`.
 */
export function vendorProviderOptions(provider: ProviderName, sampling: SamplingSettings): Record<string, Record<string, JSONValue>> | undefined {
  if (provider !== 'ollama') return undefined;
  const options: Record<string, JSONValue> = {};
  if (sampling.temperature !== undefined) options.temperature = sampling.temperature;
  if (sampling.maxTokens !== undefined) options.num_predict = sampling.maxTokens;
  if (sampling.topP !== undefined) options.top_p = sampling.topP;
  if (sampling.stop !== undefined) options.stop = sampling.stop;
  return { ollama: { options } };
}

/** How a failed tool call's result travels, as the AI SDK's tool-result output. */
export type ToolErrorOutput = { type: 'error-text'; value: string } | { type: 'error-json'; value: { error: string } };

/**
 * A tool's failure as the model should see it: `{ "error": "<message>" }` everywhere, marked as
 * an error where the wire format can say so. The OpenAI packages (Responses and Chat) and the
 * Gemini package wrap an error output in `{ error: ... }` themselves, so they get the bare
 * message; Anthropic gets `is_error: true` on its `tool_result`; the others send the JSON as the
 * tool message's content.
 */
export function toolErrorOutput(provider: ProviderName, message: string): ToolErrorOutput {
  if (provider === 'openai' || provider === 'gemini') return { type: 'error-text', value: message };
  return { type: 'error-json', value: { error: message } };
}
