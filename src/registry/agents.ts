import { EnsembleError, newId } from '../core/index.ts';
import {
  applyMiddleware,
  createProvider,
  isProviderError,
  KEY_ENV_VARS,
  requiresApiKey,
  type CallContext,
  type HealthReport,
  type Provider,
  type ProviderDeps,
  type ProviderMiddleware,
  type ProviderName,
  type Usage,
} from '../providers/index.ts';
import { keyHint, type Keyring, type OutboundPolicy } from '../security/index.ts';
import type { AgentFilter, AgentHealth, AgentPatch, AgentRecord, Storage } from '../storage/index.ts';
import { AgentConfigSchema, type AgentConfig, type AgentCreateInput, type AgentPatchInput } from './agent-schema.ts';
import type { AuditWriter} from './audit.ts';
import { type Actor } from './audit.ts';

/** An agent as every response shows it: no field ever holds the key. */
export type AgentView = Omit<AgentRecord, 'api_key_ciphertext' | 'api_key_kid'> & { api_key_set: boolean };

export function toAgentView(agent: AgentRecord): AgentView {
  return {
    id: agent.id,
    app_id: agent.app_id,
    name: agent.name,
    provider: agent.provider,
    model: agent.model,
    role: agent.role,
    system_prompt: agent.system_prompt,
    config: agent.config,
    is_active: agent.is_active,
    api_key_set: agent.api_key_ciphertext !== null,
    api_key_hint: agent.api_key_hint,
    health: agent.health,
    created_at: agent.created_at,
    updated_at: agent.updated_at,
  };
}

export type AgentTestResult =
  | { ok: true; output: string; latency_ms: number; usage: Usage; cost_usd: number }
  | { ok: false; error: { code: string; message: string; status: number | null } };

export interface AgentServiceDeps {
  storage: Storage;
  keyring: Keyring;
  audit: AuditWriter;
  outbound: OutboundPolicy;
  /** Where vendor keys are looked up for agents without one. */
  env: Readonly<Record<string, string | undefined>>;
  /** Provider options for tests (retry timing). */
  providerDeps?: Omit<ProviderDeps, 'fetch'>;
  /** Wraps every provider this service hands out (governance: limits, budgets, cost, audit). */
  middleware?: ProviderMiddleware[];
}

/** Agents whose vendor providers are kept built (least recently used go first). */
const PROVIDER_CACHE_SIZE = 1000;

/** The key envelope's associated data: binds it to one agent of one app. */
function keyContext(appId: string, agentId: string): string {
  return `agent:${appId}:${agentId}`;
}

/** Agents of an app: CRUD, their encrypted keys, and the providers built from them. */
export class AgentService {
  readonly #deps: AgentServiceDeps;
  readonly #fetch: typeof fetch;
  /**
   * Vendor providers by agent id, each valid for the agent version it was built from: building
   * one decrypts the key and constructs the vendor client, a measurable part of a step's overhead
   * (bench/FIXES.md). A rotation or an edit changes what the entry is checked against.
   */
  readonly #providers = new Map<string, { version: string; provider: Provider }>();

  constructor(deps: AgentServiceDeps) {
    this.#deps = deps;
    this.#fetch = deps.outbound.createFetch();
  }

