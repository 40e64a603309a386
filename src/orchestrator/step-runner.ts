import { isEnsembleError } from '../core/index.ts';
import { isProviderError, type CallContext, type Provider, type ToolDefinition, type Usage } from '../providers/index.ts';
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

  constructor(agents: AgentService, run: RunRecord) {
    this.#agents = agents;
    this.#run = run;
    this.#appId = run.app_id;
  }

  async run(call: StepCall): Promise<StepCallResult> {
    const agent = await this.#agent(call.agent);
    const provider = this.#agents.providerFor(agent, this.#context(call.stepId, call.attempt));
    const systemPrompt = agent.system_prompt || undefined;
    const budget = call.consults ? { used: 0, exceeded: false } : undefined;
    const tools = call.consults && budget ? await this.#consultTools(call, [call.agent], 1, budget) : [];
    const withTools = tools.length > 0 ? { tools } : {};
    let result: StepCallResult;
    if (call.schema) {
      const generated = await provider.generate(call.message, { systemPrompt, schema: call.schema, schemaName: 'output', signal: call.signal, ...withTools });
      result = { output: generated.object, usage: usageRecord(generated.usage), costUsd: generated.costUsd ?? generated.providerCostUsd ?? 0, latencyMs: generated.latencyMs };
    } else {
      result = await streamCall(provider, call, systemPrompt, tools);
    }
    // A model that keeps asking past the step's limit is stopped with a clear step error.
    if (budget?.exceeded) throw new ConsultLimitError(call.consults!.maxConsults);
    return result;
  }

  #context(stepId: string, attempt: number): Partial<CallContext> {
    const budget = (this.#run.definition as CompiledWorkflow).budget;
    return {
      kind: 'step',
      runId: this.#run.id,
      ...(this.#run.workflow_id ? { workflowId: this.#run.workflow_id } : {}),
      ...(this.#run.workflow_name ? { workflowName: this.#run.workflow_name } : {}),
      ...(budget ? { workflowBudget: budget } : {}),
      ...(this.#run.user ? { user: this.#run.user } : {}),
      stepId,
      attempt,
      runAttempt: this.#run.attempt,
    };
  }

  /**
   * Agents as tools: each agent the step may consult is a tool `ask_<name>` with one `question`.
   * A consultation is a child step (own usage, cost, audit, budget and rate-limit checks, events)
   * and may consult in turn, `depth` levels deep, never an agent already asking in its chain.
   */
  async #consultTools(call: StepCall, chain: string[], depth: number, budget: { used: number; exceeded: boolean }): Promise<ToolDefinition[]> {
    const spec = call.consults!;
    if (depth > spec.depth) return [];
    const tools: ToolDefinition[] = [];
    for (const name of spec.agents) {
      if (chain.includes(name)) continue;
      const consulted = await this.#agent(name);
      const about = [consulted.role ? `a ${consulted.role}` : 'an agent', consulted.system_prompt ? `— ${consulted.system_prompt.slice(0, 300)}` : ''].join(' ').trim();
      tools.push({
        name: toolName(name),
        description: `Ask ${name} (${about}) a question and get its answer.`,
        parameters: { type: 'object', properties: { question: { type: 'string', description: `The question for ${name}` } }, required: ['question'], additionalProperties: false },
        execute: async (args) => {
          const question = String((args as { question?: unknown } | null)?.question ?? '');
          if (budget.used >= spec.maxConsults) {
            budget.exceeded = true;
            throw new Error(`the step may consult at most ${spec.maxConsults} times; answer with what you have`);
          }
          budget.used += 1;
          return this.#consult(call, consulted, question, [...chain, name], depth, budget);
        },
      });
    }
    return tools;
  }

  async #consult(call: StepCall, consulted: AgentRecord, question: string, chain: string[], depth: number, budget: { used: number; exceeded: boolean }): Promise<string> {
    const childId = await call.consult.start(consulted.name, question, chain[chain.length - 2] ?? call.agent);
    try {
      const provider = this.#agents.providerFor(consulted, this.#context(childId, 1));
      const tools = await this.#consultTools(call, chain, depth + 1, budget);
      const result = await provider.generate(question, { systemPrompt: consulted.system_prompt || undefined, signal: call.signal, ...(tools.length > 0 ? { tools } : {}) });
      await call.consult.finish(childId, { output: result.text, usage: usageRecord(result.usage), costUsd: result.costUsd ?? result.providerCostUsd ?? 0, latencyMs: result.latencyMs });
      return result.text;
    } catch (error) {
      // The asking model sees the failure as the tool's result (budget, rate limit, vendor error).
      const failure = this.classify(error);
      await call.consult.fail(childId, failure);
      throw new Error(`${consulted.name} could not answer: ${failure.code}: ${failure.message}`, { cause: error });
    }
  }

  classify(error: unknown): StepFailure {
    if (isProviderError(error)) {
      const failure: StepFailure = { code: error.code, message: error.message, retryable: error.retryable, provider: error.provider };
      if (error.status !== undefined) failure.status = error.status;
      if (error.retryAfterMs !== undefined) failure.retryAfterMs = error.retryAfterMs;
      return failure;
    }
    if (error instanceof ConsultLimitError) return { code: 'consult_limit_exceeded', message: error.message, retryable: false };
    if (error instanceof InactiveAgentError) return { code: 'agent_inactive', message: error.message, retryable: false };
    if (isEnsembleError(error)) {
      const retryAfterMs = (error.details as { retry_after_ms?: number } | null)?.retry_after_ms;
      return { code: error.code, message: error.message, retryable: error.code === 'rate_limited', ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    }
    return { code: 'internal_error', message: error instanceof Error ? error.message : String(error), retryable: false };
  }

  /**
   * Agents are read for every call: a key rotated (or an agent switched off) meanwhile applies to
   * the calls that start afterwards, as the contract says.
   */
  async #agent(name: string): Promise<AgentRecord> {
    const agent = await this.#agents.getRecord(this.#appId, name);
    if (!agent.is_active) throw new InactiveAgentError(name);
    return agent;
  }
}

/** A step names an agent that is switched off (`is_active: false`). */
export class InactiveAgentError extends Error {
  constructor(name: string) {
    super(`Agent "${name}" is not active`);
    this.name = 'InactiveAgentError';
  }
}

/** A step's model asked for more consultations than its `max_consults`. */
export class ConsultLimitError extends Error {
  constructor(limit: number) {
    super(`The agent asked for more than ${limit} consultations (max_consults); the step was stopped`);
    this.name = 'ConsultLimitError';
  }
}

/** Tool names allow letters, digits, `_` and `-`, at most 64 characters. */
function toolName(agent: string): string {
  return `ask_${agent.replace(/[^A-Za-z0-9_-]/g, '_')}`.slice(0, 64);
}

async function streamCall(provider: Provider, call: StepCall, systemPrompt: string | undefined, tools: ToolDefinition[]): Promise<StepCallResult> {
  for await (const part of provider.stream(call.message, { systemPrompt, signal: call.signal, ...(tools.length > 0 ? { tools } : {}) })) {
    if (part.type === 'text-delta') call.onDelta(part.text);
    else if (part.type === 'finish') return { output: part.text, usage: usageRecord(part.usage), costUsd: part.costUsd ?? part.providerCostUsd ?? 0, latencyMs: part.latencyMs };
  }
  throw new Error('the stream ended without a finish part');
}

function usageRecord(usage: Usage): Record<string, number> {
  return { ...usage };
}
