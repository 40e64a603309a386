/**
 * Step conditions: CEL expressions (https://cel.dev) over the names templates know — `input`,
 * `context`, `instance` and every step output — evaluated by @marcbachmann/cel-js, never by eval.
 *
 * - `{{x}}` inside a condition stands for `x`, so `{{review.score}} < 7` works.
 * - A condition that is exactly one `{{x}}` means "x is truthy" (JavaScript-like: a non-empty
 *   string, list or object, a non-zero number, true); a missing value is false.
 * - A full expression whose result is not a boolean is judged by the same truthiness.
 * - JSON numbers are CEL doubles (as in CEL's own JSON mapping); comparisons with int literals work
 *   (`score < 7`), and so does mixed arithmetic (`score + 1`), which this module adds.
 */
import { Environment, type ASTNode } from '@marcbachmann/cel-js';
import { EnsembleError } from '../core/errors.ts';
import { lineColumn, parseReference, resolveReference, resolveRoot, type TemplateReference } from './template.ts';
import type { TemplateScope } from './types.ts';

export type ConditionResult = { ok: true; value: boolean } | { ok: false; error: string };

export interface CompiledCondition {
  /** The condition as written. */
  readonly source: string;
  /** Root names it reads (`input`, `context`, `instance`, step outputs/ids), each once. */
  readonly references: string[];
  /** Never throws: a runtime error (a missing key, a type mismatch) is `{ok: false, error}`. */
  evaluate(scope: TemplateScope): ConditionResult;
}

/** A condition that does not parse (or type-check). */
export class ConditionError extends EnsembleError {
  /** Offset in the source of the fault, when known. */
  readonly offset: number | undefined;

  constructor(message: string, offset?: number) {
    super('invalid_workflow', message, offset === undefined ? undefined : { offset });
    this.name = 'ConditionError';
    this.offset = offset;
  }
}

const env = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });
// CEL has no implicit int/double conversion; JSON numbers are doubles while `1` is an int.
for (const op of ['+', '-', '*', '/'] as const) {
  const apply = (a: number, b: number): number =>
    op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : a / b;
  try {
    env.registerOperator(`double ${op} int: double`, (a: number, b: bigint) => apply(a, Number(b)));
    env.registerOperator(`int ${op} double: double`, (a: bigint, b: number) => apply(Number(a), b));
  } catch {
    // Already known to this version of cel-js: its own overload wins.
  }
}

/** CEL reserved words: not usable as identifiers. */
const CEL_RESERVED = new Set([
  'true', 'false', 'null', 'in', 'as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if',
  'import', 'let', 'loop', 'package', 'namespace', 'return', 'var', 'void', 'while',
]);
const CEL_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

/** A name CEL itself defines (`int`, `string`, `cel`, `google`, …): never a step reference. */
function isBuiltinName(name: string): boolean {
  return env.hasVariable(name);
}

/** Can `name` be written as a bare CEL identifier that means our variable? */
function isPlainIdentifier(name: string): boolean {
  return CEL_IDENT.test(name) && !CEL_RESERVED.has(name) && !isBuiltinName(name);
}

/** JavaScript-like truthiness of a value. */
export function isTruthy(value: unknown): boolean {
  if (value === null || value === undefined) return false;
  switch (typeof value) {
    case 'boolean':
      return value;
    case 'number':
      return value !== 0 && !Number.isNaN(value);
    case 'bigint':
      return value !== 0n;
    case 'string':
      return value.length > 0;
    case 'object': {
      if (Array.isArray(value) || ArrayBuffer.isView(value)) return (value as { length: number }).length > 0;
      if (value instanceof Map || value instanceof Set) return value.size > 0;
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto === Object.prototype || proto === null) return Object.keys(value).length > 0;
      return true;
    }
    default:
      return true;
  }
}

function errorText(error: unknown): string {
  if (error && typeof error === 'object') {
    const summary = (error as { summary?: unknown }).summary;
    if (typeof summary === 'string' && summary !== '') return summary;
    const message = (error as { message?: unknown }).message;
    if (typeof message === 'string') return message.split('\n')[0] ?? message;
  }
  return String(error);
}

