/**
 * Templates: text with `{{ reference }}` holes. A reference is a root name followed by any number
 * of `.field` and `[index]` accesses: `{{input}}`, `{{context.key}}`, `{{analysis}}`,
 * `{{review.comments[0].line}}`, `{{instance}}`.
 *
 * Rendering reads own properties only (never a prototype), and a missing or null value renders
 * as the empty string.
 */
import { EnsembleError } from '../core/errors.ts';
import type { TemplateScope } from './types.ts';

/** One access after the root: a field name (`.field`) or a list index (`[2]`). */
export type PathSegment = { kind: 'field'; name: string } | { kind: 'index'; index: number };

export interface TemplateReference {
  /** The name the reference starts with: `input`, `context`, `instance` or a step's output/id. */
  root: string;
  path: PathSegment[];
}

export type TemplatePart =
  | { kind: 'text'; text: string }
  | ({ kind: 'ref'; /** The reference as written, braces included. */ source: string } & TemplateReference);

/** A malformed template: unclosed or empty `{{ }}`, or a reference that is not a path. */
export class TemplateError extends EnsembleError {
  /** Offset (0-based, in UTF-16 code units) of the `{{` at fault. */
  readonly offset: number;

  constructor(message: string, offset: number) {
    super('invalid_workflow', message, { offset });
    this.name = 'TemplateError';
    this.offset = offset;
  }
}

/** Names: step ids and outputs, agent-derived ids (`claude-leader`), field names. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
const DIGITS = /^[0-9]+$/;

/**
 * Parses the inside of `{{ }}` (already trimmed) into a reference.
 * Returns an error message instead when it is not a valid path.
 */
export function parseReference(text: string): TemplateReference | string {
  if (text === '') return 'empty reference';
  let i = 0;
  const readName = (): string | undefined => {
    const start = i;
    while (i < text.length && /[A-Za-z0-9_-]/.test(text[i] ?? '')) i++;
    const name = text.slice(start, i);
    return NAME.test(name) ? name : undefined;
  };
  const root = readName();
  if (root === undefined) return `'${text}' is not a reference (expected a name such as input, context.key or step.field[0])`;
  const path: PathSegment[] = [];
  while (i < text.length) {
    const c = text[i];
    if (c === '.') {
      i++;
      const name = readName();
      if (name === undefined) return `'${text}': expected a field name after '.'`;
      path.push({ kind: 'field', name });
    } else if (c === '[') {
      i++;
      const start = i;
      while (i < text.length && /[0-9]/.test(text[i] ?? '')) i++;
      const digits = text.slice(start, i);
      if (!DIGITS.test(digits) || text[i] !== ']') return `'${text}': expected a list index such as [0]`;
      i++;
      const index = Number(digits);
      if (!Number.isSafeInteger(index)) return `'${text}': list index too large`;
      path.push({ kind: 'index', index });
    } else {
      return `'${text}': unexpected '${c ?? ''}' (a reference is name(.field|[index])*, with no spaces or operators)`;
    }
  }
  return { root, path };
}

/** Parsed templates, oldest first; bounded in entries and in cached source size. */
const CACHE_ENTRIES = 1000;
const CACHE_CHARS = 4 * 1024 * 1024;
const cache = new Map<string, readonly TemplatePart[]>();
let cachedChars = 0;

function remember(source: string, parts: readonly TemplatePart[]): void {
  if (source.length > CACHE_CHARS) return;
  while (cache.size > 0 && (cache.size >= CACHE_ENTRIES || cachedChars + source.length > CACHE_CHARS)) {
    const oldest = cache.keys().next();
    if (oldest.done) break;
    cache.delete(oldest.value);
    cachedChars -= oldest.value.length;
  }
  cache.set(source, parts);
  cachedChars += source.length;
}

/** `line L, column C` (1-based) of an offset in a text. */
export function lineColumn(source: string, offset: number): string {
  let line = 1;
  let column = 1;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source[i] === '\n') {
      line++;
      column = 1;
    } else {
      column++;
    }
  }
  return `line ${line}, column ${column}`;
}

