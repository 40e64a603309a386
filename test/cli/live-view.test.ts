/** The pieces of the CLI's terminal output, without a process: lanes, frames, formats, arguments. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError, parseContext, resolveConnection } from '../../src/cli/context.ts';
import { createStyle, formatCost, formatDuration, stripAnsi, truncate, visibleWidth } from '../../src/cli/format.ts';
import { LiveView, PlainLog, RunTracker, type ViewEvent } from '../../src/cli/live-view.ts';
import { renderTable } from '../../src/cli/table.ts';
import { chatLanes } from '../../src/cli/watch.ts';

const ev = (event: string, data: Record<string, unknown> = {}): ViewEvent => ({ event, data: { run_id: 'r1', ...data } });
const usage = (input: number, output: number) => ({ input_tokens: input, output_tokens: output, total_tokens: input + output });

function frame(tracker: RunTracker, size: { columns: number; rows: number }, color = false): string[] {
  return new LiveView(tracker, { write: () => true, ...size }, createStyle(color)).frame();
}

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('RunTracker', () => {
  it('folds events into lanes: status, streamed text, tokens, cost; retries reset the text', () => {
    const t = new RunTracker('workflow w', [
      { id: 'a', agent: 'claude', dependsOn: [] },
      { id: 'b', agent: 'gpt', dependsOn: ['a'] },
    ]);
    t.apply(ev('run.started', { workflow: 'w' }));
    t.apply(ev('step.started', { step_id: 'a', agent: 'claude', attempt: 1 }));
    t.apply(ev('step.delta', { step_id: 'a', agent: 'claude', text: 'Hel' }));
    t.apply(ev('step.delta', { step_id: 'a', agent: 'claude', text: 'lo' }));
    expect(t.lanes[0]).toMatchObject({ status: 'running', text: 'Hello' });
    expect(t.pendingDeps(t.lanes[1]!)).toEqual(['a']);
    t.apply(ev('step.failed', { step_id: 'a', agent: 'claude', error: { code: 'unavailable', message: 'down' }, attempt: 1, will_retry: true }));
    expect(t.lanes[0]).toMatchObject({ status: 'retrying', error: 'unavailable: down' });
    t.apply(ev('step.started', { step_id: 'a', agent: 'claude', attempt: 2 }));
    expect(t.lanes[0]).toMatchObject({ status: 'running', attempt: 2, text: '' });
    t.apply(ev('step.completed', { step_id: 'a', agent: 'claude', output: { ok: true }, usage: usage(10, 5), cost_usd: 0.002, latency_ms: 800 }));
    expect(t.lanes[0]).toMatchObject({ status: 'completed', output: '{\n  "ok": true\n}', tokens: { input: 10, output: 5, total: 15 }, costUsd: 0.002 });
    expect(t.pendingDeps(t.lanes[1]!)).toEqual([]);
    t.apply(ev('step.skipped', { step_id: 'b', reason: 'condition is false: x' }));
    t.apply(ev('run.completed', { status: 'completed', output: 'done', usage: usage(10, 5), cost_usd: 0.002 }));
    expect(t.phase).toBe('completed');
    expect(t.totals()).toEqual({ tokens: 15, costUsd: 0.002, done: 2, total: 2 });
  });

  it('shows parallel_count instances as lanes of their own, and the group on them', () => {
    const t = new RunTracker('research', [{ id: 'findings', agent: 'researcher', instances: 3 }, { id: 'report', agent: 'synth', dependsOn: ['findings'] }]);
    expect(t.lanes.map((l) => l.id)).toEqual(['findings[0]', 'findings[1]', 'findings[2]', 'report']);
    for (let i = 0; i < 3; i++) t.apply(ev('step.completed', { step_id: `findings[${i}]`, agent: 'researcher', output: `F${i}`, usage: usage(1, 1), cost_usd: 0 }));
    t.apply(ev('step.completed', { step_id: 'findings', agent: 'researcher', output: ['F0', 'F1', 'F2'], usage: usage(3, 3), cost_usd: 0 }));
    expect(t.lanes).toHaveLength(4);
    expect(t.pendingDeps(t.lanes[3]!)).toEqual([]);
    expect(t.totals().tokens).toBe(6);
  });

  it('chat lanes: guessed step ids are taken over by their agent; a plan adds its subtasks and the synthesis', () => {
    const sequential = new RunTracker('chat', chatLanes(['a.b', 'c'], 'sequential', undefined));
    expect(sequential.lanes.map((l) => l.id)).toEqual(['a_b', 'c']);
    sequential.apply(ev('step.started', { step_id: 'unexpected', agent: 'c', attempt: 1 }));
    expect(sequential.lanes.map((l) => [l.id, l.status])).toEqual([
      ['a_b', 'waiting'],
      ['unexpected', 'running'],
    ]);

    const orchestrated = new RunTracker('chat', chatLanes(['lead', 'w1', 'w2'], 'orchestrated', undefined));
    orchestrated.apply(ev('step.completed', { step_id: 'plan', agent: 'lead', output: {}, usage: usage(1, 1), cost_usd: 0 }));
    orchestrated.apply(ev('plan.created', { step_id: 'plan', plan: { subtasks: [{ id: 't1', agent: 'w1', task: 'x', depends_on: [] }, { id: 't.2', agent: 'w2', task: 'y', depends_on: ['t1'] }] } }));
    expect(orchestrated.lanes.map((l) => [l.id, l.agent, l.dependsOn])).toEqual([
      ['plan', 'lead', []],
      ['task_t1', 'w1', ['plan']],
      ['task_t_2', 'w2', ['task_t1']],
      ['synthesis', 'lead', ['task_t1', 'task_t_2']],
    ]);
  });
});

describe('LiveView frames', () => {
  const busy = () => {
    const t = new RunTracker('workflow big', Array.from({ length: 12 }, (_, i) => ({ id: `step_${i}`, agent: `agent-${i}` })));
    t.apply(ev('run.started'));
    t.apply(ev('step.started', { step_id: 'step_0', agent: 'agent-0', attempt: 1 }));
    t.apply(ev('step.delta', { step_id: 'step_0', agent: 'agent-0', text: `${'word '.repeat(60)}\x1b[2J\x1b]0;pwned\x07THE END` }));
    t.apply(ev('step.completed', { step_id: 'step_1', agent: 'agent-1', output: 'ok', usage: usage(1, 2), cost_usd: 0.5 }));
    return t;
  };

  it('fits the terminal: every line within its width, the block within its height', () => {
    for (const size of [
      { columns: 120, rows: 40 },
      { columns: 60, rows: 20 },
      { columns: 40, rows: 10 },
    ]) {
      const lines = frame(busy(), size, true);
      expect(lines.length).toBeLessThan(size.rows);
      for (const line of lines) expect(visibleWidth(line)).toBeLessThan(size.columns);
    }
  });

  it('two lines per lane when there is room, one when not, and a count of the lanes that do not fit', () => {
    const roomy = frame(busy(), { columns: 100, rows: 40 }).join('\n');
    expect(roomy).toMatch(/step_0 +agent-0 +running .*\n {2}│ …\S* word word .*THE END\n/);
    expect(roomy).toMatch(/✔ step_1 +agent-1 +completed .* 3 tok +\$0\.5000\n {2}│ ok\n/);
    const compact = frame(busy(), { columns: 100, rows: 20 }).join('\n');
    expect(compact).toMatch(/✔ step_1 +agent-1 +completed .* 3 tok +\$0\.5000 {2}ok\n/);
    const cramped = frame(busy(), { columns: 100, rows: 10 });
    expect(cramped.some((line) => /^ {2}… \d+ more: \d+ waiting$/.test(line))).toBe(true);
    expect(cramped.join('\n')).toContain('step_0'); // the running lane stays in view
  });

  it('never lets a model\'s escape sequences through', () => {
    const lines = frame(busy(), { columns: 200, rows: 40 });
    expect(lines.join('\n')).not.toContain('\x1b');
    expect(lines.join('\n')).not.toContain('pwned');
  });

  it('says what a waiting lane waits for, and the run state in the footer', () => {
    const t = new RunTracker('w', [
      { id: 'a', agent: 'x' },
      { id: 'b', agent: 'y', dependsOn: ['a'] },
    ]);
    t.apply(ev('run.started'));
    const lines = frame(t, { columns: 100, rows: 30 });
    expect(lines).toContain('  │ waiting for a');
    expect(lines.at(-1)).toMatch(/^░{20} {2}0\/2 steps {2}\S+ {2}0 tok {2}\$0 {2}. running$/);
    t.apply(ev('run.failed', { error: { code: 'budget_exceeded', message: 'over' } }));
    expect(frame(t, { columns: 100, rows: 30 }).at(-1)).toMatch(/✖ failed: budget_exceeded: over$/);
    expect(frame(t, { columns: 100, rows: 30 })).toContain('  │ did not run');
  });
});

describe('PlainLog', () => {
  it('writes one line per change', () => {
    const lines: string[] = [];
    const log = new PlainLog((line) => lines.push(line));
    const t = new RunTracker('workflow w', [{ id: 'a', agent: 'claude' }]);
    for (const event of [
      ev('run.started', { workflow: 'w' }),
      ev('step.started', { step_id: 'a', agent: 'claude', attempt: 1 }),
      ev('step.delta', { step_id: 'a', agent: 'claude', text: 'x' }),
      ev('step.failed', { step_id: 'a', agent: 'claude', error: { code: 'timeout', message: 'slow' }, attempt: 1, will_retry: true }),
      ev('step.skipped', { step_id: 'b', reason: 'the run was cancelled' }),
      ev('run.cancelled'),
    ]) {
      log.event(event, t, t.apply(event));
    }
    expect(lines).toEqual(['run r1 started: workflow w', 'a (claude): started', 'a (claude): failed (attempt 1), will retry: timeout: slow', 'b: cancelled: the run was cancelled', expect.stringMatching(/^run cancelled in \S+, 0 tokens, \$0$/)]);
  });
});

describe('formats and arguments', () => {
  it('truncates by columns, keeping escapes closed; money and time read well', () => {
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(stripAnsi(truncate('\x1b[31mabcdef\x1b[39m', 4))).toBe('abc…');
    expect(truncate('\x1b[31mabcdef\x1b[39m', 4).endsWith('\x1b[0m')).toBe(true);
    expect(visibleWidth('日本')).toBe(4);
    expect(truncate('日本語です', 5)).toBe('日本…');
    expect([0, 0.00001, 0.0031, 12.4].map(formatCost)).toEqual(['$0', '<$0.0001', '$0.0031', '$12.40']);
    expect([850, 2300, 65_000, 7_440_000].map(formatDuration)).toEqual(['850ms', '2.3s', '1m05s', '2h04m']);
  });

  it('tables align and narrow flexible columns to the width', () => {
    const style = createStyle(false);
    const table = renderTable([{ header: 'NAME' }, { header: 'N', align: 'right' }, { header: 'NOTE', flex: true }], [['a', '1', 'x'.repeat(50)]], { style, maxWidth: 30 });
    expect(table).toBe(`NAME  N  NOTE\na     1  ${'x'.repeat(20)}…\n`);
  });

  it('--context values: JSON when it parses, text otherwise, files with @', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ensemble-cli-unit-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'notes.txt'), 'from a file');
    expect(parseContext(['n=7', 'flag=true', 'repo=acme/api', 'list=[1,2]', 'eq=a=b', `notes=@${join(dir, 'notes.txt')}`, 'at=@@home'])).toEqual({
      n: 7,
      flag: true,
      repo: 'acme/api',
      list: [1, 2],
      eq: 'a=b',
      notes: 'from a file',
      at: '@home',
    });
    expect(() => parseContext(['novalue'])).toThrow(CliError);
  });

  it('reads the token file only for a server on this machine (or an explicit --data-dir)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ensemble-cli-unit-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'default-app.token'), 'ens_local\n');
    expect(resolveConnection({}, { ENSEMBLE_DATA_DIR: dir })).toEqual({ url: 'http://127.0.0.1:8080', token: 'ens_local', tokenSource: join(dir, 'default-app.token') });
    expect(() => resolveConnection({}, { ENSEMBLE_DATA_DIR: dir, ENSEMBLE_URL: 'https://ensemble.example.com' })).toThrow(/no token for https:\/\/ensemble.example.com/);
    expect(resolveConnection({ dataDir: dir }, { ENSEMBLE_URL: 'https://ensemble.example.com' }).token).toBe('ens_local');
    expect(resolveConnection({ token: 'ens_flag' }, { ENSEMBLE_TOKEN: 'ens_env' }).tokenSource).toBe('--token');
    expect(() => resolveConnection({ url: 'ftp://x' }, {})).toThrow(/invalid server URL/);
  });
});
