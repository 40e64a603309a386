/**
 * Following a run: {@link RunTracker} folds the run's events into lanes (one per step: its
 * agent, status, streamed text, tokens and cost); {@link LiveView} redraws them in place on a
 * terminal, {@link PlainLog} writes one line per change where stdout is not a terminal.
 */
import { errorText, formatCost, formatDuration, formatNumber, oneLine, outputText, padEnd, padStart, tail, truncate, visibleWidth, type Style } from './format.ts';

/** A run event, from the server's SSE stream or the embedded engine. */
export interface ViewEvent {
  event: string;
  data: Record<string, unknown>;
}

/** A step the run is expected to have, known before it starts (from the workflow or the chat request). */
export interface ExpectedStep {
  id: string;
  agent: string;
  dependsOn?: string[];
  /** `parallel_count`: one lane per instance (`id[0]`, `id[1]`, …). */
  instances?: number;
  /** The step id is a guess (chat): the first step of the same agent takes the lane over. */
  provisional?: boolean;
}

export type LaneStatus = 'waiting' | 'running' | 'retrying' | 'completed' | 'failed' | 'skipped' | 'cancelled';
export type RunPhase = 'starting' | 'running' | 'completed' | 'partial' | 'failed' | 'cancelled';

const TERMINAL_LANE: ReadonlySet<LaneStatus> = new Set(['completed', 'failed', 'skipped', 'cancelled']);
const FINAL_PHASES: ReadonlySet<RunPhase> = new Set(['completed', 'partial', 'failed', 'cancelled']);
const TEXT_KEEP = 4096;

export interface Lane {
  id: string;
  bound: boolean;
  agent: string;
  status: LaneStatus;
  attempt: number;
  dependsOn: string[];
  /** The streamed text of the current attempt (its last few KiB). */
  text: string;
  /** Characters streamed in the current attempt. */
  streamed: number;
  output: string | undefined;
  error: string | undefined;
  reason: string | undefined;
  tokens: { input: number; output: number; total: number } | undefined;
  costUsd: number;
  startedAt: number | undefined;
  endedAt: number | undefined;
  latencyMs: number | undefined;
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function tokensOf(usage: unknown): Lane['tokens'] {
  if (!usage || typeof usage !== 'object') return undefined;
  const u = usage as Record<string, unknown>;
  const input = num(u.input_tokens);
  const output = num(u.output_tokens);
  return { input, output, total: num(u.total_tokens) || input + output };
}

export class RunTracker {
  readonly lanes: Lane[] = [];
  /** `parallel_count` steps: their events are shown on their instances' lanes. */
  readonly groups = new Set<string>();
  readonly startedAt = Date.now();
  title: string;
  runId: string | undefined;
  phase: RunPhase = 'starting';
  endedAt: number | undefined;
  output: unknown;
  error: unknown;
  /** The run's own totals, once it has ended. */
  finalTokens: Lane['tokens'];
  finalCostUsd: number | undefined;
  /** Set while a cancellation asked for by the user is on its way. */
  cancelling = false;
  note: string | undefined;
  readonly #synthesizer: string | undefined;

  constructor(title: string, expected: ExpectedStep[] = [], options: { synthesizer?: string | undefined } = {}) {
    this.title = title;
    this.#synthesizer = options.synthesizer;
    this.expect(expected);
  }

  get finished(): boolean {
    return FINAL_PHASES.has(this.phase);
  }

  expect(steps: ExpectedStep[]): void {
    for (const step of steps) {
      if (step.instances && step.instances > 0) {
        this.groups.add(step.id);
        for (let i = 0; i < step.instances; i++) this.#add(`${step.id}[${i}]`, step.agent, step.dependsOn ?? [], true);
      } else if (!this.lanes.some((lane) => lane.id === step.id)) {
        this.#add(step.id, step.agent, step.dependsOn ?? [], !step.provisional);
      }
    }
  }

