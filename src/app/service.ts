import { mkdirSync } from 'node:fs';
import type { Config, Logger } from '../config/index.ts';
import { createHttpApp, startHttpServer, type RunningServer } from '../http/index.ts';

export interface Service {
  readonly url: string;
  readonly server: RunningServer;
  /** Stops taking requests, lets running work finish (up to the grace period), releases resources. */
  stop(): Promise<void>;
}

/** The composition root: picks the concrete adapters for a configuration and starts serving. */
export async function startService(config: Config, logger: Logger): Promise<Service> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const storageKind = config.databaseUrl ? 'postgres' : 'sqlite';
  const queueKind = config.redisUrl ? 'redis' : 'local';
  const app = createHttpApp({
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    health: { storage: () => storageKind, queue: () => queueKind },
  });
  const server = await startHttpServer(app.fetch, { port: config.port, host: config.host });
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${server.port}`;
  logger.info({ url, storage: storageKind, queue: queueKind, data_dir: config.dataDir }, 'ensemble listening');

  let stopping: Promise<void> | undefined;
  return {
    url,
    server,
    stop: () => {
      stopping ??= (async () => {
        const grace = setTimeout(() => logger.warn('grace period over; closing remaining connections'), config.shutdownGraceMs);
        grace.unref();
        await server.close();
        clearTimeout(grace);
      })();
      return stopping;
    },
  };
}