  async create(appId: string, input: AgentCreateInput, actor: Actor): Promise<AgentView> {
    this.#checkKeyPresent(input.provider, input.api_key);
    if (input.config.base_url) await this.#deps.outbound.checkUrl(input.config.base_url);
    const now = new Date().toISOString();
    const id = newId();
    const record: AgentRecord = {
      id,
      app_id: appId,
      name: input.name,
      provider: input.provider,
      model: input.model,
      role: input.role,
      system_prompt: input.system_prompt,
      config: input.config,
      is_active: input.is_active,
      api_key_ciphertext: null,
      api_key_hint: null,
      api_key_kid: null,
      health: { status: 'unknown', checked_at: null, latency_ms: null, error: null },
      created_at: now,
      updated_at: now,
    };
    if (input.api_key) Object.assign(record, this.#sealKey(appId, id, input.api_key));
    await this.#deps.storage.agents.create(record);
    await this.#deps.audit.record({
      actor,
      app_id: appId,
      action: 'agent.create',
      target_type: 'agent',
      target_id: id,
      outcome: 'success',
      details: { name: record.name, provider: record.provider, model: record.model, api_key_set: record.api_key_ciphertext !== null },
    });
    return toAgentView(record);
  }

  async list(appId: string, filter: AgentFilter): Promise<AgentView[]> {
    return (await this.#deps.storage.agents.list(appId, filter)).map(toAgentView);
  }

  async get(appId: string, idOrName: string): Promise<AgentView> {
    return toAgentView(await this.#require(appId, idOrName));
  }

  /** The stored record (for the orchestrator); 404 when the app has no such agent. */
  async getRecord(appId: string, idOrName: string): Promise<AgentRecord> {
    return this.#require(appId, idOrName);
  }

  async update(appId: string, idOrName: string, input: AgentPatchInput, actor: Actor): Promise<AgentView> {
    const current = await this.#require(appId, idOrName);
    const patch: AgentPatch = {};
    for (const key of ['name', 'provider', 'model', 'role', 'system_prompt', 'is_active'] as const) {
      if (input[key] !== undefined) (patch as Record<string, unknown>)[key] = input[key];
    }
    if (input.config !== undefined) patch.config = mergeConfig(current.config, input.config);
    const provider = (patch.provider ?? current.provider) as ProviderName;
    const keyRotated = input.api_key !== undefined;
    // The stored key was given for one vendor endpoint: sending it elsewhere needs it again.
    const endpointChanged = (patch.provider !== undefined && patch.provider !== current.provider) || (patch.config !== undefined && patch.config.base_url !== current.config.base_url);
    if (endpointChanged && !keyRotated && current.api_key_ciphertext) {
      throw new EnsembleError('invalid_request', 'Changing provider or config.base_url needs the api_key again (the stored key is not sent to a new endpoint)', [{ path: 'api_key', message: 'Required when provider or base_url changes' }]);
    }
    if (keyRotated) Object.assign(patch, this.#sealKey(appId, current.id, input.api_key as string));
    else this.#checkKeyPresent(provider, current.api_key_ciphertext ? 'stored' : undefined);
    const baseUrl = (patch.config ?? current.config).base_url;
    if (typeof baseUrl === 'string' && baseUrl !== current.config.base_url) await this.#deps.outbound.checkUrl(baseUrl);

    const updated = await this.#deps.storage.agents.update(appId, current.id, patch, new Date().toISOString());
    if (!updated) throw new EnsembleError('not_found', 'No such agent');
    const changed = Object.keys(patch).filter((k) => !k.startsWith('api_key'));
    await this.#deps.audit.record({ actor, app_id: appId, action: 'agent.update', target_type: 'agent', target_id: current.id, outcome: 'success', details: { name: updated.name, changed } });
    if (keyRotated) {
      await this.#deps.audit.record({ actor, app_id: appId, action: 'agent.key_rotate', target_type: 'agent', target_id: current.id, outcome: 'success', details: { name: updated.name, api_key_hint: updated.api_key_hint } });
    }
    return toAgentView(updated);
  }

  async delete(appId: string, idOrName: string, actor: Actor): Promise<void> {
    const current = await this.#require(appId, idOrName);
    await this.#deps.storage.agents.delete(appId, current.id);
    this.#providers.delete(current.id);
    await this.#deps.audit.record({ actor, app_id: appId, action: 'agent.delete', target_type: 'agent', target_id: current.id, outcome: 'success', details: { name: current.name } });
  }

  /**
   * The provider for an agent as it is stored now. A call keeps the provider it started with, so
   * a key rotated meanwhile affects only calls that start afterwards.
   */
  providerFor(agent: AgentRecord, call: Partial<CallContext> = {}): Provider {
    const raw = this.#rawProvider(agent);
    const context: CallContext = {
      appId: agent.app_id,
      agentId: agent.id,
      agentName: agent.name,
      provider: agent.provider as ProviderName,
      model: agent.model,
      agentConfig: agent.config,
      kind: 'direct',
      ...call,
    };
    return applyMiddleware(raw, context, this.#deps.middleware ?? []);
  }

  /** The vendor's provider alone: for health checks, which are not usage. */
  #rawProvider(agent: AgentRecord): Provider {
    const version = `${agent.updated_at}\n${agent.provider}\n${agent.model}\n${agent.api_key_ciphertext ?? ''}\n${JSON.stringify(agent.config)}`;
    const cached = this.#providers.get(agent.id);
    if (cached?.version === version) {
      // Most recently used last: the oldest entry is the first one evicted.
      this.#providers.delete(agent.id);
      this.#providers.set(agent.id, cached);
      return cached.provider;
    }
    const provider = this.#buildProvider(agent);
    this.#providers.delete(agent.id);
    this.#providers.set(agent.id, { version, provider });
    if (this.#providers.size > PROVIDER_CACHE_SIZE) this.#providers.delete(this.#providers.keys().next().value!);
    return provider;
  }

  #buildProvider(agent: AgentRecord): Provider {
    const config = AgentConfigSchema.parse(agent.config);
    const apiKey = agent.api_key_ciphertext ? this.#deps.keyring.open(agent.api_key_ciphertext, keyContext(agent.app_id, agent.id)) : undefined;
    return createProvider(
      {
        provider: agent.provider as ProviderName,
        model: agent.model,
        apiKey,
        baseUrl: config.base_url,
        temperature: config.temperature,
        maxTokens: config.max_tokens,
        topP: config.top_p,
        stop: config.stop,
        timeoutMs: config.timeout_ms,
        maxRetries: config.max_retries,
        openaiApi: config.openai_api,
      },
      { ...this.#deps.providerDeps, env: this.#deps.env, fetch: this.#fetch },
    );
  }

  /** `POST /agents/{id}/test`: one real call. A provider failure is a result, not an HTTP error. */
  async test(appId: string, idOrName: string, prompt: string, call: Partial<CallContext> = {}, signal?: AbortSignal): Promise<AgentTestResult> {
    const agent = await this.#require(appId, idOrName);
    try {
      const result = await this.providerFor(agent, call).generate(prompt, { systemPrompt: agent.system_prompt || undefined, signal });
      return { ok: true, output: result.text, latency_ms: Math.round(result.latencyMs), usage: result.usage, cost_usd: result.costUsd ?? 0 };
    } catch (error) {
      if (isProviderError(error)) return { ok: false, error: { code: error.code, message: error.message, status: error.status ?? null } };
      throw error;
    }
  }

  /** Checks an agent now, stores and returns its health. */
  async checkHealth(agent: AgentRecord): Promise<AgentHealth> {
    let report: HealthReport;
    try {
      report = await this.#rawProvider(agent).healthCheck();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      report = { status: 'unhealthy', latencyMs: 0, checkedAt: new Date().toISOString(), error: { code: 'invalid_request', message } };
    }
    const health: AgentHealth = { status: report.status, checked_at: report.checkedAt, latency_ms: report.latencyMs, error: report.error };
    await this.#deps.storage.agents.setHealth(agent.id, health);
    return health;
  }

  async health(appId: string, idOrName: string): Promise<AgentHealth> {
    return this.checkHealth(await this.#require(appId, idOrName));
  }

  async #require(appId: string, idOrName: string): Promise<AgentRecord> {
    const agent = await this.#deps.storage.agents.get(appId, idOrName);
    if (!agent) throw new EnsembleError('not_found', `No agent "${idOrName}"`);
    return agent;
  }

  #sealKey(appId: string, agentId: string, apiKey: string): Pick<AgentRecord, 'api_key_ciphertext' | 'api_key_hint' | 'api_key_kid'> {
    return {
      api_key_ciphertext: this.#deps.keyring.seal(apiKey, keyContext(appId, agentId)),
      api_key_hint: keyHint(apiKey),
      api_key_kid: this.#deps.keyring.activeId,
    };
  }

  /** Every provider but Ollama needs a key: the agent's own, or the vendor's environment variable. */
  #checkKeyPresent(provider: ProviderName, apiKey: string | undefined): void {
    if (apiKey || !requiresApiKey(provider)) return;
    const envVar = KEY_ENV_VARS[provider];
    if (envVar && this.#deps.env[envVar]) return;
    throw new EnsembleError('invalid_request', `api_key is required for provider "${provider}"`, [{ path: 'api_key', message: 'Required' }]);
  }
}

/** PATCH's config merge: keys replace, `null` removes; the result is validated as a whole. */
function mergeConfig(current: Record<string, unknown>, patch: Record<string, unknown>): AgentConfig {
  const merged: Record<string, unknown> = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  const parsed = AgentConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const details = parsed.error.issues.map((issue) => ({ path: ['config', ...issue.path.map(String)].join('.'), message: issue.message }));
    throw new EnsembleError('invalid_request', `Invalid request: ${details[0]?.path}: ${details[0]?.message}`, details);
  }
  return parsed.data;
}
