import { z } from 'zod';
import { PROVIDER_NAMES } from '../providers/index.ts';

/** The contract's agent name rule. */
export const AGENT_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const positiveInt = z.number().int().positive();

export const RateLimitSchema = z
  .object({ requests_per_minute: positiveInt.optional(), tokens_per_minute: positiveInt.optional() })
  .strict();

export const BudgetSchema = z
  .object({ limit_usd: z.number().nonnegative(), period: z.enum(['day', 'month', 'total']) })
  .strict();

export const PricingSchema = z
  .object({
    input_per_million: z.number().nonnegative(),
    output_per_million: z.number().nonnegative(),
    cached_input_per_million: z.number().nonnegative().optional(),
    reasoning_per_million: z.number().nonnegative().optional(),
  })
  .strict();

/**
 * An agent's `config`. Unknown keys are refused, so a typo (`temprature`) is a 400 rather than a
 * setting that silently does nothing.
 */
export const AgentConfigSchema = z
  .object({
    temperature: z.number().min(0).max(2).optional(),
    max_tokens: positiveInt.max(1_000_000).optional(),
    top_p: z.number().min(0).max(1).optional(),
    stop: z.array(z.string().min(1)).max(16).optional(),
    base_url: z.string().url().max(2048).optional(),
    timeout_ms: positiveInt.max(3_600_000).optional(),
    max_retries: z.number().int().min(0).max(10).optional(),
    /** OpenAI only: `chat` speaks Chat Completions (for compatible servers); default `responses`. */
    openai_api: z.enum(['responses', 'chat']).optional(),
    rate_limit: RateLimitSchema.optional(),
    budget: BudgetSchema.optional(),
    pricing: PricingSchema.optional(),
  })
  .strict();

export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export const AgentCreateSchema = z
  .object({
    name: z.string().regex(AGENT_NAME_PATTERN, 'must match ^[a-z0-9][a-z0-9._-]{0,63}$'),
    provider: z.enum(PROVIDER_NAMES),
    api_key: z.string().min(1).max(4096).optional(),
    model: z.string().min(1).max(256),
    role: z.string().max(64).default(''),
    system_prompt: z.string().max(100_000).default(''),
    config: AgentConfigSchema.default({}),
    is_active: z.boolean().default(true),
  })
  .strict();

export type AgentCreateInput = z.infer<typeof AgentCreateSchema>;

/** PATCH: every field optional; `config` is merged key by key, a `null` value removes the key. */
export const AgentPatchSchema = z
  .object({
    name: z.string().regex(AGENT_NAME_PATTERN, 'must match ^[a-z0-9][a-z0-9._-]{0,63}$').optional(),
    provider: z.enum(PROVIDER_NAMES).optional(),
    api_key: z.string().min(1).max(4096).optional(),
    model: z.string().min(1).max(256).optional(),
    role: z.string().max(64).optional(),
    system_prompt: z.string().max(100_000).optional(),
    config: z.record(z.string(), z.unknown()).optional(),
    is_active: z.boolean().optional(),
  })
  .strict();

export type AgentPatchInput = z.infer<typeof AgentPatchSchema>;
