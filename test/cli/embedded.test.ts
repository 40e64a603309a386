/** Embedded single-user start: the default app, its 0600 token file, reused across restarts. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-embedded-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function serve(): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const env = { ...process.env };
  delete env.ENSEMBLE_ADMIN_TOKEN;
  delete env.ENSEMBLE_MASTER_KEYS;
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, ['bin/ensemble.js', 'serve', '--port', '0', '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start: ${output}`)), 15_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = output.match(/"url":"(http:\/\/[^"]+)"/);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
  });
  return { child, url, output: () => output };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  return exited;
}

describe('embedded first start', () => {
  it('creates the default app and a 0600 token file, generates a 0600 master key with a warning, and reuses both', async () => {
    const first = await serve();
    const tokenFile = join(dataDir, 'default-app.token');
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'master.key')).mode & 0o777).toBe(0o600);
    expect(first.output()).toContain('generated a master key file');
    expect(first.output()).toContain(tokenFile);
    expect(first.output()).not.toContain(token);

    const created = await fetch(`${first.url}/api/v1/agents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'local-llama', provider: 'ollama', model: 'llama3.2' }),
    });
    expect(created.status).toBe(201);
    expect(await stop(first.child)).toBe(0);

    const second = await serve();
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token);
    expect(second.output()).not.toContain('generated a master key file');
    const listed = await fetch(`${second.url}/api/v1/agents`, { headers: { authorization: `Bearer ${token}` } });
    expect(((await listed.json()) as { data: Array<{ name: string }> }).data.map((a) => a.name)).toEqual(['local-llama']);
    expect(await stop(second.child)).toBe(0);
  });
});
