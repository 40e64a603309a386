export { AppService, type Principal } from './apps.ts';
export { AgentService, toAgentView, type AgentView, type AgentTestResult, type AgentServiceDeps } from './agents.ts';
export { AuditWriter, actorLabel, type Actor, type AuditInput } from './audit.ts';
export {
  AGENT_NAME_PATTERN,
  AgentConfigSchema,
  AgentCreateSchema,
  AgentPatchSchema,
  BudgetSchema,
  PricingSchema,
  RateLimitSchema,
  type AgentConfig,
  type AgentCreateInput,
  type AgentPatchInput,
} from './agent-schema.ts';
export { HealthMonitor, DEFAULT_HEALTH_MONITOR, type HealthMonitorOptions } from './health-monitor.ts';
export { rotateKeys, type RotationProgress } from './key-rotation.ts';
