/**
 * Table shapes as Kysely sees them. Both adapters store the same columns: times are RFC 3339
 * UTC strings (they sort as text on both engines), JSON is text, booleans are 0/1 integers.
 */
import type { Generated } from 'kysely';

export interface AppsTable {
  id: string;
  name: string;
  settings: string;
  created_at: string;
}

export interface AppTokensTable {
  id: string;
  app_id: string;
  name: string;
  token_hash: string;
  created_at: string;
  revoked_at: string | null;
}

export interface AgentsTable {
  id: string;
  app_id: string;
  name: string;
  provider: string;
  model: string;
  role: string;
  system_prompt: string;
  config: string;
  is_active: number;
  api_key_ciphertext: string | null;
  api_key_hint: string | null;
  /** Id of the master key that wraps this agent's data key (rotation finds stale rows by it). */
  api_key_kid: string | null;
  health: string;
  created_at: string;
  updated_at: string;
}

export interface AuditLogTable {
  seq: Generated<number>;
  id: string;
  app_id: string | null;
  at: string;
  actor: string;
  action: string;
  target_type: string;
  target_id: string;
  outcome: string;
  details: string;
}

export interface Database {
  apps: AppsTable;
  app_tokens: AppTokensTable;
  agents: AgentsTable;
  audit_log: AuditLogTable;
}
