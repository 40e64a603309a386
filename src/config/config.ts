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
  /** Which parts run here: the HTTP API, the run executor, or both. */
  role: z.enum(['api', 'worker', 'all']).default('all'),
  /** Cluster mode: runs one worker process executes at once. */
  workerConcurrency: z.coerce.number().int().min(1).default(50),
  /** Cluster mode: how long a run's lease lives without renewal (renewed every third of it). */
  leaseTtlMs: z.coerce.number().int().min(1000).default(15_000),
  /** Cluster mode: BullMQ job lock duration; a dead worker's runs move on after about this long. */
  queueLockMs: z.coerce.number().int().min(1000).default(15_000),
  /** Cluster mode: how often workers look for stalled jobs. */
  queueStalledIntervalMs: z.coerce.number().int().min(500).default(5_000),
  /** Cluster mode: how often any process requeues unfinished runs that nobody holds. */
  reconcileIntervalMs: z.coerce.number().int().min(500).default(10_000),
  /** How often approval steps past their timeout are decided. */
  approvalSweepMs: z.coerce.number().int().min(100).default(5_000),
  /** Largest accepted request body. */
  bodyLimitBytes: z.coerce.number().int().min(1024).default(1024 * 1024),
});

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigOverrides = Partial<Record<'port' | 'host' | 'dataDir' | 'logLevel' | 'role', string | number>>;

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
  role: 'ENSEMBLE_ROLE',
  workerConcurrency: 'ENSEMBLE_WORKER_CONCURRENCY',
  leaseTtlMs: 'ENSEMBLE_LEASE_TTL_MS',
  queueLockMs: 'ENSEMBLE_QUEUE_LOCK_MS',
  queueStalledIntervalMs: 'ENSEMBLE_QUEUE_STALLED_INTERVAL_MS',
  reconcileIntervalMs: 'ENSEMBLE_RECONCILE_INTERVAL_MS',
  approvalSweepMs: 'ENSEMBLE_APPROVAL_SWEEP_MS',
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
  const parsed = ConfigSchema.superRefine((config, ctx) => {
    if (config.redisUrl && !config.databaseUrl) ctx.addIssue({ code: 'custom', path: ['redisUrl'], message: 'cluster mode (REDIS_URL) needs DATABASE_URL: processes share PostgreSQL' });
  }).safeParse(raw);
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