function parseUncached(source: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let pos = 0;
  while (pos < source.length) {
    const open = source.indexOf('{{', pos);
    if (open < 0) break;
    const close = source.indexOf('}}', open + 2);
    if (close < 0) throw new TemplateError(`Unclosed '{{' at ${lineColumn(source, open)}`, open);
    const inner = source.slice(open + 2, close);
    if (inner.includes('{{')) {
      throw new TemplateError(`Unclosed '{{' at ${lineColumn(source, open)}`, open);
    }
    const ref = parseReference(inner.trim());
    if (typeof ref === 'string') {
      throw new TemplateError(`Invalid reference at ${lineColumn(source, open)}: ${ref}`, open);
    }
    if (open > pos) parts.push({ kind: 'text', text: source.slice(pos, open) });
    parts.push({ kind: 'ref', source: source.slice(open, close + 2), root: ref.root, path: ref.path });
    pos = close + 2;
  }
  if (pos < source.length) parts.push({ kind: 'text', text: source.slice(pos) });
  return parts;
}

/**
 * Splits a template into text and references. Throws a TemplateError when a `{{` is unclosed,
 * empty or holds something that is not a reference path. Results are cached (bounded).
 */
export function parseTemplate(source: string): TemplatePart[] {
  return [...cachedParts(source)];
}

function cachedParts(source: string): readonly TemplatePart[] {
  let parts = cache.get(source);
  if (parts === undefined) {
    parts = Object.freeze(parseUncached(source).map((part) => Object.freeze(part)));
    remember(source, parts);
  }
  return parts;
}

/** Root names the template references, each once, in order of first use. */
export function templateReferences(source: string): string[] {
  const roots = new Set<string>();
  for (const part of cachedParts(source)) if (part.kind === 'ref') roots.add(part.root);
  return [...roots];
}

function isObjectLike(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

/** The own property `key` of `value`, or undefined. Never reads a prototype. */
function ownProperty(value: unknown, key: string): unknown {
  if (!isObjectLike(value) || !Object.hasOwn(value, key)) return undefined;
  return (value as Record<string, unknown>)[key];
}

/** The root value a reference starts from: input, context, instance or a step's output. */
export function resolveRoot(scope: TemplateScope, root: string): unknown {
  switch (root) {
    case 'input':
      return scope.input;
    case 'context':
      return scope.context;
    case 'instance':
      return scope.instance;
    default:
      return ownProperty(scope.outputs, root);
  }
}

/** Follows a path from a value; undefined as soon as a step is missing. */
export function resolvePath(value: unknown, path: readonly PathSegment[]): unknown {
  let current = value;
  for (const segment of path) {
    if (current === undefined || current === null) return undefined;
    if (Array.isArray(current)) {
      const index = segment.kind === 'index' ? segment.index : DIGITS.test(segment.name) ? Number(segment.name) : -1;
      if (index >= 0) {
        current = index < current.length ? (current[index] as unknown) : undefined;
        continue;
      }
      if (segment.kind === 'index') return undefined;
    }
    if (segment.kind === 'index') {
      current = ownProperty(current, String(segment.index));
    } else {
      current = ownProperty(current, segment.name);
    }
  }
  return current;
}

/** The value a reference names in the scope (undefined when missing). */
export function resolveReference(scope: TemplateScope, ref: TemplateReference): unknown {
  // `{{name.history}}`: every iteration's result of a loop body output.
  const [first, ...rest] = ref.path;
  const history = scope.histories && Object.hasOwn(scope.histories, ref.root) ? scope.histories[ref.root] : undefined;
  if (history && first?.kind === 'field' && first.name === 'history') return resolvePath(history, rest);
  return resolvePath(resolveRoot(scope, ref.root), ref.path);
}

/** How a value is written into a template. */
export function formatValue(value: unknown): string {
  if (value === undefined || value === null) return '';
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'object':
      try {
        return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? '';
      } catch {
        return '';
      }
    default:
      return '';
  }
}

/** Renders a template against a scope. Throws a TemplateError only if the template is malformed. */
export function renderTemplate(source: string, scope: TemplateScope): string {
  let out = '';
  for (const part of cachedParts(source)) {
    out += part.kind === 'text' ? part.text : formatValue(resolveReference(scope, part));
  }
  return out;
}
