import { describe, it, expect } from 'vitest';
import { parseTemplate, renderTemplate, templateReferences, TemplateError } from '../../src/workflow/template.ts';
import type { TemplateScope } from '../../src/workflow/types.ts';
import { EnsembleError } from '../../src/core/errors.ts';

const scope: TemplateScope = {
  input: 'the task',
  context: { repo: 'acme/api', nested: { deep: [10, 20] } },
  outputs: {
    analysis: 'Looks fine.',
    review: { score: 6, approved: false, comments: [{ line: 3, text: 'rename' }, { line: 9, text: 'test' }] },
    findings: ['a', 'b', 'c'],
    'claude-leader': 'leader says hi',
    count: 0,
    ratio: 1.5,
    flag: true,
    skipped: null,
  },
};

function expectTemplateError(source: string, pattern: RegExp): void {
  let caught: unknown;
  try {
    parseTemplate(source);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(TemplateError);
  expect(caught).toBeInstanceOf(EnsembleError);
  expect((caught as Error).message).toMatch(pattern);
}

describe('parseTemplate', () => {
  it('splits text and references', () => {
    expect(parseTemplate('Review {{ input }} against {{review.comments[1].text}}.')).toEqual([
      { kind: 'text', text: 'Review ' },
      { kind: 'ref', source: '{{ input }}', root: 'input', path: [] },
      { kind: 'text', text: ' against ' },
      {
        kind: 'ref',
        source: '{{review.comments[1].text}}',
        root: 'review',
        path: [
          { kind: 'field', name: 'comments' },
          { kind: 'index', index: 1 },
          { kind: 'field', name: 'text' },
        ],
      },
      { kind: 'text', text: '.' },
    ]);
  });

  it('accepts plain text, hyphenated names and lone closing braces', () => {
    expect(parseTemplate('no references } }} here')).toEqual([{ kind: 'text', text: 'no references } }} here' }]);
    expect(parseTemplate('{{claude-leader}}')[0]).toMatchObject({ root: 'claude-leader', path: [] });
    expect(parseTemplate('')).toEqual([]);
  });

  it('returns a copy: changing it does not change the cached parse', () => {
    const parts = parseTemplate('a {{input}} b');
    parts.length = 0;
    expect(parseTemplate('a {{input}} b')).toHaveLength(3);
  });

  it('rejects an unclosed {{ with its position', () => {
    expectTemplateError('Hello {{input', /Unclosed '\{\{' at line 1, column 7/);
    expectTemplateError('line one\n  {{ a {{b}}', /Unclosed '\{\{' at line 2, column 3/);
  });

  it('rejects an empty reference', () => {
    expectTemplateError('x {{}} y', /empty reference/);
    expectTemplateError('x {{   }} y', /empty reference/);
  });

  it('rejects paths that are not name(.field|[index])*', () => {
    for (const bad of ['{{a b}}', '{{a..b}}', '{{a.}}', '{{.a}}', '{{a[x]}}', '{{a[0}}', '{{a[-1]}}', '{{a + b}}', '{{a["k"]}}', '{{{a}}}']) {
      expectTemplateError(bad, /Invalid reference/);
    }
  });

  it('reports the offset on the error', () => {
    try {
      parseTemplate('abc {{a..b}}');
      expect.unreachable();
    } catch (error) {
      expect((error as TemplateError).offset).toBe(4);
      expect((error as TemplateError).code).toBe('invalid_workflow');
    }
  });
});

describe('templateReferences', () => {
  it('lists each root name once, in order, including input, context and instance', () => {
    expect(templateReferences('{{fixes}} {{ security }} {{fixes.x}} {{input}} {{context.k}} {{instance}}')).toEqual([
      'fixes',
      'security',
      'input',
      'context',
      'instance',
    ]);
    expect(templateReferences('nothing')).toEqual([]);
  });

  it('throws on a malformed template', () => {
    expect(() => templateReferences('{{oops')).toThrow(TemplateError);
  });
});

describe('renderTemplate', () => {
  it('renders input, context, outputs, fields and indexes', () => {
    expect(renderTemplate('{{input}}', scope)).toBe('the task');
    expect(renderTemplate('{{context.repo}}', scope)).toBe('acme/api');
    expect(renderTemplate('{{context.nested.deep[1]}}', scope)).toBe('20');
    expect(renderTemplate('{{analysis}}', scope)).toBe('Looks fine.');
    expect(renderTemplate('{{review.score}}', scope)).toBe('6');
    expect(renderTemplate('{{findings[0]}}{{findings[2]}}', scope)).toBe('ac');
    expect(renderTemplate('{{findings.1}}', scope)).toBe('b');
    expect(renderTemplate('{{review.comments[1].text}}', scope)).toBe('test');
    expect(renderTemplate('{{claude-leader}}', scope)).toBe('leader says hi');
  });

  it('allows whitespace inside the braces', () => {
    expect(renderTemplate('[{{   review.comments[0].line   }}]', scope)).toBe('[3]');
  });

  it('writes numbers and booleans with String(), objects and lists as compact JSON', () => {
    expect(renderTemplate('{{count}} {{ratio}} {{flag}} {{review.approved}}', scope)).toBe('0 1.5 true false');
    expect(renderTemplate('{{findings}}', scope)).toBe('["a","b","c"]');
    expect(renderTemplate('{{review.comments[0]}}', scope)).toBe('{"line":3,"text":"rename"}');
    expect(renderTemplate('{{context}}', scope)).toBe('{"repo":"acme/api","nested":{"deep":[10,20]}}');
  });

  it('renders missing, null and undefined as the empty string', () => {
    expect(renderTemplate('[{{nope}}][{{nope.x[3]}}][{{skipped}}][{{skipped.x}}][{{review.missing}}][{{findings[7]}}]', scope)).toBe(
      '[][][][][][]',
    );
    expect(renderTemplate('[{{analysis.length}}][{{analysis[0]}}]', scope)).toBe('[][]');
  });

  it('renders {{instance}} when set, else empty', () => {
    expect(renderTemplate('Researcher {{instance}}', { ...scope, instance: 2 })).toBe('Researcher 2');
    expect(renderTemplate('Researcher {{instance}}', { ...scope, instance: 0 })).toBe('Researcher 0');
    expect(renderTemplate('Researcher {{instance}}', scope)).toBe('Researcher ');
  });

  it('never reads prototypes', () => {
    const probes = [
      '{{review.__proto__}}',
      '{{review.constructor}}',
      '{{review.constructor.name}}',
      '{{review.toString}}',
      '{{review.hasOwnProperty}}',
      '{{findings.map}}',
      '{{constructor}}',
      '{{__proto__}}',
      '{{toString}}',
      '{{context.__proto__.polluted}}',
      '{{context.constructor.prototype}}',
    ];
    for (const probe of probes) expect(renderTemplate(probe, scope), probe).toBe('');
  });

  it('reads an own property that happens to be named __proto__ (JSON data)', () => {
    const outputs = JSON.parse('{"x": {"__proto__": "own"}}') as Record<string, unknown>;
    expect(renderTemplate('{{x.__proto__}}', { input: '', context: {}, outputs })).toBe('own');
  });

  it('renders the same template many times with different scopes (cache)', () => {
    const template = 'Score: {{review.score}}';
    for (let i = 0; i < 5; i++) {
      expect(renderTemplate(template, { input: '', context: {}, outputs: { review: { score: i } } })).toBe(`Score: ${i}`);
    }
  });

  it('throws TemplateError on a malformed template', () => {
    expect(() => renderTemplate('{{input', scope)).toThrow(TemplateError);
  });
});
