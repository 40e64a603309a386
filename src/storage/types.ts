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

export interface WorkflowRecord {
  id: string;
  app_id: string;
  name: string;
  version: number;
  trigger: string | null;
  format: 'yaml' | 'json';
  /** The document as the client sent it. */
  source: string;
  /** The compiled DAG (the workflow engine's CompiledWorkflow). */
  definition: unknown;
  is_active: boolean;
  created_at: string;
  updated_at: string;
}

export type RunKind = 'workflow' | 'chat';

export interface RunRecord {
  id: string;
  app_id: string;
  kind: RunKind;
  workflow_id: string | null;
  workflow_name: string | null;
  workflow_version: number | null;
  mode: string | null;
  /** The compiled DAG this run executes: a snapshot, so edits to the workflow do not change it. */
  definition: unknown;
  status: string;
  input: string;
  context: Record<string, unknown>;
  output: unknown;
  outputs: Record<string, unknown>;
  error: unknown;
  usage: Record<string, number>;
  cost_usd: number;
  idempotency_key: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /** The end user the run was made for (opaque id from the caller). */
  user: string | null;
  /** Which attempt of the run this is (a retry from failure starts the next). */
  attempt: number;
}

export interface RunAttemptRecord {
  run_id: string;
  attempt: number;
  status: string;
  started_at: string;
  finished_at: string | null;
  error: unknown;
  /** Steps whose results were dropped so they run again in this attempt. */
  reset_steps: string[];
  input_overrides: Record<string, unknown> | null;
}

export type RunPatch = Partial<Pick<RunRecord, 'status' | 'output' | 'outputs' | 'error' | 'usage' | 'cost_usd' | 'started_at' | 'finished_at' | 'definition' | 'attempt' | 'input' | 'context'>>;

export interface RunStepRecord {
  run_id: string;
  step_id: string;
  group_id: string | null;
  output_name: string;
  agent: string;
  status: string;
  attempts: number;
  result: unknown;
  error: unknown;
  usage: Record<string, number> | null;
  cost_usd: number;
  latency_ms: number | null;
  reason: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** A waiting step (approval) decides itself at this time (its timeout). */
  wait_until?: string | null;
  /** The run attempt that last wrote this step. */
  run_attempt?: number;
}

export interface RunEventRecord {
  run_id: string;
  seq: number;
  type: string;
  data: Record<string, unknown>;
  at: string;
}

export interface RunQuery {
  limit: number;
  /** Runs created before this run (paging backwards from the newest). */
  before?: string;
  workflow?: string;
  status?: string;
}

export interface WorkflowStore {
  /** A duplicate name in the app throws `conflict`. */
  create(workflow: WorkflowRecord): Promise<void>;
  list(appId: string): Promise<WorkflowRecord[]>;
  get(appId: string, idOrName: string): Promise<WorkflowRecord | undefined>;
  /** Replaces the document; the version goes up by one. */
  replace(appId: string, id: string, next: Pick<WorkflowRecord, 'name' | 'trigger' | 'format' | 'source' | 'definition'>, updatedAt: string): Promise<WorkflowRecord | undefined>;
  delete(appId: string, id: string): Promise<boolean>;
}

