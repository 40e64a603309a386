import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import { compileWorkflow, type CompileOptions } from '../../src/workflow/compile.ts';
import { parseWorkflowSource } from '../../src/workflow/parse.ts';
import { EnsembleError } from '../../src/core/errors.ts';
import type { CompiledWorkflow, WorkflowProblem } from '../../src/workflow/types.ts';

const AGENTS = new Set([
  'claude-leader',
  'gpt-coder',
  'gemini-security',
  'claude-researcher',
  'claude-synthesizer',
  'claude-reviewer',
  'a',
  'b',
  'c',
  'd',
]);
const known: CompileOptions = { isKnownAgent: (name) => AGENTS.has(name) };

function yaml(text: string, options: CompileOptions = known): CompiledWorkflow {
  return compileWorkflow(parseWorkflowSource(text, 'yaml'), options);
}

/** `id <- deps` for every step, in document order. */
function dag(workflow: CompiledWorkflow): Record<string, string[]> {
  return Object.fromEntries(workflow.steps.map((step) => [step.id, step.dependsOn]));
}

function problemsOf(doc: unknown, options: CompileOptions = known): WorkflowProblem[] {
  try {
    compileWorkflow(doc, options);
  } catch (error) {
    expect(error).toBeInstanceOf(EnsembleError);
    const e = error as EnsembleError;
    expect(e.code, e.message).toBe('invalid_workflow');
    expect(e.status).toBe(422);
    return e.details as WorkflowProblem[];
  }
  throw new Error('expected the workflow to be refused');
}

function shapeIssuesOf(doc: unknown): Array<{ path: string; message: string }> {
  try {
    compileWorkflow(doc, known);
  } catch (error) {
    expect(error).toBeInstanceOf(EnsembleError);
    const e = error as EnsembleError;
    expect(e.code, e.message).toBe('invalid_request');
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/^Invalid workflow: /);
    return e.details as Array<{ path: string; message: string }>;
  }
  throw new Error('expected a shape error');
}

const step = (agent: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ agent, ...extra });

