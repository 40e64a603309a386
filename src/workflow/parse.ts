/**
 * Workflow sources: the YAML or JSON text of a workflow document, turned into plain data for
 * compileWorkflow. Syntax errors are `400 invalid_request` with every error's line and column.
 */
import { parseDocument } from 'yaml';
import { EnsembleError } from '../core/errors.ts';

/** One syntax error, as listed in the error's details. */
export interface SourceProblem {
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** Aliases one document may expand; a few are fine, "billion laughs" is not. */
const MAX_ALIAS_COUNT = 100;

function malformed(kind: 'YAML' | 'JSON', problems: SourceProblem[], cause?: unknown): EnsembleError {
  const first = problems[0] ?? { path: '', message: 'unreadable document' };
  const where = first.line === undefined ? '' : ` (line ${first.line}, column ${first.column ?? 1})`;
  return new EnsembleError('invalid_request', `Malformed ${kind}: ${first.message}${where}`, problems, { cause });
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.max(0, Math.min(offset, text.length));
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

/** yaml's pretty messages end in " at line L, column C:\n\n<excerpt>"; keep the sentence. */
function plainYamlMessage(message: string): string {
  const cut = /\s+at line \d+, column \d+:?[\s\S]*$/.exec(message);
  return (cut ? message.slice(0, cut.index) : message).trim();
}

function parseYaml(text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, strict: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((error): SourceProblem => {
      const at = error.linePos?.[0];
      let message = plainYamlMessage(error.message);
      if (error.code === 'MULTIPLE_DOCS') message = 'a workflow is one YAML document, and this source holds several';
      else if (/call stack/i.test(message)) message = 'the document is nested too deeply';
      return at ? { path: '', message, line: at.line, column: at.col } : { path: '', message };
    });
    throw malformed('YAML', problems);
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // Too many aliases, an alias to no anchor, or nesting too deep to convert.
    const message =
      error instanceof RangeError
        ? 'the document is nested too deeply'
        : error instanceof Error
          ? error.message
          : String(error);
    throw malformed('YAML', [{ path: '', message }], error);
  }
}

/**
 * Where a JSON text stops being JSON (JSON.parse does not always say). A small iterative
 * scanner, run only after JSON.parse has failed.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const n = text.length;
  const ws = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const literal = (word: string): boolean => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return true;
    }
    return false;
  };
  const string = (): boolean => {
    // at '"'
    i++;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
            i++;
            return false;
          }
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else {
          i++;
          return false;
        }
      } else {
        i++;
      }
    }
    return false;
  };
  const number = (): boolean => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '' || m[0] === '-') return false;
    i += m[0].length;
    return true;
  };
  // Stack of containers: '{' or '['; `expect` what may come next.
  const stack: string[] = [];
  type Expect = 'value' | 'key' | 'keyOrEnd' | 'valueOrEnd' | 'colon' | 'commaOrEnd';
  let expect: Expect = 'value';
  for (;;) {
    ws();
    if (i >= n) return stack.length === 0 && expect === 'commaOrEnd' ? -1 : n;
    const c = text[i];
    switch (expect) {
      case 'value':
      case 'valueOrEnd': {
        if (expect === 'valueOrEnd' && c === ']') {
          i++;
          stack.pop();
          expect = 'commaOrEnd';
          break;
        }
        if (c === '{') {
          i++;
          stack.push('{');
          expect = 'keyOrEnd';
        } else if (c === '[') {
          i++;
          stack.push('[');
          expect = 'valueOrEnd';
        } else if (c === '"') {
          const start = i;
          if (!string()) return i >= n ? start : i;
          expect = 'commaOrEnd';
        } else if (c === 't' || c === 'f' || c === 'n') {
          if (!literal('true') && !literal('false') && !literal('null')) return i;
          expect = 'commaOrEnd';
        } else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
          if (!number()) return i;
          expect = 'commaOrEnd';
        } else {
          return i;
        }
        break;
      }
      case 'key':
      case 'keyOrEnd': {
        if (expect === 'keyOrEnd' && c === '}') {
          i++;
          stack.pop();
          expect = 'commaOrEnd';
          break;
        }
        if (c !== '"') return i;
        const start = i;
        if (!string()) return i >= n ? start : i;
        expect = 'colon';
        break;
      }
      case 'colon':
        if (c !== ':') return i;
        i++;
        expect = 'value';
        break;
      case 'commaOrEnd': {
        const top = stack[stack.length - 1];
        if (top === undefined) return i; // text after the document
        if (c === ',') {
          i++;
          expect = top === '{' ? 'key' : 'value';
        } else if ((c === '}' && top === '{') || (c === ']' && top === '[')) {
          i++;
          stack.pop();
          expect = 'commaOrEnd';
        } else {
          return i;
        }
        break;
      }
    }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const raw = error instanceof Error ? error.message : String(error);
    // V8 sometimes says "... at position N (line L column C)"; our scanner always knows.
    const message = raw
      .replace(/\s*(in JSON )?at position \d+( \(line \d+ column \d+\))?$/, '')
      .replace(/^(Unexpected token .+?), "[\s\S]*" is not valid JSON$/, '$1')
      .trim();
    const stated = /at position (\d+)/.exec(raw);
    let offset = stated ? Number(stated[1]) : jsonErrorOffset(text);
    if (offset < 0) offset = text.length;
    const { line, column } = lineAndColumn(text, offset);
    throw malformed('JSON', [{ path: '', message, line, column }], error);
  }
}

/**
 * Parses a workflow document. Throws `invalid_request` when the text is not well-formed:
 * every YAML error with its line and column; JSON's first error with its line and column.
 * YAML: one document only, at most 100 alias expansions, unique keys.
 */
export function parseWorkflowSource(text: string, format: 'yaml' | 'json'): unknown {
  return format === 'json' ? parseJson(text) : parseYaml(text);
}
