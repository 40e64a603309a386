/**
 * Provider keys are never stored, logged or dumped in plain text; a ciphertext cannot be moved
 * to another row; and after `ensemble keys rotate` the old master key can leave the keyring.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeVendor } from '../fakes/harness.ts';
import { VENDOR_CASES } from '../providers/vendors.ts';
import { createTestDatabase, HAS_POSTGRES, type TestDatabase } from '../support/postgres.ts';
import { startTestServer, type TestServer } from '../support/server.ts';

const run = promisify(execFile);
const ADMIN = 'admin-token-secrets-test-0123456789';
const OLD_KEY = `old:${Buffer.alloc(32, 11).toString('base64')}`;
const NEW_KEY = `new:${Buffer.alloc(32, 22).toString('base64')}`;
const engines: Array<'sqlite' | 'postgres'> = HAS_POSTGRES ? ['sqlite', 'postgres'] : ['sqlite'];

/** Distinctive keys: each would be spotted in any byte dump. */
const secretFor = (provider: string) => `SECRET-${provider}-Q7w9Zk3Lm5Np8Rt2`;

describe.each(engines)('secrets at rest on %s', (engine) => {
  const fakes = new Map<string, FakeVendor>();
  let dataDir: string;
  let database: TestDatabase | undefined;
  let server: TestServer;
  let token: string;
  const allLogs: string[] = [];

  const start = async (masterKeys: string) => {
    server = await startTestServer({
      dataDir,
      databaseUrl: database?.url,
      adminToken: ADMIN,
      masterKeys,
      allowedPrivateHosts: [...fakes.values()].map((f) => new URL(f.url).host),
    });
  };
  const stop = async () => {
    allLogs.push(...server.logs);
    await server.stop();
  };

  beforeAll(async () => {
    for (const vendor of VENDOR_CASES) fakes.set(vendor.provider, await vendor.start({ apiKey: secretFor(vendor.provider) }));
    dataDir = mkdtempSync(join(tmpdir(), 'ensemble-secrets-'));
    if (engine === 'postgres') database = await createTestDatabase();
    await start(OLD_KEY);
    token = (await server.call('POST', '/api/v1/apps', { token: ADMIN, body: { name: 'secrets' } })).body.token;
    for (const vendor of VENDOR_CASES) {
      const res = await server.call('POST', '/api/v1/agents', {
        token,
        body: { name: `agent-${vendor.provider}`, provider: vendor.provider, model: vendor.model, api_key: secretFor(vendor.provider), config: { base_url: fakes.get(vendor.provider)!.baseUrl } },
      });
      expect(res.status).toBe(201);
      const tested = await server.call('POST', `/api/v1/agents/agent-${vendor.provider}/test`, { token, body: { prompt: 'hi' } });
      expect(tested.body.ok).toBe(true);
    }
    // A failing call too: vendors echo bad keys in their error messages.
    await server.call('POST', '/api/v1/agents', {
      token,
      body: { name: 'bad-key', provider: 'openai', model: 'gpt-4.1', api_key: 'SECRET-wrong-Hh4Jj6Kk8Ll0', config: { base_url: fakes.get('openai')!.baseUrl } },
    });
    expect((await server.call('POST', '/api/v1/agents/bad-key/test', { token, body: { prompt: 'hi' } })).body.ok).toBe(false);
  });

  afterAll(async () => {
    await server?.stop().catch(() => {});
    for (const fake of fakes.values()) await fake.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('no key appears in the database files, a database dump, or any log line', async () => {
    await stop();
    const secrets = [...VENDOR_CASES.map((v) => secretFor(v.provider)), 'SECRET-wrong-Hh4Jj6Kk8Ll0'];
    const haystacks: Array<[string, Buffer]> = [['logs', Buffer.from(allLogs.join(''))]];
    if (engine === 'sqlite') {
      for (const file of readdirSync(dataDir)) haystacks.push([file, readFileSync(join(dataDir, file))]);
      expect(haystacks.map(([name]) => name)).toContain('ensemble.db');
    } else {
      const { stdout } = await run('pg_dump', ['--data-only', database!.url], { maxBuffer: 64 * 1024 * 1024 });
      expect(stdout).toContain('agent-anthropic');
      haystacks.push(['pg_dump', Buffer.from(stdout)]);
    }
    expect(allLogs.join('')).toContain('"path":"/api/v1/agents"');
    for (const [name, bytes] of haystacks) {
      for (const secret of secrets) {
        expect(bytes.includes(secret), `${secret} found in ${name}`).toBe(false);
        expect(bytes.includes(secret.slice(-12)), `a piece of ${secret} found in ${name}`).toBe(false);
      }
    }
    await start(OLD_KEY);
  });

  it('a ciphertext moved to another agent row fails to decrypt with a clear error', async () => {
    const storage = server.service.storage;
    const apps = await storage.apps.list();
    const appId = apps.find((a) => a.name === 'secrets')!.id;
    const donor = (await storage.agents.get(appId, 'agent-openai'))!;
    const target = (await storage.agents.get(appId, 'agent-groq'))!;
    await storage.agents.update(appId, target.id, { api_key_ciphertext: donor.api_key_ciphertext }, new Date().toISOString());
    const res = await server.call('POST', '/api/v1/agents/agent-groq/test', { token, body: { prompt: 'hi' } });
    expect(res.status).toBe(500);
    expect(res.body.error.message).toMatch(/cannot be decrypted for this agent/);
    // Put the right key back so the rotation test has a full set.
    await server.call('PATCH', '/api/v1/agents/agent-groq', { token, body: { api_key: secretFor('groq') } });
    expect((await server.call('POST', '/api/v1/agents/agent-groq/test', { token, body: { prompt: 'hi' } })).body.ok).toBe(true);
  });

  it('after keys rotate to a new key and removal of the old one, every agent still works', async () => {
    const child = spawn(process.execPath, ['bin/ensemble.js', 'keys', 'rotate', '--data-dir', dataDir], {
      env: { ...process.env, ENSEMBLE_MASTER_KEYS: `${NEW_KEY},${OLD_KEY}`, DATABASE_URL: database?.url ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, stderr).toBe(0);
    const result = JSON.parse(stdout.trim());
    expect(result).toMatchObject({ active_key: 'new', failed: 0 });
    expect(result.rewrapped).toBe(VENDOR_CASES.length + 1);
    expect(stderr).toContain('re-wrapped');

    await stop();
    await start(NEW_KEY);
    for (const vendor of VENDOR_CASES) {
      const res = await server.call('POST', `/api/v1/agents/agent-${vendor.provider}/test`, { token, body: { prompt: 'still there?' } });
      expect(res.body.ok, `${vendor.provider}: ${JSON.stringify(res.body)}`).toBe(true);
    }
  });
});
