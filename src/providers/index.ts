export type {
  CallOptions,
  ChatMessage,
  FinishReason,
  GenerateOptions,
  GenerateResult,
  HealthReport,
  OutputSchema,
  Provider,
  ProviderName,
  ProviderSettings,
  StreamPart,
  ToolCallRecord,
  ToolDefinition,
  ToolEvent,
  Usage,
} from './types.ts';
export { DEFAULT_MAX_TOOL_STEPS, PROVIDER_NAMES, isProviderName } from './types.ts';
export { ProviderError, isProviderError, type ProviderErrorCode } from './errors.ts';
export { DEFAULT_RETRY_POLICY, sleep as abortableSleep, type RetryPolicy } from './retry.ts';
export { createProvider, type FactoryOptions } from './factory.ts';
export { DEFAULT_TIMEOUT_MS, type ProviderDeps } from './provider.ts';
export { DEFAULT_BASE_URLS, KEY_ENV_VARS, normalizeBaseUrl, requiresApiKey } from './vendors.ts';
export { applyMiddleware, type CallContext, type ProviderMiddleware } from './middleware.ts';
