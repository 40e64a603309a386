import { describe, it, expect } from 'vitest';
import { compileCondition, ConditionError, isTruthy } from '../../src/workflow/condition.ts';
import type { TemplateScope } from '../../src/workflow/types.ts';

function scopeWith(outputs: Record<string, unknown>, extra: Partial<TemplateScope> = {}): TemplateScope {
  return { input: 'please review', context: { threshold: 7, env: 'prod' }, outputs, ...extra };
}

const review = { needs_changes: true, score: 5, approved: false, comments: 'rename x', tags: ['style', 'bug'] };

function value(source: string, scope: TemplateScope): boolean {
  const result = compileCondition(source).evaluate(scope);
  if (!result.ok) throw new Error(`condition failed: ${result.error}`);
  return result.value;
}

describe('conditions: {{x}} alone means "x is truthy"', () => {
  it('follows the reviewer\'s structured answer', () => {
    expect(value('{{review.needs_changes}}', scopeWith({ review }))).toBe(true);
    expect(value('{{review.needs_changes}}', scopeWith({ review: { ...review, needs_changes: false } }))).toBe(false);
    expect(value('  {{ review.needs_changes }}  ', scopeWith({ review }))).toBe(true);
  });

  it('uses JavaScript-like truthiness', () => {
    const cases: Array<[unknown, boolean]> = [
      ['text', true],
      ['', false],
      [1, true],
      [0, false],
      [-2.5, true],
      [Number.NaN, false],
      [true, true],
      [false, false],
      [[1], true],
      [[], false],
      [{ a: 1 }, true],
      [{}, false],
      [null, false],
    ];
    for (const [x, expected] of cases) expect(value('{{x}}', scopeWith({ x })), JSON.stringify(x)).toBe(expected);
  });

  it('treats a missing value or a skipped step as false', () => {
    expect(value('{{review.nope}}', scopeWith({ review }))).toBe(false);
    expect(value('{{review.needs_changes}}', scopeWith({ review: null }))).toBe(false);
    expect(value('{{review.needs_changes}}', scopeWith({ review: 'plain text answer' }))).toBe(false);
    expect(value('{{review.needs_changes}}', scopeWith({}))).toBe(false);
  });

  it('reports the root it references', () => {
    expect(compileCondition('{{review.needs_changes}}').references).toEqual(['review']);
  });

  it('never reads prototypes', () => {
    expect(value('{{review.constructor}}', scopeWith({ review }))).toBe(false);
    expect(value('{{review.__proto__}}', scopeWith({ review }))).toBe(false);
    expect(value('{{toString}}', scopeWith({ review }))).toBe(false);
  });
});

