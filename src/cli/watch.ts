/**
 * Following a run to its end, on a server or in this process: the live view on a terminal,
 * plain lines elsewhere, Ctrl-C to cancel, and the exit code from how the run ended.
 */
import { EnsembleApiError, type EnsembleClient, type RunEvent } from '../client/index.ts';
import { CliError, EXIT, print, printJson } from './context.ts';
import { colorEnabled, createStyle, errorText, outputText, sanitize } from './format.ts';
import { LiveView, PlainLog, type ExpectedStep, type RunTracker, type ViewEvent } from './live-view.ts';

export interface WatchFlags {
  json?: boolean;
  plain?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

export interface RunSource {
  events: AsyncIterable<ViewEvent>;
  cancel(runId: string): Promise<void>;
}

const FINAL_EVENTS = new Set(['run.completed', 'run.failed', 'run.cancelled']);

/** The live view only where stdout is a terminal that can move its cursor. */
export function useLiveView(flags: WatchFlags): boolean {
  return !flags.json && !flags.plain && Boolean(process.stdout.isTTY) && process.env.TERM !== 'dumb';
}

/**
 * Follows the run's events until it ends. The first Ctrl-C cancels the run (its end is still
 * shown); a second one stops waiting at once (exit 130).
 */
export async function watch(tracker: RunTracker, source: RunSource, flags: WatchFlags): Promise<void> {
  const live = useLiveView(flags);
  const view = live ? new LiveView(tracker, process.stdout, createStyle(colorEnabled(process.stdout))) : undefined;
  const log = !live && !flags.json && !flags.quiet ? new PlainLog((line) => process.stderr.write(`${line}\n`), { verbose: flags.verbose }) : undefined;
  // The view appears with the first event (or after a moment without one), so a request the
  // server refuses at once leaves no empty frame behind.
  let shown = false;
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1 || !tracker.runId) {
      if (shown) view?.finish();
      process.stderr.write(`\nensemble: stopped waiting${tracker.runId ? `; run ${tracker.runId} is being cancelled` : ''}\n`);
      process.exit(EXIT.interrupted);
    }
    tracker.cancelling = true;
    if (!live) process.stderr.write(`cancelling run ${tracker.runId} (Ctrl-C again to stop waiting)\n`);
    source.cancel(tracker.runId).catch((error: unknown) => {
      tracker.cancelling = false;
      tracker.note = `could not cancel: ${error instanceof Error ? error.message : String(error)}`;
    });
  };
  process.on('SIGINT', onSigint);
  const show = () => {
    if (!view || shown) return;
    shown = true;
    view.start();
  };
  const timer = view ? setTimeout(show, 300) : undefined;
  try {
    for await (const event of source.events) {
      show();
      const lane = tracker.apply(event);
      log?.event(event, tracker, lane);
      if (tracker.finished) break;
    }
  } finally {
    clearTimeout(timer);
    process.removeListener('SIGINT', onSigint);
    if (shown) view?.finish();
  }
}

/**
 * After the run: its output on stdout (or, with --json, the whole run), the error on stderr;
 * returns the exit code: 0 completed or partial, 1 failed or cancelled.
 */
export async function conclude(tracker: RunTracker, flags: WatchFlags, fetchRun: () => Promise<unknown>): Promise<number> {
  if (!tracker.finished) {
    throw new CliError(
      tracker.runId ? `the run's event stream ended before the run did; follow it with: ensemble runs events ${tracker.runId}` : 'the server ended the stream before the run started',
      EXIT.failed,
    );
  }
  const live = useLiveView(flags);
  if (flags.json) printJson(await fetchRun());
  else {
    const text = outputText(tracker.output);
    if (text) {
      if (live) process.stdout.write('\n');
      print(process.stdout.isTTY ? sanitize(text) : text);
    }
  }
  const logged = !live && !flags.json && !flags.quiet;
  if (tracker.phase === 'failed') {
    if (!logged) process.stderr.write(`ensemble: run ${tracker.runId ?? ''} failed: ${errorText(tracker.error) || 'see ensemble runs show'}\n`);
    return EXIT.failed;
  }
  if (tracker.phase === 'cancelled') {
    if (!logged) process.stderr.write(`ensemble: run ${tracker.runId ?? ''} was cancelled\n`);
    return EXIT.failed;
  }
  if (tracker.phase === 'partial' && !logged) process.stderr.write(`ensemble: run ${tracker.runId ?? ''} is partial: some steps failed (ensemble runs show ${tracker.runId ?? ''})\n`);
  return EXIT.ok;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A run's events from the server. The stream that starts the run is followed; if it breaks
 * after the run exists, `GET /runs/{id}/events` with `Last-Event-ID` picks up where it stopped.
 */
export function serverSource(client: EnsembleClient, start: () => AsyncIterable<RunEvent>): RunSource {
  async function* events(): AsyncGenerator<ViewEvent> {
    let runId: string | undefined;
    let last = 0;
    let failures = 0;
    let stream = start();
    for (;;) {
      try {
        for await (const event of stream) {
          runId ??= event.data.run_id;
          last = event.id;
          failures = 0;
          yield { event: event.event, data: event.data };
          if (FINAL_EVENTS.has(event.event)) return;
        }
      } catch (error) {
        if (!runId || error instanceof CliError || (error instanceof EnsembleApiError && error.status < 500)) throw error;
        if (failures >= 5) throw error;
      }
      if (!runId || failures >= 5) return;
      failures++;
      await sleep(Math.min(5000, 250 * 2 ** failures));
      stream = client.runs.events(runId, { lastEventId: last });
    }
  }
  return {
    events: events(),
    cancel: async (runId) => {
      await client.runs.cancel(runId);
    },
  };
}

/** The steps of a saved workflow's compiled definition, as lanes to show before they start. */
export function expectedFromDefinition(definition: unknown): ExpectedStep[] {
  const steps = (definition as { steps?: unknown } | null | undefined)?.steps;
  if (!Array.isArray(steps)) return [];
  return steps.flatMap((step: unknown): ExpectedStep[] => {
    const s = step as { id?: unknown; agent?: unknown; dependsOn?: unknown; parallelCount?: unknown };
    if (typeof s.id !== 'string' || typeof s.agent !== 'string') return [];
    return [
      {
        id: s.id,
        agent: s.agent,
        dependsOn: Array.isArray(s.dependsOn) ? s.dependsOn.filter((d): d is string => typeof d === 'string') : [],
        ...(typeof s.parallelCount === 'number' ? { instances: s.parallelCount } : {}),
      },
    ];
  });
}

/** The lanes a chat will have (step ids as the server names them; a mismatch is adopted by agent). */
export function chatLanes(agents: string[], mode: string, aggregator: string | undefined): ExpectedStep[] {
  const idFor = (name: string) => name.replace(/[^A-Za-z0-9_-]/g, '_');
  if (mode === 'orchestrated') return agents[0] ? [{ id: 'plan', agent: agents[0] }] : [];
  if (mode === 'sequential') {
    const lanes: ExpectedStep[] = [];
    agents.forEach((agent, index) => {
      const previous = lanes[index - 1];
      const base = idFor(agent);
      const id = previous && previous.agent && idFor(previous.agent) === base ? `${base}_${index}` : base;
      lanes.push({ id, agent, dependsOn: previous ? [previous.id] : [], provisional: true });
    });
    return lanes;
  }
  const lanes: ExpectedStep[] = agents.map((agent) => ({ id: idFor(agent), agent, provisional: true }));
  if (aggregator) lanes.push({ id: 'aggregate', agent: aggregator, dependsOn: lanes.map((lane) => lane.id) });
  return lanes;
}
