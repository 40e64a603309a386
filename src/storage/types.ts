/**
 * Storage ports, one per domain. Every adapter (SQLite, PostgreSQL) implements all of them;
 * callers depend on these interfaces only.
 */
import type { Engine } from './migrations.ts';

export type { Engine };

export interface AppRecord {
  id: string;
  name: string;
  settings: Record<string, unknown>;
  created_at: string;
}

export interface TokenRecord {
  id: string;
  app_id: string;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

export interface AgentHealth {
  status: 'healthy' | 'unhealthy' | 'unknown';
  checked_at: string | null;
  latency_ms: number | null;
  error: { code: string; message: string; status?: number } | null;
}

export interface AgentRecord {
  id: string;
  app_id: string;
  name: string;
  provider: string;
  model: string;
  role: string;
  system_prompt: string;
  config: Record<string, unknown>;
  is_active: boolean;
  /** The sealed envelope of the provider key (never the key itself). */
  api_key_ciphertext: string | null;
  api_key_hint: string | null;
  api_key_kid: string | null;
  health: AgentHealth;
  created_at: string;
  updated_at: string;
}

export interface AgentFilter {
  role?: string;
  provider?: string;
  is_active?: boolean;
}

export type AgentPatch = Partial<
  Pick<
    AgentRecord,
    'name' | 'provider' | 'model' | 'role' | 'system_prompt' | 'config' | 'is_active' | 'api_key_ciphertext' | 'api_key_hint' | 'api_key_kid'
  >
>;

export interface AuditEntry {
  id: string;
  app_id: string | null;
  at: string;
  actor: string;
  action: string;
  target_type: string;
  target_id: string;
  outcome: 'success' | 'failure' | 'denied';
  details: Record<string, unknown>;
}

export interface AuditQuery {
  limit: number;
  /** Entries older than this entry id (paging backwards from the newest). */
  before?: string;
  action?: string;
  actor?: string;
  target_id?: string;
  from?: string;
  to?: string;
}

export interface AppStore {
  create(app: AppRecord): Promise<void>;
  list(): Promise<AppRecord[]>;
  get(id: string): Promise<AppRecord | undefined>;
  getByName(name: string): Promise<AppRecord | undefined>;
}

export interface TokenStore {
  create(token: TokenRecord & { token_hash: string }): Promise<void>;
  /** The token with this hash, unless it was revoked. */
  findActiveByHash(tokenHash: string): Promise<TokenRecord | undefined>;
  /** Revokes a token of the app; false when the app has no such token. */
  revoke(appId: string, tokenId: string, at: string): Promise<boolean>;
}

export interface AgentStore {
  /** Inserts an agent; a duplicate name in the app throws `conflict`. */
  create(agent: AgentRecord): Promise<void>;
  list(appId: string, filter?: AgentFilter): Promise<AgentRecord[]>;
  /** By id or by name, within the app only. */
  get(appId: string, idOrName: string): Promise<AgentRecord | undefined>;
  update(appId: string, id: string, patch: AgentPatch, updatedAt: string): Promise<AgentRecord | undefined>;
  delete(appId: string, id: string): Promise<boolean>;
  setHealth(id: string, health: AgentHealth): Promise<void>;
  /** Active agents of every app (the health monitor's work list). */
  listActive(): Promise<AgentRecord[]>;
  /** Agents whose key is wrapped by another master key than `kid`, oldest first. */
  listKeysNotWrappedBy(kid: string, limit: number): Promise<Pick<AgentRecord, 'id' | 'app_id' | 'api_key_ciphertext' | 'api_key_kid'>[]>;
  /**
   * Replaces a key envelope only if it is still `expected` (a concurrent PATCH wins over a
   * rotation). Returns whether it was replaced.
   */
  swapKeyEnvelope(id: string, expected: string, next: string, kid: string): Promise<boolean>;
}

export interface AuditStore {
  append(entry: AuditEntry): Promise<void>;
  list(appId: string, query: AuditQuery): Promise<AuditEntry[]>;
}

export interface Storage {
  readonly engine: Engine;
  readonly apps: AppStore;
  readonly tokens: TokenStore;
  readonly agents: AgentStore;
  readonly audit: AuditStore;
  /** Brings the schema up to date; safe to run twice and from several processes at once. */
  migrate(): Promise<void>;
  /** Cheap round trip, for health reporting. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