describe('conditions: CEL expressions', () => {
  it('evaluates comparisons and boolean logic over step outputs', () => {
    const s = scopeWith({ review });
    expect(value('review.score < 7 && !review.approved', s)).toBe(true);
    expect(value('review.score < 7 && !review.approved', scopeWith({ review: { ...review, approved: true } }))).toBe(false);
    expect(value('review.score >= 7 || review.approved', s)).toBe(false);
    expect(value('{{review.score}} < 7', s)).toBe(true);
    expect(value('{{review.score}} < context.threshold', s)).toBe(true);
    expect(value('review.score == 5', s)).toBe(true);
    expect(value('review.score + 1 == 6 && 10 - review.score == 5', s)).toBe(true);
    expect(value('review.tags.exists(t, t == "bug")', s)).toBe(true);
    expect(value('review.tags.all(t, t.size() > 3)', s)).toBe(false);
    expect(value('size(review.tags) == 2 && "style" in review.tags', s)).toBe(true);
    expect(value('input.contains("review") && context.env == "prod"', s)).toBe(true);
    expect(value('has(review.score) && !has(review.nope)', s)).toBe(true);
  });

  it('reaches hyphenated step names through {{ }}', () => {
    const s = scopeWith({ 'claude-reviewer': { score: 9 } });
    expect(value('{{claude-reviewer.score}} > 8', s)).toBe(true);
    expect(compileCondition('{{claude-reviewer.score}} > 8').references).toEqual(['claude-reviewer']);
  });

  it('sees skipped steps as null', () => {
    expect(value('review == null', scopeWith({ review: null }))).toBe(true);
  });

  it('judges a non-boolean result by truthiness', () => {
    expect(value('review.comments', scopeWith({ review }))).toBe(true);
    expect(value('review.score - 5', scopeWith({ review }))).toBe(false);
    expect(value('review.tags.filter(t, t == "none")', scopeWith({ review }))).toBe(false);
  });

  it('knows instance only when the scope has one', () => {
    expect(value('instance == 1', scopeWith({}, { instance: 1 }))).toBe(true);
    expect(value('instance % 2 == 0', scopeWith({}, { instance: 4 }))).toBe(true);
    expect(compileCondition('instance == 1').evaluate(scopeWith({}))).toMatchObject({ ok: false });
  });

  it('returns ok:false with the reason on a runtime error', () => {
    const result = compileCondition('review.nope == 1').evaluate(scopeWith({ review }));
    expect(result).toEqual({ ok: false, error: expect.stringMatching(/No such key: nope/) });
    const missing = compileCondition('ghost.x > 1').evaluate(scopeWith({ review }));
    expect(missing).toEqual({ ok: false, error: expect.stringMatching(/ghost/) });
    const types = compileCondition('review.comments > 1').evaluate(scopeWith({ review }));
    expect(types.ok).toBe(false);
  });

  it('never reads prototypes', () => {
    for (const probe of ['review.constructor', 'review.__proto__ == null', 'review.toString', 'review.tags.constructor']) {
      const result = compileCondition(probe).evaluate(scopeWith({ review }));
      expect(result.ok, probe).toBe(false);
    }
  });
});

describe('compileCondition: references', () => {
  it('lists root identifiers once, in order', () => {
    expect(compileCondition('review.score < context.threshold && fixes != "" && review.approved').references).toEqual([
      'review',
      'context',
      'fixes',
    ]);
  });

  it('leaves out macro-bound variables but keeps what the macro reads', () => {
    expect(compileCondition('findings.exists(f, f.contains(needle) && f != other)').references).toEqual(['findings', 'needle', 'other']);
    expect(compileCondition('a.all(x, b.exists(y, x == y)) && x').references).toEqual(['a', 'b', 'x']);
    expect(compileCondition('items.map(i, i.score).filter(s, s > limit).size() > 0').references).toEqual(['items', 'limit']);
    expect(compileCondition('cel.bind(n, review.score, n > 3)').references).toEqual(['review']);
  });

  it('leaves out CEL\'s own names', () => {
    expect(compileCondition('type(review.score) == double || type(review.score) == int').references).toEqual(['review']);
  });
});

describe('compileCondition: errors', () => {
  it('throws ConditionError with the position when it does not parse', () => {
    let caught: unknown;
    try {
      compileCondition('review.score < ');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConditionError);
    expect((caught as ConditionError).message).toMatch(/line 1, column 16/);
    expect((caught as ConditionError).code).toBe('invalid_workflow');
  });

  it('maps positions back through {{ }} rewriting', () => {
    expect(() => compileCondition('{{review.score}} && && x')).toThrow(/column 21/);
  });

  it('rejects empty conditions, bad references and literal type errors', () => {
    expect(() => compileCondition('   ')).toThrow(ConditionError);
    expect(() => compileCondition('{{review.}}')).toThrow(ConditionError);
    expect(() => compileCondition('{{a..b}} == 1')).toThrow(ConditionError);
    expect(() => compileCondition('"a" + 1 == 2')).toThrow(ConditionError);
    expect(() => compileCondition('review.score <> 7')).toThrow(ConditionError);
  });
});

describe('isTruthy', () => {
  it('handles CEL results too (bigint, Map)', () => {
    expect(isTruthy(0n)).toBe(false);
    expect(isTruthy(3n)).toBe(true);
    expect(isTruthy(new Map())).toBe(false);
    expect(isTruthy(new Map([['a', 1]]))).toBe(true);
    expect(isTruthy(undefined)).toBe(false);
  });
});
