/** An Ensemble server in this process on a real port, with its log lines captured. */
import { Writable } from 'node:stream';
import { startService, type Service } from '../../src/app/index.ts';
import { createLogger, loadConfig, type Config } from '../../src/config/index.ts';

export interface TestServer {
  service: Service;
  url: string;
  logs: string[];
  /** fetch against the server with a bearer token and JSON body. */
  call(method: string, path: string, options?: { token?: string; body?: unknown; headers?: Record<string, string>; rawBody?: string }): Promise<{ status: number; body: any; headers: Headers }>;
  stop(): Promise<void>;
}

export async function startTestServer(settings: {
  dataDir: string;
  databaseUrl?: string | undefined;
  adminToken?: string;
  masterKeys?: string;
  allowedPrivateHosts?: string[];
  env?: Record<string, string | undefined>;
  healthIntervalMs?: number;
  healthMonitor?: boolean;
  rateLimitWindowSeconds?: number;
  approvalSweepMs?: number;
}): Promise<TestServer> {
  const env: Record<string, string | undefined> = {
    ENSEMBLE_DATA_DIR: settings.dataDir,
    DATABASE_URL: settings.databaseUrl,
    ENSEMBLE_ADMIN_TOKEN: settings.adminToken,
    ENSEMBLE_MASTER_KEYS: settings.masterKeys,
    ENSEMBLE_ALLOWED_PRIVATE_HOSTS: (settings.allowedPrivateHosts ?? []).join(','),
    ENSEMBLE_HEALTH_INTERVAL_MS: settings.healthIntervalMs?.toString(),
    LOG_LEVEL: 'debug',
    ENSEMBLE_RATE_LIMIT_WINDOW_SECONDS: settings.rateLimitWindowSeconds?.toString(),
    ENSEMBLE_APPROVAL_SWEEP_MS: settings.approvalSweepMs?.toString(),
    PORT: '0',
  };
  const config: Config = loadConfig(env);
  const logs: string[] = [];
  const logger = createLogger(config.logLevel, new Writable({ write: (chunk, _enc, done) => (logs.push(chunk.toString()), done()) }));
  const service = await startService(config, logger, {
    env: settings.env ?? {},
    providerDeps: { retryPolicy: { initialDelayMs: 5, maxDelayMs: 20 } },
    healthMonitor: { enabled: settings.healthMonitor ?? false },
  });
  if (!service.url) throw new Error('the test server must serve HTTP');
  const url = service.url;
  return {
    service,
    url,
    logs,
    async call(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      let body: string | undefined = options.rawBody;
      if (options.body !== undefined) {
        body = JSON.stringify(options.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(`${url}${path}`, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    stop: () => service.stop(),
  };
}
