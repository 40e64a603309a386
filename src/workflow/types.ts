/**
 * The compiled form of a workflow: every authoring form (sequential list, `parallel` blocks,
 * graph form with `parallel: [ids]` / `then`, explicit `depends_on`) becomes this one DAG.
 */

export interface RetrySpec {
  /** Attempts in all (1 = no retry). Default 1. */
  attempts: number;
  /** Delay before the second attempt. Default 1000 ms; doubles per attempt, with jitter. */
  backoffMs: number;
  /** Cap of the delay. Default 30 000 ms. */
  maxBackoffMs: number;
}

export interface CompiledStep {
  /** Unique within the workflow: the step's `id`, else its `output`, else derived from the agent. */
  id: string;
  /** The name its result is stored under in `outputs` (the `output` field, else the id). */
  output: string;
  agent: string;
  action?: string;
  /** Template of the whole message (`prompt` or `prompt_template`). */
  prompt?: string;
  /** Template of the step's input (used when there is no prompt). */
  input?: string;
  /** Condition source, as written (CEL, `{{x}}` references allowed). */
  condition?: string;
  /** Ids of the steps this one waits for. Empty: it starts at once and receives the workflow input. */
  dependsOn: string[];
  /** Run this many instances at once; the output is the list of their outputs. */
  parallelCount?: number;
  retry: RetrySpec;
  timeoutMs?: number;
  /** Agents tried in order when `agent` fails (after its retries). */
  fallback: string[];
  onError: 'fail' | 'continue';
  /** JSON Schema of a structured answer; the output is then an object. */
  schema?: Record<string, unknown>;
  /** Position in document order (0-based). */
  index: number;
  /**
   * Literal text (not a template) put before the step's input in its message. Chat modes use it
   * to carry the user's message, which must never be read as a template.
   */
  instructions?: string;
  /** How the step is named when its output is handed to a later step (default: its agent). */
  label?: string;
  /** `agent` (default): a call; `approval`: waits for a person; `loop`: the end marker of a loop. */
  kind?: 'agent' | 'approval' | 'loop';
  /** An approval step's settings. */
  approval?: {
    /** Template of what the person is asked. */
    message: string;
    timeoutMs?: number;
    /** What a timeout decides. Default reject. */
    onTimeout: 'approve' | 'reject';
    /** `fail` (default): a rejection fails the step (and, with on_error fail, the run); `continue`: the step completes with approved false. */
    onReject: 'fail' | 'continue';
  };
  /** A loop's end marker: what ends the loop and what it is made of. */
  loop?: {
    until: string;
    maxIterations: number;
    /** Output names of the body steps that end an iteration. */
    exits: string[];
    /** Output names of every body step. */
    body: string[];
  };
  /** A loop body step copy: its loop and iteration (1-based). */
  iteration?: { loop: string; index: number };
  /** The first steps of iterations after the first: skipped once the loop's `until` is true. */
  loopGuard?: { loop: string; until: string; iteration: number };
  /**
   * Agents this step's agent may ask while it works (each offered as a tool `ask_<name>`).
   * `maxConsults` caps consultations of the step (all depths); `depth` how deep a consulted
   * agent may consult in turn.
   */
  consults?: { agents: string[]; maxConsults: number; depth: number };
}

export interface CompiledWorkflow {
  name: string;
  trigger?: string;
  description?: string;
  /** Template of the run's `output`. Default: the output of the last completed step in document order. */
  output?: string;
  /** In document order. */
  steps: CompiledStep[];
  /**
   * Conversation memory: every agent of the run sees the run's earlier exchanges (newest first
   * kept, within `budgetTokens`), not only the outputs its templates name.
   */
  shareContext?: { budgetTokens: number };
  /** Spending limit of all runs of this workflow (checked before every call). */
  budget?: { limit_usd: number; period: 'day' | 'month' | 'total' };
  /** What a chat run needs to grow its DAG (orchestrated mode); absent for saved workflows. */
  chat?: { agents: string[]; aggregator?: string; failFast: boolean; consults?: Record<string, string[]> };
}

/** One problem found when a workflow is saved; all are reported at once. */
export interface WorkflowProblem {
  /** The step id it belongs to, or null for the whole workflow. */
  step: string | null;
  code:
    | 'cycle'
    | 'unknown_agent'
    | 'unknown_reference'
    | 'duplicate_output'
    | 'duplicate_id'
    | 'unknown_step'
    | 'unreachable_step'
    | 'invalid_condition'
    | 'invalid_template'
    | 'invalid_loop'
    | 'limit_exceeded';
  message: string;
}

export interface WorkflowLimits {
  /** Agent steps per workflow (a `parallel_count` step counts once). Default 200. */
  maxSteps: number;
  /** Largest `parallel_count`. Default 1000. */
  maxParallelCount: number;
  /** Deepest nesting of `parallel` blocks and sub-sequences. Default 8. */
  maxDepth: number;
  /** Largest template (prompt, input, condition, output), in bytes. Default 65 536. */
  maxTemplateBytes: number;
  /** Largest `max_iterations` of a loop. Default 10. */
  maxLoopIterations: number;
  /** Largest `max_consults` of a step. Default 20. */
  maxConsults: number;
  /** Largest `consult_depth`. Default 3. */
  maxConsultDepth: number;
}

export const DEFAULT_WORKFLOW_LIMITS: Readonly<WorkflowLimits> = {
  maxSteps: 200,
  maxParallelCount: 1000,
  maxDepth: 8,
  maxTemplateBytes: 64 * 1024,
  maxLoopIterations: 10,
  maxConsults: 20,
  maxConsultDepth: 3,
};

/** Defaults of a step's consultations, and of shared context. */
export const DEFAULT_MAX_CONSULTS = 5;
export const DEFAULT_CONSULT_DEPTH = 2;
export const DEFAULT_SHARED_CONTEXT_TOKENS = 2000;

/** What templates and conditions can name. */
export interface TemplateScope {
  /** The workflow's input. */
  input: string;
  context: Record<string, unknown>;
  /** Step results by output name and by step id; a skipped or failed step is null. */
  outputs: Record<string, unknown>;
  /** Index of a `parallel_count` instance (0-based), when rendering an instance's prompt. */
  instance?: number;
  /** Every iteration's result of loop body outputs, oldest first (`{{name.history}}`). */
  histories?: Record<string, unknown[]>;
}
