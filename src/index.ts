/**
 * The public surface of the `ensemble` package. Everything a program embedding Ensemble may use
 * is exported here; nothing else is reachable (package.json `exports`).
 */
export { createEnsemble, startService, type Ensemble, type EnsembleOptions, type RunEvent, type RunHandle, type Service, type ServiceOptions } from './app/index.ts';
export { loadConfig, createLogger, type Config, type Logger } from './config/index.ts';
export { EnsembleError, type ErrorCode } from './core/index.ts';
export { createProvider, ProviderError, PROVIDER_NAMES, type Provider, type ProviderName, type ProviderSettings, type GenerateOptions, type GenerateResult, type StreamPart, type Usage } from './providers/index.ts';
export type { AgentView, AgentCreateInput, AgentPatchInput, AgentTestResult, AgentConfig } from './registry/index.ts';
export type { ChatResult, RunView, StepResultView, WorkflowView } from './orchestrator/index.ts';
export type { CompiledWorkflow, CompiledStep } from './workflow/index.ts';
export type { UsageReport } from './governance/index.ts';
export type { AuditEntry, UsageGroup } from './storage/index.ts';
