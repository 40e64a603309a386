import { hostname } from 'node:os';
import { mkdirSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { Config, Logger } from '../config/index.ts';
import { AppSettingsCache, BudgetGuard, governanceMiddleware, RateLimits, redisLimiters, UserBudgetCache } from '../governance/index.ts';
import { createHttpApp, startHttpServer, type RunningServer } from '../http/index.ts';
import {
  BullMqRunQueue,
  ChatService,
  EventBus,
  InProcessRunQueue,
  RedisRelay,
  RunService,
  TriggerService,
  WorkflowService,
  type RunQueue,
} from '../orchestrator/index.ts';
import type { ProviderDeps } from '../providers/index.ts';
import { AgentService, AppService, AuditWriter, HealthMonitor, type HealthMonitorOptions } from '../registry/index.ts';
import { OutboundPolicy } from '../security/index.ts';
import { openStorage, type Storage } from '../storage/index.ts';
import { Semaphore } from '../workflow/index.ts';
import { ensureDefaultApp, loadKeyring } from './bootstrap.ts';

export interface Service {
  /** The HTTP API's address; undefined for a worker, which serves no HTTP. */
  readonly url: string | undefined;
  readonly server: RunningServer | undefined;
  readonly storage: Storage;
  readonly role: Config['role'];
  /** The default app's token file in embedded single-user mode. */
  readonly defaultTokenFile: string | undefined;
  /** Stops taking work, lets running steps finish (up to the grace period), releases resources. */
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** Environment for vendor keys (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Provider options (tests pin retry timing). */
  providerDeps?: Omit<ProviderDeps, 'fetch'>;
  healthMonitor?: Partial<HealthMonitorOptions> & { enabled?: boolean };
}

/** Every service of one process, wired; what the server and the library share. */
export interface Core {
  storage: Storage;
  apps: AppService;
  agents: AgentService;
  workflows: WorkflowService;
  runs: RunService;
  chat: ChatService;
  triggers: TriggerService;
  audit: AuditWriter;
  settings: AppSettingsCache;
  userBudgets: UserBudgetCache;
  limits: RateLimits;
  queue: RunQueue;
  relay: RedisRelay | undefined;
  monitor: HealthMonitor;
  /** Releases everything but storage (closed last by the caller). */
  closers: Array<() => Promise<void> | void>;
  /** Starts the executor (queue consumer), resumes unfinished runs and, in cluster mode, the reconciler. */
  startExecuting(runsHere: boolean): Promise<void>;
}

/**
 * The composition root: picks the concrete adapters for a configuration. Embedded: SQLite,
 * in-process queue and limits. Cluster (DATABASE_URL + REDIS_URL): PostgreSQL, BullMQ dispatch,
 * Redis pub/sub for live events, rate limits in Redis.
 */
export async function buildCore(config: Config, logger: Logger, options: ServiceOptions = {}): Promise<Core> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const embedded = !config.databaseUrl;
  const cluster = config.redisUrl !== undefined;
  const storage = await openStorage({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  const closers: Array<() => Promise<void> | void> = [];
  try {
    const keyring = loadKeyring({ masterKeys: config.masterKeys, dataDir: config.dataDir, embedded, logger });
    const audit = new AuditWriter(storage.audit);
    const apps = new AppService(storage, audit, config.adminToken, keyring);
    const settings = new AppSettingsCache(storage);
    const userBudgets = new UserBudgetCache(storage);
    const bus = new EventBus();

    let limiterClient: Redis | undefined;
    if (config.redisUrl) {
      limiterClient = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
      limiterClient.on('error', () => {});
      const client = limiterClient;
      closers.push(() => client.disconnect());
    }
    const limits = new RateLimits(limiterClient ? redisLimiters(limiterClient) : undefined, config.rateLimitWindowSeconds);
    const budgets = new BudgetGuard(storage.budgets);
    await budgets.releaseExpired();
    const sweeper = setInterval(() => void budgets.releaseExpired().catch(() => {}), 5 * 60_000);
    sweeper.unref();
    closers.push(() => clearInterval(sweeper));

    const agents = new AgentService({
      middleware: [
        governanceMiddleware({
          storage,
          audit,
          budgets,
          limits,
          settings,
          userBudgets,
          onRecordError: (error) => logger.error({ err: { message: (error as Error).message } }, 'could not record usage or audit'),
        }),
      ],
      storage,
      keyring,
      audit,
      outbound: new OutboundPolicy(config.allowedPrivateHosts),
      env: options.env ?? process.env,
      ...(options.providerDeps ? { providerDeps: options.providerDeps } : {}),
    });

    const onRunError = (runId: string, error: unknown) => logger.error({ run_id: runId, err: { message: (error as Error).message, stack: (error as Error).stack } }, 'run execution failed');
    const queue: RunQueue = config.redisUrl
      ? new BullMqRunQueue(config.redisUrl, { concurrency: config.workerConcurrency, lockDurationMs: config.queueLockMs, stalledIntervalMs: config.queueStalledIntervalMs }, onRunError)
      : new InProcessRunQueue(onRunError);
    let relay: RedisRelay | undefined;
    const runs: RunService = new RunService({
      storage,
      agents,
      audit,
      bus,
      queue,
      runConcurrency: config.runConcurrency,
      processSemaphore: new Semaphore(config.processConcurrency),
      onError: onRunError,
      ...(cluster
        ? {
            lease: { owner: `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`, ttlMs: config.leaseTtlMs },
            broadcastCancel: async (runId: string) => relay?.sendControl({ type: 'cancel', runId }),
          }
        : {}),
    });
    if (config.redisUrl) {
      const r = new RedisRelay(config.redisUrl, bus, (message) => runs.onCancelBroadcast(message.runId));
      relay = r;
      bus.relayTo((event) => r.publishEvent(event));
      closers.push(() => r.close());
    }
    const workflows = new WorkflowService(storage, agents, audit);
    const monitor = new HealthMonitor(storage, agents, {
      intervalMs: config.healthIntervalMs,
      ...options.healthMonitor,
      onError: (error) => logger.warn({ err: { message: (error as Error).message } }, 'health check failed'),
    });
    const chat = new ChatService(agents, runs);
    const triggers = new TriggerService(storage, runs, apps);
    const startExecuting = async (runsHere: boolean) => {
      if (runsHere) {
        queue.start((runId) => runs.execute(runId));
        // Approvals past their timeout decide themselves (a waiting run holds no worker to notice).
        const approvals = setInterval(() => void runs.decideExpiredApprovals().catch(() => {}), config.approvalSweepMs);
        approvals.unref();
        closers.unshift(() => clearInterval(approvals));
      }
      try {
        const resumed = await runs.resumeUnfinished();
        if (resumed > 0) logger.info({ runs: resumed }, 'resuming unfinished runs');
      } catch (error) {
        logger.warn({ err: { message: (error as Error).message } }, 'could not queue unfinished runs now; the reconciler will');
      }
      if (cluster) {
        // PostgreSQL is the truth: runs that nobody holds (their worker died, Redis lost the job) are queued again.
        const reconciler = setInterval(() => void runs.requeueOrphans().catch(() => {}), config.reconcileIntervalMs);
        reconciler.unref();
        closers.unshift(() => clearInterval(reconciler));
      }
    };
    return { storage, apps, agents, workflows, runs, chat, triggers, audit, settings, userBudgets, limits, queue, relay, monitor, closers, startExecuting };
  } catch (error) {
    for (const close of closers.reverse()) await close();
    await storage.close();
    throw error;
  }
}

/** Starts the parts of the configured role: the HTTP API, the run executor, or both. */
export async function startService(config: Config, logger: Logger, options: ServiceOptions = {}): Promise<Service> {
  const core = await buildCore(config, logger, options);
  const { storage, apps, agents, workflows, runs, chat, triggers, settings, userBudgets, limits, queue, relay, monitor, closers } = core;
  const audit = core.audit;
  try {
    const runsHere = config.role !== 'api';
    const servesHttp = config.role !== 'worker';
    const defaultTokenFile = servesHttp && config.adminToken === undefined ? await ensureDefaultApp(apps, config.dataDir, logger) : undefined;
    if (servesHttp && options.healthMonitor?.enabled !== false) monitor.start();
    await core.startExecuting(runsHere);

    let server: RunningServer | undefined;
    let url: string | undefined;
    if (servesHttp) {
      const app = createHttpApp({
        logger,
        bodyLimitBytes: config.bodyLimitBytes,
        health: {
          storage: () => storage.engine,
          queue: () => queue.kind,
          dependencies: async () => {
            const [db, redis] = await Promise.all([
              storage.ping().then(
                () => 'up' as const,
                () => 'down' as const,
              ),
              relay ? relay.ping().then((ok) => (ok ? ('up' as const) : ('down' as const))) : Promise.resolve(undefined),
            ]);
            return { storage: db, ...(redis ? { redis } : {}) };
          },
        },
        apps,
        agents,
        workflows,
        runs,
        chat,
        governance: { storage, settings, audit, limits, userBudgets },
        triggers,
      });
      server = await startHttpServer(app.fetch, { port: config.port, host: config.host });
      url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${server.port}`;
      logger.info({ url, role: config.role, storage: storage.engine, queue: queue.kind, data_dir: config.dataDir }, 'ensemble listening');
    } else {
      logger.info({ role: config.role, storage: storage.engine, queue: queue.kind, concurrency: config.workerConcurrency }, 'ensemble worker ready');
    }

    let stopping: Promise<void> | undefined;
    return {
      url,
      server,
      storage,
      role: config.role,
      defaultTokenFile,
      stop: () => {
        stopping ??= (async () => {
          await monitor.stop();
          // New runs stop at once; running steps get the grace period, then are interrupted
          // (not cancelled): they resume on the next start, or on another worker.
          const closing = server?.close();
          await queue.stop(config.shutdownGraceMs);
          runs.interruptAll();
          await queue.stop(1000);
          // Event streams of interrupted runs would wait forever: they are closed; clients reconnect with Last-Event-ID.
          server?.closeAll();
          await closing;
          if (queue instanceof BullMqRunQueue) await queue.close();
          for (const close of closers.reverse()) await close();
          await storage.close();
        })();
        return stopping;
      },
    };
  } catch (error) {
    for (const close of closers.reverse()) await close();
    await storage.close();
    throw error;
  }
}
