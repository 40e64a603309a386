/** What the figures were measured on. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export interface Machine {
  cpu: string;
  cores: number;
  memory: string;
  os: string;
  node: string;
  date: string;
  commit: string;
}

function lscpuModel(): string | undefined {
  try {
    const text = execFileSync('lscpu', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const field = (name: string) => new RegExp(`^${name}:\\s+(.+)$`, 'm').exec(text)?.[1]?.trim();
    const model = field('Model name');
    const hypervisor = field('Hypervisor vendor');
    return model ? `${model}${hypervisor ? ` (${hypervisor} guest)` : ''}` : undefined;
  } catch {
    return undefined;
  }
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    // The report itself (rewritten by every run) does not make the tree dirty.
    const dirty = execFileSync('git', ['status', '--porcelain', '--', '.', ':(exclude)bench/RESULTS.md'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return `${head}${dirty ? ' (with uncommitted changes)' : ''}`;
  } catch {
    return 'unknown';
  }
}

export function describeMachine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: lscpuModel() ?? cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    date: new Date().toISOString(),
    commit: gitCommit(),
  };
}

/**
 * A fixed amount of CPU work (a tight JS loop), best of three, in ms. The bench machine is a
 * shared VM whose speed drifts during a day (the same calls took 40 % longer in the afternoon
 * than in the morning), and every figure moves with it: the report shows this at the start and
 * the end of the run, so two reports can be compared.
 */
export function calibrate(): number {
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    let x = 0;
    for (let i = 0; i < 100_000_000; i++) x += i % 7;
    if (x < 0) throw new Error('unreachable');
    best = Math.min(best, performance.now() - started);
  }
  return best;
}
