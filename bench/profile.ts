/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --cpu-prof`): the
 * functions with the most self time and the most total (inclusive) time.
 *
 *   node bench/profile.ts <file.cpuprofile> [--top=25] [--filter=src/]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileLine {
  name: string;
  selfMs: number;
  totalMs: number;
}

export function summarizeProfile(profile: CpuProfile): { totalMs: number; idleMs: number; lines: ProfileLine[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const label = (n: ProfileNode) => {
    const url = n.callFrame.url.replace(/^file:\/\/.*?\/(node_modules|src|bench|test)\//, '$1/');
    return `${n.callFrame.functionName || '(anonymous)'} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let idle = 0;
  let all = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    all += us;
    if (node.callFrame.functionName === '(idle)') idle += us;
    const name = label(node);
    self.set(name, (self.get(name) ?? 0) + us);
    // Inclusive time: every distinct function on the stack gets the sample once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      total.set(l, (total.get(l) ?? 0) + us);
    }
  }
  const lines = [...total.keys()].map((name) => ({ name, selfMs: (self.get(name) ?? 0) / 1000, totalMs: (total.get(name) ?? 0) / 1000 }));
  return { totalMs: all / 1000, idleMs: idle / 1000, lines };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: node bench/profile.ts <file.cpuprofile> [--top=25] [--filter=src/]');
  const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 25);
  const filter = process.argv.find((a) => a.startsWith('--filter='))?.slice(9);
  const { totalMs, idleMs, lines } = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  console.log(`sampled ${totalMs.toFixed(0)} ms, idle ${idleMs.toFixed(0)} ms, busy ${(totalMs - idleMs).toFixed(0)} ms`);
  const shown = filter ? lines.filter((l) => l.name.includes(filter)) : lines;
  console.log('\nself time:');
  for (const l of [...shown].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) console.log(`${l.selfMs.toFixed(1).padStart(9)} ms  ${l.name}`);
  console.log('\ntotal time:');
  for (const l of [...shown].sort((a, b) => b.totalMs - a.totalMs).slice(0, top)) console.log(`${l.totalMs.toFixed(1).padStart(9)} ms  ${l.name}`);
}
