/**
 * Multi-agent chat: parallel, sequential and orchestrated modes. Each mode is a run of the
 * workflow engine over a DAG built here; the orchestrated mode grows its DAG from the leader's
 * plan between two passes of the same run.
 */
import { EnsembleError } from '../core/index.ts';
import type { AgentRecord } from '../storage/index.ts';
import type { CompiledStep, CompiledWorkflow, RetrySpec } from '../workflow/index.ts';

export type ChatMode = 'parallel' | 'sequential' | 'orchestrated';

export interface ChatRequest {
  message: string;
  agents: string[];
  mode: ChatMode;
  aggregator?: string | undefined;
  failFast: boolean;
}

const NO_RETRY: RetrySpec = { attempts: 1, backoffMs: 1000, maxBackoffMs: 30_000 };
/** Most subtasks a leader's plan may have. */
export const MAX_PLAN_SUBTASKS = 20;

/** Step ids must be template-safe; agent names may hold dots. */
export function stepIdFor(agentName: string): string {
  return agentName.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** One step id per agent of a list: an agent named twice gets `<name>_<position>` the second time. */
export function uniqueStepIds(agents: readonly string[]): string[] {
  const seen = new Set<string>();
  return agents.map((name, index) => {
    const base = stepIdFor(name);
    const id = seen.has(base) ? `${base}_${index}` : base;
    seen.add(id);
    return id;
  });
}

function label(agent: AgentRecord): string {
  return agent.role ? `${agent.name}, ${agent.role}` : agent.name;
}

function step(partial: Partial<CompiledStep> & Pick<CompiledStep, 'id' | 'agent' | 'index'>): CompiledStep {
  return { output: partial.id, dependsOn: [], retry: NO_RETRY, fallback: [], onError: 'fail', ...partial };
}

/**
 * parallel: every agent gets the message at once; the aggregator (if any) gets the message and
 * every answer, labelled by agent and role, with the failed agents and why.
 */
export function buildParallel(request: ChatRequest, agents: AgentRecord[], aggregator: AgentRecord | undefined): CompiledWorkflow {
  const ids = uniqueStepIds(agents.map((a) => a.name));
  const steps = agents.map((agent, index) =>
    step({ id: ids[index]!, agent: agent.name, index, instructions: request.message, input: '', label: label(agent), onError: request.failFast ? 'fail' : 'continue' }),
  );
  if (aggregator) {
    steps.push(
      step({
        id: 'aggregate',
        agent: aggregator.name,
        index: steps.length,
        label: label(aggregator),
        dependsOn: steps.map((s) => s.id),
        instructions: `You are the aggregator. Several agents answered the request below. Synthesize their answers into one response; say where they disagree and work around any agent that failed.\n\nRequest:\n${request.message}\n\nAnswers:`,
      }),
    );
  }
  return { name: 'chat-parallel', steps };
}

/** sequential: a chain; each agent gets the original message and the previous agent's answer. */
export function buildSequential(request: ChatRequest, agents: AgentRecord[]): CompiledWorkflow {
  const ids = uniqueStepIds(agents.map((a) => a.name));
  const steps = agents.map((agent, index) => {
    const previous = agents[index - 1];
    if (!previous) return step({ id: ids[index]!, agent: agent.name, index, label: label(agent), instructions: request.message, input: '' });
    return step({
      id: ids[index]!,
      agent: agent.name,
      index,
      label: label(agent),
      dependsOn: [],
      instructions: `Original request:\n${request.message}\n\nThe previous agent (${label(previous)}) answered:`,
    });
  });
  for (let i = 1; i < steps.length; i++) steps[i]!.dependsOn = [steps[i - 1]!.id];
  return { name: 'chat-sequential', steps };
}

/** The JSON Schema the leader answers in structured-output mode. */
export const PLAN_SCHEMA = {
  type: 'object',
  properties: {
    subtasks: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          agent: { type: 'string' },
          task: { type: 'string' },
          depends_on: { type: 'array', items: { type: 'string' } },
        },
        required: ['id', 'agent', 'task', 'depends_on'],
        additionalProperties: false,
      },
    },
  },
  required: ['subtasks'],
  additionalProperties: false,
} as const;

export interface Subtask {
  id: string;
  agent: string;
  task: string;
  depends_on: string[];
}

export interface Plan {
  subtasks: Subtask[];
}