  #add(id: string, agent: string, dependsOn: string[], bound: boolean): Lane {
    const lane: Lane = {
      id,
      bound,
      agent,
      status: 'waiting',
      attempt: 0,
      dependsOn,
      text: '',
      streamed: 0,
      output: undefined,
      error: undefined,
      reason: undefined,
      tokens: undefined,
      costUsd: 0,
      startedAt: undefined,
      endedAt: undefined,
      latencyMs: undefined,
    };
    this.lanes.push(lane);
    return lane;
  }

  /** The lane of a step (created when new); undefined for a `parallel_count` group's own events. */
  lane(stepId: string, agent: string | undefined): Lane | undefined {
    const found = this.lanes.find((lane) => lane.id === stepId);
    if (found) return found;
    if (this.groups.has(stepId) || this.lanes.some((lane) => lane.id.startsWith(`${stepId}[`))) return undefined;
    const instance = /^(.*)\[\d+\]$/.exec(stepId);
    if (instance?.[1]) this.groups.add(instance[1]);
    if (agent) {
      const provisional = this.lanes.find((lane) => !lane.bound && lane.status === 'waiting' && lane.agent === agent);
      if (provisional) {
        provisional.id = stepId;
        provisional.bound = true;
        return provisional;
      }
    }
    return this.#add(stepId, agent ?? '', [], true);
  }

