/** The parent's handle on the fake vendor process (bench/lib/fake-server.ts). */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const FAKE_API_KEY = 'sk-bench-fake-0123456789abcdef';
export const FAKE_MODEL = 'gpt-4.1-mini';

export interface FakeSettings {
  /** Wait before the status line; 0 is the zero-latency fake. */
  latencyMs: number;
  /** The streamed deltas (their concatenation is the answer). */
  chunks: string[];
  /** Hold every answer until this many requests have arrived (0: no gate). */
  gate: number;
}

export interface FakeStats {
  requests: number;
  generations: number;
  inFlight: number;
  peakInFlight: number;
}

export interface FakeVendorProcess {
  /** Server root, e.g. http://127.0.0.1:34567 */
  readonly url: string;
  /** The OpenAI API root (`${url}/v1`). */
  readonly baseUrl: string;
  /** `host:port`, for ENSEMBLE_ALLOWED_PRIVATE_HOSTS. */
  readonly host: string;
  readonly pid: number;
  configure(settings: Partial<FakeSettings>): Promise<void>;
  stats(reset?: boolean): Promise<FakeStats>;
  close(): Promise<void>;
}

export async function startFakeVendor(settings: Partial<FakeSettings> = {}): Promise<FakeVendorProcess> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./fake-server.ts', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [],
  });
  const waiting = new Map<number, (value: unknown) => void>();
  let nextId = 1;
  child.on('message', (message: { id: number; value: unknown }) => {
    waiting.get(message.id)?.(message.value);
    waiting.delete(message.id);
  });
  const request = <T>(command: Record<string, unknown>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, resolve as (value: unknown) => void);
      child.send({ ...command, id }, (error) => error && reject(error));
    });
  const ready = await new Promise<{ port: number }>((resolve, reject) => {
    waiting.set(0, resolve as (value: unknown) => void);
    child.once('exit', (code) => reject(new Error(`fake vendor exited with ${code}`)));
    setTimeout(() => reject(new Error('fake vendor did not start')), 20_000).unref();
  });
  const url = `http://127.0.0.1:${ready.port}`;
  const fake: FakeVendorProcess = {
    url,
    baseUrl: `${url}/v1`,
    host: `127.0.0.1:${ready.port}`,
    pid: child.pid!,
    configure: async (next) => {
      await request({ type: 'configure', settings: next });
    },
    stats: (reset = false) => request<FakeStats>({ type: 'stats', reset }),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send({ type: 'close', id: nextId++ });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  await fake.configure(settings);
  return fake;
}