function planningInstructions(request: ChatRequest, workers: AgentRecord[]): string {
  const roster = workers.map((w) => `- ${w.name}${w.role ? ` (${w.role})` : ''}${w.system_prompt ? `: ${w.system_prompt.slice(0, 200)}` : ''}`).join('\n');
  return [
    'You are the leader of a team of agents. Break the task below into subtasks and assign each subtask to exactly one agent of the team, by name.',
    'Answer with JSON: {"subtasks": [{"id": "t1", "agent": "<agent name>", "task": "<instructions>", "depends_on": []}]}.',
    'Use depends_on (ids of other subtasks) only when a subtask needs another one\'s result; independent subtasks run at the same time.',
    `Team:\n${roster}`,
    `Task:\n${request.message}`,
  ].join('\n\n');
}

/** orchestrated, first pass: the leader plans. */
export function buildPlanning(request: ChatRequest, leader: AgentRecord, workers: AgentRecord[]): CompiledWorkflow {
  return {
    name: 'chat-orchestrated',
    steps: [step({ id: 'plan', agent: leader.name, index: 0, label: label(leader), instructions: planningInstructions(request, workers), input: '', schema: PLAN_SCHEMA as unknown as Record<string, unknown> })],
  };
}

/** orchestrated: the one corrective retry, with the problems of the first plan listed. */
export function addPlanRetry(workflow: CompiledWorkflow, request: ChatRequest, leader: AgentRecord, workers: AgentRecord[], problems: string[]): CompiledWorkflow {
  const retry = step({
    id: 'plan_retry',
    agent: leader.name,
    index: workflow.steps.length,
    label: label(leader),
    dependsOn: ['plan'],
    input: '',
    schema: PLAN_SCHEMA as unknown as Record<string, unknown>,
    instructions: `${planningInstructions(request, workers)}\n\nYour previous plan could not be used:\n${problems.map((p) => `- ${p}`).join('\n')}\nAnswer again with a corrected plan.`,
  });
  return { ...workflow, steps: [...workflow.steps, retry] };
}

/** Every problem of a plan; empty when it can run. */
export function validatePlan(value: unknown, workers: AgentRecord[]): string[] {
  const plan = value as Partial<Plan> | null;
  if (!plan || !Array.isArray(plan.subtasks)) return ['the answer has no "subtasks" list'];
  if (plan.subtasks.length === 0) return ['the plan is empty: give at least one subtask'];
  const problems: string[] = [];
  if (plan.subtasks.length > MAX_PLAN_SUBTASKS) problems.push(`the plan has ${plan.subtasks.length} subtasks; at most ${MAX_PLAN_SUBTASKS}`);
  const names = new Set(workers.map((w) => w.name));
  const ids = new Set<string>();
  for (const [i, subtask] of plan.subtasks.entries()) {
    const where = `subtask ${subtask?.id ?? i + 1}`;
    if (!subtask || typeof subtask.id !== 'string' || !subtask.id) problems.push(`${where}: missing id`);
    else if (ids.has(subtask.id)) problems.push(`${where}: duplicate id`);
    else ids.add(subtask.id);
    if (!subtask || !names.has(subtask.agent)) problems.push(`${where}: unknown agent "${String(subtask?.agent)}"; use one of ${[...names].join(', ')}`);
    if (!subtask || typeof subtask.task !== 'string' || !subtask.task.trim()) problems.push(`${where}: empty task`);
  }
  for (const subtask of plan.subtasks) {
    for (const dep of subtask?.depends_on ?? []) if (!ids.has(dep)) problems.push(`subtask ${subtask.id}: depends on unknown subtask "${dep}"`);
  }
  const cycle = findCycle(plan.subtasks);
  if (cycle) problems.push(`the dependencies form a cycle: ${cycle.join(' → ')}`);
  return problems;
}

function findCycle(subtasks: Subtask[]): string[] | undefined {
  const deps = new Map(subtasks.map((s) => [s?.id, s?.depends_on ?? []]));
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'visiting') return [...path.slice(path.indexOf(id)), id];
    state.set(id, 'visiting');
    path.push(id);
    for (const dep of deps.get(id) ?? []) {
      if (!deps.has(dep)) continue;
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of deps.keys()) {
    const cycle = visit(id);
    if (cycle) return cycle;
  }
  return undefined;
}

