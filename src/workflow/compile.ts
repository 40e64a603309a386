/**
 * The workflow compiler: a parsed document (YAML or JSON data) in, one DAG of agent steps out.
 *
 * 1. Shape (zod, strict): a wrong or unknown field is `400 invalid_request`, every issue with
 *    its path (`steps.1.parallel.0.retry.attempts`).
 * 2. Semantics: ids, dependencies, references, agents and limits. Every problem is collected and
 *    reported at once as `422 invalid_workflow`, each with the step it belongs to.
 *
 * Authoring forms, all compiled to `CompiledStep.dependsOn`:
 * - list form: each item waits for the item before it (after a `parallel` block: every exit of
 *   the block); `depends_on` overrides that.
 * - graph form (a step uses `parallel: [ids]` or `then`): list order implies nothing; edges are
 *   `parallel` (fan-out), `then` (join) and `depends_on`.
 */
import { z } from 'zod';
import { EnsembleError } from '../core/errors.ts';
import { compileCondition } from './condition.ts';
import { templateReferences } from './template.ts';
import {
  DEFAULT_CONSULT_DEPTH,
  DEFAULT_MAX_CONSULTS,
  DEFAULT_SHARED_CONTEXT_TOKENS,
  DEFAULT_WORKFLOW_LIMITS,
  type CompiledStep,
  type CompiledWorkflow,
  type WorkflowLimits,
  type WorkflowProblem,
} from './types.ts';

export interface CompileOptions {
  /** Whether an agent of this name exists (for the app the workflow belongs to). */
  isKnownAgent?: (name: string) => boolean;
  limits?: Partial<WorkflowLimits>;
}

/** One shape error, as listed in the `invalid_request` details. */
export interface ShapeIssue {
  path: string;
  message: string;
}

/** Names that templates and conditions give a meaning of their own. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(['input', 'context', 'instance']);

const STEP_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
const WORKFLOW_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Deepest JSON Schema accepted in `schema`. */
const MAX_SCHEMA_DEPTH = 32;

// ---------------------------------------------------------------------------------------------
// Shape

const stepName = z
  .string()
  .regex(STEP_NAME, 'must be 1-64 letters, digits, "_" or "-", not starting with "-"')
  .refine((name) => !RESERVED_NAMES.has(name), 'input, context and instance are reserved names');
const stepRef = z.string().min(1, 'must not be empty');
const PARALLEL_IDS =
  "an agent step's `parallel` lists step ids (graph form); a block of steps run at once is an item of its own: `- parallel: [...]`";
const agentName = z.string().min(1, 'must not be empty').max(128);

function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [unknown, number];
    if (typeof current !== 'object' || current === null) continue;
    if (depth > deepest) deepest = depth;
    if (deepest > MAX_SCHEMA_DEPTH) return deepest;
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return deepest;
}

const retrySchema = z.strictObject({
  attempts: z.int().min(1).max(20).optional(),
  backoff_ms: z.int().min(0).max(3_600_000).optional(),
  max_backoff_ms: z.int().min(0).max(3_600_000).optional(),
});

const agentStepSchema = z
  .strictObject({
    id: stepName.optional(),
    agent: agentName,
    action: z.string().min(1).max(256).optional(),
    prompt: z.string().optional(),
    prompt_template: z.string().optional(),
    input: z.string().optional(),
    output: stepName.optional(),
    parallel: z.array(z.string({ error: PARALLEL_IDS }).min(1, 'must not be empty'), { error: PARALLEL_IDS }).min(1).optional(),
    then: stepRef.optional(),
    parallel_count: z.int().min(1).optional(),
    condition: z.string().min(1, 'must not be empty').optional(),
    depends_on: z.array(stepRef).optional(),
    retry: retrySchema.optional(),
    timeout_ms: z.int().min(1).max(86_400_000).optional(),
    fallback: z.union([agentName, z.array(agentName)], { error: 'expected an agent name or a list of agent names' }).optional(),
    on_error: z.enum(['fail', 'continue']).optional(),
    consults: z.array(agentName).min(1).max(32).optional(),
    max_consults: z.int().min(1).optional(),
    consult_depth: z.int().min(1).optional(),
    schema: z
      .record(z.string(), z.unknown(), { error: 'expected a JSON Schema object' })
      .refine((schema) => depthOf(schema) <= MAX_SCHEMA_DEPTH, `nested deeper than ${MAX_SCHEMA_DEPTH} levels`)
      .optional(),
  })
  .superRefine((step, ctx) => {
    if (step.prompt !== undefined && step.prompt_template !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['prompt_template'],
        message: '`prompt` and `prompt_template` are the same field; give only one',
      });
    }
  });