export interface RunStore {
  /** A second run with the same idempotency key in the app throws `conflict`. */
  create(run: RunRecord): Promise<void>;
  get(appId: string, runId: string): Promise<RunRecord | undefined>;
  /** Without the app check: for the executor, which already holds the run id. */
  getById(runId: string): Promise<RunRecord | undefined>;
  findByIdempotencyKey(appId: string, key: string): Promise<RunRecord | undefined>;
  /** Frees a run's idempotency key (it expired) so a new run may take it. */
  releaseIdempotencyKey(runId: string): Promise<void>;
  list(appId: string, query: RunQuery): Promise<RunRecord[]>;
  update(runId: string, patch: RunPatch, updatedAt: string): Promise<void>;
  /** Runs that were queued or running (to resume after a restart). */
  listUnfinished(): Promise<RunRecord[]>;
  listSteps(runId: string): Promise<RunStepRecord[]>;
  /** Writes a step's state and the events that announce it, in one transaction. */
  recordStep(step: RunStepRecord, events: RunEventRecord[]): Promise<void>;
  /**
   * Writes the states of several steps of one run (one state per step: the last one given wins)
   * and events, in one transaction: how a run's journal writes what its steps did in one turn.
   */
  recordSteps(steps: RunStepRecord[], events: RunEventRecord[]): Promise<void>;
  appendEvents(events: RunEventRecord[]): Promise<void>;
  /** Events with seq > afterSeq, in order. */
  listEvents(runId: string, afterSeq: number, limit?: number): Promise<RunEventRecord[]>;
  lastSeq(runId: string): Promise<number>;
  /**
   * Takes the run's lease for `owner` if it is free, expired, or already `owner`'s. Returns the
   * new epoch (every taking increments it), or null when another owner holds a live lease.
   */
  acquireLease(runId: string, owner: string, ttlMs: number): Promise<number | null>;
  /** Extends a lease still held at `epoch`; false when it was lost. */
  renewLease(runId: string, owner: string, epoch: number, ttlMs: number): Promise<boolean>;
  /** Lets the lease go at once (a drained worker hands the run over without waiting). */
  releaseLease(runId: string, owner: string, epoch: number): Promise<void>;
  /** Marks a run for cancellation, wherever it executes. */
  requestCancel(runId: string): Promise<void>;
  cancelRequested(runId: string): Promise<boolean>;
  /** Unfinished runs whose lease is missing or expired (to dispatch again). */
  listOrphaned(now: string, olderThan: string): Promise<RunRecord[]>;
  /** Moves a run from one status to another only if it is still in the first; false otherwise. */
  transitionStatus(runId: string, from: string, to: string): Promise<boolean>;
  /** Forgets an earlier cancel request (a retried run runs again). */
  clearCancel(runId: string): Promise<void>;
  /** Drops step states (a retry runs them again). */
  deleteSteps(runId: string, stepIds: string[]): Promise<void>;
  /** Steps waiting (approvals) whose wait_until has passed, of runs that are waiting. */
  listExpiredWaits(now: string): Promise<Array<{ run_id: string; step_id: string }>>;
  recordAttempt(attempt: RunAttemptRecord): Promise<void>;
  finishAttempt(runId: string, attempt: number, status: string, error: unknown, at: string): Promise<void>;
  listAttempts(runId: string): Promise<RunAttemptRecord[]>;
  /** A view of this store whose writes for `runId` fail with LeaseLostError once `epoch` is no longer current. */
  fenced(runId: string, epoch: number): RunStore;
}

export interface UsageRecord {
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
  kind: 'direct' | 'step';
  user_id: string | null;
  token_id: string | null;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cached_input_tokens: number;
  reasoning_tokens: number;
  cost_usd: number;
  price_known: boolean;
  latency_ms: number;
  ttft_ms: number | null;
  outcome: 'success' | 'error' | 'cancelled';
  error_code: string | null;
  at: string;
  run_attempt?: number | null;
}

export const USAGE_GROUPS = ['agent', 'provider', 'model', 'workflow', 'day', 'user'] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

export interface UsageQuery {
  from?: string;
  to?: string;
  groupBy: UsageGroup[];
  /** Only the calls of one run. */
  runId?: string;
}

export interface UsageRow {
  group: Partial<Record<UsageGroup, string | null>>;
  requests: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cost_usd: number;
}

