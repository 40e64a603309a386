/**
 * Cost of a call, from the vendor's own token counts. Prices come from `@pydantic/genai-prices`
 * (a maintained, versioned table of input, cached-input and output prices per vendor and model,
 * published by Pydantic from their open price database); an agent's `config.pricing` overrides it.
 */
import { calcPrice } from '@pydantic/genai-prices';
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

type TableUsage = { input_tokens: number; output_tokens: number; cache_read_tokens: number };

/** The table's price for the call, or undefined when it has none. */
function tablePrice(tableProvider: string, model: string, usage: Usage): number | undefined {
  const tokens: TableUsage = { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens, cache_read_tokens: usage.cached_input_tokens ?? 0 };
  const key = `${tableProvider}\u0000${model}`;
  let resolved = resolvedPrices.get(key);
  if (resolved === undefined) {
    resolved = resolvePrice(tableProvider, model);
    if (resolvedPrices.size < RESOLVED_PRICES_LIMIT) resolvedPrices.set(key, resolved);
  }
  if (resolved === 'unknown') return undefined;
  // The table refuses more cached tokens than input tokens (the price is then unknown); the
  // resolved price must not turn them into a negative cost.
  if (resolved !== 'table') return tokens.cache_read_tokens > tokens.input_tokens ? undefined : resolved(tokens);
  try {
    return calcPrice(tokens, model, { providerId: tableProvider })?.total_price;
  } catch {
    // A usage shape the table refuses: the price is unknown.
    return undefined;
  }
}

/**
 * Per (table provider, model): the price as a function of the call's tokens, or 'table' to ask
 * the table every time, or 'unknown'. Looking a model up in the table scans every model's match
 * rules and allocates about 28 KB per call (bench/FIXES.md); a model whose price is per-token
 * (possibly tiered on the prompt's size) and does not change with the date or the hour is
 * resolved once, and the resolution is checked against the table at sample token counts around
 * every tier's edge before it is used. Anything else keeps asking the table.
 */
type ResolvedPrice = ((tokens: TableUsage) => number) | 'table' | 'unknown';
const resolvedPrices = new Map<string, ResolvedPrice>();
const RESOLVED_PRICES_LIMIT = 1000;

type PriceField = number | { base: number; tiers: Array<{ start: number; price: number }> } | undefined;

function resolvePrice(tableProvider: string, model: string): ResolvedPrice {
  let sample: ReturnType<typeof calcPrice>;
  try {
    sample = calcPrice({ input_tokens: 1000, output_tokens: 100, cache_read_tokens: 0 }, model, { providerId: tableProvider });
  } catch {
    return 'table';
  }
  if (!sample) return 'unknown';
  // Prices that depend on the date or the time of day are chosen per call by the table.
  if (Array.isArray(sample.model.prices)) return 'table';
  const prices = sample.model_price as Record<string, PriceField>;
  const input = prices.input_mtok;
  const output = prices.output_mtok;
  const cached = prices.cache_read_mtok ?? input;
  const perRequest = typeof prices.requests_kcount === 'number' ? prices.requests_kcount / 1000 : 0;
  if (input === undefined || output === undefined || (prices.requests_kcount !== undefined && typeof prices.requests_kcount !== 'number')) return 'table';
  const at = (field: PriceField, promptTokens: number): number => {
    if (typeof field === 'number') return field;
    let price = field!.base;
    // A tier applies to prompts of more than its start (the table's rule; the check below holds it to that).
    for (const tier of field!.tiers) if (promptTokens > tier.start) price = tier.price;
    return price;
  };
  const price = (t: TableUsage) =>
    perRequest + ((t.input_tokens - t.cache_read_tokens) * at(input, t.input_tokens) + t.cache_read_tokens * at(cached, t.input_tokens) + t.output_tokens * at(output, t.input_tokens)) / 1_000_000;
  const edges = [input, output, cached].flatMap((f) => (typeof f === 'object' ? f.tiers.map((tier) => tier.start) : []));
  const samples: TableUsage[] = [
    { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0 },
    { input_tokens: 1, output_tokens: 1, cache_read_tokens: 0 },
    { input_tokens: 1234, output_tokens: 567, cache_read_tokens: 0 },
    { input_tokens: 98_765, output_tokens: 4321, cache_read_tokens: 50_000 },
    { input_tokens: 2_000_000, output_tokens: 100_000, cache_read_tokens: 1_500_000 },
    ...edges.flatMap((edge) => [edge - 1, edge, edge + 1].map((n) => ({ input_tokens: n, output_tokens: 777, cache_read_tokens: Math.floor(n / 3) }))),
  ];
  for (const tokens of samples) {
    const expected = calcPrice(tokens, model, { providerId: tableProvider })?.total_price;
    if (expected === undefined || Math.abs(price(tokens) - expected) > 1e-12 * Math.max(1, Math.abs(expected))) return 'table';
  }
  return price;
}

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
    const costUsd = tablePrice(tableProvider, call.model, usage);
    if (costUsd !== undefined) return { costUsd, priceKnown: true, source: 'table' };
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