type RawStep = z.infer<typeof agentStepSchema>;

const approvalStepSchema = z.strictObject({
  id: stepName,
  type: z.literal('approval'),
  message: z.string().min(1, 'must not be empty'),
  output: stepName.optional(),
  timeout_ms: z.int().min(1).max(30 * 86_400_000).optional(),
  on_timeout: z.enum(['approve', 'reject']).optional(),
  on_reject: z.enum(['fail', 'continue']).optional(),
  on_error: z.enum(['fail', 'continue']).optional(),
  condition: z.string().min(1, 'must not be empty').optional(),
  depends_on: z.array(stepRef).optional(),
});

type RawApproval = z.infer<typeof approvalStepSchema>;

const loopSchema = z.strictObject({
  loop: z.strictObject({
    id: stepName.optional(),
    until: z.string().min(1, 'must not be empty'),
    max_iterations: z.int().min(1).optional(),
    steps: z.array(z.unknown()).min(1, 'a loop needs at least one step'),
  }),
});

interface ParsedLoop {
  id: string | undefined;
  until: string;
  maxIterations: number | undefined;
  path: string;
  /** Indices of the body's steps, in document order. */
  steps: number[];
}

const blockSchema = z.strictObject({ parallel: z.array(z.unknown()).min(1, 'a parallel block needs at least one step') });
const sequenceSchema = z.strictObject({ steps: z.array(z.unknown()).min(1, 'a sequence needs at least one step') });

const documentSchema = z
  .strictObject({
    workflow: z.string().regex(WORKFLOW_NAME, 'must be 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit').optional(),
    name: z.string().regex(WORKFLOW_NAME, 'must be 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit').optional(),
    trigger: z.string().min(1).max(128).optional(),
    description: z.string().max(10_000).optional(),
    output: z.string().optional(),
    budget: z.strictObject({ limit_usd: z.number().nonnegative(), period: z.enum(['day', 'month', 'total']) }).optional(),
    share_context: z.union([z.boolean(), z.strictObject({ budget_tokens: z.int().min(100).max(200_000) })]).optional(),
    steps: z.array(z.unknown()).min(1, 'a workflow needs at least one step'),
  })
  .superRefine((doc, ctx) => {
    if (doc.workflow === undefined && doc.name === undefined) {
      ctx.addIssue({ code: 'custom', path: ['workflow'], message: 'a workflow needs a name: `workflow:` (YAML) or `name` (JSON)' });
    } else if (doc.workflow !== undefined && doc.name !== undefined && doc.workflow !== doc.name) {
      ctx.addIssue({ code: 'custom', path: ['name'], message: '`workflow` and `name` are the same field and disagree; give only one' });
    }
  });

function joinPath(path: readonly PropertyKey[]): string {
  return path.map((part) => String(part)).join('.');
}

function shapeIssues(error: z.ZodError, prefix: readonly PropertyKey[]): ShapeIssue[] {
  const issues: ShapeIssue[] = [];
  for (const issue of error.issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) issues.push({ path: joinPath([...path, key]), message: `unknown field \`${key}\`` });
    } else if (issue.code === 'invalid_type' && /received undefined$/.test(issue.message)) {
      issues.push({ path: joinPath(path), message: 'required' });
    } else {
      issues.push({ path: joinPath(path), message: issue.message });
    }
  }
  return issues;
}

// The document as a tree of items, in document order.
type Item =
  | { kind: 'step'; step: number }
  | { kind: 'parallel'; branches: Item[] }
  | { kind: 'sequence'; items: Item[] }
  | { kind: 'loop'; loop: number; items: Item[] };

interface ParsedStep {
  raw: RawStep;
  /** Shape path, e.g. `steps.1.parallel.0`. */
  path: string;
  index: number;
  /** Set for `type: approval` steps (their `raw` carries the shared fields, agent empty). */
  approval?: RawApproval;
  /** The loop (index into `Shape.loops`) whose body holds the step. */
  loop?: number;
}

