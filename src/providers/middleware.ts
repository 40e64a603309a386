/**
 * Provider middleware: a function that wraps a {@link Provider} for one call context and calls
 * the inner provider (`next`) itself. Cross-cutting work — rate limits, budgets, cost, usage
 * records, audit — lives in middleware, so no call path can skip it.
 */
import type { Provider, ProviderName } from './types.ts';

export interface CallContext {
  appId: string;
  agentId: string;
  agentName: string;
  provider: ProviderName;
  model: string;
  /** The agent's `config` (rate limits, budget, pricing, max_tokens). */
  agentConfig: Record<string, unknown>;
  /** `direct`: an API call waiting for an answer (429 at once); `step`: a workflow step (waits its turn). */
  kind: 'direct' | 'step';
  runId?: string;
  workflowId?: string;
  workflowName?: string;
  /** The workflow's own budget, when the run comes from a saved workflow that has one. */
  workflowBudget?: { limit_usd: number; period: 'day' | 'month' | 'total' };
  stepId?: string;
  attempt?: number;
  /** The run's attempt (a retry from failure starts the next). */
  runAttempt?: number;
  /** The app token that made the request, for per-token limits. */
  tokenId?: string;
  /** The end user the call is made for (opaque id from the caller). */
  user?: string;
}

export type ProviderMiddleware = (next: Provider, context: CallContext) => Provider;

/** Applies middleware outermost first: `[a, b]` gives a(b(provider)). */
export function applyMiddleware(provider: Provider, context: CallContext, middleware: readonly ProviderMiddleware[]): Provider {
  return middleware.reduceRight((inner, wrap) => wrap(inner, context), provider);
}