describe('the design document examples', () => {
  it('PR review: analysis → [fixes, security] → synthesis joined on both', () => {
    const workflow = yaml(`
workflow: pr_review
trigger: pr_review
steps:
  - agent: claude-leader
    action: analyze_pr
    output: analysis
  - parallel:
      - agent: gpt-coder
        action: suggest_fixes
        input: "{{analysis}}"
        output: fixes
      - agent: gemini-security
        action: security_review
        input: "{{analysis}}"
        output: security
  - agent: claude-leader
    action: synthesize
    input: "{{fixes}} {{security}}"
`);
    expect(workflow.name).toBe('pr_review');
    expect(workflow.trigger).toBe('pr_review');
    expect(dag(workflow)).toEqual({
      analysis: [],
      fixes: ['analysis'],
      security: ['analysis'],
      'claude-leader': ['fixes', 'security'],
    });
    const last = workflow.steps[3];
    expect(last).toEqual({
      id: 'claude-leader',
      output: 'claude-leader',
      agent: 'claude-leader',
      action: 'synthesize',
      input: '{{fixes}} {{security}}',
      dependsOn: ['fixes', 'security'],
      retry: { attempts: 1, backoffMs: 1000, maxBackoffMs: 30000 },
      fallback: [],
      onError: 'fail',
      index: 3,
    });
  });

  it('PR review exactly as the design document wrote it names outputs no step stores', () => {
    const problems = problemsOf(
      parseWorkflowSource(
        `
workflow: pr_review
steps:
  - agent: claude-leader
    action: analyze_pr
    output: analysis
  - parallel:
      - agent: gpt-coder
        action: suggest_fixes
        input: "{{analysis}}"
      - agent: gemini-security
        action: security_review
        input: "{{analysis}}"
  - agent: claude-leader
    action: synthesize
    input: "{{fixes}} {{security}}"
`,
        'yaml',
      ),
    );
    expect(problems.map((p) => [p.step, p.code])).toEqual([
      ['claude-leader', 'unknown_reference'],
      ['claude-leader', 'unknown_reference'],
    ]);
    expect(problems[0]?.message).toMatch(/'fixes'/);
    expect(problems[1]?.message).toMatch(/'security'/);
  });

  it('research: a parallel_count step, then the synthesizer', () => {
    const workflow = yaml(`
workflow: research
steps:
  - agent: claude-researcher
    action: search_and_analyze
    parallel_count: 3  # spawn 3 instances
  - agent: claude-synthesizer
    action: combine_findings
`);
    expect(dag(workflow)).toEqual({ 'claude-researcher': [], 'claude-synthesizer': ['claude-researcher'] });
    expect(workflow.steps[0]?.parallelCount).toBe(3);
    expect(workflow.steps[1]?.parallelCount).toBeUndefined();
  });

  it('code with review: coder → reviewer → apply_feedback under a condition', () => {
    const workflow = yaml(`
workflow: code_with_review
steps:
  - agent: gpt-coder
    action: write_code
  - agent: claude-reviewer
    action: review_code
    output: review
  - agent: gpt-coder
    action: apply_feedback
    condition: "{{review.needs_changes}}"
`);
    expect(dag(workflow)).toEqual({ 'gpt-coder_0': [], review: ['gpt-coder_0'], 'gpt-coder_2': ['review'] });
    expect(workflow.steps[2]?.condition).toBe('{{review.needs_changes}}');
  });

  it('graph form: step_1 fans out to step_2a and step_2b, then joins in step_3', () => {
    const workflow = compileWorkflow(
      {
        name: 'graph',
        steps: [
          {
            id: 'step_1',
            agent: 'claude-leader',
            action: 'analyze',
            prompt_template: 'Break down this task: {{input}}',
            parallel: ['step_2a', 'step_2b'],
            then: 'step_3',
          },
          { id: 'step_3', agent: 'claude-leader', action: 'synthesize', prompt: '{{step_2a}}\n{{step_2b}}' },
          { id: 'step_2a', agent: 'gpt-coder', action: 'code', input: '{{step_1}}' },
          { id: 'step_2b', agent: 'gemini-security', action: 'review' },
        ],
      },
      known,
    );
    expect(dag(workflow)).toEqual({ step_1: [], step_3: ['step_2a', 'step_2b'], step_2a: ['step_1'], step_2b: ['step_1'] });
    expect(workflow.steps[0]?.prompt).toBe('Break down this task: {{input}}');
    expect(workflow.steps.map((s) => s.index)).toEqual([0, 1, 2, 3]);
  });
});

describe('the example files', () => {
  const file = (name: string): string => fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));

  it('pr_review.yaml compiles', () => {
    const workflow = yaml(readFileSync(file('pr_review.yaml'), 'utf8'));
    expect(dag(workflow)).toEqual({ analysis: [], fixes: ['analysis'], security: ['analysis'], review: ['fixes', 'security'] });
    expect(workflow.output).toBe('{{review}}');
  });

  it('research.yaml compiles', () => {
    const workflow = yaml(readFileSync(file('research.yaml'), 'utf8'));
    expect(dag(workflow)).toEqual({ findings: [], report: ['findings'] });
    expect(workflow.steps[0]?.parallelCount).toBe(3);
    expect(workflow.steps[0]?.prompt).toContain('{{instance}}');
  });

  it('code_with_review.yaml compiles, with a schema that has needs_changes and comments', () => {
    const workflow = yaml(readFileSync(file('code_with_review.yaml'), 'utf8'));
    expect(dag(workflow)).toEqual({ code: [], review: ['code'], revised_code: ['review'] });
    const schema = workflow.steps[1]?.schema as { properties: Record<string, { type: string }> };
    expect(schema.properties['needs_changes']?.type).toBe('boolean');
    expect(schema.properties['comments']?.type).toBe('string');
    expect(workflow.steps[2]?.condition).toBe('{{review.needs_changes}}');
  });
});

