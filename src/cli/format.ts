/**
 * Small terminal helpers for the `ensemble` command: colours (off unless the stream is a
 * terminal, and off with NO_COLOR), widths that ignore escape sequences, and the way numbers,
 * money and times are written.
 */

export interface Style {
  readonly enabled: boolean;
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
  magenta(text: string): string;
}

const wrap = (enabled: boolean, open: number, close: number) => (text: string) => (enabled && text ? `\x1b[${open}m${text}\x1b[${close}m` : text);

export function createStyle(enabled: boolean): Style {
  return {
    enabled,
    bold: wrap(enabled, 1, 22),
    dim: wrap(enabled, 2, 22),
    red: wrap(enabled, 31, 39),
    green: wrap(enabled, 32, 39),
    yellow: wrap(enabled, 33, 39),
    cyan: wrap(enabled, 36, 39),
    magenta: wrap(enabled, 35, 39),
  };
}

/** Colours on this stream? A terminal, unless NO_COLOR is set or TERM is dumb; FORCE_COLOR forces them. */
export function colorEnabled(stream: { isTTY?: boolean }, env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  return Boolean(stream.isTTY) && env.TERM !== 'dumb';
}

// CSI sequences (colours, cursor moves), OSC sequences (titles, links) and lone escapes.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/**
 * Text from a model or a server made safe to print on a terminal: escape sequences and control
 * characters other than newline and tab are removed (a model's answer must not move the cursor
 * or retitle the window).
 */
export function sanitize(text: string): string {
  // eslint-disable-next-line no-control-regex
  return stripAnsi(text).replace(/\r\n?/g, '\n').replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, '');
}

/** One line of text: whitespace runs become one space, control characters go. */
export function oneLine(text: string): string {
  return sanitize(text).replace(/\s+/g, ' ').trim();
}

function charWidth(code: number): number {
  if ((code >= 0x300 && code <= 0x36f) || (code >= 0x200b && code <= 0x200f) || code === 0xfe0f || code === 0x20e3) return 0;
  if (
    (code >= 0x1100 && code <= 0x115f) ||
    (code >= 0x2e80 && code <= 0xa4cf) ||
    (code >= 0xac00 && code <= 0xd7a3) ||
    (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0xfe30 && code <= 0xfe4f) ||
    (code >= 0xff00 && code <= 0xff60) ||
    (code >= 0xffe0 && code <= 0xffe6) ||
    (code >= 0x1f300 && code <= 0x1f64f) ||
    (code >= 0x1f900 && code <= 0x1f9ff) ||
    (code >= 0x20000 && code <= 0x3fffd)
  ) {
    return 2;
  }
  return 1;
}

/** Columns the text takes on a terminal (escape sequences take none, wide characters two). */
export function visibleWidth(text: string): number {
  let width = 0;
  for (const char of stripAnsi(text)) width += charWidth(char.codePointAt(0)!);
  return width;
}

/** Cuts the text to `width` columns, ending with `…` when cut; escape sequences are kept (and closed). */
export function truncate(text: string, width: number): string {
  if (visibleWidth(text) <= width) return text;
  if (width <= 0) return '';
  let out = '';
  let used = 0;
  let styled = false;
  let last = 0;
  const limit = width - 1;
  for (const match of text.matchAll(ANSI)) {
    const plain = text.slice(last, match.index);
    for (const char of plain) {
      const w = charWidth(char.codePointAt(0)!);
      if (used + w > limit) return `${out}…${styled ? '\x1b[0m' : ''}`;
      out += char;
      used += w;
    }
    out += match[0];
    styled = true;
    last = match.index + match[0].length;
  }
  for (const char of text.slice(last)) {
    const w = charWidth(char.codePointAt(0)!);
    if (used + w > limit) break;
    out += char;
    used += w;
  }
  return `${out}…${styled ? '\x1b[0m' : ''}`;
}

/** The last `width` columns of a plain line, starting with `…` when cut. */
export function tail(text: string, width: number): string {
  if (visibleWidth(text) <= width) return text;
  const chars = [...text];
  let used = 1;
  let start = chars.length;
  while (start > 0) {
    const w = charWidth(chars[start - 1]!.codePointAt(0)!);
    if (used + w > width) break;
    used += w;
    start--;
  }
  return `…${chars.slice(start).join('')}`;
}

export function padEnd(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - visibleWidth(text)));
}

export function padStart(text: string, width: number): string {
  return ' '.repeat(Math.max(0, width - visibleWidth(text))) + text;
}

/** `$0.0031`, `$12.40`; costs under a hundredth of a cent read `<$0.0001`. */
export function formatCost(usd: number | null | undefined): string {
  const value = usd ?? 0;
  if (value === 0) return '$0';
  if (value < 0.0001) return '<$0.0001';
  if (value < 1) return `$${value.toFixed(4)}`;
  return `$${value.toFixed(2)}`;
}

export function formatNumber(value: number | null | undefined): string {
  return (value ?? 0).toLocaleString('en-US');
}

/** `850ms`, `2.3s`, `1m05s`, `2h04m`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

/** An RFC 3339 time as `2025-01-31 14:05:09` (UTC, as the API gives it). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

/** Milliseconds between two RFC 3339 times (null when either is missing). */
export function between(from: string | null | undefined, to: string | null | undefined): number | null {
  if (!from || !to) return null;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) ? ms : null;
}

/** A step's or run's output as text: strings as they are, anything else as indented JSON. */
export function outputText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  return JSON.stringify(value, null, 2);
}

/** An API error object (`{code, message}`) or anything else, as one line. */
export function errorText(error: unknown): string {
  if (error === null || error === undefined) return '';
  if (typeof error === 'string') return error;
  if (typeof error === 'object') {
    const { code, message } = error as { code?: unknown; message?: unknown };
    if (typeof message === 'string') return typeof code === 'string' ? `${code}: ${message}` : message;
  }
  return JSON.stringify(error);
}

export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : '';
}
