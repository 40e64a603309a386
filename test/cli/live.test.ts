/**
 * `ensemble run` on a terminal (a pseudo-terminal from util-linux `script`): the live view
 * draws one lane per step, redrawn in place; and `run -f FILE --local`, which needs no server.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptOf, startEnsemble, type Ensemble } from '../support/ensemble.ts';
import { cleanEnv } from '../support/process.ts';

const BIN = join(process.cwd(), 'bin/ensemble.js');
const HAS_SCRIPT = spawnSync('script', ['--version'], { encoding: 'utf8' }).stdout?.includes('util-linux') ?? false;
const scratch = mkdtempSync(join(tmpdir(), 'ensemble-cli-live-'));
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

let e: Ensemble;
beforeAll(async () => {
  e = await startEnsemble();
  await e.agent('claude-leader', 'anthropic', { role: 'leader' });
  await e.agent('gpt-coder', 'openai', { role: 'coder' });
  await e.agent('gemini-security', 'gemini', { role: 'security' });
  await e.workflow(readFileSync('examples/pr_review.yaml', 'utf8'));
  await e.workflow('workflow: failing\nsteps:\n  - agent: gpt-coder\n    output: draft\n');
});
afterAll(async () => {
  await e.close();
  rmSync(scratch, { recursive: true, force: true });
});

const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: Record<string, string | undefined>, onStderr?: (text: string, kill: () => void) => void): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: scratch, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out: ${stdout}\n${stderr}`));
    }, 30_000);
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      onStderr?.(stderr, () => child.kill('SIGKILL'));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      setImmediate(() => resolve({ code, stdout, stderr }));
    });
  });
}

/** `ensemble ...args` with stdout (and stderr) on a pseudo-terminal of 100 x 40. */
function inTerminal(args: string[]): Promise<Result> {
  const command = `stty cols 100 rows 40 2>/dev/null; exec ${[process.execPath, BIN, ...args].map(quote).join(' ')}`;
  return run('script', ['-qfec', command, '/dev/null'], { ENSEMBLE_URL: e.server.url, ENSEMBLE_TOKEN: e.token, TERM: 'xterm-256color' });
}

/** The frames the live view drew (each redraw starts by moving the cursor up), without escapes. */
function frames(output: string): string[] {
  // eslint-disable-next-line no-control-regex
  return output.split(/\r\x1b\[\d+A/).map((frame) => frame.replace(ANSI, '').replace(/\r/g, ''));
}

describe.skipIf(!HAS_SCRIPT)('run on a terminal: the live view', () => {
  it('draws a lane per step with its agent, status, streamed text, tokens and cost, then the output', async () => {
    e.fake('anthropic').enqueue({ chunks: ['ANALYSIS: ', 'touches ', 'auth.ts'], chunkDelayMs: 250 }, { chunks: ['FINAL ', 'REVIEW'], chunkDelayMs: 150 });
    e.fake('openai').enqueue({ chunks: ['FIXES: ', 'rename token'], chunkDelayMs: 250 });
    e.fake('gemini').enqueue({ chunks: ['SECURITY: ', 'check the JWT expiry'], chunkDelayMs: 250, usage: { input: 30, output: 12 } });
    const res = await inTerminal(['run', 'pr_review', '--input', 'PR #9']);
    expect(res.code, res.stdout).toBe(0);
    expect(res.stdout).toContain('\x1b[?25l'); // the cursor is hidden while drawing…
    expect(res.stdout).toContain('\x1b[?25h'); // …and given back
    const drawn = frames(res.stdout);
    expect(drawn.length).toBeGreaterThan(5);

    // While the analysis streams, the other steps wait for it.
    const early = drawn.find((frame) => /analysis\s+claude-leader\s+running/.test(frame) && frame.includes('ANALYSIS'));
    expect(early).toBeDefined();
    expect(early).toMatch(/fixes\s+gpt-coder\s+waiting/);
    expect(early).toContain('waiting for analysis');
    expect(early).toMatch(/review\s+claude-leader\s+waiting/);
    expect(early).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] analysis/); // a spinner on the running lane
    expect(early).toMatch(/░+ {2}0\/4 steps/); // and the progress bar

    // The parallel steps run side by side.
    expect(drawn.some((frame) => /fixes\s+gpt-coder\s+running/.test(frame) && /security\s+gemini-security\s+running/.test(frame))).toBe(true);

    const last = drawn.at(-1)!;
    expect(last).toMatch(/✔ analysis\s+claude-leader\s+completed\s+\S+\s+18 tok\s+\$\S+/);
    expect(last).toMatch(/✔ fixes\s+gpt-coder\s+completed\s+\S+\s+18 tok/);
    expect(last).toMatch(/✔ security\s+gemini-security\s+completed\s+\S+\s+42 tok/);
    expect(last).toMatch(/✔ review\s+claude-leader\s+completed\s+\S+\s+18 tok/);
    expect(last).toContain('│ SECURITY: check the JWT expiry');
    expect(last).toMatch(/█{20} {2}4\/4 steps {2}\S+ {2}96 tok {2}\S+ {2}✔ completed/);
    expect(last.trimEnd().endsWith('FINAL REVIEW')).toBe(true);
    for (const line of last.split('\n')) expect([...line].length).toBeLessThan(100);
  });

  it('shows a failed step in red and exits 1', async () => {
    e.fake('openai').enqueue({ status: 500, errorMessage: 'the coder exploded' });
    const res = await inTerminal(['run', 'failing', '--input', 'x']);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain('\x1b[31m✖'); // red
    const last = frames(res.stdout).at(-1)!;
    expect(last).toMatch(/✖ draft\s+gpt-coder\s+failed/);
    expect(last).toContain('│ unavailable: the coder exploded');
    expect(last).toContain('✖ failed: unavailable: the coder exploded');
  });

  it('--plain keeps to lines even on a terminal', async () => {
    const res = await inTerminal(['run', 'failing', '--input', 'x', '--plain']);
    expect(res.code).toBe(0);
    expect(res.stdout).not.toContain('\x1b[');
    expect(res.stdout).toContain('draft (gpt-coder): completed in ');
  });
});

