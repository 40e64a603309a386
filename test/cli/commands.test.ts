/**
 * The `ensemble` client commands as a user runs them: a spawned process against a real server
 * (in this process, with the fake vendors), output read from its stdout and stderr, exit codes.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptOf, startEnsemble, type Ensemble } from '../support/ensemble.ts';
import { cleanEnv } from '../support/process.ts';

const ESC = '\x1b';
const scratch = mkdtempSync(join(tmpdir(), 'ensemble-cli-'));
const example = (name: string) => readFileSync(new URL(`../../examples/${name}.yaml`, import.meta.url), 'utf8');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `ensemble ...args` (asynchronously: the server answers from this process). */
function ensemble(args: string[], options: { env?: Record<string, string | undefined>; stdin?: string; cwd?: string; onStderr?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(process.cwd(), 'bin/ensemble.js'), ...args], {
      cwd: options.cwd ?? scratch,
      env: cleanEnv({ ENSEMBLE_URL: e.server.url, ENSEMBLE_TOKEN: e.token, ...options.env }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ensemble ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 30_000);
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      options.onStderr?.(stderr, child);
    });
    child.stdin.end(options.stdin ?? '');
    child.once('exit', (code) => {
      clearTimeout(timer);
      // let the pipes drain
      setImmediate(() => resolve({ code, stdout, stderr }));
    });
  });
}

let e: Ensemble;
const keyOf = (provider: string) => `key-${provider}-e2e-123456`;

