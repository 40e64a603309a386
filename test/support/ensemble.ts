/** A server with one app, the six fake vendors, and helpers to register agents and workflows. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeVendor } from '../fakes/harness.ts';
import { VENDOR_CASES } from '../providers/vendors.ts';
import { createTestDatabase, type TestDatabase } from './postgres.ts';
import { startTestServer, type TestServer } from './server.ts';

export const ADMIN_TOKEN = 'admin-token-e2e-0123456789abcdef';
export const MASTER_KEYS = `e2e:${Buffer.alloc(32, 9).toString('base64')}`;

export interface Ensemble {
  server: TestServer;
  token: string;
  fakes: Map<string, FakeVendor>;
  dataDir: string;
  databaseUrl: string | undefined;
  fake(provider: string): FakeVendor;
  /** Registers an agent on the fake of `provider`. */
  agent(name: string, provider: string, extra?: Record<string, unknown>): Promise<void>;
  /** Saves a workflow (YAML text or JSON document); throws unless 201. */
  workflow(doc: string | Record<string, unknown>): Promise<any>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startEnsemble(options: { engine?: 'sqlite' | 'postgres'; rateLimitWindowSeconds?: number; approvalSweepMs?: number } = {}): Promise<Ensemble> {
  const fakes = new Map<string, FakeVendor>();
  for (const vendor of VENDOR_CASES) fakes.set(vendor.provider, await vendor.start({ apiKey: `key-${vendor.provider}-e2e-123456` }));
  const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-e2e-'));
  let database: TestDatabase | undefined;
  if (options.engine === 'postgres') database = await createTestDatabase();
  const start = () =>
    startTestServer({
      dataDir,
      databaseUrl: database?.url,
      adminToken: ADMIN_TOKEN,
      masterKeys: MASTER_KEYS,
      allowedPrivateHosts: [...fakes.values()].map((f) => new URL(f.url).host),
      ...(options.rateLimitWindowSeconds ? { rateLimitWindowSeconds: options.rateLimitWindowSeconds } : {}),
      ...(options.approvalSweepMs ? { approvalSweepMs: options.approvalSweepMs } : {}),
    });
  const server = await start();
  const app = await server.call('POST', '/api/v1/apps', { token: ADMIN_TOKEN, body: { name: 'e2e' } });
  if (app.status !== 201) throw new Error(`cannot create app: ${JSON.stringify(app.body)}`);
  const ensemble: Ensemble = {
    server,
    token: app.body.token,
    fakes,
    dataDir,
    databaseUrl: database?.url,
    fake: (provider) => {
      const fake = fakes.get(provider);
      if (!fake) throw new Error(`no fake for ${provider}`);
      return fake;
    },
    async agent(name, provider, extra = {}) {
      const vendor = VENDOR_CASES.find((v) => v.provider === provider)!;
      const res = await ensemble.server.call('POST', '/api/v1/agents', {
        token: ensemble.token,
        body: {
          name,
          provider,
          model: vendor.model,
          api_key: `key-${provider}-e2e-123456`,
          role: name.split('-')[1] ?? 'agent',
          system_prompt: `You are ${name}.`,
          ...extra,
          config: { base_url: ensemble.fake(provider).baseUrl, max_retries: 0, ...((extra.config as object) ?? {}) },
        },
      });
      if (res.status !== 201) throw new Error(`cannot create agent ${name}: ${JSON.stringify(res.body)}`);
    },
    async workflow(doc) {
      const res =
        typeof doc === 'string'
          ? await ensemble.server.call('POST', '/api/v1/workflows', { token: ensemble.token, rawBody: doc, headers: { 'content-type': 'application/yaml' } })
          : await ensemble.server.call('POST', '/api/v1/workflows', { token: ensemble.token, body: doc });
      if (res.status !== 201) throw new Error(`cannot save workflow: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    },
    async restart() {
      await ensemble.server.stop();
      ensemble.server = await start();
    },
    async close() {
      await ensemble.server.stop();
      for (const fake of fakes.values()) await fake.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return ensemble;
}

/** The user message of a recorded generation request, whatever the vendor's format. */
export function promptOf(provider: string, body: any): string {
  switch (provider) {
    case 'anthropic':
      return JSON.stringify(body.messages);
    case 'gemini':
      return JSON.stringify(body.contents);
    case 'openai':
      return JSON.stringify(body.input ?? body.messages);
    default:
      return JSON.stringify(body.messages);
  }
}

/** Whether two recorded requests were in flight at the same time. */
export function overlapped(a: { startedAt: number; endedAt?: number }, b: { startedAt: number; endedAt?: number }): boolean {
  return a.startedAt < (b.endedAt ?? Infinity) && b.startedAt < (a.endedAt ?? Infinity);
}

/** Reads an SSE response into its events (until the stream ends). */
export async function readEvents(res: Response): Promise<Array<{ id: number; event: string; data: any }>> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.trim())
    .map((block) => {
      const fields = Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trimStart()]));
      return { id: Number(fields.id), event: fields.event!, data: JSON.parse(fields.data!) };
    });
}
