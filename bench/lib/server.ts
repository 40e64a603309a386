/**
 * An `ensemble serve` child process, as an operator runs it (embedded SQLite in a temporary data
 * directory), so its RSS and CPU are its own. Its log goes to a file in the data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';
export const MASTER_KEYS = `bench:${Buffer.alloc(32, 7).toString('base64')}`;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface EnsembleProcess {
  readonly url: string;
  readonly pid: number;
  readonly dataDir: string;
  /** The environment it was started with (only the settings the bench chose). */
  readonly env: Record<string, string>;
  /** Resident set size now, in bytes (/proc/<pid>/status VmRSS). */
  rss(): number;
  /** Peak resident set size since the start, in bytes (VmHWM). */
  peakRss(): number;
  /** SIGTERM and wait for the exit (a CPU profile, if asked for, is written then). */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** `host:port` entries the agents' base_url may reach (the fake vendor). */
  allowedHosts: string[];
  env?: Record<string, string>;
  /** Write a V8 CPU profile of the server into this directory (node --cpu-prof). */
  cpuProfDir?: string | undefined;
  /** Reuse this data directory instead of a fresh temporary one (it is not removed at stop). */
  dataDir?: string;
  /** Another checkout to run the server from (bench/ab.ts compares two source trees). */
  root?: string;
  /** Extra Node flags for the server process (e.g. `--expose-gc`, `--import <probe>` when investigating). */
  execArgv?: string[];
}

export async function startEnsembleProcess(options: StartOptions): Promise<EnsembleProcess> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'ensemble-bench-'));
  const env: Record<string, string> = {
    ENSEMBLE_ADMIN_TOKEN: ADMIN_TOKEN,
    ENSEMBLE_MASTER_KEYS: MASTER_KEYS,
    ENSEMBLE_ALLOWED_PRIVATE_HOSTS: options.allowedHosts.join(','),
    ENSEMBLE_SHUTDOWN_GRACE_MS: '2000',
    ...options.env,
  };
  const logFile = join(dataDir, `server-${Date.now()}.log`);
  const fd = openSync(logFile, 'a');
  // BENCH_SERVER_NODE_FLAGS: Node/V8 flags for every server process of a run (to measure a setting).
  const flags = (process.env.BENCH_SERVER_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const execArgv = [...(options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : []), ...flags, ...(options.execArgv ?? [])];
  const child: ChildProcess = spawn(process.execPath, [...execArgv, 'bin/ensemble.js', 'serve', '--port', '0', '--data-dir', dataDir], {
    cwd: options.root ?? ROOT,
    env: { ...stripBenchEnv(process.env), ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await waitForUrl(logFile, exited);
  const status = (field: string) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  };
  return {
    url,
    pid: child.pid!,
    dataDir,
    env,
    rss: () => status('VmRSS'),
    peakRss: () => status('VmHWM'),
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The bench's own settings are not the server's. */
function stripBenchEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const key of Object.keys(copy)) if (key.startsWith('BENCH_') || key.startsWith('VITEST') || key === 'NODE_OPTIONS') delete copy[key];
  delete copy.DATABASE_URL;
  delete copy.REDIS_URL;
  return copy;
}

async function waitForUrl(logFile: string, exited: Promise<number | null>): Promise<string> {
  let code: number | null | undefined;
  void exited.then((c) => (code = c));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const text = readFileSync(logFile, 'utf8');
    const match = /"url":"(http:\/\/[^"]+)"/.exec(text);
    if (match?.[1]) return match[1];
    if (code !== undefined) throw new Error(`ensemble exited with ${code}: ${text}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`ensemble did not start: ${readFileSync(logFile, 'utf8')}`);
}

export interface ApiResponse {
  status: number;
  body: any;
}

/** A JSON client for the Ensemble API with one bearer token. */
export class Api {
  readonly url: string;
  readonly token: string;
  constructor(url: string, token: string) {
    this.url = url;
    this.token = token;
  }

  async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
    const init: RequestInit = { method, headers: { authorization: `Bearer ${this.token}`, ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${this.url}${path}`, init);
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed };
  }

  async ok(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<any> {
    const res = await this.call(method, path, body, headers);
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }
}

export interface BenchApp {
  api: Api;
  appId: string;
}

/** Creates an app (admin token) and returns a client with its token. */
export async function createApp(server: { url: string }, name = 'bench'): Promise<BenchApp> {
  const admin = new Api(server.url, ADMIN_TOKEN);
  const app = await admin.ok('POST', '/api/v1/apps', { name });
  return { api: new Api(server.url, app.token as string), appId: app.id as string };
}

/** Registers an agent on the fake vendor (OpenAI Chat Completions: the same request the direct baseline makes). */
export async function createAgent(api: Api, name: string, fake: { baseUrl: string }, apiKey: string, model: string): Promise<void> {
  await api.ok('POST', '/api/v1/agents', {
    name,
    provider: 'openai',
    model,
    api_key: apiKey,
    role: 'bench',
    system_prompt: `You are ${name}.`,
    config: { base_url: fake.baseUrl, openai_api: 'chat', max_retries: 0 },
  });
}
