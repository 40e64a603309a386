/**
 * `ensemble/client`: a small typed client of the Ensemble HTTP API. Every operation of the
 * OpenAPI document has a method here (a test checks it); errors are {@link EnsembleApiError}s
 * carrying the contract's `code`; run events are async iterables.
 */
import type * as T from './types.ts';

export type * from './types.ts';

/** An error answer of the API, in the contract's shape. */
export class EnsembleApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  /** Seconds to wait, from `Retry-After` (429). */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string, message: string, details: unknown, retryAfter?: number) {
    super(message);
    this.name = 'EnsembleApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

export interface ClientOptions {
  /** The server root, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An app token, or the admin token for `apps`. */
  token?: string;
  fetch?: typeof fetch;
}

type Query = Record<string, string | number | boolean | undefined>;

export class EnsembleClient {
  readonly #base: string;
  readonly #token: string | undefined;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions) {
    this.#base = options.baseUrl.replace(/\/+$/, '');
    this.#token = options.token;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** The same client acting with another token. */
  withToken(token: string): EnsembleClient {
    return new EnsembleClient({ baseUrl: this.#base, token, fetch: this.#fetch });
  }

  health(): Promise<T.Health> {
    return this.#json('GET', '/api/v1/health', { okStatuses: [200, 503] });
  }

  openapi(): Promise<{ openapi: string; paths: Record<string, Record<string, unknown>> }> {
    return this.#json('GET', '/api/v1/openapi.json');
  }

  readonly apps = {
    create: (name: string) => this.#json<T.App & { token: string }>('POST', '/api/v1/apps', { body: { name } }),
    list: async () => (await this.#json<{ data: T.App[] }>('GET', '/api/v1/apps')).data,
    update: (appId: string, settings: T.AppSettings) => this.#json<T.App & { settings: T.AppSettings }>('PATCH', `/api/v1/apps/${enc(appId)}`, { body: { settings } }),
    createToken: (appId: string, name?: string) => this.#json<{ id: string; token: string }>('POST', `/api/v1/apps/${enc(appId)}/tokens`, { body: name ? { name } : {} }),
    revokeToken: (appId: string, tokenId: string) => this.#none('DELETE', `/api/v1/apps/${enc(appId)}/tokens/${enc(tokenId)}`),
    rotateWebhookSecret: (appId: string) => this.#json<{ secret: string }>('POST', `/api/v1/apps/${enc(appId)}/webhook-secret`),
  };

  readonly agents = {
    create: (agent: T.AgentCreate) => this.#json<T.Agent>('POST', '/api/v1/agents', { body: agent }),
    list: async (filter: { role?: string; provider?: string; is_active?: boolean } = {}) => (await this.#json<{ data: T.Agent[] }>('GET', '/api/v1/agents', { query: filter })).data,
    get: (idOrName: string) => this.#json<T.Agent>('GET', `/api/v1/agents/${enc(idOrName)}`),
    update: (idOrName: string, patch: T.AgentPatch) => this.#json<T.Agent>('PATCH', `/api/v1/agents/${enc(idOrName)}`, { body: patch }),
    delete: (idOrName: string) => this.#none('DELETE', `/api/v1/agents/${enc(idOrName)}`),
    test: (idOrName: string, prompt?: string, user?: string) =>
      this.#json<T.AgentTestResult>('POST', `/api/v1/agents/${enc(idOrName)}/test`, { body: { ...(prompt ? { prompt } : {}), ...(user ? { user } : {}) } }),
    health: (idOrName: string) => this.#json<T.AgentHealth>('GET', `/api/v1/agents/${enc(idOrName)}/health`),
  };

  readonly workflows = {
    /** A YAML string, or the JSON document as an object. */
    create: (document: string | Record<string, unknown>) => this.#json<T.Workflow>('POST', '/api/v1/workflows', documentBody(document)),
    list: async () => (await this.#json<{ data: T.Workflow[] }>('GET', '/api/v1/workflows')).data,
    get: (idOrName: string) => this.#json<T.Workflow>('GET', `/api/v1/workflows/${enc(idOrName)}`),
    replace: (idOrName: string, document: string | Record<string, unknown>) => this.#json<T.Workflow>('PUT', `/api/v1/workflows/${enc(idOrName)}`, documentBody(document)),
    delete: (idOrName: string) => this.#none('DELETE', `/api/v1/workflows/${enc(idOrName)}`),
    /** Runs a workflow and waits for the end. */
    execute: (idOrName: string, request: T.ExecuteRequest = {}, options: { idempotencyKey?: string } = {}) =>
      this.#json<T.Run>('POST', `/api/v1/workflows/${enc(idOrName)}/execute`, { body: request, headers: idempotency(options) }),
    /** Starts a workflow run and returns at once. */
    start: (idOrName: string, request: T.ExecuteRequest = {}, options: { idempotencyKey?: string } = {}) =>
      this.#json<{ run_id: string; status: T.RunStatus }>('POST', `/api/v1/workflows/${enc(idOrName)}/execute`, { body: { ...request, async: true }, headers: idempotency(options) }),
    /** Runs a workflow and streams its events. */
    stream: (idOrName: string, request: T.ExecuteRequest = {}, options: { idempotencyKey?: string; signal?: AbortSignal } = {}) =>
      this.#events('POST', `/api/v1/workflows/${enc(idOrName)}/execute`, { body: { ...request, stream: true }, headers: idempotency(options), signal: options.signal }),
  };

  readonly runs = {
    list: async (query: { workflow?: string; status?: T.RunStatus; limit?: number; before?: string } = {}) => (await this.#json<{ data: T.Run[] }>('GET', '/api/v1/runs', { query })).data,
    get: (runId: string) => this.#json<T.Run>('GET', `/api/v1/runs/${enc(runId)}`),
    cancel: (runId: string) => this.#json<T.Run>('POST', `/api/v1/runs/${enc(runId)}/cancel`),
    /** A new attempt: failed and cancelled steps (or `steps`) and their dependents run again. */
    retry: (runId: string, request: { steps?: string[]; input_overrides?: { input?: string; context?: Record<string, unknown> } } = {}) => this.#json<T.Run>('POST', `/api/v1/runs/${enc(runId)}/retry`, { body: request }),
    approve: (runId: string, stepId: string, comment?: string) => this.#json<T.Run>('POST', `/api/v1/runs/${enc(runId)}/steps/${enc(stepId)}/approve`, { body: comment ? { comment } : {} }),
    reject: (runId: string, stepId: string, comment?: string) => this.#json<T.Run>('POST', `/api/v1/runs/${enc(runId)}/steps/${enc(stepId)}/reject`, { body: comment ? { comment } : {} }),
    /** The run's events from the start (or after `lastEventId`) until it ends. */
    events: (runId: string, options: { lastEventId?: number; signal?: AbortSignal } = {}) =>
      this.#events('GET', `/api/v1/runs/${enc(runId)}/events`, { headers: options.lastEventId ? { 'Last-Event-ID': String(options.lastEventId) } : {}, signal: options.signal }),
  };

  readonly chat = {
    multi: (request: T.ChatRequest) => this.#json<T.ChatResult>('POST', '/api/v1/chat/multi', { body: request }),
    stream: (request: T.ChatRequest, options: { signal?: AbortSignal } = {}) => this.#events('POST', '/api/v1/chat/multi', { body: { ...request, stream: true }, signal: options.signal }),
  };

  usage(query: { from?: string; to?: string; groupBy?: T.UsageGroup[] } = {}): Promise<T.UsageReport> {
    return this.#json('GET', '/api/v1/usage', { query: { from: query.from, to: query.to, group_by: query.groupBy?.join(',') } });
  }

  async audit(query: { limit?: number; before?: string; action?: string; actor?: string; target_id?: string; from?: string; to?: string } = {}): Promise<T.AuditEntry[]> {
    return (await this.#json<{ data: T.AuditEntry[] }>('GET', '/api/v1/audit', { query })).data;
  }

  readonly users = {
    setBudget: (user: string, budget: T.Budget) => this.#json<T.UserBudget>('PUT', `/api/v1/users/${enc(user)}/budget`, { body: budget }),
    getBudget: (user: string) => this.#json<T.UserBudget>('GET', `/api/v1/users/${enc(user)}/budget`),
    deleteBudget: (user: string) => this.#none('DELETE', `/api/v1/users/${enc(user)}/budget`),
    list: async () => (await this.#json<{ data: T.UserBudget[] }>('GET', '/api/v1/users')).data,
  };

  readonly triggers = {
    fire: (trigger: string, body: Record<string, unknown> = {}) => this.#json<T.TriggeredRuns>('POST', `/api/v1/triggers/${enc(trigger)}`, { body }),
  };

  async #request(method: string, path: string, options: { body?: unknown; rawBody?: string; contentType?: string; query?: Query; headers?: Record<string, string>; signal?: AbortSignal | undefined }): Promise<Response> {
    const url = new URL(`${this.#base}${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let body: string | undefined;
    if (options.rawBody !== undefined) {
      body = options.rawBody;
      headers['content-type'] = options.contentType ?? 'text/plain';
    } else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    return this.#fetch(url, { method, headers, body, signal: options.signal ?? null });
  }

  async #json<R>(method: string, path: string, options: { body?: unknown; rawBody?: string; contentType?: string; query?: Query; headers?: Record<string, string>; okStatuses?: number[] } = {}): Promise<R> {
    const res = await this.#request(method, path, options);
    if (!res.ok && !(options.okStatuses ?? []).includes(res.status)) throw await apiError(res);
    return (await res.json()) as R;
  }

  async #none(method: string, path: string): Promise<void> {
    const res = await this.#request(method, path, {});
    if (!res.ok) throw await apiError(res);
  }

  async *#events(method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal | undefined }): AsyncGenerator<T.RunEvent> {
    const res = await this.#request(method, path, { ...options, headers: { ...options.headers, accept: 'text/event-stream' } });
    if (!res.ok) throw await apiError(res);
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseEvent(block);
        if (event) yield event;
      }
    }
  }
}

export function createClient(options: ClientOptions): EnsembleClient {
  return new EnsembleClient(options);
}

function enc(value: string): string {
  return encodeURIComponent(value);
}

function idempotency(options: { idempotencyKey?: string }): Record<string, string> {
  return options.idempotencyKey ? { 'Idempotency-Key': options.idempotencyKey } : {};
}

function documentBody(document: string | Record<string, unknown>) {
  return typeof document === 'string' ? { rawBody: document, contentType: 'application/yaml' } : { body: document };
}

function parseEvent(block: string): T.RunEvent | undefined {
  let id = 0;
  let type = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') id = Number(value);
    else if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return undefined;
  const parsed = JSON.parse(data.join('\n')) as T.RunEvent['data'];
  if (type === 'error') throw new EnsembleApiError(500, 'internal_error', String((parsed as { error?: { message?: string } }).error?.message ?? 'stream error'), parsed);
  return { id, event: type as T.RunEventType, data: parsed };
}

async function apiError(res: Response): Promise<EnsembleApiError> {
  const retryAfter = res.headers.get('retry-after');
  let body: { error?: { code?: string; message?: string; details?: unknown } } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // not JSON
  }
  return new EnsembleApiError(res.status, body.error?.code ?? 'http_error', body.error?.message ?? `HTTP ${res.status}`, body.error?.details ?? null, retryAfter ? Number(retryAfter) : undefined);
}

/** Every operation of the API and the client method that performs it (checked against the OpenAPI document by a test). */
export const CLIENT_OPERATIONS: Readonly<Record<string, string>> = {
  'GET /api/v1/health': 'health',
  'GET /api/v1/openapi.json': 'openapi',
  'POST /api/v1/apps': 'apps.create',
  'GET /api/v1/apps': 'apps.list',
  'PATCH /api/v1/apps/{app_id}': 'apps.update',
  'POST /api/v1/apps/{app_id}/tokens': 'apps.createToken',
  'DELETE /api/v1/apps/{app_id}/tokens/{token_id}': 'apps.revokeToken',
  'POST /api/v1/apps/{app_id}/webhook-secret': 'apps.rotateWebhookSecret',
  'POST /api/v1/agents': 'agents.create',
  'GET /api/v1/agents': 'agents.list',
  'GET /api/v1/agents/{id_or_name}': 'agents.get',
  'PATCH /api/v1/agents/{id_or_name}': 'agents.update',
  'DELETE /api/v1/agents/{id_or_name}': 'agents.delete',
  'POST /api/v1/agents/{id_or_name}/test': 'agents.test',
  'GET /api/v1/agents/{id_or_name}/health': 'agents.health',
  'POST /api/v1/workflows': 'workflows.create',
  'GET /api/v1/workflows': 'workflows.list',
  'GET /api/v1/workflows/{id_or_name}': 'workflows.get',
  'PUT /api/v1/workflows/{id_or_name}': 'workflows.replace',
  'DELETE /api/v1/workflows/{id_or_name}': 'workflows.delete',
  'POST /api/v1/workflows/{id_or_name}/execute': 'workflows.execute',
  'GET /api/v1/runs': 'runs.list',
  'GET /api/v1/runs/{run_id}': 'runs.get',
  'POST /api/v1/runs/{run_id}/cancel': 'runs.cancel',
  'GET /api/v1/runs/{run_id}/events': 'runs.events',
  'POST /api/v1/runs/{run_id}/retry': 'runs.retry',
  'POST /api/v1/runs/{run_id}/steps/{step_id}/approve': 'runs.approve',
  'POST /api/v1/runs/{run_id}/steps/{step_id}/reject': 'runs.reject',
  'POST /api/v1/chat/multi': 'chat.multi',
  'GET /api/v1/usage': 'usage',
  'GET /api/v1/audit': 'audit',
  'PUT /api/v1/users/{user}/budget': 'users.setBudget',
  'GET /api/v1/users/{user}/budget': 'users.getBudget',
  'DELETE /api/v1/users/{user}/budget': 'users.deleteBudget',
  'GET /api/v1/users': 'users.list',
  'POST /api/v1/triggers/{trigger}': 'triggers.fire',
};
