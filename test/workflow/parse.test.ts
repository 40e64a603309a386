import { describe, it, expect } from 'vitest';
import { parseWorkflowSource, jsonErrorOffset } from '../../src/workflow/parse.ts';
import { EnsembleError } from '../../src/core/errors.ts';

interface Detail {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

function failure(text: string, format: 'yaml' | 'json'): EnsembleError {
  try {
    parseWorkflowSource(text, format);
  } catch (error) {
    expect(error).toBeInstanceOf(EnsembleError);
    return error as EnsembleError;
  }
  throw new Error('expected a parse error');
}

describe('parseWorkflowSource: YAML', () => {
  it('parses a workflow document', () => {
    const doc = parseWorkflowSource('workflow: pr_review\nsteps:\n  - agent: claude-leader\n    output: analysis\n', 'yaml');
    expect(doc).toEqual({ workflow: 'pr_review', steps: [{ agent: 'claude-leader', output: 'analysis' }] });
  });

  it('reports a syntax error with its line and column, as invalid_request', () => {
    const error = failure('workflow: x\nsteps:\n  - agent: a\n    input: [1, 2\n  - agent: b\n', 'yaml');
    expect(error.code).toBe('invalid_request');
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/^Malformed YAML: .+ \(line \d+, column \d+\)$/);
    const details = error.details as Detail[];
    expect(details.length).toBeGreaterThanOrEqual(1);
    expect(details[0]).toMatchObject({ path: '', line: expect.any(Number), column: expect.any(Number) });
  });

  it('lists every error of the document, not only the first', () => {
    const error = failure('a: {b: 1\n\nc: "x\n', 'yaml');
    const details = error.details as Detail[];
    expect(details).toHaveLength(2);
    expect(details[0]).toMatchObject({ line: 3, column: 1 });
    expect(details[1]).toMatchObject({ line: 4, column: 1, message: expect.stringMatching(/quote/) });
    expect(error.message).toContain('(line 3, column 1)');
    expect(error.message).not.toContain('\n');
  });

  it('rejects duplicate keys with the position of the second one', () => {
    const error = failure('workflow: a\nworkflow: b\nsteps: []\n', 'yaml');
    expect(error.details).toEqual([expect.objectContaining({ line: 2, column: 1, message: expect.stringMatching(/unique/) })]);
  });

  it('rejects several documents in one source', () => {
    const error = failure('workflow: a\nsteps: []\n---\nworkflow: b\n', 'yaml');
    expect(error.message).toMatch(/one YAML document/);
    expect(error.details).toEqual([expect.objectContaining({ line: 3, column: 1 })]);
  });

  it('accepts a few aliases but refuses an alias bomb', () => {
    expect(parseWorkflowSource('base: &r {attempts: 3}\nx: *r\ny: *r\n', 'yaml')).toEqual({
      base: { attempts: 3 },
      x: { attempts: 3 },
      y: { attempts: 3 },
    });
    const bomb = [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
      'f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
    ].join('\n');
    const error = failure(bomb, 'yaml');
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(/alias/i);
  });

  it('refuses an alias to no anchor', () => {
    expect(failure('steps: *nothing\n', 'yaml').message).toMatch(/^Malformed YAML: .*alias/i);
  });

  it('keeps a __proto__ key as plain data', () => {
    const doc = parseWorkflowSource('__proto__: {polluted: true}\n', 'yaml') as Record<string, unknown>;
    expect(Object.hasOwn(doc, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('gives null for an empty document (the compiler then explains what is missing)', () => {
    expect(parseWorkflowSource('', 'yaml')).toBeNull();
  });
});

describe('parseWorkflowSource: JSON', () => {
  it('parses a workflow document', () => {
    expect(parseWorkflowSource('{"name": "x", "steps": [{"agent": "a"}]}', 'json')).toEqual({ name: 'x', steps: [{ agent: 'a' }] });
  });

  it('reports the line and column of a syntax error', () => {
    const error = failure('{\n  "name": "x",\n  "steps": [\n    {"agent": "a",}\n  ]\n}', 'json');
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(/^Malformed JSON: .+ \(line 4, column 19\)$/);
    expect(error.details).toEqual([expect.objectContaining({ path: '', line: 4, column: 19 })]);
  });

  it('locates errors JSON.parse does not place', () => {
    expect(failure('{"a": tru}', 'json').details).toEqual([expect.objectContaining({ line: 1, column: 7 })]);
    expect(failure('{"a": 1', 'json').details).toEqual([expect.objectContaining({ line: 1, column: 8 })]);
    expect(failure('', 'json').details).toEqual([expect.objectContaining({ line: 1, column: 1 })]);
    expect(failure('{"a": 1}\n  x', 'json').details).toEqual([expect.objectContaining({ line: 2, column: 3 })]);
  });

  it('does not echo the document in the message', () => {
    const error = failure('{"secret-ish": "value", "b": }', 'json');
    expect(error.message).not.toContain('value');
  });

  it('jsonErrorOffset agrees that valid JSON has no error', () => {
    expect(jsonErrorOffset('{"a": [1, -2.5e3, true, false, null, "\\u00e9\\n"], "b": {}}')).toBe(-1);
    expect(jsonErrorOffset('[1, 2,]')).toBe(6);
    expect(jsonErrorOffset('{"a" 1}')).toBe(5);
  });
});