function errorOffset(error: unknown): number | undefined {
  if (!error || typeof error !== 'object') return undefined;
  const range = (error as { range?: { start?: unknown } }).range;
  if (range && typeof range.start === 'number') return range.start;
  const node = (error as { node?: { pos?: unknown } }).node;
  if (node && typeof node.pos === 'number') return node.pos;
  return undefined;
}

interface Replacement {
  origStart: number;
  origEnd: number;
  newStart: number;
  newEnd: number;
}

/** Maps an offset in the rewritten expression back to the source as written. */
function originalOffset(replacements: readonly Replacement[], offset: number): number {
  let delta = 0;
  for (const r of replacements) {
    if (offset < r.newStart) break;
    if (offset < r.newEnd) return r.origStart;
    delta = r.origEnd - r.newEnd;
  }
  return offset + delta;
}

/** The CEL text of a `{{reference}}`; roots CEL cannot name directly get an alias variable. */
function celPath(ref: TemplateReference, aliasFor: (root: string) => string): string {
  let text = isPlainIdentifier(ref.root) ? ref.root : aliasFor(ref.root);
  for (const segment of ref.path) {
    if (segment.kind === 'index') text += `[${segment.index}]`;
    else if (/^[0-9]+$/.test(segment.name)) text += `[${segment.name}]`;
    else if (CEL_IDENT.test(segment.name) && !CEL_RESERVED.has(segment.name)) text += `.${segment.name}`;
    else text += `[${JSON.stringify(segment.name)}]`;
  }
  return text;
}

/** Root identifiers an expression reads, minus macro-bound variables and CEL's own names. */
function collectReferences(ast: ASTNode, aliases: ReadonlyMap<string, string>): string[] {
  const found = new Set<string>();
  const isNode = (x: unknown): x is ASTNode =>
    typeof x === 'object' && x !== null && typeof (x as { op?: unknown }).op === 'string' && 'args' in x;
  const visit = (x: unknown, bound: ReadonlySet<string>): void => {
    if (Array.isArray(x)) {
      for (const item of x) visit(item, bound);
      return;
    }
    if (!isNode(x)) return;
    const node = x;
    switch (node.op) {
      case 'value':
        return;
      case 'id': {
        const name = node.args;
        if (bound.has(name)) return;
        const root = aliases.get(name) ?? name;
        if (!aliases.has(name) && isBuiltinName(name)) return;
        found.add(root);
        return;
      }
      case 'rcall': {
        const [name, receiver, args] = node.args;
        const first = args[0];
        if (MACROS.has(name) && args.length >= 2 && first?.op === 'id') {
          visit(receiver, bound);
          const inner = new Set(bound).add(first.args);
          visit(args.slice(1), inner);
          return;
        }
        if (name === 'bind' && receiver.op === 'id' && receiver.args === 'cel' && args.length === 3 && first?.op === 'id') {
          visit(args[1], bound);
          visit(args[2], new Set(bound).add(first.args));
          return;
        }
        visit(receiver, bound);
        visit(args, bound);
        return;
      }
      case 'call':
        visit(node.args[1], bound);
        return;
      default:
        visit(node.args, bound);
    }
  };
  visit(ast, new Set());
  return [...found];
}

/** The values CEL sees for a scope. */
function celContext(scope: TemplateScope, aliases: ReadonlyMap<string, string>): Record<string, unknown> {
  const ctx = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(scope.outputs)) {
    if (isBuiltinName(key)) continue;
    const value = scope.outputs[key];
    ctx[key] = value === undefined ? null : value;
  }
  ctx['input'] = scope.input;
  ctx['context'] = scope.context ?? {};
  if (scope.instance !== undefined) ctx['instance'] = BigInt(scope.instance);
  for (const [alias, root] of aliases) {
    const value = resolveRoot(scope, root);
    if (value !== undefined) ctx[alias] = root === 'instance' ? BigInt(value as number) : value;
  }
  return ctx;
}

