import { mkdirSync } from 'node:fs';
import type { Config, Logger } from '../config/index.ts';
import { createHttpApp, startHttpServer, type RunningServer } from '../http/index.ts';
import { AppSettingsCache, BudgetGuard, governanceMiddleware, RateLimits } from '../governance/index.ts';
import { ChatService, EventBus, InProcessRunQueue, RunService, WorkflowService } from '../orchestrator/index.ts';
import type { ProviderDeps } from '../providers/index.ts';
import { AgentService, AppService, AuditWriter, HealthMonitor, type HealthMonitorOptions } from '../registry/index.ts';
import { OutboundPolicy } from '../security/index.ts';
import { openStorage, type Storage } from '../storage/index.ts';
import { Semaphore } from '../workflow/index.ts';
import { ensureDefaultApp, loadKeyring } from './bootstrap.ts';

export interface Service {
  readonly url: string;
  readonly server: RunningServer;
  readonly storage: Storage;
  /** The default app's token file in embedded single-user mode. */
  readonly defaultTokenFile: string | undefined;
  /** Stops taking requests, lets running work finish (up to the grace period), releases resources. */
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** Environment for vendor keys (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Provider options (tests pin retry timing). */
  providerDeps?: Omit<ProviderDeps, 'fetch'>;
  healthMonitor?: Partial<HealthMonitorOptions> & { enabled?: boolean };
}

/** The composition root: picks the concrete adapters for a configuration and starts serving. */
export async function startService(config: Config, logger: Logger, options: ServiceOptions = {}): Promise<Service> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const embedded = !config.databaseUrl;
  const storage = await openStorage({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    const keyring = loadKeyring({ masterKeys: config.masterKeys, dataDir: config.dataDir, embedded, logger });
    const audit = new AuditWriter(storage.audit);
    const apps = new AppService(storage, audit, config.adminToken);
    const settings = new AppSettingsCache(storage);
    const limits = new RateLimits(undefined, config.rateLimitWindowSeconds);
    const budgets = new BudgetGuard(storage.budgets);
    await budgets.releaseExpired();
    const sweeper = setInterval(() => void budgets.releaseExpired().catch(() => {}), 5 * 60_000);
    sweeper.unref();
    const agents = new AgentService({
      middleware: [
        governanceMiddleware({
          storage,
          audit,
          budgets,
          limits,
          settings,
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
    const bus = new EventBus();
    const queue = new InProcessRunQueue((runId, error) => logger.error({ run_id: runId, err: { message: (error as Error).message, stack: (error as Error).stack } }, 'run execution failed'));
    const runs = new RunService({
      storage,
      agents,
      audit,
      bus,
      queue,
      runConcurrency: config.runConcurrency,
      processSemaphore: new Semaphore(config.processConcurrency),
    });
    const workflows = new WorkflowService(storage, agents, audit);
    const defaultTokenFile = config.adminToken === undefined ? await ensureDefaultApp(apps, config.dataDir, logger) : undefined;

    const monitor = new HealthMonitor(storage, agents, {
      intervalMs: config.healthIntervalMs,
      ...options.healthMonitor,
      onError: (error) => logger.warn({ err: { message: (error as Error).message } }, 'health check failed'),
    });
    if (options.healthMonitor?.enabled !== false) monitor.start();

    queue.start((runId) => runs.execute(runId));
    const resumed = await runs.resumeUnfinished();
    if (resumed > 0) logger.info({ runs: resumed }, 'resuming unfinished runs');
    const queueKind = queue.kind;
    const app = createHttpApp({
      logger,
      bodyLimitBytes: config.bodyLimitBytes,
      health: { storage: () => storage.engine, queue: () => queueKind },
      apps,
      agents,
      workflows,
      runs,
      chat: new ChatService(agents, runs),
      governance: { storage, settings, audit, limits },
    });
    const server = await startHttpServer(app.fetch, { port: config.port, host: config.host });
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${server.port}`;
    logger.info({ url, storage: storage.engine, queue: queueKind, data_dir: config.dataDir }, 'ensemble listening');

    let stopping: Promise<void> | undefined;
    return {
      url,
      server,
      storage,
      defaultTokenFile,
      stop: () => {
        stopping ??= (async () => {
          await monitor.stop();
          clearInterval(sweeper);
          const grace = setTimeout(() => logger.warn('grace period over; closing remaining connections'), config.shutdownGraceMs);
          grace.unref();
          // New runs stop at once; running steps get the grace period, then are interrupted
          // (not cancelled): they resume on the next start.
          const closing = server.close();
          await queue.stop(config.shutdownGraceMs);
          runs.interruptAll();
          await queue.stop(1000);
          // Event streams of interrupted runs would wait forever: they are closed; clients reconnect with Last-Event-ID.
          server.closeAll();
          await closing;
          clearTimeout(grace);
          await storage.close();
        })();
        return stopping;
      },
    };
  } catch (error) {
    await storage.close();
    throw error;
  }
}
