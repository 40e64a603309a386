/** Renders bench/RESULTS.md from the scenarios' results. */
import type { Machine } from './machine.ts';
import { fmtBytes } from './stats.ts';
import type { Figure, Scale, ScenarioResult } from './types.ts';

function num(value: number | undefined, digits = 2): string {
  if (value === undefined) return '';
  if (!Number.isFinite(value)) return 'n/a';
  return value.toFixed(digits);
}

function valueText(f: Figure): string {
  if (f.value === undefined) return '';
  switch (f.unit) {
    case 'bytes':
      return fmtBytes(f.value);
    case 'steps/s':
    case 'runs/s':
      return `${f.value.toFixed(0)} ${f.unit}`;
    case 'count':
      return f.value.toLocaleString('en-US');
    case 'ratio':
      return `${f.value.toFixed(2)}×`;
    default:
      return `${num(f.value)} ms`;
  }
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function verdictMark(r: ScenarioResult): string {
  if (r.met === null) return 'reported';
  return r.met ? '**met**' : '**not met**';
}

export function renderReport(input: { machine: Machine; scale: Scale; totalMs: number; results: ScenarioResult[]; command: string; fixes: string; calibration: { start: number; end: number }; load: { start: string; end: string } }): string {
  const { machine, results } = input;
  const lines: string[] = [];
  lines.push('# Ensemble benchmarks', '');
  lines.push(`Written by \`${input.command}\` (bench/run.ts); every run rewrites this file. The last section, the performance fixes, comes from bench/FIXES.md.`, '');
  if (input.scale === 'tiny') lines.push('> **Tiny scale** (`--quick`): the harness was exercised at toy sizes; these figures are not measurements.', '');
  lines.push('## Machine', '');
  lines.push('| | |', '|---|---|');
  lines.push(`| CPU | ${cell(machine.cpu)} |`, `| cores | ${machine.cores} |`, `| memory | ${machine.memory} |`, `| OS | ${cell(machine.os)} |`);
  lines.push(`| Node.js | ${machine.node} |`, `| date | ${machine.date} |`, `| commit | ${cell(machine.commit)} |`);
  lines.push(`| storage | embedded SQLite (node:sqlite, WAL), one temporary data directory per scenario |`);
  if (Number.isFinite(input.calibration.start)) {
    lines.push(`| CPU calibration | ${input.calibration.start.toFixed(0)} ms at the start, ${input.calibration.end.toFixed(0)} ms at the end (10⁸ iterations of a JS loop, best of 3: a shared VM, whose speed drifts during the day; every figure moves with it) |`);
  }
  lines.push(`| load average (1, 5, 15 min) | ${input.load.start} at the start, ${input.load.end} at the end (anything above the bench's own load means other work shared the 2 cores) |`);
  lines.push(`| whole run | ${(input.totalMs / 1000).toFixed(0)} s |`, '');
  lines.push('## How overhead is measured', '');
  lines.push(
    'Always the same way: **time through Ensemble minus time straight to the same fake**, percentile by percentile (p50 of one minus p50 of the other; likewise p99), both measured in the same process run, interleaved where the scenario allows. "Straight to the fake" makes the same HTTP requests Ensemble\'s agents make (OpenAI Chat Completions, streamed, through the same AI SDK provider that `src/providers` builds) from the bench process. The fake vendor (bench/lib/fake-server.ts: the OpenAI Chat Completions wire format of test/fakes/openai.ts, zero latency or a fixed latency) and the Ensemble server (`node bin/ensemble.js serve`, default settings, `LOG_LEVEL=info`) each run in a process of their own, so the server\'s CPU and RSS are its own; the load-generating client is the bench process. All three share the machine\'s cores.',
    '',
  );
  lines.push('## Summary', '');
  lines.push('| scenario | goal | result | verdict | command |', '|---|---|---|---|---|');
  for (const r of results) lines.push(`| ${cell(r.title)} | ${cell(r.goal || '—')} | ${cell(r.verdict)} | ${verdictMark(r)} | \`${r.command}\` |`);
  lines.push('');
  for (const r of results) {
    lines.push(`## ${r.title}`, '');
    lines.push(`Command: \`${r.command}\` (${(r.durationMs / 1000).toFixed(1)} s)`, '');
    if (r.goal) lines.push(`Goal: ${r.goal}`, '');
    lines.push(`Result: ${r.verdict}`, '');
    if (r.figures.length > 0) {
      lines.push('| figure | p50 | p99 | value | n | note |', '|---|---:|---:|---:|---:|---|');
      for (const f of r.figures) {
        const p50 = f.p50 === undefined ? '' : `${num(f.p50, 3)} ms`;
        const p99 = f.p99 === undefined ? '' : `${num(f.p99, 3)} ms`;
        lines.push(`| ${cell(f.name)} | ${p50} | ${p99} | ${valueText(f)} | ${f.n ?? ''} | ${cell(f.note ?? '')} |`);
      }
      lines.push('');
    }
    if (r.setup.length > 0) {
      lines.push('How:', '');
      for (const s of r.setup) lines.push(`- ${s}`);
      lines.push('');
    }
    if (r.notes.length > 0) {
      lines.push('Notes:', '');
      for (const s of r.notes) lines.push(`- ${s}`);
      lines.push('');
    }
  }
  if (input.fixes.trim()) lines.push(input.fixes.trim(), '');
  return `${lines.join('\n')}\n`;
}
