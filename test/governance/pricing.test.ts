import { calcPrice } from '@pydantic/genai-prices';
import { describe, expect, it } from 'vitest';
import { estimateInputTokens, priceCall, worstCaseCost } from '../../src/governance/index.ts';

describe('pricing', () => {
  it('prices known token counts exactly under a pricing override', () => {
    const cost = priceCall(
      { input_tokens: 1_000, output_tokens: 500, total_tokens: 1_500, cached_input_tokens: 200, reasoning_tokens: 100 },
      { provider: 'openai', model: 'gpt-4.1', pricing: { input_per_million: 2, output_per_million: 8, cached_input_per_million: 0.5, reasoning_per_million: 10 } },
    );
    // 800 × 2 + 200 × 0.5 + 400 × 8 + 100 × 10 = 1600 + 100 + 3200 + 1000 = 5900 per million
    expect(cost).toEqual({ costUsd: 0.0059, priceKnown: true, source: 'override' });
  });

  it.each([
    ['anthropic', 'claude-sonnet-4-5'],
    ['openai', 'gpt-4.1-mini'],
    ['gemini', 'gemini-2.5-flash'],
    ['openrouter', 'anthropic/claude-sonnet-4.5'],
    ['groq', 'llama-3.3-70b-versatile'],
  ] as const)('the price table knows %s %s', (provider, model) => {
    const cost = priceCall({ input_tokens: 10_000, output_tokens: 2_000, total_tokens: 12_000 }, { provider, model });
    expect(cost.priceKnown).toBe(true);
    expect(cost.source).toBe('table');
    expect(cost.costUsd).toBeGreaterThan(0);
  });

  it('prices every call as the table does: flat and tiered prices, cached input, across the tier edges', () => {
    const models = [
      ['openai', 'openai', 'gpt-4.1-mini'],
      ['openai', 'openai', 'gpt-4o'],
      ['anthropic', 'anthropic', 'claude-sonnet-4-5'],
      ['gemini', 'google', 'gemini-2.5-flash'],
      ['gemini', 'google', 'gemini-2.5-pro'],
      ['groq', 'groq', 'llama-3.3-70b-versatile'],
      ['openrouter', 'openrouter', 'anthropic/claude-sonnet-4.5'],
    ] as const;
    let seed = 7;
    const random = (max: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return Math.floor((seed / 2 ** 31) * max);
    };
    for (const [provider, tableProvider, model] of models) {
      const usages = [
        { input_tokens: 1_000, output_tokens: 300, total_tokens: 1_300 },
        { input_tokens: 199_999, output_tokens: 10, total_tokens: 200_009, cached_input_tokens: 5 },
        { input_tokens: 200_000, output_tokens: 10, total_tokens: 200_010 },
        { input_tokens: 250_000, output_tokens: 9_000, total_tokens: 259_000, cached_input_tokens: 100_000 },
        ...Array.from({ length: 40 }, () => {
          const input = random(400_000);
          const output = random(20_000);
          return { input_tokens: input, output_tokens: output, total_tokens: input + output, cached_input_tokens: random(input + 1) };
        }),
      ];
      for (const usage of usages) {
        const expected = calcPrice({ input_tokens: usage.input_tokens, output_tokens: usage.output_tokens, cache_read_tokens: usage.cached_input_tokens ?? 0 }, model, { providerId: tableProvider })!.total_price;
        const cost = priceCall(usage, { provider, model });
        expect(cost.source).toBe('table');
        expect(Math.abs(cost.costUsd - expected)).toBeLessThanOrEqual(1e-12 * Math.max(1, expected));
      }
    }
  });

  it('more cached tokens than input tokens is a usage the table refuses: the price is unknown, never negative', () => {
    const usage = { input_tokens: 100, output_tokens: 10, total_tokens: 110, cached_input_tokens: 500 };
    for (let i = 0; i < 2; i++) expect(priceCall(usage, { provider: 'openai', model: 'gpt-4o' })).toEqual({ costUsd: 0, priceKnown: false, source: 'unknown' });
  });

  it('uses the vendor-reported cost before the table, and never guesses unknown prices', () => {
    expect(priceCall({ input_tokens: 10, output_tokens: 10, total_tokens: 20 }, { provider: 'openrouter', model: 'openai/gpt-4o', providerCostUsd: 0.0042 })).toEqual({ costUsd: 0.0042, priceKnown: true, source: 'provider' });
    expect(priceCall({ input_tokens: 10, output_tokens: 10, total_tokens: 20 }, { provider: 'ollama', model: 'llama3.2' })).toEqual({ costUsd: 0, priceKnown: false, source: 'unknown' });
    expect(priceCall({ input_tokens: 10, output_tokens: 10, total_tokens: 20 }, { provider: 'openai', model: 'no-such-model-xyz' })).toMatchObject({ costUsd: 0, priceKnown: false });
  });

  it('a worst case covers the estimated prompt and the whole output allowance', () => {
    const worst = worstCaseCost({ provider: 'openai', model: 'x', pricing: { input_per_million: 1_000_000, output_per_million: 1_000_000 }, promptCharacters: 300, maxTokens: 50 });
    expect(worst.costUsd).toBe(estimateInputTokens(300) + 50);
    expect(estimateInputTokens(300)).toBeGreaterThanOrEqual(100);
  });
});
