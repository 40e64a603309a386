/** An `ensemble serve` child process, as an operator runs it. */
import { spawn, type ChildProcess } from 'node:child_process';

export interface ServerProcess {
  child: ChildProcess;
  /** The HTTP address ('' for a worker, which serves none). */
  url: string;
  output(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: the process gets no chance to clean up. */
  kill(): Promise<void>;
}

export async function spawnServer(args: string[], env: Record<string, string | undefined>, options: { worker?: boolean; nodeFlags?: string[] } = {}): Promise<ServerProcess> {
  const command = options.worker ? ['worker'] : ['serve', '--port', '0'];
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), 'bin/ensemble.js', ...command, ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = output.match(/"url":"(http:\/\/[^"]+)"/);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      } else if (options.worker && output.includes('ensemble worker ready')) {
        clearTimeout(timer);
        resolve('');
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => reject(new Error(`server exited with ${code}: ${output}`)));
  });
  return {
    child,
    url,
    output: () => output,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The environment a user's shell would have, without anything of ours leaking in. */
export function cleanEnv(extra: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(ENSEMBLE_|FORCE_COLOR|NO_COLOR|DATABASE_URL|REDIS_URL)/.test(key) || /_API_KEY$/.test(key)) continue;
    env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) env[key] = value;
  return env;
}
