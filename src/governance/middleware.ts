/**
 * Governance as provider middleware: every provider call the registry hands out passes through
 * here. Before the call: rate limits (a direct call is refused with 429, a workflow step waits
 * its turn) and budget reservations (402 when a limit would be passed; the vendor is never
 * called). After it, success or not: cost from the vendor's token counts, budget settlement, a
 * usage record and an `agent.invoke` audit entry.
 */
import { EnsembleError, newId, TurnBatch } from '../core/index.ts';
import {
  abortableSleep as sleep,
  isProviderError,
  type CallContext,
  type CallOptions,
  type GenerateOptions,
  type GenerateResult,
  type HealthReport,
  type Provider,
  type ProviderMiddleware,
  type StreamPart,
  type Usage,
} from '../providers/index.ts';
import type { AuditWriter } from '../registry/index.ts';
import type { Storage, UsageRecord } from '../storage/index.ts';
import type { AppSettingsCache, UserBudgetCache } from './app-settings.ts';
import type { BudgetGuard} from './budgets.ts';
import { type Budget, type BudgetScope } from './budgets.ts';
import { DEFAULT_RESERVED_OUTPUT_TOKENS, estimateInputTokens, priceCall, worstCaseCost, type PricingOverride } from './pricing.ts';
import { RateLimitExceeded, type RateLimit, type RateLimits } from './rate-limits.ts';

export interface GovernanceDeps {
  storage: Storage;
  audit: AuditWriter;
  budgets: BudgetGuard;
  limits: RateLimits;
  settings: AppSettingsCache;
  /** End users' budgets (a call made for a user reserves against that user's budget too). */
  userBudgets?: UserBudgetCache;
  /** Called when recording usage or audit fails: the call's answer is not withheld for that. */
  onRecordError?: (error: unknown) => void;
}

export function governanceMiddleware(deps: GovernanceDeps): ProviderMiddleware {
  // The usage records of the calls that end in one turn are one write (and one rollup upsert per
  // key) instead of one each; every call still waits until its record is stored.
  const usage = new TurnBatch<UsageRecord>((records) => deps.storage.usage.insertMany(records));
  const recorder: Recorder = { ...deps, recordUsage: (record) => usage.add(record) };
  return (next, context) => new GovernedProvider(next, context, recorder);
}

type Recorder = GovernanceDeps & { recordUsage: (record: UsageRecord) => Promise<void> };

interface Admission {
  reservation: string | undefined;
  estimatedInput: number;
  /** Output cap imposed so the reservation is a true worst case (when the agent sets none). */
  maxTokens: number | undefined;
  payloads: boolean;
}

interface Outcome {
  usage: Usage | undefined;
  costUsd: number;
  priceKnown: boolean;
  latencyMs: number;
  ttftMs: number | null;
  outcome: 'success' | 'error' | 'cancelled';
  errorCode: string | null;
  output?: string;
}

class GovernedProvider implements Provider {
  readonly name: Provider['name'];
  readonly model: string;
  readonly #next: Provider;
  readonly #ctx: CallContext;
  readonly #deps: Recorder;

  constructor(next: Provider, context: CallContext, deps: Recorder) {
    this.name = next.name;
    this.model = next.model;
    this.#next = next;
    this.#ctx = context;
    this.#deps = deps;
  }

  async generate<T = unknown>(prompt: string, options: GenerateOptions = {}): Promise<GenerateResult<T>> {
    const admission = await this.#admit(prompt, options);
    const started = performance.now();
    try {
      const result = await this.#next.generate<T>(prompt, withCap(options, admission));
      const cost = this.#price(result.usage, result.providerCostUsd);
      await this.#after(prompt, admission, { usage: result.usage, ...cost, latencyMs: result.latencyMs, ttftMs: null, outcome: 'success', errorCode: null, output: result.text });
      return { ...result, costUsd: cost.costUsd };
    } catch (error) {
      await this.#after(prompt, admission, failure(error, performance.now() - started));
      throw error;
    }
  }

  async *stream(prompt: string, options: CallOptions = {}): AsyncGenerator<StreamPart> {
    const admission = await this.#admit(prompt, options);
    const started = performance.now();
    let done: Outcome | undefined;
    let text = '';
    try {
      for await (const part of this.#next.stream(prompt, withCap(options, admission))) {
        if (part.type === 'text-delta') {
          text += part.text;
          yield part;
          continue;
        }
        if (part.type !== 'finish') {
          // Tool calls and results pass through unchanged; the finish part carries the total usage.
          yield part;
          continue;
        }
        const cost = this.#price(part.usage, part.providerCostUsd);
        done = { usage: part.usage, ...cost, latencyMs: part.latencyMs, ttftMs: part.timeToFirstTokenMs ?? null, outcome: 'success', errorCode: null, output: part.text };
        await this.#after(prompt, admission, done);
        yield { ...part, costUsd: cost.costUsd };
      }
    } catch (error) {
      done = failure(error, performance.now() - started);
      await this.#after(prompt, admission, { ...done, output: text });
      throw error;
    } finally {
      // The consumer stopped reading: the call is over, and it is recorded as cancelled.
      if (!done) await this.#after(prompt, admission, { usage: undefined, costUsd: 0, priceKnown: false, latencyMs: performance.now() - started, ttftMs: null, outcome: 'cancelled', errorCode: 'cancelled', output: text });
    }
  }