/** orchestrated, second pass: the subtasks as a DAG, then the synthesis. */
export function addPlanExecution(workflow: CompiledWorkflow, plan: Plan, planStep: string, request: ChatRequest, agents: Map<string, AgentRecord>, synthesizer: AgentRecord): CompiledWorkflow {
  const idOf = (subtaskId: string) => `task_${subtaskId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const steps = [...workflow.steps];
  for (const subtask of plan.subtasks) {
    const agent = agents.get(subtask.agent)!;
    const hasDeps = subtask.depends_on.length > 0;
    steps.push(
      step({
        id: idOf(subtask.id),
        agent: agent.name,
        index: steps.length,
        label: `${label(agent)}, subtask ${subtask.id}`,
        dependsOn: hasDeps ? subtask.depends_on.map(idOf) : [planStep],
        instructions: `Original request:\n${request.message}\n\nYour subtask, from the leader:\n${subtask.task}${hasDeps ? '\n\nResults of the subtasks it depends on:' : ''}`,
        ...(hasDeps ? {} : { input: '' }),
        onError: request.failFast ? 'fail' : 'continue',
      }),
    );
  }
  const taskIds = plan.subtasks.map((s) => idOf(s.id));
  steps.push(
    step({
      id: 'synthesis',
      agent: synthesizer.name,
      index: steps.length,
      label: label(synthesizer),
      dependsOn: taskIds,
      instructions: `You lead this work. Write the final answer to the request from the results of the subtasks; account for any subtask that failed.\n\nRequest:\n${request.message}\n\nResults:`,
    }),
  );
  return { ...workflow, steps };
}

/** Checks the request's agents: all known and active; orchestrated needs a leader and workers. */
export function checkChatAgents(request: ChatRequest, found: Map<string, AgentRecord>): void {
  const missing = [...request.agents, ...(request.aggregator ? [request.aggregator] : [])].filter((name) => !found.has(name));
  if (missing.length > 0) throw new EnsembleError('not_found', `Unknown agent(s): ${missing.join(', ')}`, { agents: missing });
  const inactive = [...found.values()].filter((a) => !a.is_active).map((a) => a.name);
  if (inactive.length > 0) throw new EnsembleError('invalid_request', `Inactive agent(s): ${inactive.join(', ')}`, [{ path: 'agents', message: `inactive: ${inactive.join(', ')}` }]);
  if (request.mode === 'orchestrated' && request.agents.length < 2) {
    throw new EnsembleError('invalid_request', 'orchestrated mode needs a leader and at least one other agent', [{ path: 'agents', message: 'at least 2 agents' }]);
  }
}

/** One earlier turn of a conversation, as text. */
export interface ConversationTurn {
  role: string;
  content: string;
}

/**
 * One agent answers one message (the OpenAI-compatible endpoint's `agent/<name>` models). The
 * step receives the run's input; earlier turns of the conversation, when there are any, come
 * first as a labelled transcript (literal text, never a template).
 */
export function buildSingleAgent(agent: AgentRecord, history: ConversationTurn[] = []): CompiledWorkflow {
  const transcript = history.map((turn) => `[${turn.role}]\n${turn.content}`).join('\n\n');
  const instructions = history.length > 0 ? `The conversation so far:\n\n${transcript}\n\nThe user's new message, which you answer now:` : undefined;
  return {
    name: 'chat-agent',
    steps: [step({ id: stepIdFor(agent.name), agent: agent.name, index: 0, label: label(agent), ...(instructions ? { instructions } : {}) })],
  };
}

/**
 * The step ids `buildParallel` and `buildSequential` give a request's agents, in order (the
 * aggregator's last). Orchestrated runs name their steps after the plan: none are listed.
 */
export function chatStepIds(mode: ChatMode, agents: string[], aggregator: string | undefined): string[] {
  if (mode === 'orchestrated') return [];
  const ids = uniqueStepIds(agents);
  return mode === 'parallel' && aggregator ? [...ids, 'aggregate'] : ids;
}

/**
 * The step whose output becomes a chat run's output when it completes (what a stream can pass on
 * as it is written): the synthesis, the aggregator, or the last agent of the list.
 */
export function answerStepOf(mode: ChatMode, agents: string[], aggregator: string | undefined): string | undefined {
  return mode === 'orchestrated' ? 'synthesis' : chatStepIds(mode, agents, aggregator).at(-1);
}

/** The library's `executeParallel`: agent i answers prompt i, all at once. */
export function buildFanOutWorkflow(agents: string[], prompts: string[]): CompiledWorkflow {
  const ids = uniqueStepIds(agents);
  const steps = agents.map((agent, index) => step({ id: ids[index]!, agent, index, instructions: prompts[index] ?? '', input: '', onError: 'continue' }));
  return { name: 'parallel', steps };
}

/** The library's `chain`: each agent gets its prompt, then the previous agent's output. */
export function buildChainWorkflow(links: Array<[agent: string, prompt: string]>): CompiledWorkflow {
  const steps = links.map(([agent, prompt], index) =>
    step({ id: `step_${index + 1}`, agent, index, instructions: prompt, ...(index === 0 ? { input: '' } : { dependsOn: [`step_${index}`] }) }),
  );
  return { name: 'chain', steps };
}
