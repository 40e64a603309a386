import { isEnsembleError } from '../core/index.ts';
import { isProviderError, type Provider, type Usage } from '../providers/index.ts';
import type { AgentService } from '../registry/index.ts';
import type { AgentRecord, RunRecord } from '../storage/index.ts';
import type { CompiledWorkflow, StepCall, StepCallResult, StepFailure, StepRunner } from '../workflow/index.ts';

/**
 * Binds workflow steps to agents of one app: resolves the agent by name, builds its provider
 * and makes the call (streamed, so deltas flow to the run's events; structured output when the
 * step has a schema).
 */
export class AgentStepRunner implements StepRunner {
  readonly #agents: AgentService;
  readonly #run: RunRecord;
  readonly #appId: string;
  readonly #cache = new Map<string, Promise<AgentRecord>>();

  constructor(agents: AgentService, run: RunRecord) {
    this.#agents = agents;
    this.#run = run;
    this.#appId = run.app_id;
  }

  async run(call: StepCall): Promise<StepCallResult> {
    const agent = await this.#agent(call.agent);
    const budget = (this.#run.definition as CompiledWorkflow).budget;
    const provider = this.#agents.providerFor(agent, {
      kind: 'step',
      runId: this.#run.id,
      ...(this.#run.workflow_id ? { workflowId: this.#run.workflow_id } : {}),
      ...(this.#run.workflow_name ? { workflowName: this.#run.workflow_name } : {}),
      ...(budget ? { workflowBudget: budget } : {}),
      ...(this.#run.user ? { user: this.#run.user } : {}),
      stepId: call.stepId,
      attempt: call.attempt,
      runAttempt: this.#run.attempt,
    });
    const systemPrompt = agent.system_prompt || undefined;
    if (call.schema) {
      const result = await provider.generate(call.message, { systemPrompt, schema: call.schema, schemaName: 'output', signal: call.signal });
      return { output: result.object, usage: usageRecord(result.usage), costUsd: result.costUsd ?? result.providerCostUsd ?? 0, latencyMs: result.latencyMs };
    }
    return streamCall(provider, call, systemPrompt);
  }

  classify(error: unknown): StepFailure {
    if (isProviderError(error)) {
      const failure: StepFailure = { code: error.code, message: error.message, retryable: error.retryable, provider: error.provider };
      if (error.status !== undefined) failure.status = error.status;
      if (error.retryAfterMs !== undefined) failure.retryAfterMs = error.retryAfterMs;
      return failure;
    }
    if (isEnsembleError(error)) {
      const retryAfterMs = (error.details as { retry_after_ms?: number } | null)?.retry_after_ms;
      return { code: error.code, message: error.message, retryable: error.code === 'rate_limited', ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    }
    return { code: 'internal_error', message: error instanceof Error ? error.message : String(error), retryable: false };
  }

  /** Agents are read once per run: a run sees one consistent agent, even if it is edited meanwhile. */
  #agent(name: string): Promise<AgentRecord> {
    let found = this.#cache.get(name);
    if (!found) {
      found = this.#agents.getRecord(this.#appId, name);
      found.catch(() => this.#cache.delete(name));
      this.#cache.set(name, found);
    }
    return found;
  }
}

async function streamCall(provider: Provider, call: StepCall, systemPrompt: string | undefined): Promise<StepCallResult> {
  for await (const part of provider.stream(call.message, { systemPrompt, signal: call.signal })) {
    if (part.type === 'text-delta') call.onDelta(part.text);
    else if (part.type === 'finish') return { output: part.text, usage: usageRecord(part.usage), costUsd: part.costUsd ?? part.providerCostUsd ?? 0, latencyMs: part.latencyMs };
  }
  throw new Error('the stream ended without a finish part');
}

function usageRecord(usage: Usage): Record<string, number> {
  return { ...usage };
}