describe('run -f FILE --local: no server', () => {
  const dataDir = join(scratch, 'local-data');
  const env = () => ({
    ENSEMBLE_DATA_DIR: dataDir,
    ENSEMBLE_ALLOWED_PRIVATE_HOSTS: [...e.fakes.values()].map((fake) => new URL(fake.url).host).join(','),
    LEADER_KEY: 'key-anthropic-e2e-123456',
    OPENAI_API_KEY: 'key-openai-e2e-123456',
  });
  const local = (args: string[], onStderr?: (text: string, kill: () => void) => void) => run(process.execPath, [BIN, ...args], env(), onStderr);

  it('creates the agents of --agents-file in the embedded store and runs the file in-process', async () => {
    writeFileSync(
      join(scratch, 'agents.yaml'),
      [
        'agents:',
        '  - name: claude-leader',
        '    provider: anthropic',
        '    model: claude-sonnet-4-5',
        '    api_key_env: LEADER_KEY',
        `    config: {base_url: "${e.fake('anthropic').baseUrl}", max_retries: 0}`,
        '  - name: gpt-coder            # no key: OPENAI_API_KEY of the environment is used',
        '    provider: openai',
        '    model: gpt-4.1-mini',
        `    config: {base_url: "${e.fake('openai').baseUrl}", max_retries: 0}`,
        '  - name: gemini-security',
        '    provider: gemini',
        '    model: gemini-2.5-flash',
        '    api_key: key-gemini-e2e-123456',
        `    config: {base_url: "${e.fake('gemini').baseUrl}", max_retries: 0}`,
        '',
      ].join('\n'),
    );
    e.fake('anthropic').enqueue({ text: 'LOCAL ANALYSIS' }, { text: 'LOCAL REVIEW' });
    const before = e.fake('anthropic').generationRequests().length;
    const res = await local(['run', '-f', join(process.cwd(), 'examples/pr_review.yaml'), '--local', '--agents-file', 'agents.yaml', '--input', 'PR #10', '--context', 'repo=acme/api']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('LOCAL REVIEW\n');
    expect(res.stderr).toContain('agents: created claude-leader, gpt-coder, gemini-security\n');
    expect(res.stderr).toMatch(/run \S+ started: workflow pr_review \(local\)\n/);
    expect(res.stderr).toMatch(/\nrun completed in .*, 72 tokens, /);
    expect(promptOf('anthropic', e.fake('anthropic').generationRequests()[before]!.body)).toContain('PR #10');
  });

  it('later runs use the agents already in the store; --json prints the run', async () => {
    e.fake('anthropic').enqueue({ text: 'A' }, { text: 'AGAIN' });
    const res = await local(['run', '-f', join(process.cwd(), 'examples/pr_review.yaml'), '--local', '--input', 'PR #11', '--json']);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ status: 'completed', output: 'AGAIN', input: 'PR #11' });
  });

  it('refuses to resume unfinished runs of a store a server may be using, unless --resume', async () => {
    e.fake('openai').enqueue({ chunks: ['never ', 'finished'], chunkDelayMs: 5000 });
    writeFileSync(join(scratch, 'one.yaml'), 'workflow: one\nsteps:\n  - agent: gpt-coder\n');
    const before = e.fake('openai').generationRequests().length;
    let killing = false;
    const killed = await local(['run', '-f', 'one.yaml', '--local', '--input', 'x'], (text, kill) => {
      if (killing || !text.includes('gpt-coder: started')) return;
      killing = true;
      // Once the call is in flight (the slow reply is taken), the process dies without a word.
      const poll = setInterval(() => {
        if (e.fake('openai').generationRequests().length > before) {
          clearInterval(poll);
          kill();
        }
      }, 10);
    });
    expect(killed.code).toBe(null); // SIGKILL: the run stays "running" in the store

    const refused = await local(['run', '-f', 'one.yaml', '--local', '--input', 'x']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/has 1 unfinished run .*--resume/);

    const resumed = await local(['run', '-f', 'one.yaml', '--local', '--input', 'x', '--resume', '--quiet']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toBe('Hello from the fake openai.\n');
  });

  it('usage errors exit 2; an unknown saved workflow exits 1', async () => {
    expect((await local(['run', '-f', 'one.yaml', '--local', '--detach'])).code).toBe(2);
    expect((await local(['run', '-f', 'one.yaml', '--local', '--agents-file', 'no-such.yaml'])).code).toBe(2);
    expect((await local(['run', 'one', '--agents-file', 'agents.yaml'])).code).toBe(2);
    const unknown = await local(['run', 'never-saved', '--local', '--resume']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('not_found');
  });
});