  /** Folds one event in; returns the lane it changed, if any. */
  apply(event: ViewEvent): Lane | undefined {
    const data = event.data;
    const runId = str(data.run_id);
    if (runId) this.runId ??= runId;
    const stepId = str(data.step_id);
    const agent = str(data.agent);
    const now = Date.now();
    switch (event.event) {
      case 'run.started': {
        if (this.phase === 'starting') this.phase = 'running';
        if (data.resumed) this.note = 'resumed after a restart';
        return undefined;
      }
      case 'step.started': {
        if (this.phase === 'starting') this.phase = 'running';
        const lane = stepId ? this.lane(stepId, agent) : undefined;
        if (!lane) return undefined;
        lane.status = 'running';
        if (agent) lane.agent = agent;
        lane.attempt = num(data.attempt) || lane.attempt + 1;
        lane.text = '';
        lane.streamed = 0;
        lane.startedAt ??= now;
        return lane;
      }
      case 'step.delta': {
        const lane = stepId ? this.lane(stepId, agent) : undefined;
        if (!lane) return undefined;
        if (lane.status === 'waiting' || lane.status === 'retrying') lane.status = 'running';
        lane.startedAt ??= now;
        const text = str(data.text) ?? '';
        lane.text = (lane.text + text).slice(-TEXT_KEEP);
        lane.streamed += text.length;
        return lane;
      }
      case 'step.completed': {
        const lane = stepId ? this.lane(stepId, agent) : undefined;
        if (!lane) return undefined;
        lane.status = 'completed';
        if (agent) lane.agent = agent;
        lane.output = outputText(data.output);
        lane.error = undefined;
        lane.tokens = tokensOf(data.usage);
        lane.costUsd = num(data.cost_usd);
        lane.latencyMs = typeof data.latency_ms === 'number' ? data.latency_ms : undefined;
        lane.endedAt = now;
        return lane;
      }
      case 'step.failed': {
        const lane = stepId ? this.lane(stepId, agent) : undefined;
        if (!lane) return undefined;
        lane.error = errorText(data.error);
        lane.status = data.will_retry ? 'retrying' : 'failed';
        if (lane.status === 'failed') lane.endedAt = now;
        return lane;
      }
      case 'step.skipped': {
        const reason = str(data.reason) ?? '';
        const status: LaneStatus = /cancel|the run failed/i.test(reason) ? 'cancelled' : 'skipped';
        if (stepId && this.groups.has(stepId)) {
          for (const lane of this.lanes) {
            if (lane.id.startsWith(`${stepId}[`) && !TERMINAL_LANE.has(lane.status)) Object.assign(lane, { status, reason, endedAt: now });
          }
          return undefined;
        }
        const lane = stepId ? this.lane(stepId, agent) : undefined;
        if (!lane) return undefined;
        lane.status = status;
        lane.reason = reason;
        lane.endedAt = now;
        return lane;
      }
      case 'plan.created': {
        const plan = data.plan as { subtasks?: Array<{ id?: unknown; agent?: unknown; depends_on?: unknown }> } | undefined;
        const idOf = (id: string) => `task_${id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
        const planStep = stepId ?? 'plan';
        const subtasks = (plan?.subtasks ?? []).filter((s) => typeof s.id === 'string' && typeof s.agent === 'string');
        this.expect(
          subtasks.map((s) => ({
            id: idOf(s.id as string),
            agent: s.agent as string,
            dependsOn: Array.isArray(s.depends_on) && s.depends_on.length > 0 ? s.depends_on.map((d) => idOf(String(d))) : [planStep],
          })),
        );
        const leader = this.lanes.find((lane) => lane.id === planStep)?.agent ?? '';
        this.expect([{ id: 'synthesis', agent: this.#synthesizer ?? leader, dependsOn: subtasks.map((s) => idOf(s.id as string)) }]);
        this.note = undefined;
        return undefined;
      }
      case 'plan.rejected': {
        this.note = 'the plan was refused; the leader is asked again';
        return undefined;
      }
      case 'run.completed': {
        const status = str(data.status);
        this.phase = status === 'partial' || status === 'failed' || status === 'cancelled' ? status : 'completed';
        this.output = data.output;
        this.finalTokens = tokensOf(data.usage);
        this.finalCostUsd = num(data.cost_usd);
        if (data.error) this.error = data.error;
        this.endedAt = now;
        return undefined;
      }
      case 'run.failed': {
        this.phase = 'failed';
        this.error = data.error;
        if (data.usage) this.finalTokens = tokensOf(data.usage);
        if (data.cost_usd !== undefined) this.finalCostUsd = num(data.cost_usd);
        this.endedAt = now;
        return undefined;
      }
      case 'run.cancelled': {
        this.phase = 'cancelled';
        this.endedAt = now;
        return undefined;
      }
      default:
        return undefined;
    }
  }

  /** Tokens and cost so far (the run's own totals once it has ended). */
  totals(): { tokens: number; costUsd: number; done: number; total: number } {
    const done = this.lanes.filter((lane) => TERMINAL_LANE.has(lane.status)).length;
    const tokens = this.finalTokens?.total ?? this.lanes.reduce((sum, lane) => sum + (lane.tokens?.total ?? 0), 0);
    const costUsd = this.finalCostUsd ?? this.lanes.reduce((sum, lane) => sum + lane.costUsd, 0);
    return { tokens, costUsd, done, total: this.lanes.length };
  }

  elapsedMs(): number {
    return (this.endedAt ?? Date.now()) - this.startedAt;
  }

  laneElapsed(lane: Lane): number | undefined {
    if (lane.latencyMs !== undefined && lane.status === 'completed') return lane.latencyMs;
    if (lane.startedAt === undefined) return undefined;
    return (lane.endedAt ?? this.endedAt ?? Date.now()) - lane.startedAt;
  }

  /** Steps a waiting lane still waits for. */
  pendingDeps(lane: Lane): string[] {
    return lane.dependsOn.filter((dep) => {
      const lanes = this.lanes.filter((l) => l.id === dep || l.id.startsWith(`${dep}[`));
      return lanes.length === 0 || lanes.some((l) => !TERMINAL_LANE.has(l.status));
    });
  }
}

/** `analysis (claude-leader)`, or just the agent when the step is named after it. */
export function laneName(lane: Lane): string {
  return !lane.agent || lane.agent === lane.id ? lane.id : `${lane.id} (${lane.agent})`;
}

function tokensPhrase(tokens: Lane['tokens']): string {
  if (!tokens) return '';
  return `${formatNumber(tokens.total)} tokens (${formatNumber(tokens.input)} in, ${formatNumber(tokens.output)} out)`;
}

/** One line per change, for logs and pipes: no colours, no cursor movement. */
export class PlainLog {
  readonly #write: (line: string) => void;
  readonly #verbose: boolean;

  constructor(write: (line: string) => void, options: { verbose?: boolean | undefined } = {}) {
    this.#write = write;
    this.#verbose = options.verbose ?? false;
  }

  event(event: ViewEvent, tracker: RunTracker, lane: Lane | undefined): void {
    const line = this.#line(event, tracker, lane);
    if (line !== undefined) this.#write(line);
  }

  #line(event: ViewEvent, tracker: RunTracker, lane: Lane | undefined): string | undefined {
    const data = event.data;
    switch (event.event) {
      case 'run.started':
        return `run ${tracker.runId ?? ''} started: ${tracker.title}${data.resumed ? ' (resumed)' : ''}`;
      case 'step.started':
        return lane ? `${laneName(lane)}: started${lane.attempt > 1 ? ` (attempt ${lane.attempt})` : ''}` : undefined;
      case 'step.completed': {
        if (!lane) return undefined;
        const facts = [formatDuration(tracker.laneElapsed(lane)), tokensPhrase(lane.tokens), formatCost(lane.costUsd)].filter(Boolean);
        const head = `${laneName(lane)}: completed${facts.length ? ` in ${facts.join(', ')}` : ''}`;
        if (!this.#verbose || !lane.output) return head;
        return `${head}\n${lane.output.replace(/^/gm, '    ')}`;
      }
      case 'step.failed':
        return lane ? `${laneName(lane)}: failed (attempt ${num(data.attempt) || lane.attempt})${lane.status === 'retrying' ? ', will retry' : ''}: ${lane.error ?? ''}` : undefined;
      case 'step.skipped': {
        const name = lane ? laneName(lane) : str(data.step_id);
        const status = lane?.status === 'cancelled' || /cancel|the run failed/i.test(str(data.reason) ?? '') ? 'cancelled' : 'skipped';
        return `${name}: ${status}${data.reason ? `: ${String(data.reason)}` : ''}`;
      }
      case 'plan.created': {
        const subtasks = ((data.plan as { subtasks?: Array<{ id?: unknown; agent?: unknown }> } | undefined)?.subtasks ?? []).map((s) => `${String(s.id)} -> ${String(s.agent)}`);
        return `plan: ${subtasks.length} subtask${subtasks.length === 1 ? '' : 's'}: ${subtasks.join(', ')}`;
      }
      case 'plan.rejected':
        return `plan refused, the leader is asked again: ${Array.isArray(data.problems) ? data.problems.join('; ') : ''}`;
      case 'run.completed':
      case 'run.failed':
      case 'run.cancelled': {
        const totals = tracker.totals();
        const facts = [formatDuration(tracker.elapsedMs()), `${formatNumber(totals.tokens)} tokens`, formatCost(totals.costUsd)];
        const error = tracker.phase === 'failed' && tracker.error ? `: ${errorText(tracker.error)}` : '';
        return `run ${tracker.phase} in ${facts.join(', ')}${error}`;
      }
      default:
        return undefined;
    }
  }
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const STATUS_WIDTH = 9;

/** What the live view needs of a terminal stream. */
export interface TerminalStream {
  write(text: string): boolean;
  columns?: number;
  rows?: number;
}

/**
 * The live view: a block of lines redrawn in place about ten times a second (header, one lane
 * per step with a second line of detail, a progress footer). The block never gets taller than
 * the terminal: lanes lose their detail line first, then finished lanes fold into a count.
 */
export class LiveView {
  readonly #tracker: RunTracker;
  readonly #out: TerminalStream;
  readonly #style: Style;
  #timer: NodeJS.Timeout | undefined;
  #height = 0;
  #tick = 0;
  #cursorHidden = false;
  readonly #restore = () => this.#showCursor();

  constructor(tracker: RunTracker, out: TerminalStream, style: Style) {
    this.#tracker = tracker;
    this.#out = out;
    this.#style = style;
  }

  start(): void {
    this.#out.write('\x1b[?25l');
    this.#cursorHidden = true;
    process.once('exit', this.#restore);
    this.#draw();
    this.#timer = setInterval(() => {
      this.#tick++;
      this.#draw();
    }, 90);
  }

  /** Draws the final state and gives the cursor back. */
  finish(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#draw();
    this.#showCursor();
    process.removeListener('exit', this.#restore);
  }

  #showCursor(): void {
    if (!this.#cursorHidden) return;
    this.#cursorHidden = false;
    this.#out.write('\x1b[?25h');
  }

  #draw(): void {
    const lines = this.frame();
    let out = this.#height > 0 ? `\r\x1b[${this.#height}A` : '';
    for (const line of lines) out += `${line}\x1b[K\n`;
    out += '\x1b[J';
    this.#height = lines.length;
    this.#out.write(out);
  }

  /** The lines of the current frame (each fits the terminal's width). */
  frame(): string[] {
    const t = this.#tracker;
    const s = this.#style;
    const width = Math.max(30, this.#out.columns || 80) - 1;
    const rows = Math.max(8, this.#out.rows || 24);
    const spin = SPINNER[this.#tick % SPINNER.length]!;
    const lanes = t.lanes;

    const header = `${s.bold('ensemble')}  ${t.title}${t.runId ? s.dim(`  run ${t.runId}`) : ''}`;
    const nameWidth = Math.min(32, Math.max(8, ...lanes.map((lane) => visibleWidth(lane.id))));
    // A lane named after its agent (a chat step) leaves the agent column empty.
    const agentOf = (lane: Lane) => (lane.agent === lane.id ? '' : lane.agent);
    const agentWidth = Math.min(28, Math.max(0, ...lanes.map((lane) => visibleWidth(agentOf(lane)))));

    const budget = rows - 5; // header, blank, blank, footer, and the line the cursor rests on
    const detailed = lanes.length * 2 <= budget;
    let shown = lanes;
    let hidden: Lane[] = [];
    if (lanes.length > budget) {
      const active = new Set(lanes.filter((lane) => lane.status === 'running' || lane.status === 'retrying' || lane.status === 'failed'));
      const keep = new Set<Lane>();
      for (const lane of [...active, ...lanes]) if (keep.size < budget - 1) keep.add(lane);
      shown = lanes.filter((lane) => keep.has(lane));
      hidden = lanes.filter((lane) => !keep.has(lane));
    }

    const lines = [truncate(header, width), ''];
    for (const lane of shown) {
      const first = this.#laneLine(lane, agentOf(lane), spin, nameWidth, agentWidth);
      const detail = this.#detail(lane, width - 4);
      if (detailed) {
        lines.push(truncate(first, width));
        lines.push(truncate(`  ${s.dim('│')} ${detail}`, width));
      } else {
        lines.push(truncate(`${first}  ${detail}`, width));
      }
    }
    if (hidden.length > 0) {
      const counts = new Map<string, number>();
      for (const lane of hidden) counts.set(lane.status, (counts.get(lane.status) ?? 0) + 1);
      lines.push(s.dim(truncate(`  … ${hidden.length} more: ${[...counts].map(([status, n]) => `${n} ${status}`).join(', ')}`, width)));
    }
    lines.push('');
    lines.push(truncate(this.#footer(spin), width));
    return lines;
  }

  #laneLine(lane: Lane, agent: string, spin: string, nameWidth: number, agentWidth: number): string {
    const s = this.#style;
    const t = this.#tracker;
    const [icon, status] = ((): [string, string] => {
      switch (lane.status) {
        case 'running':
          return [s.cyan(spin), s.cyan('running')];
        case 'retrying':
          return [s.yellow(spin), s.yellow('retrying')];
        case 'completed':
          return [s.green('✔'), s.green('completed')];
        case 'failed':
          return [s.red('✖'), s.red('failed')];
        case 'skipped':
          return [s.dim('↷'), s.dim('skipped')];
        case 'cancelled':
          return [s.yellow('■'), s.yellow('cancelled')];
        default:
          return [s.dim('○'), s.dim(t.finished ? 'not run' : 'waiting')];
      }
    })();
    const elapsed = formatDuration(t.laneElapsed(lane));
    const tokens = lane.tokens ? `${formatNumber(lane.tokens.total)} tok` : lane.status === 'running' && lane.streamed > 0 ? s.dim(`${formatNumber(lane.streamed)} ch`) : '';
    const cost = lane.tokens ? formatCost(lane.costUsd) : '';
    return [
      icon,
      padEnd(s.bold(truncate(lane.id, nameWidth)), nameWidth),
      ...(agentWidth > 0 ? [padEnd(truncate(agent, agentWidth), agentWidth)] : []),
      padEnd(status, STATUS_WIDTH),
      padStart(elapsed, 7),
      padStart(tokens, 10),
      padStart(cost, 9),
    ]
      .join(' ')
      .trimEnd();
  }

  #detail(lane: Lane, width: number): string {
    const s = this.#style;
    switch (lane.status) {
      case 'running': {
        const text = oneLine(lane.text);
        if (!text) return s.dim(lane.attempt > 1 ? `attempt ${lane.attempt}: waiting for the first tokens…` : 'waiting for the first tokens…');
        return tail(text, width);
      }
      case 'retrying':
        return s.yellow(truncate(`${oneLine(lane.error ?? '')}; retrying`, width));
      case 'completed':
        return truncate(oneLine(lane.output ?? ''), width);
      case 'failed':
        return s.red(truncate(oneLine(lane.error ?? 'failed'), width));
      case 'skipped':
      case 'cancelled':
        return s.dim(truncate(oneLine(lane.reason ?? ''), width));
      default: {
        if (this.#tracker.finished) return s.dim('did not run');
        const deps = this.#tracker.pendingDeps(lane);
        return s.dim(truncate(deps.length > 0 ? `waiting for ${deps.join(', ')}` : 'queued', width));
      }
    }
  }

  #footer(spin: string): string {
    const s = this.#style;
    const t = this.#tracker;
    const totals = t.totals();
    const barWidth = 20;
    const filled = totals.total > 0 ? Math.round((totals.done / totals.total) * barWidth) : 0;
    const bar = `${s.green('█'.repeat(filled))}${s.dim('░'.repeat(barWidth - filled))}`;
    const facts = [`${totals.done}/${totals.total} steps`, formatDuration(t.elapsedMs()), `${formatNumber(totals.tokens)} tok`, formatCost(totals.costUsd)].join('  ');
    let state: string;
    switch (t.phase) {
      case 'completed':
        state = s.green('✔ completed');
        break;
      case 'partial':
        state = s.yellow('▲ partial');
        break;
      case 'failed':
        state = s.red(`✖ failed${t.error ? `: ${oneLine(errorText(t.error))}` : ''}`);
        break;
      case 'cancelled':
        state = s.yellow('■ cancelled');
        break;
      case 'starting':
        state = s.cyan(`${spin} starting…`);
        break;
      default:
        state = t.cancelling ? s.yellow(`${spin} cancelling…`) : s.cyan(`${spin} running${t.note ? s.dim(` (${t.note})`) : ''}`);
    }
    return `${bar}  ${facts}  ${state}`;
  }
}
