/** What a scenario gets and what it returns. */

export type Scale = 'full' | 'tiny';

export interface ScenarioContext {
  scale: Scale;
  /** Write CPU profiles of the Ensemble server processes here (`--cpu-prof`). */
  cpuProfDir: string | undefined;
  log(message: string): void;
}

/** One line of the report: a measured quantity, with p50/p99 where it has a distribution. */
export interface Figure {
  name: string;
  /** Milliseconds unless `unit` says otherwise. */
  p50?: number;
  p99?: number;
  /** A single value (throughput, RSS, counts). */
  value?: number;
  unit?: 'ms' | 'steps/s' | 'bytes' | 'count' | 'ratio' | 'runs/s';
  n?: number;
  note?: string;
}

export interface ScenarioResult {
  id: string;
  title: string;
  /** The goal as the issue states it; empty when the scenario has none. */
  goal: string;
  /** null when there is no goal to meet. */
  met: boolean | null;
  /** The deciding numbers, or the measured reason a goal is missed. */
  verdict: string;
  figures: Figure[];
  /** How the scenario was run (sizes, settings). */
  setup: string[];
  notes: string[];
  command: string;
  durationMs: number;
}

export interface Scenario {
  id: string;
  title: string;
  run(ctx: ScenarioContext): Promise<Omit<ScenarioResult, 'id' | 'title' | 'command' | 'durationMs'>>;
}
