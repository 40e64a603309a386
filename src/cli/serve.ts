import { startService } from '../app/index.ts';
import { createLogger, loadConfig, type ConfigOverrides } from '../config/index.ts';

export interface ServeFlags {
  port?: string;
  host?: string;
  dataDir?: string;
  role?: string;
}

/** `ensemble serve`: runs until SIGTERM/SIGINT, then drains and exits 0. */
export async function serveCommand(flags: ServeFlags): Promise<void> {
  const overrides: ConfigOverrides = {};
  if (flags.port !== undefined) overrides.port = flags.port;
  if (flags.host !== undefined) overrides.host = flags.host;
  if (flags.dataDir !== undefined) overrides.dataDir = flags.dataDir;
  if (flags.role !== undefined) overrides.role = flags.role;
  const config = loadConfig(process.env, overrides);
  const logger = createLogger(config.logLevel);
  const service = await startService(config, logger);
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    service.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