describe('list form', () => {
  it('chains steps in order; the first waits for nothing', () => {
    const workflow = compileWorkflow({ name: 'chain', steps: [step('a'), step('b'), step('c')] }, known);
    expect(dag(workflow)).toEqual({ a: [], b: ['a'], c: ['b'] });
  });

  it('a parallel block at the start: every branch is a root, the next step joins all', () => {
    const workflow = compileWorkflow({ name: 'p', steps: [{ parallel: [step('a'), step('b')] }, step('c')] }, known);
    expect(dag(workflow)).toEqual({ a: [], b: [], c: ['a', 'b'] });
  });

  it('nested blocks and sub-sequences: branches start from the block\'s entry, exits are each branch\'s last step', () => {
    const workflow = compileWorkflow(
      {
        name: 'nested',
        steps: [
          step('a', { id: 'start' }),
          {
            parallel: [
              { steps: [step('b', { id: 'b1' }), step('b', { id: 'b2' })] },
              { parallel: [step('c', { id: 'c1' }), { steps: [step('c', { id: 'c2' }), { parallel: [step('d', { id: 'd1' }), step('d', { id: 'd2' })] }] }] },
              step('a', { id: 'solo' }),
            ],
          },
          step('a', { id: 'join' }),
          step('a', { id: 'after' }),
        ],
      },
      known,
    );
    expect(dag(workflow)).toEqual({
      start: [],
      b1: ['start'],
      b2: ['b1'],
      c1: ['start'],
      c2: ['start'],
      d1: ['c2'],
      d2: ['c2'],
      solo: ['start'],
      join: ['b2', 'c1', 'd1', 'd2', 'solo'],
      after: ['join'],
    });
    expect(workflow.steps.map((s) => s.id)).toEqual(['start', 'b1', 'b2', 'c1', 'c2', 'd1', 'd2', 'solo', 'join', 'after']);
    expect(workflow.steps.map((s) => s.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('a top-level sequence item is just a chain', () => {
    const workflow = compileWorkflow({ name: 's', steps: [step('a'), { steps: [step('b'), step('c')] }, step('d')] }, known);
    expect(dag(workflow)).toEqual({ a: [], b: ['a'], c: ['b'], d: ['c'] });
  });

  it('depends_on replaces the implied dependency, by id or output name; the next step follows it', () => {
    const workflow = compileWorkflow(
      {
        name: 'deps',
        steps: [
          step('a', { id: 'one', output: 'first' }),
          step('b', { id: 'two' }),
          step('c', { id: 'three', depends_on: ['first'] }),
          step('d', { id: 'four' }),
          step('d', { id: 'five', depends_on: [] }),
          step('d', { id: 'six', depends_on: ['two', 'one', 'two'] }),
        ],
      },
      known,
    );
    expect(dag(workflow)).toEqual({
      one: [],
      two: ['one'],
      three: ['one'],
      four: ['three'],
      five: [],
      six: ['one', 'two'],
    });
  });

  it('a step may reference any ancestor, not only its direct dependency', () => {
    const workflow = compileWorkflow(
      { name: 'anc', steps: [step('a', { output: 'x' }), step('b', { output: 'y' }), step('c', { prompt: '{{x}} {{y}} {{input}} {{context.k}}' })] },
      known,
    );
    expect(workflow.steps[2]?.prompt).toBe('{{x}} {{y}} {{input}} {{context.k}}');
  });

  it('a step may reference another by its id as well as its output name', () => {
    expect(() =>
      compileWorkflow({ name: 'ids', steps: [step('a', { id: 'first', output: 'x' }), step('b', { prompt: '{{first}} {{x}}' })] }, known),
    ).not.toThrow();
  });
});

describe('graph form', () => {
  it('then without parallel waits for the step itself; depends_on adds edges', () => {
    const workflow = compileWorkflow(
      {
        name: 'g',
        steps: [
          step('a', { id: 's1', then: 's2' }),
          step('b', { id: 's2', parallel: ['s3', 's4'], then: 's5' }),
          step('c', { id: 's3' }),
          step('c', { id: 's4' }),
          step('d', { id: 's5', depends_on: ['s1'] }),
        ],
      },
      known,
    );
    expect(dag(workflow)).toEqual({ s1: [], s2: ['s1'], s3: ['s2'], s4: ['s2'], s5: ['s1', 's3', 's4'] });
  });

  it('list order implies nothing: a step nothing leads to is unreachable', () => {
    const problems = problemsOf({
      name: 'g',
      steps: [step('a', { id: 's1', parallel: ['s2'] }), step('b', { id: 's2' }), step('c', { id: 'orphan' })],
    });
    expect(problems).toEqual([{ step: 'orphan', code: 'unreachable_step', message: expect.stringMatching(/orphan.*unreachable/) }]);
  });

  it('unknown ids in parallel, then and depends_on', () => {
    const problems = problemsOf({
      name: 'g',
      steps: [step('a', { id: 's1', parallel: ['s2', 'ghost'], then: 'nowhere' }), step('b', { id: 's2', depends_on: ['phantom'] })],
    });
    expect(problems.map((p) => [p.step, p.code])).toEqual([
      ['s1', 'unknown_step'],
      ['s1', 'unknown_step'],
      ['s2', 'unknown_step'],
    ]);
    expect(problems.map((p) => p.message).join(' ')).toMatch(/ghost.*nowhere.*phantom/);
  });
});

describe('ids and outputs', () => {
  it('id, else output, else the agent when unique, else agent_<index>', () => {
    const workflow = compileWorkflow(
      {
        name: 'ids',
        steps: [
          step('a', { id: 'explicit', output: 'stored' }),
          step('b', { output: 'named' }),
          step('c'),
          step('d'),
          step('d'),
          step('llama3.1-local', { prompt: 'hi' }),
        ],
      },
      { isKnownAgent: () => true },
    );
    expect(workflow.steps.map((s) => [s.id, s.output])).toEqual([
      ['explicit', 'stored'],
      ['named', 'named'],
      ['c', 'c'],
      ['d_3', 'd_3'],
      ['d_4', 'd_4'],
      ['llama3_1-local', 'llama3_1-local'],
    ]);
  });

  it('derived ids never collide with explicit names', () => {
    const workflow = compileWorkflow({ name: 'x', steps: [step('a', { output: 'b' }), step('b'), step('a', { id: 'b_1' }), step('c', { id: 'b_1_2' })] }, known);
    expect(workflow.steps.map((s) => s.id)).toEqual(['b', 'b_1_3', 'b_1', 'b_1_2']);
    // Deterministic: the same document gives the same ids.
    const again = compileWorkflow({ name: 'x', steps: [step('a', { output: 'b' }), step('b'), step('a', { id: 'b_1' }), step('c', { id: 'b_1_2' })] }, known);
    expect(again.steps.map((s) => s.id)).toEqual(workflow.steps.map((s) => s.id));
  });

  it('duplicate ids are duplicate_id; a shared output name is duplicate_output', () => {
    const problems = problemsOf({
      name: 'dup',
      steps: [step('a', { id: 'x' }), step('b', { id: 'x' }), step('c', { output: 'out' }), step('d', { id: 'y', output: 'out' }), step('a', { id: 'z', output: 'x' })],
    });
    expect(problems.map((p) => [p.step, p.code])).toEqual([
      ['x', 'duplicate_id'],
      ['y', 'duplicate_output'],
      ['z', 'duplicate_output'],
    ]);
  });
});

describe('cycles', () => {
  it('names the steps of a cycle, once per cycle', () => {
    const problems = problemsOf({
      name: 'cyc',
      steps: [
        step('a', { id: 'a1', depends_on: ['c1'] }),
        step('b', { id: 'b1', depends_on: ['a1'] }),
        step('c', { id: 'c1', depends_on: ['b1'] }),
        step('d', { id: 'self', depends_on: ['self'] }),
        step('d', { id: 'fine', depends_on: ['a1'] }),
      ],
    });
    expect(problems).toEqual([
      { step: 'a1', code: 'cycle', message: expect.stringContaining("'a1' → 'b1' → 'c1' → 'a1'") },
      { step: 'self', code: 'cycle', message: expect.stringContaining("'self' → 'self'") },
    ]);
  });

  it('finds cycles in the graph form', () => {
    const problems = problemsOf({
      name: 'cyc',
      steps: [step('a', { id: 's1', then: 's2' }), step('b', { id: 's2', then: 's3' }), step('c', { id: 's3', then: 's2' })],
    });
    expect(problems).toEqual([{ step: 's2', code: 'cycle', message: expect.stringContaining("'s2' → 's3' → 's2'") }]);
  });
});

describe('references', () => {
  it('a name that is no step is unknown_reference', () => {
    const problems = problemsOf({ name: 'r', steps: [step('a', { prompt: 'Do {{ghost.field}}' })] });
    expect(problems).toEqual([{ step: 'a', code: 'unknown_reference', message: expect.stringMatching(/'ghost'.*no step/) }]);
  });

  it('a step that does not run before is unknown_reference, with a message saying so', () => {
    const problems = problemsOf({
      name: 'r',
      steps: [
        step('a', { output: 'first' }),
        { parallel: [step('b', { output: 'left', input: '{{right}}' }), step('c', { output: 'right' })] },
        step('d', { output: 'later' }),
        step('a', { output: 'x', depends_on: ['first'], prompt: '{{later}}', condition: '{{left}} != ""' }),
        step('b', { output: 'own', input: '{{own}}' }),
      ],
    });
    expect(problems.map((p) => [p.step, p.code])).toEqual([
      ['left', 'unknown_reference'],
      ['x', 'unknown_reference'],
      ['x', 'unknown_reference'],
      ['own', 'unknown_reference'],
    ]);
    expect(problems[0]?.message).toMatch(/'right'.*does not run before/);
    expect(problems[1]?.message).toMatch(/prompt.*'later'.*does not run before/);
    expect(problems[2]?.message).toMatch(/condition.*'left'/);
  });

  it('{{instance}} only inside a parallel_count step\'s prompt and input', () => {
    expect(() => compileWorkflow({ name: 'i', steps: [step('a', { parallel_count: 2, prompt: 'n {{instance}}', input: '{{instance}}' })] }, known)).not.toThrow();
    const problems = problemsOf({
      name: 'i',
      output: '{{instance}}',
      steps: [step('a', { prompt: 'n {{instance}}' }), step('b', { parallel_count: 2, condition: 'instance == 0' })],
    });
    expect(problems.map((p) => [p.step, p.code])).toEqual([
      ['a', 'unknown_reference'],
      ['b', 'unknown_reference'],
      [null, 'unknown_reference'],
    ]);
  });

  it('the workflow output may reference any step, and only steps', () => {
    const workflow = compileWorkflow({ name: 'o', output: '{{a}} / {{b.x}} / {{input}}', steps: [step('a'), step('b')] }, known);
    expect(workflow.output).toBe('{{a}} / {{b.x}} / {{input}}');
    const problems = problemsOf({ name: 'o', output: '{{nobody}}', steps: [step('a')] });
    expect(problems).toEqual([{ step: null, code: 'unknown_reference', message: expect.stringContaining('nobody') }]);
  });

  it('condition references are checked too, not counting macro variables', () => {
    expect(() =>
      compileWorkflow(
        { name: 'c', steps: [step('a', { output: 'review' }), step('b', { condition: 'review.tags.exists(t, t == "bug") && input != ""' })] },
        known,
      ),
    ).not.toThrow();
    const problems = problemsOf({ name: 'c', steps: [step('a', { output: 'review' }), step('b', { condition: 'review.score < limit' })] });
    expect(problems).toEqual([{ step: 'b', code: 'unknown_reference', message: expect.stringContaining("'limit'") }]);
  });
});

describe('templates and conditions that do not parse', () => {
  it('invalid_template for prompt, input and output', () => {
    const problems = problemsOf({
      name: 't',
      output: '{{a',
      steps: [step('a', { prompt: 'x {{}} y' }), step('b', { input: '{{ a..b }}' })],
    });
    expect(problems.map((p) => [p.step, p.code])).toEqual([
      ['a', 'invalid_template'],
      ['b', 'invalid_template'],
      [null, 'invalid_template'],
    ]);
  });

  it('invalid_condition with the position', () => {
    const problems = problemsOf({ name: 'c', steps: [step('a', { output: 'r' }), step('b', { condition: 'r.score < ' })] });
    expect(problems).toEqual([{ step: 'b', code: 'invalid_condition', message: expect.stringMatching(/column 11/) }]);
  });
});

describe('agents', () => {
  it('every agent and fallback must exist', () => {
    const problems = problemsOf({
      name: 'ag',
      steps: [step('a', { fallback: 'nobody' }), step('ghost', { fallback: ['b', 'phantom'] })],
    });
    expect(problems.map((p) => [p.step, p.code, p.message])).toEqual([
      ['a', 'unknown_agent', expect.stringContaining("'nobody'")],
      ['ghost', 'unknown_agent', expect.stringContaining("'ghost'")],
      ['ghost', 'unknown_agent', expect.stringContaining("'phantom'")],
    ]);
  });

  it('without isKnownAgent, agents are not checked', () => {
    expect(() => compileWorkflow({ name: 'x', steps: [step('anyone')] })).not.toThrow();
  });

  it('fallback is normalized to a list', () => {
    const workflow = compileWorkflow({ name: 'f', steps: [step('a', { fallback: 'b' }), step('a', { fallback: ['c', 'd'] })] }, known);
    expect(workflow.steps.map((s) => s.fallback)).toEqual([['b'], ['c', 'd']]);
  });
});

describe('limits', () => {
  it('too many steps', () => {
    const steps = Array.from({ length: 4 }, (_, i) => step('a', { id: `s${i}` }));
    expect(() => compileWorkflow({ name: 'x', steps }, { ...known, limits: { maxSteps: 4 } })).not.toThrow();
    const problems = problemsOf({ name: 'x', steps: [...steps, step('a', { id: 's4' })] }, { ...known, limits: { maxSteps: 4 } });
    expect(problems).toEqual([{ step: null, code: 'limit_exceeded', message: expect.stringMatching(/5 steps.*at most 4/) }]);
  });

  it('the default step limit is 200 and a parallel_count step counts once', () => {
    const steps = Array.from({ length: 200 }, (_, i) => step('a', { id: `s${i}`, parallel_count: 2 }));
    expect(compileWorkflow({ name: 'x', steps }, known).steps).toHaveLength(200);
    expect(problemsOf({ name: 'x', steps: [...steps, step('a')] })[0]?.code).toBe('limit_exceeded');
  });

  it('parallel_count over the limit', () => {
    expect(() => compileWorkflow({ name: 'x', steps: [step('a', { parallel_count: 1000 })] }, known)).not.toThrow();
    expect(problemsOf({ name: 'x', steps: [step('a', { parallel_count: 1001 })] })).toEqual([
      { step: 'a', code: 'limit_exceeded', message: expect.stringContaining('1000') },
    ]);
    expect(problemsOf({ name: 'x', steps: [step('a', { parallel_count: 6 })] }, { ...known, limits: { maxParallelCount: 5 } })[0]?.code).toBe(
      'limit_exceeded',
    );
  });

  it('nesting depth', () => {
    const nest = (levels: number): unknown => (levels === 0 ? step('a') : { parallel: [nest(levels - 1)] });
    expect(() => compileWorkflow({ name: 'x', steps: [nest(8)] }, known)).not.toThrow();
    expect(problemsOf({ name: 'x', steps: [nest(9)] })).toEqual([
      { step: null, code: 'limit_exceeded', message: expect.stringContaining('nested deeper than 8') },
    ]);
    expect(problemsOf({ name: 'x', steps: [{ steps: [{ steps: [step('a')] }] }] }, { ...known, limits: { maxDepth: 1 } })[0]?.code).toBe(
      'limit_exceeded',
    );
  });

  it('template, condition and output size', () => {
    const limits = { maxTemplateBytes: 10 };
    const problems = problemsOf(
      {
        name: 'x',
        output: '{{input}} and more',
        steps: [step('a', { prompt: 'é'.repeat(6), input: 'short' }), step('b', { condition: 'input != "long enough"' })],
      },
      { ...known, limits },
    );
    expect(problems.map((p) => [p.step, p.code])).toEqual([
      ['a', 'limit_exceeded'],
      ['b', 'limit_exceeded'],
      [null, 'limit_exceeded'],
    ]);
    expect(problems[0]?.message).toMatch(/12 bytes/);
  });
});

describe('all problems at once', () => {
  it('collects every semantic problem, each with its step, and counts them in the message', () => {
    let caught: EnsembleError | undefined;
    try {
      compileWorkflow(
        {
          name: 'broken',
          output: '{{missing}}',
          steps: [
            step('ghost', { output: 'first' }),
            step('a', { output: 'first' }),
            step('b', { id: 'loop', depends_on: ['loop'] }),
            step('c', { prompt: '{{nowhere}}', condition: '&& x' }),
            step('d', { parallel_count: 5000, input: '{{ x y }}', depends_on: ['unknown'] }),
          ],
        },
        known,
      );
    } catch (error) {
      caught = error as EnsembleError;
    }
    expect(caught).toBeInstanceOf(EnsembleError);
    const problems = caught?.details as WorkflowProblem[];
    expect(problems.map((p) => [p.step, p.code])).toEqual([
      ['first', 'unknown_agent'],
      ['first', 'duplicate_output'],
      ['loop', 'cycle'],
      ['c', 'unknown_reference'],
      ['c', 'invalid_condition'],
      ['d', 'unknown_step'],
      ['d', 'limit_exceeded'],
      ['d', 'invalid_template'],
      [null, 'unknown_reference'],
    ]);
    expect(caught?.message).toBe(`9 problems: ${problems[0]?.message}`);
    expect(caught?.status).toBe(422);
  });

  it('one problem is "1 problem"', () => {
    try {
      compileWorkflow({ name: 'x', steps: [step('nobody')] }, known);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(/^1 problem: /);
    }
  });
});

describe('shape', () => {
  it('accepts `workflow` or `name` in either form', () => {
    expect(compileWorkflow({ workflow: 'w', steps: [step('a')] }, known).name).toBe('w');
    expect(yaml('name: n\nsteps:\n  - agent: a\n').name).toBe('n');
    expect(compileWorkflow({ workflow: 'same', name: 'same', steps: [step('a')] }, known).name).toBe('same');
  });

  it('refuses unknown fields, with their path', () => {
    expect(shapeIssuesOf({ name: 'x', steps: [{ parallel: [step('a', { retry: { attempts: 2, tries: 3 } })] }], extra: 1 })).toEqual([
      { path: 'extra', message: 'unknown field `extra`' },
      { path: 'steps.0.parallel.0.retry.tries', message: 'unknown field `tries`' },
    ]);
  });

  it('reports every issue with its path', () => {
    const issues = shapeIssuesOf({
      steps: [
        step('a', { retry: { attempts: 0 }, timeout_ms: -1, on_error: 'explode' }),
        { parallel: [step('b', { parallel_count: 1.5 }), { agent: 3 }, 'text'] },
        { steps: [] },
        { id: 'no-agent' },
        step('c', { prompt: 'x', prompt_template: 'y' }),
        step('d', { output: 'input' }),
        step('d', { id: 'has space' }),
        step('d', { schema: [1] }),
        step('d', { fallback: 3 }),
      ],
    });
    const paths = issues.map((i) => i.path);
    expect(paths).toEqual([
      'workflow',
      'steps.0.retry.attempts',
      'steps.0.timeout_ms',
      'steps.0.on_error',
      'steps.1.parallel.0.parallel_count',
      'steps.1.parallel.1.agent',
      'steps.1.parallel.2',
      'steps.2.steps',
      'steps.3',
      'steps.4.prompt_template',
      'steps.5.output',
      'steps.6.id',
      'steps.7.schema',
      'steps.8.fallback',
    ]);
  });

  it('a YAML document\'s shape errors carry the path into nested blocks', () => {
    const doc = parseWorkflowSource(
      'workflow: x\nsteps:\n  - agent: a\n  - parallel:\n      - agent: b\n        retry: {attempts: two}\n',
      'yaml',
    );
    expect(shapeIssuesOf(doc)).toEqual([{ path: 'steps.1.parallel.0.retry.attempts', message: expect.any(String) }]);
  });

  it('parallel_count must be an integer of at least 1', () => {
    for (const bad of [0, -1, 2.5, '3']) {
      expect(shapeIssuesOf({ name: 'x', steps: [step('a', { parallel_count: bad })] })[0]?.path).toBe('steps.0.parallel_count');
    }
  });

  it('needs a document with steps', () => {
    expect(shapeIssuesOf(null)).toEqual([{ path: '', message: expect.any(String) }]);
    expect(shapeIssuesOf([])).toEqual([{ path: '', message: expect.any(String) }]);
    expect(shapeIssuesOf({ name: 'x' })).toEqual([{ path: 'steps', message: 'required' }]);
    expect(shapeIssuesOf({ name: 'x', steps: [] })[0]?.path).toBe('steps');
  });

  it('workflow and name must agree', () => {
    expect(shapeIssuesOf({ workflow: 'a', name: 'b', steps: [step('a')] })).toEqual([{ path: 'name', message: expect.any(String) }]);
  });

  it('an agent step\'s parallel lists ids, not steps', () => {
    expect(shapeIssuesOf({ name: 'x', steps: [step('a', { parallel: [step('b')] })] })[0]).toEqual({
      path: 'steps.0.parallel.0',
      message: expect.stringContaining('lists step ids'),
    });
  });
});

describe('compiled steps', () => {
  it('carries every field with its defaults', () => {
    const workflow = compileWorkflow(
      {
        name: 'full',
        description: 'everything',
        trigger: 'chat',
        steps: [
          step('a', {
            id: 'one',
            output: 'result',
            action: 'do',
            prompt_template: 'P {{input}}',
            condition: 'input != ""',
            retry: { attempts: 3, backoff_ms: 10, max_backoff_ms: 100 },
            timeout_ms: 5000,
            fallback: ['b'],
            on_error: 'continue',
            schema: { type: 'object', properties: { ok: { type: 'boolean' } } },
          }),
          step('b', { retry: { attempts: 2 } }),
        ],
      },
      known,
    );
    expect(workflow).toEqual({
      name: 'full',
      description: 'everything',
      trigger: 'chat',
      steps: [
        {
          id: 'one',
          output: 'result',
          agent: 'a',
          action: 'do',
          prompt: 'P {{input}}',
          condition: 'input != ""',
          dependsOn: [],
          retry: { attempts: 3, backoffMs: 10, maxBackoffMs: 100 },
          timeoutMs: 5000,
          fallback: ['b'],
          onError: 'continue',
          schema: { type: 'object', properties: { ok: { type: 'boolean' } } },
          index: 0,
        },
        {
          id: 'b',
          output: 'b',
          agent: 'b',
          dependsOn: ['one'],
          retry: { attempts: 2, backoffMs: 1000, maxBackoffMs: 30000 },
          fallback: [],
          onError: 'fail',
          index: 1,
        },
      ],
    });
  });
});