function compileUncached(source: string): CompiledCondition {
  const trimmed = source.trim();
  if (trimmed === '') throw new ConditionError('Invalid condition: empty');

  // Exactly one `{{x}}`: "x is truthy".
  const single = /^\{\{([^{}]*)\}\}$/.exec(trimmed);
  if (single) {
    const ref = parseReference((single[1] ?? '').trim());
    if (typeof ref === 'string') throw new ConditionError(`Invalid condition: ${ref}`, source.indexOf('{{'));
    return {
      source,
      references: Object.freeze([ref.root]) as string[],
      evaluate: (scope) => ({ ok: true, value: isTruthy(resolveReference(scope, ref)) }),
    };
  }

  // Rewrite every `{{path}}` into CEL.
  const aliases = new Map<string, string>(); // alias -> root
  const aliasOfRoot = new Map<string, string>();
  const aliasFor = (root: string): string => {
    let alias = aliasOfRoot.get(root);
    if (alias === undefined) {
      let n = aliasOfRoot.size;
      do alias = `_ref${n++}`;
      while (source.includes(alias));
      aliasOfRoot.set(root, alias);
      aliases.set(alias, root);
    }
    return alias;
  };
  const replacements: Replacement[] = [];
  let expression = '';
  let pos = 0;
  for (;;) {
    const open = source.indexOf('{{', pos);
    if (open < 0) break;
    const close = source.indexOf('}}', open + 2);
    if (close < 0) break; // left to CEL (a string literal may hold "{{")
    const ref = parseReference(source.slice(open + 2, close).trim());
    if (typeof ref === 'string') {
      throw new ConditionError(`Invalid condition at ${lineColumn(source, open)}: ${ref}`, open);
    }
    expression += source.slice(pos, open);
    const text = celPath(ref, aliasFor);
    replacements.push({ origStart: open, origEnd: close + 2, newStart: expression.length, newEnd: expression.length + text.length });
    expression += text;
    pos = close + 2;
  }
  expression += source.slice(pos);

  let program: ReturnType<Environment['parse']>;
  try {
    program = env.parse(expression);
  } catch (error) {
    const at = errorOffset(error);
    const offset = at === undefined ? undefined : originalOffset(replacements, at);
    const where = offset === undefined ? '' : ` at ${lineColumn(source, offset)}`;
    throw new ConditionError(`Invalid condition${where}: ${errorText(error)}`, offset);
  }
  const checked = program.check();
  if (!checked.valid) {
    const at = errorOffset(checked.error);
    const offset = at === undefined ? undefined : originalOffset(replacements, at);
    const where = offset === undefined ? '' : ` at ${lineColumn(source, offset)}`;
    throw new ConditionError(`Invalid condition${where}: ${errorText(checked.error)}`, offset);
  }

  const references = collectReferences(program.ast, aliases);
  const unalias = (text: string): string => {
    let out = text;
    for (const [alias, root] of aliases) out = out.split(alias).join(`{{${root}}}`);
    return out;
  };

  return {
    source,
    references: Object.freeze(references) as string[],
    evaluate(scope) {
      try {
        const ctx = celContext(scope, aliases);
        for (const name of references) {
          const key = aliasOfRoot.get(name) ?? name;
          if (!Object.hasOwn(ctx, key)) return { ok: false, error: `'${name}' has no value in this run` };
        }
        const result: unknown = program(ctx);
        if (result instanceof Promise) return { ok: false, error: 'the condition did not evaluate synchronously' };
        return { ok: true, value: typeof result === 'boolean' ? result : isTruthy(result) };
      } catch (error) {
        return { ok: false, error: unalias(errorText(error)) };
      }
    },
  };
}

const CACHE_LIMIT = 1000;
const cache = new Map<string, CompiledCondition>();

/**
 * Compiles a condition. Throws a ConditionError (with the position) when it does not parse or
 * cannot type-check; the result is cached (bounded) since the same condition runs many times.
 */
export function compileCondition(source: string): CompiledCondition {
  let compiled = cache.get(source);
  if (compiled === undefined) {
    compiled = compileUncached(source);
    if (cache.size >= CACHE_LIMIT) {
      const oldest = cache.keys().next();
      if (!oldest.done) cache.delete(oldest.value);
    }
    cache.set(source, compiled);
  }
  return compiled;
}
