/** `ensemble serve` as a user runs it: a real process, a real port, SIGTERM to stop. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnServer } from '../support/process.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-serve-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('ensemble serve', () => {
  it('serves /api/v1/health on the given port and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['bin/ensemble.js', 'serve', '--port', '0', '--data-dir', join(dataDir, 'd')], {
      env: { ...process.env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start: ${output}`)), 15_000);
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = output.match(/"url":"(http:\/\/[^"]+)"/);
        if (match?.[1]) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${output}`)));
    });
    const res = await fetch(`${url}/api/v1/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', storage: 'sqlite', queue: 'local' });
    expect(statSync(join(dataDir, 'd')).isDirectory()).toBe(true);

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('runs with a 16 MB young generation (the same process, re-executed once), unless told otherwise', async () => {
    const flagsOf = async (env: Record<string, string>, extraNodeFlags: string[] = []) => {
      const server = await spawnServer(['--data-dir', join(dataDir, `v8-${Object.values(env).join('-') || 'default'}-${extraNodeFlags.length}`)], env, { nodeFlags: extraNodeFlags });
      try {
        return readFileSync(`/proc/${server.child.pid}/cmdline`, 'utf8').split('\0').filter((arg) => arg.startsWith('--max-semi-space-size'));
      } finally {
        expect(await server.stop()).toBe(0);
      }
    };
    expect(await flagsOf({})).toEqual(['--max-semi-space-size=16']);
    expect(await flagsOf({ ENSEMBLE_V8_SEMI_SPACE_MB: '32' })).toEqual(['--max-semi-space-size=32']);
    expect(await flagsOf({ ENSEMBLE_V8_SEMI_SPACE_MB: '0' })).toEqual([]);
    expect(await flagsOf({}, ['--max-semi-space-size=8'])).toEqual(['--max-semi-space-size=8']);
  });

  it('exits 2 on a usage error', async () => {
    const child = spawn(process.execPath, ['bin/ensemble.js', 'serve', '--no-such-flag'], { stdio: 'ignore' });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
  });
});
