/**
 * What every client command shares: where the server is and which token to send, errors that
 * carry the exit code, and reading `TEXT|@file` arguments and `k=v` pairs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createStyle, colorEnabled, type Style } from './format.ts';

/** Exit codes of the `ensemble` command. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

/** An error the CLI reports as one message (no stack) and exits with its code. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode: number = EXIT.failed) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** The command line is wrong: exit code 2. */
export function usageError(message: string): CliError {
  return new CliError(message, EXIT.usage);
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';
export const DEFAULT_DATA_DIR = './.ensemble';
export const TOKEN_FILE = 'default-app.token';

export interface ConnectionFlags {
  url?: string;
  token?: string;
  dataDir?: string;
}

export interface Connection {
  url: string;
  token: string;
  /** Where the token came from, for error messages (never the token itself). */
  tokenSource: string;
}

type Env = Readonly<Record<string, string | undefined>>;

export function dataDirOf(flags: { dataDir?: string }, env: Env = process.env): string {
  return flags.dataDir ?? (env.ENSEMBLE_DATA_DIR || DEFAULT_DATA_DIR);
}

function isLoopback(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The server and token: `--url`, else ENSEMBLE_URL, else http://127.0.0.1:8080; `--token`, else
 * ENSEMBLE_TOKEN, else the embedded server's token file `<data dir>/default-app.token` (read
 * only for a server on this machine, or when `--data-dir` names the directory explicitly, so a
 * local token is never sent elsewhere by accident).
 */
export function resolveConnection(flags: ConnectionFlags, env: Env = process.env): Connection {
  const raw = flags.url ?? (env.ENSEMBLE_URL || DEFAULT_URL);
  let url: URL;
  try {
    url = new URL(raw);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw usageError(`invalid server URL ${JSON.stringify(raw)}: expected http(s)://host:port`);
  }
  const base = url.toString().replace(/\/+$/, '');
  if (flags.token) return { url: base, token: flags.token, tokenSource: '--token' };
  if (env.ENSEMBLE_TOKEN) return { url: base, token: env.ENSEMBLE_TOKEN, tokenSource: 'ENSEMBLE_TOKEN' };
  const file = join(dataDirOf(flags, env), TOKEN_FILE);
  if ((isLoopback(url) || flags.dataDir !== undefined) && existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return { url: base, token, tokenSource: resolve(file) };
  }
  throw usageError(
    isLoopback(url)
      ? `no token: pass --token, set ENSEMBLE_TOKEN, or run where the embedded server keeps its data (${file} was not found; --data-dir or ENSEMBLE_DATA_DIR say where it is)`
      : `no token for ${base}: pass --token or set ENSEMBLE_TOKEN`,
  );
}

/** Reads standard input to its end (`@-`). */
function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (error) {
    throw usageError(`cannot read standard input: ${(error as Error).message}`);
  }
}

/**
 * A `TEXT|@file` argument: `@path` is the file's content, `@-` standard input, `@@text` the
 * literal text `@text`; anything else is the text itself.
 */
export function readTextArg(value: string, what: string): string {
  if (value.startsWith('@@')) return value.slice(1);
  if (value === '@-') return readStdin();
  if (value.startsWith('@')) return readFileArg(value.slice(1), what);
  return value;
}

/** A file named on the command line (`-` is standard input); unreadable is a usage error. */
export function readFileArg(path: string, what: string): string {
  if (path === '-') return readStdin();
  if (!path) throw usageError(`${what}: a file name is missing after @`);
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw usageError(`cannot read ${what} file ${path}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
}

/**
 * `--context k=v` pairs as an object. A value that is JSON (a number, true/false/null, a
 * quoted string, an object, a list) is that value; `@file` is the file's text; anything else is
 * the text as written.
 */
export function parseContext(pairs: string[]): Record<string, unknown> {
  const context: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usageError(`--context ${JSON.stringify(pair)}: expected key=value`);
    const key = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    let value: unknown;
    if (raw.startsWith('@')) value = readTextArg(raw, `--context ${key}`);
    else {
      try {
        value = JSON.parse(raw);
      } catch {
        value = raw;
      }
    }
    context[key] = value;
  }
  return context;
}

/** Commander's collector for repeatable options. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A comma-separated list option, repeatable. */
export function collectList(value: string, previous: string[] | undefined): string[] {
  return [
    ...(previous ?? []),
    ...value
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean),
  ];
}

export function stdoutStyle(): Style {
  return createStyle(colorEnabled(process.stdout));
}

/** The terminal's width when stdout is one (tables are then cut to it); undefined otherwise. */
export function terminalWidth(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns || 80 : undefined;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function warn(text: string): void {
  process.stderr.write(`${text}\n`);
}
