export { governanceMiddleware, type GovernanceDeps } from './middleware.ts';
export { priceCall, worstCaseCost, estimateInputTokens, DEFAULT_RESERVED_OUTPUT_TOKENS, type CallCost, type PricingOverride } from './pricing.ts';
export { BudgetGuard, periodStart, toNano, RESERVATION_TTL_MS, type Budget, type BudgetScope } from './budgets.ts';
export { RateLimits, RateLimitExceeded, memoryLimiters, type LimiterFactory, type RateLimit } from './rate-limits.ts';
export { AppSettingsCache, AppSettingsSchema, UserBudgetCache, type AppSettings } from './app-settings.ts';
export { usageReport, type UsageReport, type UsageReportRow } from './analytics.ts';
export { redisLimiters } from './redis-limiters.ts';