interface Shape {
  name: string;
  trigger: string | undefined;
  description: string | undefined;
  output: string | undefined;
  budget: CompiledWorkflow['budget'];
  shareContext: CompiledWorkflow['shareContext'];
  items: Item[];
  steps: ParsedStep[];
  loops: ParsedLoop[];
  /** Limits that stop the analysis at once (too many steps, nested too deep). */
  blocking: WorkflowProblem[];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readShape(doc: unknown, limits: WorkflowLimits): Shape {
  const issues: ShapeIssue[] = [];
  if (!isPlainObject(doc)) {
    throw shapeError([{ path: '', message: 'a workflow document must be an object (a mapping) with `steps`' }]);
  }
  const top = documentSchema.safeParse(doc);
  if (!top.success) issues.push(...shapeIssues(top.error, []));

  const steps: ParsedStep[] = [];
  const loops: ParsedLoop[] = [];
  let tooDeep = false;
  const walk = (raw: readonly unknown[], prefix: PropertyKey[], depth: number, loop?: number): Item[] => {
    const items: Item[] = [];
    raw.forEach((element, i) => {
      const path = [...prefix, i];
      if (!isPlainObject(element)) {
        issues.push({ path: joinPath(path), message: 'expected a step: an object with `agent`, a `parallel` block or a `steps` sequence' });
        return;
      }
      if (element['type'] === 'approval') {
        const parsed = approvalStepSchema.safeParse(element);
        if (!parsed.success) {
          issues.push(...shapeIssues(parsed.error, path));
          return;
        }
        const a = parsed.data;
        const raw: RawStep = { id: a.id, agent: '', output: a.output, condition: a.condition, depends_on: a.depends_on, on_error: a.on_error };
        for (const key of Object.keys(raw) as Array<keyof RawStep>) if (raw[key] === undefined) delete raw[key];
        steps.push({ raw, path: joinPath(path), index: steps.length, approval: a, ...(loop !== undefined ? { loop } : {}) });
        loops[loop ?? -1]?.steps.push(steps.length - 1);
        items.push({ kind: 'step', step: steps.length - 1 });
        return;
      }
      if ('loop' in element) {
        const parsed = loopSchema.safeParse(element);
        if (!parsed.success) {
          issues.push(...shapeIssues(parsed.error, path));
          return;
        }
        if (loop !== undefined) {
          issues.push({ path: joinPath(path), message: 'loops cannot be nested' });
          return;
        }
        if (depth + 1 > limits.maxDepth) {
          tooDeep = true;
          return;
        }
        const spec = parsed.data.loop;
        loops.push({ id: spec.id, until: spec.until, maxIterations: spec.max_iterations, path: joinPath(path), steps: [] });
        const index = loops.length - 1;
        const inner = walk(spec.steps, [...path, 'loop', 'steps'], depth + 1, index);
        items.push({ kind: 'loop', loop: index, items: inner });
        return;
      }
      if ('agent' in element) {
        const parsed = agentStepSchema.safeParse(element);
        if (!parsed.success) {
          issues.push(...shapeIssues(parsed.error, path));
          return;
        }
        steps.push({ raw: parsed.data, path: joinPath(path), index: steps.length, ...(loop !== undefined ? { loop } : {}) });
        loops[loop ?? -1]?.steps.push(steps.length - 1);
        items.push({ kind: 'step', step: steps.length - 1 });
        return;
      }
      const isBlock = 'parallel' in element;
      if (!isBlock && !('steps' in element)) {
        issues.push({ path: joinPath(path), message: 'expected a step: an object with `agent`, a `parallel` block or a `steps` sequence' });
        return;
      }
      const parsed = isBlock ? blockSchema.safeParse(element) : sequenceSchema.safeParse(element);
      if (!parsed.success) {
        issues.push(...shapeIssues(parsed.error, path));
        return;
      }
      if (depth + 1 > limits.maxDepth) {
        tooDeep = true;
        return;
      }
      const children = 'parallel' in parsed.data ? parsed.data.parallel : parsed.data.steps;
      const inner = walk(children, [...path, isBlock ? 'parallel' : 'steps'], depth + 1, loop);
      items.push(isBlock ? { kind: 'parallel', branches: inner } : { kind: 'sequence', items: inner });
    });
    return items;
  };
  const items = Array.isArray(doc['steps']) ? walk(doc['steps'], ['steps'], 0) : [];
  if (issues.length > 0) throw shapeError(issues);
  if (!top.success) throw shapeError([{ path: '', message: 'invalid document' }]);

  const blocking: WorkflowProblem[] = [];
  if (tooDeep) {
    blocking.push({
      step: null,
      code: 'limit_exceeded',
      message: `\`parallel\` blocks and \`steps\` sequences are nested deeper than ${limits.maxDepth} levels`,
    });
  }
  // A loop counts every iteration of its body (and its end marker).
  const unrolled = steps.length + loops.reduce((n, l) => n + l.steps.length * (Math.min(l.maxIterations ?? 1, limits.maxLoopIterations) - 1) + 1, 0);
  if (unrolled > limits.maxSteps) {
    blocking.push({
      step: null,
      code: 'limit_exceeded',
      message: `The workflow has ${unrolled} steps (loops counted once per iteration); at most ${limits.maxSteps} are allowed`,
    });
  }
  const data = top.data;
  return {
    name: data.workflow ?? data.name ?? '',
    trigger: data.trigger,
    description: data.description,
    output: data.output,
    budget: data.budget,
    shareContext: data.share_context === true ? { budgetTokens: DEFAULT_SHARED_CONTEXT_TOKENS } : typeof data.share_context === 'object' ? { budgetTokens: data.share_context.budget_tokens } : undefined,
    items,
    steps,
    loops,
    blocking,
  };
}

function shapeError(issues: ShapeIssue[]): EnsembleError {
  const first = issues[0];
  const head = first ? (first.path ? `${first.path}: ${first.message}` : first.message) : 'invalid document';
  return new EnsembleError('invalid_request', `Invalid workflow: ${head}`, issues);
}

function problemsError(problems: WorkflowProblem[]): EnsembleError {
  const first = problems[0]?.message ?? '';
  const n = problems.length;
  return new EnsembleError('invalid_workflow', `${n} problem${n === 1 ? '' : 's'}: ${first}`, problems);
}

// ---------------------------------------------------------------------------------------------
// Semantics

/** The id a step gets when it has no `id` and no `output`: its agent, made a valid name. */
function idBase(agent: string): string {
  let base = agent.replace(/[^A-Za-z0-9_-]/g, '_');
  if (!/^[A-Za-z0-9_]/.test(base)) base = `_${base}`;
  return base;
}

function assignIds(steps: readonly ParsedStep[]): string[] {
  const ids: string[] = [];
  const taken = new Set<string>(RESERVED_NAMES);
  for (const { raw } of steps) {
    if (raw.id !== undefined) taken.add(raw.id);
    if (raw.output !== undefined) taken.add(raw.output);
  }
  const derivedCount = new Map<string, number>();
  for (const { raw } of steps) {
    if (raw.id === undefined && raw.output === undefined) {
      const base = idBase(raw.agent);
      derivedCount.set(base, (derivedCount.get(base) ?? 0) + 1);
    }
  }
  for (const { raw, index } of steps) {
    const explicit = raw.id ?? raw.output;
    if (explicit !== undefined) {
      ids.push(explicit);
      continue;
    }
    const base = idBase(raw.agent);
    let id = derivedCount.get(base) === 1 && !taken.has(base) ? base : `${base}_${index}`;
    for (let k = 2; taken.has(id); k++) id = `${base}_${index}_${k}`;
    taken.add(id);
    ids.push(id);
  }
  return ids;
}

/** Strongly connected components (Tarjan), each in discovery order. */
function stronglyConnected(n: number, edges: ReadonlyArray<ReadonlySet<number>>): number[][] {
  const index = new Array<number>(n).fill(-1);
  const low = new Array<number>(n).fill(0);
  const onStack = new Array<boolean>(n).fill(false);
  const stack: number[] = [];
  const components: number[][] = [];
  let counter = 0;
  const connect = (v: number): void => {
    index[v] = counter;
    low[v] = counter;
    counter++;
    stack.push(v);
    onStack[v] = true;
    for (const w of edges[v] ?? []) {
      if ((index[w] ?? -1) < 0) {
        connect(w);
        low[v] = Math.min(low[v] ?? 0, low[w] ?? 0);
      } else if (onStack[w]) {
        low[v] = Math.min(low[v] ?? 0, index[w] ?? 0);
      }
    }
    if (low[v] === index[v]) {
      const component: number[] = [];
      let w: number | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack[w] = false;
        component.push(w);
      } while (w !== v);
      components.push(component);
    }
  };
  for (let v = 0; v < n; v++) if ((index[v] ?? -1) < 0) connect(v);
  return components;
}

