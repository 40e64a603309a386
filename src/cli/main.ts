import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/index.ts';
import { VERSION } from '../core/index.ts';
import { rotateKeysCommand } from './keys.ts';
import { serveCommand } from './serve.ts';

/** Exit codes: 0 success, 1 failure, 2 usage error. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('ensemble')
    .description('Multi-agent LLM orchestration service')
    .version(VERSION)
    .exitOverride();

  program
    .command('serve')
    .description('Run the HTTP API (embedded SQLite unless DATABASE_URL is set)')
    .option('--port <port>', 'port to listen on (default 8080)')
    .option('--host <host>', 'interface to bind (default 127.0.0.1)')
    .option('--data-dir <dir>', 'data directory (default ./.ensemble)')
    .option('--role <role>', 'api | worker | all (default all); api and worker need DATABASE_URL and REDIS_URL')
    .action(serveCommand);

  program
    .command('worker')
    .description('Run a cluster worker: executes runs from the queue, serves no HTTP (same as serve --role worker)')
    .option('--data-dir <dir>', 'data directory (default ./.ensemble)')
    .action((flags: { dataDir?: string }) => serveCommand({ ...flags, role: 'worker' }));

  const keys = program.command('keys').description('Manage the master keys that encrypt provider keys');
  keys
    .command('rotate')
    .description('Re-wrap every provider key under the first key of ENSEMBLE_MASTER_KEYS (safe while the server runs; resumable)')
    .option('--data-dir <dir>', 'data directory of the embedded store (default ./.ensemble)')
    .action(rotateKeysCommand);

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exit(error.exitCode === 0 ? 0 : 2);
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`ensemble: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}
