/**
 * `npm run bench`: runs every scenario of bench/scenarios/ and rewrites bench/RESULTS.md.
 *
 *   npm run bench                         all scenarios, full size (about 6 minutes on 2 cores)
 *   npm run bench -- --quick              every scenario at tiny size (a few seconds each; BENCH_SCALE=tiny too)
 *   npm run bench -- --only=per-step,load  some scenarios
 *   npm run bench -- --out=/tmp/r.md      write the report elsewhere
 *   npm run bench -- --cpu-prof           also write V8 CPU profiles of the server processes (see bench/profile.ts)
 *   BENCH_BUDGET_S=540                    skip the scenarios left once this much time has passed
 *   BENCH_SERVER_NODE_FLAGS="--max-semi-space-size=16"   Node/V8 flags for the server processes
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { calibrate, describeMachine } from './lib/machine.ts';
import { renderReport } from './lib/report.ts';
import type { Scale, Scenario, ScenarioResult } from './lib/types.ts';
import { analytics } from './scenarios/analytics.ts';
import { fanOut } from './scenarios/fan-out.ts';
import { inFlight } from './scenarios/in-flight.ts';
import { load } from './scenarios/load.ts';
import { peers } from './scenarios/peers.ts';
import { perStep } from './scenarios/per-step.ts';
import { streaming } from './scenarios/streaming.ts';

export const SCENARIOS: Scenario[] = [perStep, load, fanOut, inFlight, streaming, peers, analytics];

export const DEFAULT_OUT = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
const FIXES = fileURLToPath(new URL('./FIXES.md', import.meta.url));

export interface BenchOptions {
  scale: Scale;
  /** Scenario ids; all when empty. */
  only?: string[];
  out: string;
  cpuProfDir?: string | undefined;
  /** Scenarios not started by then are reported as skipped. */
  budgetMs?: number;
  log?: (message: string) => void;
}

export async function runBench(options: BenchOptions): Promise<{ results: ScenarioResult[]; report: string; failed: number }> {
  const log = options.log ?? ((message: string) => process.stderr.write(`[bench] ${message}\n`));
  const started = performance.now();
  const loadText = () => loadavg().map((l) => l.toFixed(2)).join(', ');
  const loadStart = loadText();
  if (loadavg()[0]! > 0.7) log(`the machine is busy before the bench starts (load average ${loadStart}): the figures will show it`);
  const calibrationStart = options.scale === 'tiny' ? Number.NaN : calibrate();
  const selected = options.only && options.only.length > 0 ? SCENARIOS.filter((s) => options.only!.includes(s.id)) : SCENARIOS;
  if (options.only && options.only.length > 0 && selected.length !== options.only.length) throw new Error(`unknown scenario in --only=${options.only.join(',')}; known: ${SCENARIOS.map((s) => s.id).join(', ')}`);
  const results: ScenarioResult[] = [];
  let failed = 0;
  for (const scenario of selected) {
    const flags = `${options.scale === 'tiny' ? ' --quick' : ''}`;
    const command = `npm run bench --${flags} --only=${scenario.id}`;
    const elapsed = performance.now() - started;
    if (options.budgetMs !== undefined && elapsed > options.budgetMs) {
      results.push({ id: scenario.id, title: scenario.title, goal: '', met: false, verdict: `skipped: the run's time budget (${(options.budgetMs / 1000).toFixed(0)} s) was spent`, figures: [], setup: [], notes: [], command, durationMs: 0 });
      continue;
    }
    log(`${scenario.id}: start`);
    const t = performance.now();
    try {
      const result = await scenario.run({ scale: options.scale, cpuProfDir: options.cpuProfDir, log: (m) => log(m) });
      results.push({ id: scenario.id, title: scenario.title, command, durationMs: performance.now() - t, ...result });
    } catch (error) {
      failed++;
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      log(`${scenario.id}: FAILED ${message}`);
      results.push({ id: scenario.id, title: scenario.title, goal: '', met: false, verdict: `the scenario failed: ${message.split('\n')[0]}`, figures: [], setup: [], notes: [], command, durationMs: performance.now() - t });
    }
    log(`${scenario.id}: done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const totalMs = performance.now() - started;
  const fixes = existsSync(FIXES) ? readFileSync(FIXES, 'utf8') : '';
  const command = `npm run bench${options.scale === 'tiny' ? ' -- --quick' : ''}${options.only?.length ? ` -- --only=${options.only.join(',')}` : ''}`;
  const calibration = { start: calibrationStart, end: options.scale === 'tiny' ? Number.NaN : calibrate() };
  const report = renderReport({ machine: describeMachine(), scale: options.scale, totalMs, results, command, fixes, calibration, load: { start: loadStart, end: loadText() } });
  writeFileSync(options.out, report);
  log(`wrote ${options.out} (${(totalMs / 1000).toFixed(0)} s)`);
  return { results, report, failed };
}

function parseArgs(argv: string[]): BenchOptions {
  const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = argv.includes('--quick') || process.env.BENCH_SCALE === 'tiny';
  let cpuProfDir: string | undefined;
  if (argv.includes('--cpu-prof')) {
    cpuProfDir = join(tmpdir(), `ensemble-bench-profiles-${Date.now()}`);
    mkdirSync(cpuProfDir, { recursive: true });
  }
  const budget = Number(process.env.BENCH_BUDGET_S ?? 540);
  return {
    scale: quick ? 'tiny' : 'full',
    only: value('only')?.split(',').filter(Boolean) ?? [],
    out: value('out') ?? DEFAULT_OUT,
    cpuProfDir,
    budgetMs: budget * 1000,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const options = parseArgs(process.argv.slice(2));
  const { results, failed } = await runBench(options);
  for (const r of results) process.stdout.write(`${r.id.padEnd(10)} ${r.met === null ? 'reported' : r.met ? 'met     ' : 'NOT MET '} ${r.verdict}\n`);
  if (options.cpuProfDir) process.stdout.write(`CPU profiles: ${options.cpuProfDir} (summarize with: node bench/profile.ts <file>)\n`);
  process.exitCode = failed > 0 ? 1 : 0;
}
