/**
 * Cost of a call, from the vendor's own token counts. Prices come from `@pydantic/genai-prices`
 * (a maintained, versioned table of input, cached-input and output prices per vendor and model,
 * published by Pydantic from their open price database); an agent's `config.pricing` overrides it.
 */
import { calcPrice, type Provider as PriceTableProvider } from '@pydantic/genai-prices';
import type { ProviderName, Usage } from '../providers/index.ts';

export interface PricingOverride {
  input_per_million: number;
  output_per_million: number;
  cached_input_per_million?: number;
  reasoning_per_million?: number;
}

export interface CallCost {
  costUsd: number;
  /** False when neither an override, the vendor, nor the table knew the price (cost 0). */
  priceKnown: boolean;
  source: 'override' | 'provider' | 'table' | 'unknown';
}

/** The table's provider ids where they differ from ours. */
const TABLE_PROVIDER: Readonly<Record<ProviderName, string | undefined>> = {
  anthropic: 'anthropic',
  openai: 'openai',
  gemini: 'google',
  openrouter: 'openrouter',
  groq: 'groq',
  ollama: undefined, // runs on your own hardware: no price
};

const matchedModels = new Map<string, PriceTableProvider>();
const MATCHED_MODELS_LIMIT = 1000;

function fromOverride(usage: Usage, pricing: PricingOverride): number {
  const cached = Math.min(usage.cached_input_tokens ?? 0, usage.input_tokens);
  const cachedPrice = pricing.cached_input_per_million ?? pricing.input_per_million;
  const reasoning = pricing.reasoning_per_million !== undefined ? Math.min(usage.reasoning_tokens ?? 0, usage.output_tokens) : 0;
  const reasoningPrice = pricing.reasoning_per_million ?? pricing.output_per_million;
  return (
    ((usage.input_tokens - cached) * pricing.input_per_million +
      cached * cachedPrice +
      (usage.output_tokens - reasoning) * pricing.output_per_million +
      reasoning * reasoningPrice) /
    1_000_000
  );
}

/**
 * The contract's order: the agent's `config.pricing`; else the cost the vendor reported
 * (OpenRouter); else the price table; else 0 with `priceKnown: false`.
 */
export function priceCall(usage: Usage, call: { provider: ProviderName; model: string; pricing?: PricingOverride | undefined; providerCostUsd?: number | undefined }): CallCost {
  if (call.pricing) return { costUsd: fromOverride(usage, call.pricing), priceKnown: true, source: 'override' };
  if (call.providerCostUsd !== undefined) return { costUsd: call.providerCostUsd, priceKnown: true, source: 'provider' };
  const tableProvider = TABLE_PROVIDER[call.provider];
  if (tableProvider) {
    try {
      const tokens = { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens, cache_read_tokens: usage.cached_input_tokens ?? 0 };
      const key = `${tableProvider}\u0000${call.model}`;
      const narrowed = matchedModels.get(key);
      const price = calcPrice(tokens, call.model, narrowed ? { provider: narrowed } : { providerId: tableProvider });
      // The table's provider, cut down to the model that matched: later calls for the model skip
      // the scan of every model's match rules (the price itself is still chosen per call).
      if (price && !narrowed && matchedModels.size < MATCHED_MODELS_LIMIT) matchedModels.set(key, { ...price.provider, models: [price.model], fallback_model_providers: [] });
      if (price) return { costUsd: price.total_price, priceKnown: true, source: 'table' };
    } catch {
      // An unknown model or a usage shape the table refuses: fall through to unknown.
    }
  }
  return { costUsd: 0, priceKnown: false, source: 'unknown' };
}

/** Default output allowance of a budget reservation when the agent sets no `max_tokens`. */
export const DEFAULT_RESERVED_OUTPUT_TOKENS = 4096;

/**
 * Tokens a prompt will be billed as, estimated on the high side (about three characters per
 * token, plus a margin for the message framing) so that a reservation covers the real call.
 */
export function estimateInputTokens(characters: number): number {
  return Math.ceil(characters / 3) + 16;
}

/** The most a call can cost: the estimated prompt and the whole output allowance. */
export function worstCaseCost(call: { provider: ProviderName; model: string; pricing?: PricingOverride | undefined; promptCharacters: number; maxTokens?: number | undefined }): CallCost {
  const input = estimateInputTokens(call.promptCharacters);
  const output = call.maxTokens ?? DEFAULT_RESERVED_OUTPUT_TOKENS;
  return priceCall({ input_tokens: input, output_tokens: output, total_tokens: input + output }, call);
}
