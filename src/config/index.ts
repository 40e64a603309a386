export { loadConfig, ConfigError, type Config, type ConfigOverrides } from './config.ts';
export { createLogger, REDACTED_LOG_PATHS, type Logger } from './logger.ts';