/**
 * A shortest cycle through `start` inside a component, following `edges` (v waits for w):
 * `[start, x1, …, start]`, each waiting for the next.
 */
function cycleThrough(start: number, members: ReadonlySet<number>, edges: ReadonlyArray<ReadonlySet<number>>): number[] {
  const previous = new Map<number, number>();
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head] as number;
    for (const w of edges[v] ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const back = [v];
        for (let u = v; u !== start; ) {
          u = previous.get(u) as number;
          back.push(u);
        }
        return [...back.reverse(), start];
      }
      if (!previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * Compiles a workflow document (as parsed from YAML or JSON) into its DAG.
 * Throws `invalid_request` (shape, every issue with its path) or `invalid_workflow` (every
 * semantic problem with its step).
 */
export function compileWorkflow(doc: unknown, options: CompileOptions = {}): CompiledWorkflow {
  const limits: WorkflowLimits = { ...DEFAULT_WORKFLOW_LIMITS, ...stripUndefined(options.limits ?? {}) };
  const shape = readShape(doc, limits);
  if (shape.blocking.length > 0) throw problemsError(shape.blocking);

  const { steps } = shape;
  const n = steps.length;
  const problems: Array<WorkflowProblem & { order: number }> = [];
  const ids = assignIds(steps);
  const idOf = (i: number): string => ids[i] ?? '';
  const outputs = steps.map(({ raw }, i) => raw.output ?? idOf(i));
  const report = (step: number | null, code: WorkflowProblem['code'], message: string): void => {
    problems.push({ step: step === null ? null : idOf(step), code, message, order: step ?? Number.MAX_SAFE_INTEGER });
  };
  const describe = (i: number): string => `Step '${idOf(i)}'`;

  // Names: every id and output names exactly one step.
  const owner = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const raw = steps[i]?.raw;
    if (!raw) continue;
    for (const name of new Set([idOf(i), outputs[i] ?? ''])) {
      const previous = owner.get(name);
      if (previous === undefined) {
        owner.set(name, i);
        continue;
      }
      if (previous === i) continue;
      const other = steps[previous]?.raw;
      if (raw.id === name && other?.id === name) {
        report(i, 'duplicate_id', `Steps #${previous + 1} and #${i + 1} both have the id '${name}'`);
      } else {
        report(
          i,
          'duplicate_output',
          `${describe(i)} stores its result as '${name}', which already names step #${previous + 1} ('${idOf(previous)}'); give each step its own \`output\``,
        );
      }
    }
  }
  const resolveStep = (from: number, name: string, field: string): number | undefined => {
    const target = owner.get(name);
    if (target === undefined) report(from, 'unknown_step', `${describe(from)}: \`${field}\` names '${name}', which is no step's id or output`);
    return target;
  };

  // Dependencies: waits[i] = steps i waits for.
  const waits: Array<Set<number>> = steps.map(() => new Set<number>());
  const graphForm = steps.some(({ raw }) => raw.parallel !== undefined || raw.then !== undefined);
  const addDependsOn = (i: number, raw: RawStep): void => {
    for (const name of raw.depends_on ?? []) {
      const target = resolveStep(i, name, 'depends_on');
      if (target !== undefined) waits[i]?.add(target);
    }
  };
  if (graphForm) {
    steps.forEach(({ raw }, i) => {
      const fanOut: number[] = [];
      for (const name of raw.parallel ?? []) {
        const target = resolveStep(i, name, 'parallel');
        if (target === undefined) continue;
        fanOut.push(target);
        waits[target]?.add(i);
      }
      if (raw.then !== undefined) {
        const join = resolveStep(i, raw.then, 'then');
        if (join !== undefined) {
          if (raw.parallel !== undefined) for (const t of fanOut) waits[join]?.add(t);
          else waits[join]?.add(i);
        }
      }
      addDependsOn(i, raw);
    });
  } else {
    const walkItem = (item: Item, entry: readonly number[]): number[] => {
      switch (item.kind) {
        case 'step': {
          const raw = steps[item.step]?.raw;
          if (raw?.depends_on !== undefined) addDependsOn(item.step, raw);
          else for (const e of entry) waits[item.step]?.add(e);
          return [item.step];
        }
        case 'parallel':
          return item.branches.flatMap((branch) => walkItem(branch, entry));
        case 'sequence':
        case 'loop':
          // A loop's body is laid out once here; its iterations are unrolled after validation.
          return walkSequence(item.items, entry);
      }
    };
    const walkSequence = (items: readonly Item[], entry: readonly number[]): number[] => {
      let previous: readonly number[] = entry;
      for (const item of items) previous = walkItem(item, previous);
      return [...previous];
    };
    walkSequence(shape.items, []);
  }

  const loops = shape.loops;
  const loopOf = (i: number): number | undefined => steps[i]?.loop;
  if (graphForm && loops.length > 0) report(null, 'invalid_loop', 'Loops cannot be used in the graph form (`parallel: [ids]` / `then`); use the list form');
  const loopIds = loops.map((loop, n) => loop.id ?? `loop_${n + 1}`);
  loops.forEach((loop, n) => {
    const id = loopIds[n]!;
    const first = loop.steps[0] ?? null;
    if (loop.maxIterations === undefined) {
      report(first, 'invalid_loop', `The loop '${id}' has no max_iterations; every loop needs one (at most ${limits.maxLoopIterations})`);
    } else if (loop.maxIterations > limits.maxLoopIterations) {
      report(first, 'limit_exceeded', `The loop '${id}' has max_iterations ${loop.maxIterations}; at most ${limits.maxLoopIterations} are allowed`);
    }
    if (owner.has(id)) report(first, 'duplicate_id', `The loop id '${id}' is also a step's id or output`);
  });

  // Cycles: one problem per cycle, naming its steps in the order they would run.
  const cyclic = new Set<number>();
  for (const component of stronglyConnected(n, waits)) {
    const first = Math.min(...component);
    const selfLoop = component.length === 1 && waits[first]?.has(first) === true;
    if (component.length < 2 && !selfLoop) continue;
    for (const v of component) cyclic.add(v);
    const members = new Set(component);
    const cycle = cycleThrough(first, members, waits).reverse();
    const names = cycle.map((v) => `'${idOf(v)}'`).join(' → ');
    const others = component.length > cycle.length - 1 ? ` (${component.length} steps depend on each other)` : '';
    report(first, 'cycle', `Steps form a cycle: ${names}; each would wait for the one before it${others}`);
  }

  // Graph form: the first step is the only root.
  if (graphForm) {
    for (let i = 1; i < n; i++) {
      if ((waits[i]?.size ?? 0) === 0) {
        report(
          i,
          'unreachable_step',
          `${describe(i)} is unreachable: no \`parallel\`, \`then\` or \`depends_on\` leads to it from the first step`,
        );
      }
    }
  }

  // Ancestors: every step that runs before a step.
  const ancestors: Array<Set<number>> = steps.map((_, i) => {
    const seen = new Set<number>();
    const stack = [...(waits[i] ?? [])];
    while (stack.length > 0) {
      const v = stack.pop() as number;
      if (seen.has(v)) continue;
      seen.add(v);
      for (const w of waits[v] ?? []) if (!seen.has(w)) stack.push(w);
    }
    return seen;
  });

  // References of templates and conditions.
  const reported = new Set<string>();
  const checkReference = (i: number | null, root: string, field: string, instanceAllowed: boolean): void => {
    const key = `${i ?? ''}\u0000${field}\u0000${root}`;
    if (reported.has(key)) return;
    const where = i === null ? `The workflow's \`output\`` : `${describe(i)}: \`${field}\``;
    const fail = (message: string): void => {
      reported.add(key);
      report(i, 'unknown_reference', message);
    };
    if (root === 'input' || root === 'context') return;
    if (root === 'instance') {
      if (!instanceAllowed) fail(`${where} uses {{instance}}, which only the prompt and input of a step with \`parallel_count\` have`);
      return;
    }
    const target = owner.get(root);
    if (target === undefined) {
      fail(`${where} references '${root}', which is no step's output or id (nor input, context)`);
      return;
    }
    if (i === null) return;
    // Inside a loop every body output is visible: this iteration's, or else the previous one's.
    if (loopOf(i) !== undefined && loopOf(i) === loopOf(target)) return;
    if (target === i) {
      fail(`${where} references '${root}', the step's own output`);
    } else if (!ancestors[i]?.has(target)) {
      fail(
        `${where} references '${root}'${root === idOf(target) ? '' : ` (step '${idOf(target)}')`}, which does not run before it; ` +
          'make that step a dependency (depends_on) or move it earlier',
      );
    }
  };
  const checkTemplate = (i: number | null, field: string, source: string | undefined, instanceAllowed: boolean): void => {
    if (source === undefined) return;
    const where = i === null ? `The workflow's \`output\`` : `${describe(i)}: \`${field}\``;
    if (byteLength(source) > limits.maxTemplateBytes) {
      report(i, 'limit_exceeded', `${where} is ${byteLength(source)} bytes; at most ${limits.maxTemplateBytes} are allowed`);
      return;
    }
    let roots: string[];
    try {
      roots = templateReferences(source);
    } catch (error) {
      report(i, 'invalid_template', `${where}: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    for (const root of roots) checkReference(i, root, field, instanceAllowed);
  };

  const isKnownAgent = options.isKnownAgent;
  steps.forEach(({ raw, approval }, i) => {
    if (approval) {
      checkTemplate(i, 'message', approval.message, false);
      if (raw.condition !== undefined) {
        try {
          for (const root of compileCondition(raw.condition).references) checkReference(i, root, 'condition', false);
        } catch (error) {
          report(i, 'invalid_condition', `${describe(i)}: \`condition\`: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      return;
    }
    if (isKnownAgent) {
      const fallback = raw.fallback === undefined ? [] : typeof raw.fallback === 'string' ? [raw.fallback] : raw.fallback;
      const agents = new Set([raw.agent, ...fallback]);
      for (const agent of agents) {
        if (!isKnownAgent(agent)) {
          const role = agent === raw.agent ? 'agent' : 'fallback agent';
          report(i, 'unknown_agent', `${describe(i)}: unknown ${role} '${agent}'`);
        }
      }
    }
    if (raw.parallel_count !== undefined && raw.parallel_count > limits.maxParallelCount) {
      report(i, 'limit_exceeded', `${describe(i)}: parallel_count ${raw.parallel_count} is over the limit of ${limits.maxParallelCount}`);
    }
    if (raw.consults !== undefined) {
      if (isKnownAgent) for (const agent of raw.consults) if (!isKnownAgent(agent)) report(i, 'unknown_agent', `${describe(i)}: \`consults\` names the unknown agent '${agent}'`);
      if (raw.consults.includes(raw.agent)) report(i, 'cycle', `${describe(i)}: agent '${raw.agent}' cannot consult itself`);
      if ((raw.max_consults ?? 0) > limits.maxConsults) report(i, 'limit_exceeded', `${describe(i)}: max_consults ${raw.max_consults} is over the limit of ${limits.maxConsults}`);
      if ((raw.consult_depth ?? 0) > limits.maxConsultDepth) report(i, 'limit_exceeded', `${describe(i)}: consult_depth ${raw.consult_depth} is over the limit of ${limits.maxConsultDepth}`);
    }
    const hasInstances = raw.parallel_count !== undefined;
    const prompt = raw.prompt ?? raw.prompt_template;
    checkTemplate(i, raw.prompt !== undefined ? 'prompt' : 'prompt_template', prompt, hasInstances);
    checkTemplate(i, 'input', raw.input, hasInstances);
    if (raw.condition !== undefined) {
      if (byteLength(raw.condition) > limits.maxTemplateBytes) {
        report(i, 'limit_exceeded', `${describe(i)}: \`condition\` is ${byteLength(raw.condition)} bytes; at most ${limits.maxTemplateBytes} are allowed`);
      } else {
        try {
          const condition = compileCondition(raw.condition);
          for (const root of condition.references) checkReference(i, root, 'condition', false);
        } catch (error) {
          report(i, 'invalid_condition', `${describe(i)}: \`condition\`: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
  });
  checkTemplate(null, 'output', shape.output, false);
  loops.forEach((loop, n) => {
    const last = loop.steps[loop.steps.length - 1];
    if (last === undefined) return;
    try {
      for (const root of compileCondition(loop.until).references) checkReference(last, root, `until of loop '${loopIds[n]}'`, false);
    } catch (error) {
      report(last, 'invalid_condition', `The loop '${loopIds[n]}': \`until\`: ${error instanceof Error ? error.message : String(error)}`);
    }
  });

  if (problems.length > 0) {
    const sorted = problems
      .map((problem, position) => ({ problem, position }))
      .sort((a, b) => a.problem.order - b.problem.order || a.position - b.position)
      .map(({ problem: { order: _order, ...problem } }) => problem);
    throw problemsError(sorted);
  }

  const compiled: CompiledStep[] = steps.map(({ raw, approval }, i) => {
    const prompt = raw.prompt ?? raw.prompt_template;
    const step: CompiledStep = {
      id: idOf(i),
      output: outputs[i] ?? idOf(i),
      agent: raw.agent,
      dependsOn: [...(waits[i] ?? [])].sort((a, b) => a - b).map(idOf),
      retry: {
        attempts: raw.retry?.attempts ?? 1,
        backoffMs: raw.retry?.backoff_ms ?? 1000,
        maxBackoffMs: raw.retry?.max_backoff_ms ?? 30_000,
      },
      fallback: raw.fallback === undefined ? [] : typeof raw.fallback === 'string' ? [raw.fallback] : [...raw.fallback],
      onError: raw.on_error ?? 'fail',
      index: i,
    };
    if (raw.action !== undefined) step.action = raw.action;
    if (prompt !== undefined) step.prompt = prompt;
    if (raw.input !== undefined) step.input = raw.input;
    if (raw.condition !== undefined) step.condition = raw.condition;
    if (raw.parallel_count !== undefined) step.parallelCount = raw.parallel_count;
    if (raw.timeout_ms !== undefined) step.timeoutMs = raw.timeout_ms;
    if (raw.schema !== undefined) step.schema = raw.schema;
    if (raw.consults !== undefined) step.consults = { agents: [...new Set(raw.consults)], maxConsults: raw.max_consults ?? DEFAULT_MAX_CONSULTS, depth: raw.consult_depth ?? DEFAULT_CONSULT_DEPTH };
    if (approval) {
      step.kind = 'approval';
      step.approval = { message: approval.message, onTimeout: approval.on_timeout ?? 'reject', onReject: approval.on_reject ?? 'fail' };
      if (approval.timeout_ms !== undefined) step.approval.timeoutMs = approval.timeout_ms;
    }
    return step;
  });

  const workflow: CompiledWorkflow = { name: shape.name, steps: loops.length > 0 ? unrollLoops(compiled, steps, loops, loopIds) : compiled };
  if (shape.trigger !== undefined) workflow.trigger = shape.trigger;
  if (shape.description !== undefined) workflow.description = shape.description;
  if (shape.output !== undefined) workflow.output = shape.output;
  if (shape.budget !== undefined) workflow.budget = shape.budget;
  if (shape.shareContext !== undefined) workflow.shareContext = shape.shareContext;
  return workflow;
}

function stripUndefined(limits: Partial<WorkflowLimits>): Partial<WorkflowLimits> {
  const out: Partial<WorkflowLimits> = {};
  for (const key of Object.keys(limits) as Array<keyof WorkflowLimits>) {
    const value = limits[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * Lays each loop out as `max_iterations` copies of its body (`<id>@<n>`) and an end marker (the
 * loop's id). Copies keep their output names, so `{{name}}` is the latest iteration's result.
 * Iterations after the first wait for the one before and start with a guard that skips them once
 * `until` is true; the steps after the loop wait for the marker.
 */
function unrollLoops(compiled: CompiledStep[], parsed: readonly ParsedStep[], loops: readonly ParsedLoop[], loopIds: readonly string[]): CompiledStep[] {
  const loopOfId = new Map<string, number>();
  parsed.forEach((p, i) => {
    if (p.loop !== undefined) loopOfId.set(compiled[i]!.id, p.loop);
  });
  const bodyIds = loops.map((loop) => new Set(loop.steps.map((i) => compiled[i]!.id)));
  const exitsOf = loops.map((loop, n) => {
    const body = bodyIds[n]!;
    const waitedOn = new Set(loop.steps.flatMap((i) => compiled[i]!.dependsOn.filter((d) => body.has(d))));
    return loop.steps.map((i) => compiled[i]!).filter((step) => !waitedOn.has(step.id));
  });
  // Outside the loop, waiting for any of its body steps means waiting for the whole loop.
  const outside = (dep: string): string => {
    const loop = loopOfId.get(dep);
    return loop === undefined ? dep : loopIds[loop]!;
  };

  const result: CompiledStep[] = [];
  const emitted = new Set<number>();
  compiled.forEach((step, i) => {
    const loop = parsed[i]?.loop;
    if (loop === undefined) {
      result.push({ ...step, dependsOn: [...new Set(step.dependsOn.map(outside))] });
      return;
    }
    if (emitted.has(loop)) return;
    emitted.add(loop);
    const spec = loops[loop]!;
    const id = loopIds[loop]!;
    const body = bodyIds[loop]!;
    const max = spec.maxIterations ?? 1;
    const exits = exitsOf[loop]!;
    for (let k = 1; k <= max; k++) {
      for (const index of spec.steps) {
        const base = compiled[index]!;
        const inner = base.dependsOn.filter((d) => body.has(d));
        const isEntry = inner.length === 0;
        const dependsOn = [
          ...inner.map((d) => `${d}@${k}`),
          ...(isEntry && k > 1 ? exits.map((e) => `${e.id}@${k - 1}`) : base.dependsOn.filter((d) => !body.has(d)).map(outside)),
        ];
        const copy: CompiledStep = { ...base, id: `${base.id}@${k}`, dependsOn: [...new Set(dependsOn)], iteration: { loop: id, index: k } };
        if (isEntry && k > 1) copy.loopGuard = { loop: id, until: spec.until, iteration: k };
        result.push(copy);
      }
    }
    const marker: CompiledStep = {
      id,
      output: id,
      agent: '',
      kind: 'loop',
      dependsOn: Array.from({ length: max }, (_, k) => exits.map((e) => `${e.id}@${k + 1}`)).flat(),
      retry: { attempts: 1, backoffMs: 1000, maxBackoffMs: 30_000 },
      fallback: [],
      onError: 'fail',
      index: 0,
      loop: { until: spec.until, maxIterations: max, exits: exits.map((e) => e.output), body: spec.steps.map((i) => compiled[i]!.output) },
    };
    result.push(marker);
  });
  return result.map((step, index) => ({ ...step, index }));
}
