import type { Actor, AgentService } from '../registry/index.ts';
import { DEFAULT_CONSULT_DEPTH, DEFAULT_MAX_CONSULTS, DEFAULT_SHARED_CONTEXT_TOKENS, type CompiledWorkflow } from '../workflow/index.ts';
import type { AgentRecord } from '../storage/index.ts';
import { buildParallel, buildPlanning, buildSequential, checkChatAgents, type ChatMode, type ChatRequest } from './chat.ts';
import type { RunService, RunView } from './runs.ts';

export interface ChatInput extends ChatRequest {
  context: Record<string, unknown>;
  /** The end user the run is for. */
  user?: string | undefined;
  /** Agents the chat's agents may consult: one list for all, or per agent. */
  consults?: string[] | Record<string, string[]> | undefined;
  /** Agents see the run's earlier exchanges. */
  shareContext?: boolean | undefined;
}

/** The contract's `chat/multi` answer. */
export interface ChatResult {
  run_id: string;
  mode: string;
  status: string;
  output: unknown;
  results: Array<{ step_id: string; agent: string; status: string; output: unknown; error: unknown; usage: Record<string, number> | null; cost_usd: number; latency_ms: number | null }>;
  usage: Record<string, number>;
  cost_usd: number;
  usage_by_agent: RunView['usage_by_agent'];
  plan?: unknown;
  error: unknown;
}

/** `POST /chat/multi`: validates the agents, builds the mode's DAG and starts it as a run. */
export class ChatService {
  readonly #agents: AgentService;
  readonly #runs: RunService;

  constructor(agents: AgentService, runs: RunService) {
    this.#agents = agents;
    this.#runs = runs;
  }

  async start(appId: string, input: ChatInput, actor: Actor): Promise<string> {
    const found = new Map<string, AgentRecord>();
    const consulted = input.consults === undefined ? [] : Array.isArray(input.consults) ? input.consults : Object.values(input.consults).flat();
    for (const name of new Set([...input.agents, ...(input.aggregator ? [input.aggregator] : []), ...consulted])) {
      const record = await this.#agents.getRecord(appId, name).catch(() => undefined);
      if (record) found.set(name, record);
    }
    checkChatAgents(input, found);
    const agents = input.agents.map((name) => found.get(name)!);
    const aggregator = input.aggregator ? found.get(input.aggregator) : undefined;
    const definition = this.#build(input.mode, input, agents, aggregator);
    definition.chat = { agents: input.agents, failFast: input.failFast, ...(input.aggregator ? { aggregator: input.aggregator } : {}), ...(input.consults ? { consults: consultMap(input.consults, input.agents) } : {}) };
    if (input.consults) applyConsults(definition, definition.chat.consults!);
    if (input.shareContext) definition.shareContext = { budgetTokens: DEFAULT_SHARED_CONTEXT_TOKENS };
    const { run } = await this.#runs.startAdHocRun(appId, definition, input.mode, { input: input.message, context: input.context, user: input.user }, actor);
    return run.id;
  }

  #build(mode: ChatMode, request: ChatRequest, agents: AgentRecord[], aggregator: AgentRecord | undefined) {
    switch (mode) {
      case 'parallel':
        return buildParallel(request, agents, aggregator);
      case 'sequential':
        return buildSequential(request, agents);
      case 'orchestrated':
        return buildPlanning(request, agents[0]!, agents.slice(1));
    }
  }

  async result(appId: string, runId: string): Promise<ChatResult> {
    const run = await this.#runs.get(appId, runId);
    const plan = run.outputs.plan_retry ?? run.outputs.plan;
    return {
      run_id: run.run_id,
      mode: run.mode ?? 'parallel',
      status: run.status,
      output: run.output,
      results: run.steps.map((s) => ({ step_id: s.step_id, agent: s.agent, status: s.status, output: s.output, error: s.error, usage: s.usage, cost_usd: s.cost_usd, latency_ms: s.latency_ms })),
      usage: run.usage,
      cost_usd: run.cost_usd,
      usage_by_agent: run.usage_by_agent,
      ...(plan !== undefined ? { plan } : {}),
      error: run.error,
    };
  }
}

function consultMap(consults: string[] | Record<string, string[]>, agents: string[]): Record<string, string[]> {
  if (!Array.isArray(consults)) return consults;
  return Object.fromEntries(agents.map((agent) => [agent, consults.filter((c) => c !== agent)]));
}

/** Gives each step whose agent may consult others its `consults` (steps added later get them too). */
export function applyConsults(workflow: CompiledWorkflow, consults: Record<string, string[]>): void {
  for (const step of workflow.steps) {
    const agents = (consults[step.agent] ?? []).filter((a) => a !== step.agent);
    if (agents.length > 0 && !step.consults && step.kind !== 'approval') step.consults = { agents, maxConsults: DEFAULT_MAX_CONSULTS, depth: DEFAULT_CONSULT_DEPTH };
  }
}