beforeAll(async () => {
  e = await startEnsemble();
});
afterAll(async () => {
  await e.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('agents', () => {
  it('add: name, provider, model, key, base URL, role and a system prompt from a file', async () => {
    writeFileSync(join(scratch, 'leader.md'), 'You lead reviews.\n');
    const res = await ensemble([
      'agents', 'add', 'claude-leader', '--provider', 'anthropic', '--model', 'claude-sonnet-4-5',
      '--api-key', keyOf('anthropic'), '--base-url', e.fake('anthropic').baseUrl, '--role', 'leader',
      '--system-prompt', '@leader.md', '--max-retries', '0', '--temperature', '0.2',
    ]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe('created agent claude-leader: anthropic claude-sonnet-4-5, key …3456 (from --api-key)\n');
    const agent = (await e.server.call('GET', '/api/v1/agents/claude-leader', { token: e.token })).body;
    expect(agent).toMatchObject({ role: 'leader', system_prompt: 'You lead reviews.\n', api_key_set: true, config: { base_url: e.fake('anthropic').baseUrl, max_retries: 0, temperature: 0.2 } });
  });

  it('add: the key from the provider\'s variable, from --api-key-env, or from standard input; --json', async () => {
    const fromVendorEnv = await ensemble(['agents', 'add', 'gpt-coder', '--provider', 'openai', '--model', 'gpt-4.1-mini', '--base-url', e.fake('openai').baseUrl, '--role', 'coder', '--max-retries', '0'], {
      env: { OPENAI_API_KEY: keyOf('openai') },
    });
    expect(fromVendorEnv.code).toBe(0);
    expect(fromVendorEnv.stdout).toContain('(from $OPENAI_API_KEY)');

    const fromNamedEnv = await ensemble(['agents', 'add', 'gemini-security', '--provider', 'gemini', '--model', 'gemini-2.5-flash', '--api-key-env', 'SECURITY_KEY', '--base-url', e.fake('gemini').baseUrl, '--max-retries', '0', '--json'], {
      env: { SECURITY_KEY: keyOf('gemini') },
    });
    expect(fromNamedEnv.code).toBe(0);
    expect(JSON.parse(fromNamedEnv.stdout)).toMatchObject({ name: 'gemini-security', provider: 'gemini', api_key_set: true, api_key_hint: '…3456' });
    expect(fromNamedEnv.stdout).not.toContain(keyOf('gemini'));

    const fromStdin = await ensemble(['agents', 'add', 'groq-agg', '--provider', 'groq', '--model', 'llama-3.3-70b-versatile', '--api-key', '-', '--base-url', e.fake('groq').baseUrl, '--max-retries', '0'], {
      stdin: `${keyOf('groq')}\n`,
    });
    expect(fromStdin.code).toBe(0);
    expect(fromStdin.stdout).toContain('(from standard input)');

    // The keys really are the right ones: each agent's test call passes its fake's key check.
    for (const name of ['gpt-coder', 'gemini-security', 'groq-agg']) {
      const test = await ensemble(['agents', 'test', name, '--json']);
      expect(test.code, test.stdout + test.stderr).toBe(0);
      expect(JSON.parse(test.stdout)).toMatchObject({ ok: true, usage: { input_tokens: 11, output_tokens: 7 } });
    }
  });

  it('test: shows the answer with latency, tokens and cost; a provider failure exits 1', async () => {
    e.fake('openai').enqueue({ text: 'Yes, I am working.' });
    const ok = await ensemble(['agents', 'test', 'gpt-coder', '--prompt', 'Are you there?']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ok {2}\d+ms {2}18 tokens \(11 in, 7 out\) {2}\S+\nYes, I am working.\n$/);
    expect(promptOf('openai', e.fake('openai').generationRequests().at(-1)!.body)).toContain('Are you there?');

    e.fake('openai').enqueue({ status: 401, errorMessage: 'Incorrect API key provided' });
    const failed = await ensemble(['agents', 'test', 'gpt-coder']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('agent gpt-coder failed its test: auth_failed: Incorrect API key provided');
  });

  it('list: a table, or JSON; filters', async () => {
    const table = await ensemble(['agents', 'list']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+PROVIDER\s+MODEL\s+ROLE\s+ACTIVE\s+KEY\s+HEALTH$/);
    expect(lines.find((l) => l.startsWith('claude-leader'))).toMatch(/^claude-leader\s+anthropic\s+claude-sonnet-4-5\s+leader\s+yes\s+…3456\s+unknown$/);
    expect(table.stdout).not.toContain(ESC);

    const json = await ensemble(['agents', 'list', '--json', '--role', 'coder']);
    expect(JSON.parse(json.stdout).map((a: { name: string }) => a.name)).toEqual(['gpt-coder']);
  });

  it('add refuses a duplicate (exit 1) and bad flags (exit 2); rm removes', async () => {
    const duplicate = await ensemble(['agents', 'add', 'gpt-coder', '--provider', 'openai', '--model', 'gpt-4.1-mini', '--api-key', 'sk-another']);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toMatch(/^ensemble: conflict: /);

    expect((await ensemble(['agents', 'add', 'x', '--provider', 'nope', '--model', 'm'])).code).toBe(2);
    expect((await ensemble(['agents', 'add', 'x', '--provider', 'ollama'])).code).toBe(2);
    expect((await ensemble(['agents', 'add', 'x', '--provider', 'ollama', '--model', 'm', '--temperature', 'hot'])).code).toBe(2);
    expect((await ensemble(['agents', 'add', 'x', '--provider', 'openai', '--model', 'm', '--api-key-env', 'NOT_SET_ANYWHERE'])).code).toBe(2);

    expect((await ensemble(['agents', 'add', 'temp', '--provider', 'ollama', '--model', 'llama3.2'])).code).toBe(0);
    const removed = await ensemble(['agents', 'rm', 'temp']);
    expect(removed).toMatchObject({ code: 0, stdout: 'removed agent temp\n' });
    expect((await e.server.call('GET', '/api/v1/agents/temp', { token: e.token })).status).toBe(404);
    expect((await ensemble(['agents', 'rm', 'temp'])).code).toBe(1);
  });
});

describe('workflows', () => {
  it('apply -f creates, leaves an identical file unchanged, and replaces a changed one', async () => {
    const created = await ensemble(['workflows', 'apply', '-f', join(process.cwd(), 'examples/pr_review.yaml')]);
    expect(created).toMatchObject({ code: 0, stdout: 'created workflow pr_review (version 1, 4 steps)\n' });
    const same = await ensemble(['workflows', 'apply', '-f', join(process.cwd(), 'examples/pr_review.yaml')]);
    expect(same.stdout).toBe('unchanged workflow pr_review (version 1, 4 steps)\n');

    writeFileSync(join(scratch, 'pr_review.yaml'), example('pr_review').replace('Lead with what must change.', 'Lead with what must change, then praise.'));
    const updated = await ensemble(['workflows', 'apply', '-f', 'pr_review.yaml', '--json']);
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject([{ file: 'pr_review.yaml', result: 'updated', workflow: { name: 'pr_review', version: 2 } }]);

    writeFileSync(join(scratch, 'failing.yaml'), 'workflow: failing\nsteps:\n  - agent: gpt-coder\n    output: draft\n');
    expect((await ensemble(['workflows', 'apply', '-f', 'failing.yaml'])).code).toBe(0);
  });

  it('list and show', async () => {
    const list = await ensemble(['workflows', 'list']);
    expect(list.stdout).toMatch(/^NAME\s+VERSION\s+TRIGGER\s+STEPS\s+UPDATED\s+DESCRIPTION\n/);
    expect(list.stdout).toMatch(/\npr_review\s+2\s+pr_review\s+4\s+/);
    const json = await ensemble(['workflows', 'list', '--json']);
    expect(JSON.parse(json.stdout).map((w: { name: string }) => w.name).sort()).toEqual(['failing', 'pr_review']);
    const show = await ensemble(['workflows', 'show', 'pr_review']);
    expect(show.stdout).toBe(`${readFileSync(join(scratch, 'pr_review.yaml'), 'utf8')}`);
  });

  it('an invalid workflow is refused with every problem listed (exit 1); a missing file is a usage error (exit 2)', async () => {
    writeFileSync(join(scratch, 'bad.yaml'), 'workflow: bad\nsteps:\n  - agent: nobody\n    output: a\n  - agent: gpt-coder\n    input: "{{missing}}"\n');
    const bad = await ensemble(['workflows', 'apply', '-f', 'bad.yaml']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^ensemble: invalid_workflow: /);
    expect(bad.stderr).toContain("  - Step 'a': unknown agent 'nobody'");
    expect(bad.stderr).toMatch(/ {2}- .*missing/);
    const missing = await ensemble(['workflows', 'apply', '-f', 'no-such.yaml']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read workflow file no-such.yaml: no such file');
  });
});

describe('run (plain output: stdout is a pipe)', () => {
  it('runs a workflow with --input @file and --context: progress lines on stderr, the output on stdout, no escapes', async () => {
    writeFileSync(join(scratch, 'pr-7.txt'), 'PR #7: add login\n');
    e.fake('anthropic').enqueue({ text: 'ANALYSIS: touches auth.ts' }, { chunks: ['FINAL ', 'REVIEW'] });
    e.fake('openai').enqueue({ text: 'FIXES: rename token', delayMs: 100 });
    e.fake('gemini').enqueue({ text: 'SECURITY: check the JWT expiry', delayMs: 100 });
    const before = e.fake('anthropic').generationRequests().length;
    const res = await ensemble(['run', 'pr_review', '--input', '@pr-7.txt', '--context', 'repo=acme/api', '--context', 'threshold=7']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('FINAL REVIEW\n');
    expect(res.stdout + res.stderr).not.toContain(ESC);
    const lines = res.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^run [0-9a-f-]{36} started: workflow pr_review$/);
    for (const line of [
      'analysis (claude-leader): started',
      'fixes (gpt-coder): started',
      'security (gemini-security): started',
      'review (claude-leader): started',
    ]) {
      expect(lines).toContain(line);
    }
    for (const step of ['analysis (claude-leader)', 'fixes (gpt-coder)', 'security (gemini-security)', 'review (claude-leader)']) {
      expect(lines.find((l) => l.startsWith(`${step}: completed in `))).toMatch(/, 18 tokens \(11 in, 7 out\), /);
    }
    expect(lines.at(-1)).toMatch(/^run completed in [\d.]+m?s, 72 tokens, /);
    expect(promptOf('anthropic', e.fake('anthropic').generationRequests()[before]!.body)).toContain('PR #7: add login');

    const runId = /^run (\S+) started/.exec(lines[0]!)![1]!;
    const shown = await ensemble(['runs', 'show', runId, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ run_id: runId, status: 'completed', input: 'PR #7: add login\n', context: { repo: 'acme/api', threshold: 7 }, output: 'FINAL REVIEW' });
  });

  it('--json prints the finished run and nothing else', async () => {
    const res = await ensemble(['run', 'pr_review', '--input', 'PR #8', '--json']);
    expect(res.code).toBe(0);
    expect(res.stderr).toBe('');
    const run = JSON.parse(res.stdout);
    expect(run).toMatchObject({ status: 'completed', workflow: 'pr_review', workflow_version: 2 });
    expect(run.steps.map((s: { step_id: string }) => s.step_id)).toEqual(['analysis', 'fixes', 'security', 'review']);
  });

  it('exit 1 when the run fails; exit 0 when it ends partial', async () => {
    e.fake('openai').enqueue({ status: 500, errorMessage: 'the coder exploded' });
    const failed = await ensemble(['run', 'failing', '--input', 'x']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe('');
    expect(failed.stderr).toContain('draft (gpt-coder): failed (attempt 1): unavailable: the coder exploded');
    expect(failed.stderr).toMatch(/\nrun failed in .*: unavailable: the coder exploded\n$/);

    e.fake('gemini').enqueue({ status: 500, errorMessage: 'security is down' });
    const partial = await ensemble(['run', 'pr_review', '--input', 'x', '--quiet']);
    expect(partial.code).toBe(0);
    expect(partial.stdout).toBe('Hello from the fake anthropic.\n');
    expect(partial.stderr).toContain('is partial');
  });

  it('exit 1 for an unknown workflow, exit 2 for usage errors', async () => {
    const unknown = await ensemble(['run', 'nope', '--input', 'x']);
    expect(unknown).toMatchObject({ code: 1, stderr: 'ensemble: not_found: No workflow "nope"\n' });
    for (const args of [
      ['run'],
      ['run', 'pr_review', '--context', 'novalue'],
      ['run', 'pr_review', '--input', '@no-such-file'],
      ['run', '-f', 'pr_review.yaml'],
      ['run', 'pr_review', '--no-such-flag'],
      ['chat', 'hello'],
      ['chat', '--agents', 'gpt-coder', '--mode', 'round-robin', 'hello'],
      ['chat', '--agents', 'gpt-coder'],
      ['usage', '--by', 'colour'],
      ['runs', 'list', '--limit', 'many'],
      ['frobnicate'],
    ]) {
      const res = await ensemble(args);
      expect(res.code, `ensemble ${args.join(' ')}: ${res.stderr}`).toBe(2);
      expect(res.stderr).not.toBe('');
    }
  });

  it('Ctrl-C cancels the run (exit 1)', async () => {
    e.fake('openai').enqueue({ chunks: ['slow ', 'draft'], chunkDelayMs: 3000 });
    let sent = false;
    const res = await ensemble(['run', 'failing', '--input', 'x'], {
      onStderr: (text, child) => {
        if (!sent && text.includes('draft (gpt-coder): started')) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('cancelling run');
    expect(res.stderr).toMatch(/\nrun cancelled in /);
  });
});

describe('chat', () => {
  it('parallel with an aggregator: the synthesis on stdout, each agent on stderr', async () => {
    e.fake('anthropic').enqueue({ text: 'CLAUDE SAYS', delayMs: 100 });
    e.fake('openai').enqueue({ text: 'GPT SAYS', delayMs: 100 });
    e.fake('groq').enqueue({ text: 'SYNTHESIS' });
    const res = await ensemble(['chat', '--agents', 'claude-leader,gpt-coder', '--aggregator', 'groq-agg', 'Review:', 'x = 1']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toBe('SYNTHESIS\n');
    expect(res.stderr).toMatch(/^run \S+ started: chat \(parallel\): claude-leader, gpt-coder\n/);
    expect(res.stderr).toMatch(/\nclaude-leader: completed in /);
    expect(res.stderr).toMatch(/\ngpt-coder: completed in /);
    expect(res.stderr).toMatch(/\naggregate \(groq-agg\): completed in /);
    expect(promptOf('openai', e.fake('openai').generationRequests().at(-1)!.body)).toContain('Review: x = 1');
  });

  it('sequential with --json; orchestrated shows the plan', async () => {
    e.fake('openai').enqueue({ text: 'DRAFT' });
    e.fake('anthropic').enqueue({ text: 'POLISHED' });
    const sequential = await ensemble(['chat', '--agents', 'gpt-coder,claude-leader', '--mode', 'sequential', '--json', 'Write a haiku']);
    expect(sequential.code).toBe(0);
    expect(JSON.parse(sequential.stdout)).toMatchObject({ kind: 'chat', mode: 'sequential', status: 'completed', output: 'POLISHED' });

    e.fake('anthropic').enqueue(
      { json: { subtasks: [{ id: 't1', agent: 'gpt-coder', task: 'write it', depends_on: [] }, { id: 't2', agent: 'gemini-security', task: 'check it', depends_on: ['t1'] }] } },
      { text: 'FINAL ANSWER' },
    );
    writeFileSync(join(scratch, 'task.md'), 'Build a rate limiter');
    const orchestrated = await ensemble(['chat', '--agents', 'claude-leader,gpt-coder,gemini-security', '--mode', 'orchestrated', '@task.md']);
    expect(orchestrated.code, orchestrated.stderr).toBe(0);
    expect(orchestrated.stdout).toBe('FINAL ANSWER\n');
    expect(orchestrated.stderr).toContain('plan: 2 subtasks: t1 -> gpt-coder, t2 -> gemini-security');
    expect(orchestrated.stderr).toMatch(/\ntask_t2 \(gemini-security\): completed in /);
    expect(orchestrated.stderr).toMatch(/\nsynthesis \(claude-leader\): completed in /);
  });
});

describe('runs and usage', () => {
  it('runs list, show and events', async () => {
    const list = await ensemble(['runs', 'list', '--json', '--workflow', 'pr_review']);
    const runs = JSON.parse(list.stdout) as Array<{ run_id: string; status: string }>;
    expect(runs.length).toBeGreaterThanOrEqual(3);
    const completed = runs.find((r) => r.status === 'completed')!;

    const table = await ensemble(['runs', 'list']);
    expect(table.stdout).toMatch(/^RUN\s+NAME\s+STATUS\s+TOKENS\s+COST\s+CREATED\s+DURATION\n/);
    expect(table.stdout).toMatch(/\n\S{36}\s+chat orchestrated\s+completed\s/);
    expect(table.stdout).toContain(completed.run_id);

    const show = await ensemble(['runs', 'show', completed.run_id]);
    expect(show.stdout).toMatch(/^run\s+[0-9a-f-]{36}\nworkflow\s+pr_review \(version 2\)\nstatus\s+completed\n/);
    expect(show.stdout).toMatch(/\nSTEP\s+AGENT\s+STATUS\s+TRIES\s+TIME\s+TOKENS\s+COST\s+NOTE\nanalysis\s+claude-leader\s+completed\s+1\s/);

    const events = await ensemble(['runs', 'events', completed.run_id]);
    expect(events.stdout.split('\n')[0]).toBe(`run ${completed.run_id} started: workflow pr_review`);
    expect(events.stdout).toMatch(/\nrun completed in /);

    const json = await ensemble(['runs', 'events', completed.run_id, '--json']);
    const parsed = json.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { id: number; event: string });
    expect(parsed[0]).toMatchObject({ id: 1, event: 'run.started' });
    expect(parsed.at(-1)!.event).toBe('run.completed');
    const after = await ensemble(['runs', 'events', completed.run_id, '--json', '--after', String(parsed.length - 1)]);
    expect(after.stdout.trimEnd().split('\n')).toHaveLength(1);
  });

  it('run --detach, then runs cancel', async () => {
    e.fake('openai').enqueue({ delayMs: 5000 });
    const started = await ensemble(['run', 'failing', '--input', 'x', '--detach']);
    expect(started.code).toBe(0);
    const runId = started.stdout.trim();
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    const cancelled = await ensemble(['runs', 'cancel', runId]);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(new RegExp(`^run ${runId}: (cancelling|cancelled)\\n$`));
    let status = '';
    for (let i = 0; i < 50 && status !== 'cancelled'; i++) {
      status = JSON.parse((await ensemble(['runs', 'show', runId, '--json'])).stdout).status;
      if (status !== 'cancelled') await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe('cancelled');
  });

  it('usage --by agent: a table with a total, or JSON', async () => {
    const json = await ensemble(['usage', '--by', 'agent', '--json']);
    const report = JSON.parse(json.stdout) as { data: Array<{ group: { agent: string }; requests: number }>; totals: { requests: number } };
    expect(report.data.map((row) => row.group.agent)).toEqual(expect.arrayContaining(['claude-leader', 'gpt-coder', 'gemini-security', 'groq-agg']));
    expect(report.totals.requests).toBe(report.data.reduce((sum, row) => sum + row.requests, 0));

    const table = await ensemble(['usage', '--by', 'agent']);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^AGENT\s+REQUESTS\s+ERRORS\s+INPUT\s+OUTPUT\s+TOKENS\s+COST$/);
    expect(lines.at(-1)).toMatch(new RegExp(`^total\\s+${report.totals.requests}\\s`));
    expect((await ensemble(['usage', '--by', 'model,day'])).stdout).toMatch(/^MODEL\s+DAY\s+REQUESTS/);
  });
});

describe('connection', () => {
  it('reads the token file of the data directory; says when there is no token (2), a refused token or no server (1)', async () => {
    const dataDir = join(scratch, 'data');
    rmSync(dataDir, { recursive: true, force: true });
    const noToken = await ensemble(['agents', 'list'], { env: { ENSEMBLE_TOKEN: undefined, ENSEMBLE_DATA_DIR: dataDir } });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('no token');

    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, 'default-app.token'), `${e.token}\n`);
    const fromFile = await ensemble(['agents', 'list', '--json'], { env: { ENSEMBLE_TOKEN: undefined, ENSEMBLE_DATA_DIR: dataDir } });
    expect(fromFile.code).toBe(0);
    expect(JSON.parse(fromFile.stdout).length).toBeGreaterThan(0);

    const refused = await ensemble(['agents', 'list'], { env: { ENSEMBLE_TOKEN: 'ens_wrong' } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`ensemble: the server at ${e.server.url} refused the token (from ENSEMBLE_TOKEN)\n`);

    const closed = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const unreachable = await ensemble(['workflows', 'list', '--url', `http://127.0.0.1:${closed}`]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain(`cannot reach the server at http://127.0.0.1:${closed} (ECONNREFUSED)`);
  });
});