export interface UsageStore {
  /**
   * Records one call: its row and its daily rollups, in one transaction. An empty
   * `workflow_name` or `user_id` is stored as none (null).
   */
  insert(record: UsageRecord): Promise<void>;
  /**
   * Records many calls in one transaction (group commit): the rows, then each daily rollup key
   * the batch touches upserted once with the batch's sums.
   */
  insertMany(records: readonly UsageRecord[]): Promise<void>;
  /**
   * Rows grouped in SQL (ordered by the group columns); with no group, one row of totals. Calls
   * with `from <= at < to`: whole UTC days inside the range are read from the daily rollups,
   * the partial days at its edges from the rows.
   */
  aggregate(appId: string, query: UsageQuery): Promise<UsageRow[]>;
}

/** One budget a call counts against: `scope` names it (e.g. `agent:<id>`), `periodStart` its period. */
export interface BudgetClaim {
  scope: string;
  periodStart: string;
  limitNano: number;
  amountNano: number;
  /**
   * The usage records that count against this scope: when its ledger for the period is first
   * created, it starts from their cost, so a budget set mid-period knows what was already spent.
   */
  seed?: { appId: string; agentId?: string; workflowId?: string; userId?: string; since?: string };
}

export interface BudgetStore {
  /**
   * Reserves every claim or none, atomically in the database: a claim fits when the scope's
   * spent + reserved + amount stays within its limit. Returns the first claim that did not fit.
   */
  reserve(reservationId: string, claims: BudgetClaim[], expiresAt: string): Promise<{ ok: true } | { ok: false; claim: BudgetClaim; spentNano: number; reservedNano: number }>;
  /**
   * Turns a reservation into spend: `actualNano` is added to every scope it reserved. When the
   * reservation was already released (it outlived its time to live), the spend is still added
   * to the scopes of `claims`.
   */
  settle(reservationId: string, actualNano: number, claims?: BudgetClaim[]): Promise<void>;
  /** Releases reservations that were never settled (their process died). Returns how many. */
  releaseExpired(now: string): Promise<number>;
  /** Spent and reserved amounts of a scope in a period. */
  ledger(scope: string, periodStart: string): Promise<{ spentNano: number; reservedNano: number }>;
}

export interface AppStore {
  create(app: AppRecord): Promise<void>;
  list(): Promise<AppRecord[]>;
  get(id: string): Promise<AppRecord | undefined>;
  getByName(name: string): Promise<AppRecord | undefined>;
  updateSettings(id: string, settings: Record<string, unknown>): Promise<void>;
  /** The app's sealed webhook secret (an envelope of the keyring), or null. */
  getWebhookSecret(id: string): Promise<string | null>;
  setWebhookSecret(id: string, sealed: string): Promise<void>;
}

export interface UserBudget {
  user: string;
  limit_usd: number;
  period: 'day' | 'month' | 'total';
  updated_at: string;
}

export interface UserStore {
  setBudget(appId: string, budget: UserBudget): Promise<void>;
  getBudget(appId: string, user: string): Promise<UserBudget | undefined>;
  deleteBudget(appId: string, user: string): Promise<boolean>;
  listBudgets(appId: string): Promise<UserBudget[]>;
  /** Records a webhook delivery id; false when it was seen before (a replay). */
  recordDelivery(appId: string, deliveryId: string, at: string): Promise<boolean>;
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
  /** Appends entries in the order given, in one statement. */
  appendMany(entries: readonly AuditEntry[]): Promise<void>;
  list(appId: string, query: AuditQuery): Promise<AuditEntry[]>;
}

export interface Storage {
  readonly engine: Engine;
  readonly apps: AppStore;
  readonly tokens: TokenStore;
  readonly agents: AgentStore;
  readonly audit: AuditStore;
  readonly workflows: WorkflowStore;
  readonly runs: RunStore;
  readonly usage: UsageStore;
  readonly budgets: BudgetStore;
  readonly users: UserStore;
  /** Brings the schema up to date; safe to run twice and from several processes at once. */
  migrate(): Promise<void>;
  /** Cheap round trip, for health reporting. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