  healthCheck(options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<HealthReport> {
    return this.#next.healthCheck(options);
  }

  #price(usage: Usage, providerCostUsd: number | undefined) {
    const { costUsd, priceKnown } = priceCall(usage, {
      provider: this.#ctx.provider,
      model: this.#ctx.model,
      pricing: this.#ctx.agentConfig.pricing as PricingOverride | undefined,
      providerCostUsd,
    });
    return { costUsd, priceKnown };
  }

  /** Rate limits, then budgets. Throws 429 / 402 (as EnsembleErrors) before the vendor is called. */
  async #admit(prompt: string, options: CallOptions & { schema?: unknown }): Promise<Admission> {
    const ctx = this.#ctx;
    const settings = await this.#deps.settings.get(ctx.appId);
    const promptCharacters = prompt.length + (options.systemPrompt?.length ?? 0) + (options.history ?? []).reduce((n, m) => n + m.content.length, 0) + (options.schema ? JSON.stringify(options.schema).length : 0);
    const estimatedInput = estimateInputTokens(promptCharacters);
    const limit = (ctx.agentConfig.rate_limit ?? {}) as RateLimit;
    // Each limit is waited for on its own, so waiting on one never takes a second point of another.
    const rpm = limit.requests_per_minute;
    const tpm = limit.tokens_per_minute;
    if (rpm) await this.#waitOrRefuse(options.signal, () => this.#deps.limits.take('agent-rpm', ctx.agentId, rpm, 1, `${rpm} requests per minute for agent ${ctx.agentName}`));
    if (tpm) {
      try {
        await this.#waitOrRefuse(options.signal, () => this.#deps.limits.take('agent-tpm', ctx.agentId, tpm, estimatedInput, `${tpm} tokens per minute for agent ${ctx.agentName}`));
      } catch (error) {
        // Refused on tokens: the request point taken above goes back.
        if (rpm) await this.#deps.limits.give('agent-rpm', ctx.agentId, rpm, 1);
        throw error;
      }
    }

