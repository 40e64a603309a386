import { z } from 'zod';

/**
 * The service's settings: environment variables first, then command-line overrides. Parsed
 * once at start; a bad value stops the process with the variable's name.
 */
const ConfigSchema = z.object({
  port: z.coerce.number().int().min(0).max(65_535).default(8080),
  host: z.string().min(1).default('127.0.0.1'),
  dataDir: z.string().min(1).default('./.ensemble'),
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  redisUrl: z.string().regex(/^rediss?:\/\//, 'must be a redis:// URL').optional(),
  adminToken: z.string().min(16, 'must be at least 16 characters').optional(),
  masterKeys: z.string().optional(),
  allowedPrivateHosts: z
    .string()
    .default('127.0.0.1:11434,localhost:11434')
    .transform((value) =>
      value
        .split(',')
        .map((entry) => entry.trim().toLowerCase())
        .filter(Boolean),
    ),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How long SIGTERM waits for running steps before the process exits. */
  shutdownGraceMs: z.coerce.number().int().min(0).default(30_000),
  /** Time between two health checks of an agent (jittered). */
  healthIntervalMs: z.coerce.number().int().min(1000).default(5 * 60_000),
  /** Provider calls in flight per run. */
  runConcurrency: z.coerce.number().int().min(1).default(16),
  /** Provider calls in flight in one process, across runs. */
  processConcurrency: z.coerce.number().int().min(1).default(4096),
  /** The window of "per minute" rate limits, in seconds (shorter only for tests). */
  rateLimitWindowSeconds: z.coerce.number().int().min(1).default(60),
  /** Largest accepted request body. */
  bodyLimitBytes: z.coerce.number().int().min(1024).default(1024 * 1024),
});

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigOverrides = Partial<Record<'port' | 'host' | 'dataDir' | 'logLevel', string | number>>;

const ENV_NAMES = {
  port: 'PORT',
  host: 'HOST',
  dataDir: 'ENSEMBLE_DATA_DIR',
  databaseUrl: 'DATABASE_URL',
  redisUrl: 'REDIS_URL',
  adminToken: 'ENSEMBLE_ADMIN_TOKEN',
  masterKeys: 'ENSEMBLE_MASTER_KEYS',
  allowedPrivateHosts: 'ENSEMBLE_ALLOWED_PRIVATE_HOSTS',
  logLevel: 'LOG_LEVEL',
  shutdownGraceMs: 'ENSEMBLE_SHUTDOWN_GRACE_MS',
  bodyLimitBytes: 'ENSEMBLE_BODY_LIMIT_BYTES',
  healthIntervalMs: 'ENSEMBLE_HEALTH_INTERVAL_MS',
  runConcurrency: 'ENSEMBLE_RUN_CONCURRENCY',
  rateLimitWindowSeconds: 'ENSEMBLE_RATE_LIMIT_WINDOW_SECONDS',
  processConcurrency: 'ENSEMBLE_PROCESS_CONCURRENCY',
} as const satisfies Record<keyof Config, string>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env, overrides: ConfigOverrides = {}): Config {
  const raw: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(ENV_NAMES)) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) raw[key] = value;
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const name = ENV_NAMES[key as keyof Config] ?? key;
      return `${name}: ${issue.message}`;
    });
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  return parsed.data;
}
