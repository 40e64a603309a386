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
  webhook_secret: Generated<string | null>;
}

export interface UserBudgetsTable {
  app_id: string;
  user_id: string;
  limit_usd: number;
  period: string;
  updated_at: string;
}

export interface WebhookDeliveriesTable {
  app_id: string;
  delivery_id: string;
  received_at: string;
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

export interface WorkflowsTable {
  id: string;
  app_id: string;
  name: string;
  version: number;
  trigger: string | null;
  format: string;
  source: string;
  definition: string;
  is_active: number;
  created_at: string;
  updated_at: string;
}

export interface RunsTable {
  id: string;
  app_id: string;
  kind: string;
  workflow_id: string | null;
  workflow_name: string | null;
  workflow_version: number | null;
  mode: string | null;
  definition: string;
  status: string;
  input: string;
  context: string;
  output: string | null;
  outputs: string;
  error: string | null;
  usage: string;
  cost_usd: number;
  idempotency_key: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  user_id: string | null;
  lease_owner: Generated<string | null>;
  lease_expires_at: Generated<string | null>;
  lease_epoch: Generated<number>;
  cancel_requested: Generated<number>;
  attempt: Generated<number>;
}

export interface RunAttemptsTable {
  run_id: string;
  attempt: number;
  status: string;
  started_at: string;
  finished_at: string | null;
  error: string | null;
  reset_steps: string;
  input_overrides: string | null;
}

export interface RunStepsTable {
  run_id: string;
  step_id: string;
  group_id: string | null;
  output_name: string;
  agent: string;
  status: string;
  attempts: number;
  result: string | null;
  error: string | null;
  usage: string | null;
  cost_usd: number;
  latency_ms: number | null;
  reason: string | null;
  started_at: string | null;
  finished_at: string | null;
  wait_until: Generated<string | null>;
  run_attempt: Generated<number>;
}

export interface RunEventsTable {
  run_id: string;
  seq: number;
  type: string;
  data: string;
  at: string;
}

export interface UsageRecordsTable {
  id: string;
  app_id: string;
  agent_id: string;
  agent_name: string;
  workflow_id: string | null;
  workflow_name: string | null;
  run_id: string | null;
  step_id: string | null;
  provider: string;
  model: string;
  kind: string;
  user_id: string | null;
  token_id: string | null;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cached_input_tokens: number;
  reasoning_tokens: number;
  cost_usd: number;
  price_known: number;
  latency_ms: number;
  ttft_ms: number | null;
  outcome: string;
  error_code: string | null;
  at: string;
  day: string;
  run_attempt: Generated<number | null>;
}

/** The sums of a rollup row (PostgreSQL returns its bigints as strings). */
export interface UsageSums {
  requests: number | string | bigint;
  errors: number | string | bigint;
  input_tokens: number | string | bigint;
  output_tokens: number | string | bigint;
  total_tokens: number | string | bigint;
  cost_usd: number;
}

/**
 * Daily sums of usage_records per app, day (UTC) and dimension; '' stands for "no workflow".
 * Written in the transaction of every usage insert (migration 0007).
 */
export interface UsageDailyTable extends UsageSums {
  app_id: string;
  day: string;
  agent_name: string;
  provider: string;
  model: string;
  workflow_name: string;
}

/** Daily sums per end user; '' stands for "no user". */
export interface UsageDailyUsersTable extends UsageSums {
  app_id: string;
  day: string;
  user_id: string;
}

export interface BudgetLedgersTable {
  scope: string;
  period_start: string;
  spent_nano: number | string | bigint;
  reserved_nano: number | string | bigint;
}

export interface BudgetReservationsTable {
  id: string;
  entries: string;
  expires_at: string;
}

export interface Database {
  apps: AppsTable;
  app_tokens: AppTokensTable;
  agents: AgentsTable;
  audit_log: AuditLogTable;
  workflows: WorkflowsTable;
  runs: RunsTable;
  run_steps: RunStepsTable;
  run_events: RunEventsTable;
  usage_records: UsageRecordsTable;
  usage_daily: UsageDailyTable;
  usage_daily_users: UsageDailyUsersTable;
  budget_ledgers: BudgetLedgersTable;
  budget_reservations: BudgetReservationsTable;
  user_budgets: UserBudgetsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  run_attempts: RunAttemptsTable;
}