    const scopes: BudgetScope[] = [];
    const agentBudget = ctx.agentConfig.budget as Budget | undefined;
    const app = { appId: ctx.appId };
    if (agentBudget) scopes.push({ scope: `agent:${ctx.agentId}`, label: `agent ${ctx.agentName}`, budget: agentBudget, usage: { ...app, agentId: ctx.agentId } });
    if (ctx.workflowBudget && ctx.workflowId) {
      scopes.push({ scope: `workflow:${ctx.workflowId}`, label: `workflow ${ctx.workflowName ?? ctx.workflowId}`, budget: ctx.workflowBudget, usage: { ...app, workflowId: ctx.workflowId } });
    }
    if (settings.budget) scopes.push({ scope: `app:${ctx.appId}`, label: 'app', budget: settings.budget, usage: app });
    const userBudget = ctx.user ? await this.#deps.userBudgets?.get(ctx.appId, ctx.user) : undefined;
    if (userBudget && ctx.user) scopes.push({ scope: `user:${ctx.appId}:${ctx.user}`, label: `user ${ctx.user}`, budget: userBudget, usage: { ...app, userId: ctx.user } });
    const configured = typeof ctx.agentConfig.max_tokens === 'number' ? ctx.agentConfig.max_tokens : undefined;
    const maxTokens = options.maxTokens ?? configured ?? (scopes.length > 0 ? DEFAULT_RESERVED_OUTPUT_TOKENS : undefined);
    let reservation: string | undefined;
    if (scopes.length > 0) {
      const worst = worstCaseCost({ provider: ctx.provider, model: ctx.model, pricing: ctx.agentConfig.pricing as PricingOverride | undefined, promptCharacters, maxTokens });
      try {
        reservation = await this.#deps.budgets.reserve(scopes, worst.costUsd);
      } catch (error) {
        await this.#audit('denied', { reason: 'budget_exceeded', ...(error instanceof EnsembleError ? { budget: error.details } : {}) });
        throw error;
      }
    }
    return { reservation, estimatedInput, maxTokens: configured === undefined && options.maxTokens === undefined ? maxTokens : undefined, payloads: settings.audit_payloads === true };
  }

  /** A direct call is refused at once; a workflow step waits for its turn (until its timeout aborts it). */
  async #waitOrRefuse(signal: AbortSignal | undefined, take: () => Promise<void>): Promise<void> {
    for (;;) {
      try {
        await take();
        return;
      } catch (error) {
        if (!(error instanceof RateLimitExceeded) || this.#ctx.kind === 'direct') {
          if (error instanceof RateLimitExceeded) await this.#audit('denied', { reason: 'rate_limited' });
          throw error;
        }
        await sleep(error.retryAfterMs, signal);
      }
    }
  }

  async #after(prompt: string, admission: Admission, outcome: Outcome): Promise<void> {
    const ctx = this.#ctx;
    const usage = outcome.usage;
    try {
      const limit = (ctx.agentConfig.rate_limit ?? {}) as RateLimit;
      if (limit.tokens_per_minute && usage) {
        const extra = usage.total_tokens - admission.estimatedInput;
        if (extra > 0) await this.#deps.limits.charge('agent-tpm', ctx.agentId, limit.tokens_per_minute, extra);
        else await this.#deps.limits.give('agent-tpm', ctx.agentId, limit.tokens_per_minute, -extra);
      }
      const at = new Date().toISOString();
      await Promise.all([
        this.#deps.budgets.settle(admission.reservation, outcome.costUsd),
        this.#deps.recordUsage({
          id: newId(),
          app_id: ctx.appId,
          agent_id: ctx.agentId,
          agent_name: ctx.agentName,
          workflow_id: ctx.workflowId ?? null,
          workflow_name: ctx.workflowName ?? null,
          run_id: ctx.runId ?? null,
          step_id: ctx.stepId ?? null,
          provider: ctx.provider,
          model: ctx.model,
          kind: ctx.kind,
          user_id: ctx.user ?? null,
          token_id: ctx.tokenId ?? null,
          input_tokens: usage?.input_tokens ?? 0,
          output_tokens: usage?.output_tokens ?? 0,
          total_tokens: usage?.total_tokens ?? 0,
          cached_input_tokens: usage?.cached_input_tokens ?? 0,
          reasoning_tokens: usage?.reasoning_tokens ?? 0,
          cost_usd: outcome.costUsd,
          price_known: outcome.priceKnown,
          latency_ms: Math.round(outcome.latencyMs * 100) / 100,
          ttft_ms: outcome.ttftMs === null ? null : Math.round(outcome.ttftMs * 100) / 100,
          outcome: outcome.outcome,
          error_code: outcome.errorCode,
          at,
          run_attempt: ctx.runAttempt ?? null,
        }),
        this.#audit(outcome.outcome === 'success' ? 'success' : 'failure', {
          usage: usage ?? null,
          cost_usd: outcome.costUsd,
          price_known: outcome.priceKnown,
          latency_ms: Math.round(outcome.latencyMs),
          ttft_ms: outcome.ttftMs === null ? null : Math.round(outcome.ttftMs),
          result: outcome.outcome,
          error_code: outcome.errorCode,
          ...(admission.payloads ? { prompt, output: outcome.output ?? null } : {}),
        }),
      ]);
    } catch (error) {
      this.#deps.onRecordError?.(error);
    }
  }

  #audit(outcome: 'success' | 'failure' | 'denied', details: Record<string, unknown>): Promise<void> {
    const ctx = this.#ctx;
    return this.#deps.audit.record({
      actor: ctx.tokenId ? { kind: 'app', appId: ctx.appId, tokenId: ctx.tokenId } : { kind: 'system', name: ctx.runId ? `run:${ctx.runId}` : 'ensemble' },
      app_id: ctx.appId,
      action: 'agent.invoke',
      target_type: 'agent',
      target_id: ctx.agentId,
      outcome,
      details: {
        agent: ctx.agentName,
        provider: ctx.provider,
        model: ctx.model,
        kind: ctx.kind,
        ...(ctx.runId ? { run_id: ctx.runId } : {}),
        ...(ctx.stepId ? { step_id: ctx.stepId, attempt: ctx.attempt, run_attempt: ctx.runAttempt ?? 1 } : {}),
        ...(ctx.workflowName ? { workflow: ctx.workflowName } : {}),
        ...(ctx.user ? { user: ctx.user } : {}),
        ...details,
      },
    });
  }
}

function withCap<T extends CallOptions>(options: T, admission: Admission): T {
  return admission.maxTokens === undefined ? options : { ...options, maxTokens: admission.maxTokens };
}

function failure(error: unknown, latencyMs: number): Outcome {
  const code = isProviderError(error) ? error.code : error instanceof EnsembleError ? error.code : 'internal_error';
  return { usage: undefined, costUsd: 0, priceKnown: false, latencyMs, ttftMs: null, outcome: code === 'cancelled' ? 'cancelled' : 'error', errorCode: code };
}
