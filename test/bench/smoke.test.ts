/**
 * The bench harness at tiny sizes, so it cannot rot: every scenario runs and returns numbers, and
 * the report is written (to a temporary file, never over bench/RESULTS.md). No timing is asserted.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_OUT, runBench, SCENARIOS } from '../../bench/run.ts';

const dir = mkdtempSync(join(tmpdir(), 'ensemble-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench harness (tiny sizes)', () => {
  it('runs every scenario and writes the report', { timeout: 180_000 }, async () => {
    const out = join(dir, 'RESULTS.md');
    expect(out).not.toBe(DEFAULT_OUT);
    const { results, failed } = await runBench({ scale: 'tiny', out, log: () => {} });
    expect(failed).toBe(0);
    expect(results.map((r) => r.id)).toEqual(SCENARIOS.map((s) => s.id));
    for (const result of results) {
      expect(result.verdict).not.toMatch(/failed|skipped/);
      expect(result.figures.length).toBeGreaterThan(0);
      for (const figure of result.figures) {
        const numbers = [figure.p50, figure.p99, figure.value].filter((v) => v !== undefined);
        expect(numbers.length, `${result.id}: ${figure.name}`).toBeGreaterThan(0);
        for (const n of numbers) expect(Number.isFinite(n), `${result.id}: ${figure.name}`).toBe(true);
      }
      if (result.goal) expect(typeof result.met).toBe('boolean');
    }
    const report = readFileSync(out, 'utf8');
    expect(report).toContain('## Machine');
    expect(report).toContain(process.version);
    for (const result of results) {
      expect(report).toContain(result.title);
      expect(report).toContain(result.command);
    }
  });
});
