import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/index.ts';
import { VERSION } from '../core/index.ts';
import { registerClientCommands } from './client-commands.ts';
import { EXIT } from './context.ts';
import { isReportable, reportError } from './errors.ts';
import { registerRunCommands } from './run-commands.ts';

/**
 * Exit codes: 0 success, 1 failure (a run that failed or was cancelled, an error answer, an
 * unreachable server), 2 usage error. The server commands load the service only when they run,
 * so client commands start quickly.
 */
export async function main(argv: string[]): Promise<void> {
  // `ensemble runs list | head`: a reader that leaves early is no error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(EXIT.ok);
    throw error;
  });
  const program = new Command()
    .name('ensemble')
    .description('Multi-agent LLM orchestration service')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');

  program
    .command('serve')
    .description('Run the HTTP API (embedded SQLite unless DATABASE_URL is set)')
    .option('--port <port>', 'port to listen on (default 8080)')
    .option('--host <host>', 'interface to bind (default 127.0.0.1)')
    .option('--data-dir <dir>', 'data directory (default ./.ensemble)')
    .option('--role <role>', 'api | worker | all (default all); api and worker need DATABASE_URL and REDIS_URL')
    .action(async (flags: { port?: string; host?: string; dataDir?: string; role?: string }) => (await import('./serve.ts')).serveCommand(flags));

  program
    .command('worker')
    .description('Run a cluster worker: executes runs from the queue, serves no HTTP (same as serve --role worker)')
    .option('--data-dir <dir>', 'data directory (default ./.ensemble)')
    .action(async (flags: { dataDir?: string }) => (await import('./serve.ts')).serveCommand({ ...flags, role: 'worker' }));

  const keys = program.command('keys').description('Manage the master keys that encrypt provider keys');
  keys
    .command('rotate')
    .description('Re-wrap every provider key under the first key of ENSEMBLE_MASTER_KEYS (safe while the server runs; resumable)')
    .option('--data-dir <dir>', 'data directory of the embedded store (default ./.ensemble)')
    .action(async (flags: { dataDir?: string }) => (await import('./keys.ts')).rotateKeysCommand(flags));

  registerClientCommands(program);
  registerRunCommands(program);

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exit(error.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`ensemble: ${error.message}\n`);
      process.exit(EXIT.usage);
    }
    if (isReportable(error)) process.exit(reportError(error));
    throw error;
  }
}
