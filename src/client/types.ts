/**
 * Request and response types of the HTTP API, as the OpenAPI document (`/api/v1/openapi.json`)
 * describes them. A test checks every operation of that document against the client.
 */

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cached_input_tokens?: number;
  reasoning_tokens?: number;
}

export type ProviderName = 'ollama' | 'anthropic' | 'openai' | 'gemini' | 'openrouter' | 'groq';

export interface Health {
  status: 'ok' | 'degraded';
  version: string;
  storage: 'sqlite' | 'postgres';
  queue: 'local' | 'redis';
  dependencies?: { storage: 'up' | 'down'; redis?: 'up' | 'down' };
}

export interface App {
  id: string;
  name: string;
  created_at: string;
}

export interface AppSettings {
  budget?: Budget;
  rate_limit?: { requests_per_minute: number };
  audit_payloads?: boolean;
}

export interface Budget {
  limit_usd: number;
  period: 'day' | 'month' | 'total';
}

export interface AgentConfig {
  temperature?: number;
  max_tokens?: number;
  top_p?: number;
  stop?: string[];
  base_url?: string;
  timeout_ms?: number;
  max_retries?: number;
  openai_api?: 'responses' | 'chat';
  rate_limit?: { requests_per_minute?: number; tokens_per_minute?: number };
  budget?: Budget;
  pricing?: { input_per_million: number; output_per_million: number; cached_input_per_million?: number; reasoning_per_million?: number };
}

export interface AgentHealth {
  status: 'healthy' | 'unhealthy' | 'unknown';
  checked_at: string | null;
  latency_ms: number | null;
  error: { code: string; message: string; status?: number } | null;
}

export interface Agent {
  id: string;
  app_id: string;
  name: string;
  provider: ProviderName;
  model: string;
  role: string;
  system_prompt: string;
  config: AgentConfig;
  is_active: boolean;
  api_key_set: boolean;
  api_key_hint: string | null;
  health: AgentHealth;
  created_at: string;
  updated_at: string;
}

export interface AgentCreate {
  name: string;
  provider: ProviderName;
  model: string;
  api_key?: string;
  role?: string;
  system_prompt?: string;
  config?: AgentConfig;
  is_active?: boolean;
}

export type AgentPatch = Partial<Omit<AgentCreate, 'config'>> & { config?: Record<string, unknown> };

export type AgentTestResult =
  | { ok: true; output: string; latency_ms: number; usage: Usage; cost_usd: number }
  | { ok: false; error: { code: string; message: string; status: number | null } };

export interface Workflow {
  id: string;
  app_id: string;
  name: string;
  version: number;
  trigger: string | null;
  format: 'yaml' | 'json';
  source: string;
  definition: Record<string, unknown>;
  is_active: boolean;
  created_at: string;
  updated_at: string;
}

export type RunStatus = 'queued' | 'running' | 'waiting' | 'completed' | 'partial' | 'failed' | 'cancelled';

export interface StepResult {
  step_id: string;
  agent: string;
  output_name: string;
  status: 'pending' | 'running' | 'waiting' | 'completed' | 'failed' | 'skipped' | 'cancelled';
  attempts: number;
  output: unknown;
  error: unknown;
  usage: Usage | null;
  cost_usd: number;
  latency_ms: number | null;
  reason: string | null;
  started_at: string | null;
  finished_at: string | null;
}

export interface Run {
  run_id: string;
  kind: 'workflow' | 'chat';
  status: RunStatus;
  workflow: string | null;
  workflow_id: string | null;
  workflow_version: number | null;
  mode: string | null;
  input: string;
  context: Record<string, unknown>;
  output: unknown;
  outputs: Record<string, unknown>;
  steps: StepResult[];
  usage: Usage;
  cost_usd: number;
  usage_by_agent: Record<string, { usage: Usage; cost_usd: number; calls: number }>;
  error: unknown;
  user: string | null;
  attempt: number;
  attempts: Array<{ attempt: number; status: string; started_at: string; finished_at: string | null; error: unknown; reset_steps: string[]; input_overrides: Record<string, unknown> | null }>;
  waiting_for: Array<{ step_id: string; message: string | null; since: string | null; timeout_at: string | null }>;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface ExecuteRequest {
  input?: string | Record<string, unknown> | unknown[];
  context?: Record<string, unknown>;
  user?: string;
}

export interface ChatRequest {
  message: string;
  agents: string[];
  mode?: 'parallel' | 'sequential' | 'orchestrated';
  aggregator?: string;
  context?: Record<string, unknown>;
  fail_fast?: boolean;
  user?: string;
}

export interface ChatResult {
  run_id: string;
  mode: string;
  status: RunStatus;
  output: unknown;
  results: Array<Pick<StepResult, 'step_id' | 'agent' | 'status' | 'output' | 'error' | 'usage' | 'cost_usd' | 'latency_ms'>>;
  usage: Usage;
  cost_usd: number;
  usage_by_agent: Run['usage_by_agent'];
  plan?: { subtasks: Array<{ id: string; agent: string; task: string; depends_on: string[] }> };
  error: unknown;
}

export type RunEventType =
  | 'run.started'
  | 'step.started'
  | 'step.delta'
  | 'step.completed'
  | 'step.failed'
  | 'step.skipped'
  | 'plan.created'
  | 'plan.rejected'
  | 'step.waiting'
  | 'step.approved'
  | 'step.rejected'
  | 'run.waiting'
  | 'run.retried'
  | 'run.completed'
  | 'run.failed'
  | 'run.cancelled'
  | 'step.consult.started'
  | 'step.consult.completed';

/** One Server-Sent Event of a run: `data` always holds `run_id` and `seq`. */
export interface RunEvent {
  id: number;
  event: RunEventType;
  data: { run_id: string; seq: number; [key: string]: unknown };
}

export type UsageGroup = 'agent' | 'provider' | 'model' | 'workflow' | 'day' | 'user';

export interface UsageTotals {
  requests: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cost_usd: number;
}

export interface UsageReport {
  data: Array<UsageTotals & { key: string; group: Partial<Record<UsageGroup, string | null>> }>;
  totals: UsageTotals;
}

export interface AuditEntry {
  id: string;
  at: string;
  actor: string;
  action: string;
  target_type: string;
  target_id: string;
  outcome: string;
  details: Record<string, unknown>;
}

export interface UserBudget extends Budget {
  user: string;
  updated_at: string;
}

export interface TriggeredRuns {
  trigger: string;
  runs: Array<{ run_id: string; workflow: string }>;
  ignored?: string;
}
