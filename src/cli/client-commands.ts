/**
 * The commands that manage a server's objects: `agents`, `workflows`, `runs`, `usage`. Each
 * talks to the server through the typed client; lists are tables, `--json` prints the API's
 * objects for scripts.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { EnsembleApiError, type AgentConfig, type AgentCreate, type ProviderName, type Run, type UsageGroup, type Workflow } from '../client/index.ts';
import { collect, collectList, EXIT, print, printJson, readFileArg, readTextArg, stdoutStyle, terminalWidth, usageError, type ConnectionFlags } from './context.ts';
import { between, errorText, formatCost, formatDuration, formatNumber, formatTime, oneLine, outputText, sanitize, truncate, type Style } from './format.ts';
import { PlainLog, RunTracker } from './live-view.ts';
import { connect } from './server.ts';
import { renderTable, type Column } from './table.ts';
import { expectedFromDefinition } from './watch.ts';

export const PROVIDERS: readonly ProviderName[] = ['ollama', 'anthropic', 'openai', 'gemini', 'openrouter', 'groq'];

/** The variables `agents add` reads a key from when none is given, per provider. */
export const VENDOR_KEY_ENV: Readonly<Record<ProviderName, string[]>> = {
  anthropic: ['ANTHROPIC_API_KEY'],
  openai: ['OPENAI_API_KEY'],
  gemini: ['GOOGLE_GENERATIVE_AI_API_KEY', 'GEMINI_API_KEY'],
  openrouter: ['OPENROUTER_API_KEY'],
  groq: ['GROQ_API_KEY'],
  ollama: [],
};

const USAGE_GROUPS: readonly UsageGroup[] = ['agent', 'provider', 'model', 'workflow', 'day', 'user'];
const RUN_STATUSES = ['queued', 'running', 'completed', 'partial', 'failed', 'cancelled'] as const;

interface JsonFlag {
  json?: boolean;
}

/** `--url`, `--token`, `--data-dir`: where the server is and how to authenticate. */
export function withConnection(command: Command, dataDir = 'data directory of the embedded server, for its token file'): Command {
  return command
    .option('--url <url>', 'server URL (default: $ENSEMBLE_URL, else http://127.0.0.1:8080)')
    .option('--token <token>', 'app token (default: $ENSEMBLE_TOKEN, else <data dir>/default-app.token)')
    .option('--data-dir <dir>', `${dataDir} (default: $ENSEMBLE_DATA_DIR, else ./.ensemble)`);
}

export function numberArg(options: { integer?: boolean; min: number; max: number }) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || (options.integer && !Number.isInteger(n)) || n < options.min || n > options.max) {
      throw new InvalidArgumentError(`expected ${options.integer ? 'an integer' : 'a number'} from ${options.min} to ${options.max}`);
    }
    return n;
  };
}

function printFields(style: Style, fields: Array<[string, string | undefined]>): void {
  const shown = fields.filter((f): f is [string, string] => f[1] !== undefined && f[1] !== '');
  const width = Math.max(...shown.map(([key]) => key.length));
  print(shown.map(([key, value]) => `${style.dim(key.padEnd(width))}  ${value}`).join('\n'));
}

function statusColor(style: Style): (text: string) => string {
  return (text) => {
    if (/^(completed|healthy|yes)$/.test(text)) return style.green(text);
    if (/^(failed|unhealthy)$/.test(text)) return style.red(text);
    if (/^(partial|cancelled|running|queued)$/.test(text)) return style.yellow(text);
    if (/^(unknown|no|-)$/.test(text)) return style.dim(text);
    return text;
  };
}

function tokensPhrase(usage: { input_tokens?: number; output_tokens?: number; total_tokens?: number } | null | undefined): string {
  if (!usage) return '';
  return `${formatNumber(usage.total_tokens)} tokens (${formatNumber(usage.input_tokens)} in, ${formatNumber(usage.output_tokens)} out)`;
}

// ---------------------------------------------------------------------------------------- agents

interface AgentsListFlags extends ConnectionFlags, JsonFlag {
  role?: string;
  provider?: string;
  active?: boolean;
  inactive?: boolean;
}

async function agentsList(flags: AgentsListFlags): Promise<void> {
  if (flags.active && flags.inactive) throw usageError('--active and --inactive exclude each other');
  const { client } = connect(flags);
  const agents = await client.agents.list({
    ...(flags.role !== undefined ? { role: flags.role } : {}),
    ...(flags.provider !== undefined ? { provider: flags.provider } : {}),
    ...(flags.active ? { is_active: true } : flags.inactive ? { is_active: false } : {}),
  });
  if (flags.json) return printJson(agents);
  if (agents.length === 0) {
    process.stderr.write('no agents: add one with `ensemble agents add <name> --provider <provider> --model <model>`\n');
    return;
  }
  const style = stdoutStyle();
  const columns: Column[] = [
    { header: 'NAME' },
    { header: 'PROVIDER' },
    { header: 'MODEL', flex: true },
    { header: 'ROLE', flex: true },
    { header: 'ACTIVE', color: statusColor(style) },
    { header: 'KEY' },
    { header: 'HEALTH', color: statusColor(style) },
  ];
  const rows = agents.map((a) => [a.name, a.provider, a.model, a.role || '-', a.is_active ? 'yes' : 'no', a.api_key_set ? (a.api_key_hint ?? 'set') : '-', a.health.status]);
  process.stdout.write(renderTable(columns, rows, { style, maxWidth: terminalWidth() }));
}

async function agentsShow(name: string, flags: ConnectionFlags & JsonFlag): Promise<void> {
  const { client } = connect(flags);
  const agent = await client.agents.get(name);
  if (flags.json) return printJson(agent);
  const style = stdoutStyle();
  const health = agent.health;
  printFields(style, [
    ['name', style.bold(agent.name)],
    ['id', agent.id],
    ['provider', agent.provider],
    ['model', agent.model],
    ['role', agent.role || '-'],
    ['active', agent.is_active ? 'yes' : 'no'],
    ['key', agent.api_key_set ? (agent.api_key_hint ?? 'set') : 'none of its own (the server\'s environment is used)'],
    ['health', `${statusColor(style)(health.status)}${health.checked_at ? ` at ${formatTime(health.checked_at)}` : ''}${health.latency_ms !== null ? `, ${health.latency_ms}ms` : ''}${health.error ? `: ${errorText(health.error)}` : ''}`],
    ['config', Object.keys(agent.config).length > 0 ? JSON.stringify(agent.config) : undefined],
    ['created', formatTime(agent.created_at)],
    ['updated', formatTime(agent.updated_at)],
    ['system prompt', agent.system_prompt ? truncate(oneLine(agent.system_prompt), 200) : undefined],
  ]);
}

interface AgentsAddFlags extends ConnectionFlags, JsonFlag {
  provider: ProviderName;
  model: string;
  apiKey?: string | false;
  apiKeyEnv?: string;
  baseUrl?: string;
  role?: string;
  systemPrompt?: string;
  temperature?: number;
  maxTokens?: number;
  maxRetries?: number;
  timeoutMs?: number;
  openaiApi?: 'responses' | 'chat';
  inactive?: boolean;
}

/**
 * The key `agents add` sends: `--api-key` (`-`: standard input), else the variable named by
 * `--api-key-env`, else the provider's usual variable in this environment, else none
 * (`--no-api-key` insists on none: the server then uses its own environment's key).
 */
export function resolveApiKey(flags: Pick<AgentsAddFlags, 'apiKey' | 'apiKeyEnv' | 'provider'>, env: Readonly<Record<string, string | undefined>> = process.env): { key: string; source: string } | undefined {
  if (typeof flags.apiKey === 'string' && flags.apiKeyEnv) throw usageError('give --api-key or --api-key-env, not both');
  if (flags.apiKey === false) return undefined;
  if (typeof flags.apiKey === 'string') {
    if (flags.apiKey === '-') {
      const key = readFileArg('-', 'API key').trim();
      if (!key) throw usageError('--api-key -: standard input was empty');
      return { key, source: 'standard input' };
    }
    return { key: flags.apiKey, source: '--api-key' };
  }
  if (flags.apiKeyEnv) {
    const key = env[flags.apiKeyEnv]?.trim();
    if (!key) throw usageError(`--api-key-env ${flags.apiKeyEnv}: that variable is not set`);
    return { key, source: `$${flags.apiKeyEnv}` };
  }
  for (const name of VENDOR_KEY_ENV[flags.provider] ?? []) {
    const key = env[name]?.trim();
    if (key) return { key, source: `$${name}` };
  }
  return undefined;
}

async function agentsAdd(name: string, flags: AgentsAddFlags): Promise<void> {
  const key = resolveApiKey(flags);
  const config: AgentConfig = {};
  if (flags.baseUrl !== undefined) config.base_url = flags.baseUrl;
  if (flags.temperature !== undefined) config.temperature = flags.temperature;
  if (flags.maxTokens !== undefined) config.max_tokens = flags.maxTokens;
  if (flags.maxRetries !== undefined) config.max_retries = flags.maxRetries;
  if (flags.timeoutMs !== undefined) config.timeout_ms = flags.timeoutMs;
  if (flags.openaiApi !== undefined) config.openai_api = flags.openaiApi;
  const body: AgentCreate = {
    name,
    provider: flags.provider,
    model: flags.model,
    ...(key ? { api_key: key.key } : {}),
    ...(flags.role !== undefined ? { role: flags.role } : {}),
    ...(flags.systemPrompt !== undefined ? { system_prompt: readTextArg(flags.systemPrompt, '--system-prompt') } : {}),
    ...(Object.keys(config).length > 0 ? { config } : {}),
    ...(flags.inactive ? { is_active: false } : {}),
  };
  const { client } = connect(flags);
  const agent = await client.agents.create(body);
  if (flags.json) return printJson(agent);
  const keyText = agent.api_key_set ? `key ${agent.api_key_hint ?? 'set'}${key ? ` (from ${key.source})` : ''}` : 'no key of its own';
  print(`created agent ${agent.name}: ${agent.provider} ${agent.model}, ${keyText}`);
}

async function agentsTest(name: string, flags: ConnectionFlags & JsonFlag & { prompt?: string; user?: string }): Promise<void> {
  const { client } = connect(flags);
  const result = await client.agents.test(name, flags.prompt !== undefined ? readTextArg(flags.prompt, '--prompt') : undefined, flags.user);
  process.exitCode = result.ok ? EXIT.ok : EXIT.failed;
  if (flags.json) return printJson(result);
  const style = stdoutStyle();
  if (result.ok) {
    print(`${style.green('ok')}  ${formatDuration(result.latency_ms)}  ${tokensPhrase(result.usage)}  ${formatCost(result.cost_usd)}`);
    print(process.stdout.isTTY ? sanitize(result.output) : result.output);
  } else {
    const { code, message, status } = result.error;
    process.stderr.write(`ensemble: agent ${name} failed its test: ${code}: ${message}${status ? ` (HTTP ${status})` : ''}\n`);
  }
}

async function agentsRemove(names: string[], flags: ConnectionFlags & JsonFlag): Promise<void> {
  const { client } = connect(flags);
  for (const name of names) {
    await client.agents.delete(name);
    if (!flags.json) print(`removed agent ${name}`);
  }
  if (flags.json) printJson({ removed: names });
}

// ------------------------------------------------------------------------------------- workflows

/** The name a workflow document gives itself (`workflow:` or `name:`). */
function workflowName(text: string): string | undefined {
  try {
    const doc = parseYaml(text) as { workflow?: unknown; name?: unknown } | null;
    const name = doc?.workflow ?? doc?.name;
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}

async function workflowsApply(flags: ConnectionFlags & JsonFlag & { file: string[] }): Promise<void> {
  const sources = flags.file.map((file) => ({ file, text: readFileArg(file, 'workflow') }));
  const { client } = connect(flags);
  const results: Array<{ file: string; result: 'created' | 'updated' | 'unchanged'; workflow: Workflow }> = [];
  for (const { file, text } of sources) {
    let body: string | Record<string, unknown> = text;
    if (/\.json$/i.test(file)) {
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // let the server report the syntax error with its line and column
      }
    }
    try {
      results.push({ file, result: 'created', workflow: await client.workflows.create(body) });
    } catch (error) {
      const name = error instanceof EnsembleApiError && error.code === 'conflict' ? workflowName(text) : undefined;
      if (!name) throw error;
      const existing = await client.workflows.get(name);
      const same = existing.source === (typeof body === 'string' ? body : JSON.stringify(body, null, 2));
      results.push({ file, result: same ? 'unchanged' : 'updated', workflow: same ? existing : await client.workflows.replace(name, body) });
    }
  }
  if (flags.json) return printJson(results);
  for (const { result, workflow } of results) {
    const steps = expectedFromDefinition(workflow.definition).length;
    print(`${result} workflow ${workflow.name} (version ${workflow.version}, ${steps} step${steps === 1 ? '' : 's'})`);
  }
}

async function workflowsList(flags: ConnectionFlags & JsonFlag): Promise<void> {
  const { client } = connect(flags);
  const workflows = await client.workflows.list();
  if (flags.json) return printJson(workflows);
  if (workflows.length === 0) {
    process.stderr.write('no workflows: save one with `ensemble workflows apply -f <file.yaml>`\n');
    return;
  }
  const style = stdoutStyle();
  const columns: Column[] = [
    { header: 'NAME' },
    { header: 'VERSION', align: 'right' },
    { header: 'TRIGGER' },
    { header: 'STEPS', align: 'right' },
    { header: 'UPDATED' },
    { header: 'DESCRIPTION', flex: true },
  ];
  const rows = workflows.map((w) => {
    const description = (w.definition as { description?: unknown }).description;
    return [w.name, String(w.version), w.trigger ?? '-', String(expectedFromDefinition(w.definition).length), formatTime(w.updated_at), typeof description === 'string' ? oneLine(description) : ''];
  });
  process.stdout.write(renderTable(columns, rows, { style, maxWidth: terminalWidth() }));
}

async function workflowsShow(name: string, flags: ConnectionFlags & JsonFlag): Promise<void> {
  const { client } = connect(flags);
  const workflow = await client.workflows.get(name);
  if (flags.json) return printJson(workflow);
  if (process.stdout.isTTY) {
    const style = stdoutStyle();
    print(style.dim(`# ${workflow.name}, version ${workflow.version}${workflow.trigger ? `, trigger ${workflow.trigger}` : ''}, updated ${formatTime(workflow.updated_at)}`));
  }
  print(process.stdout.isTTY ? sanitize(workflow.source) : workflow.source);
}

async function workflowsRemove(names: string[], flags: ConnectionFlags & JsonFlag): Promise<void> {
  const { client } = connect(flags);
  for (const name of names) {
    await client.workflows.delete(name);
    if (!flags.json) print(`removed workflow ${name}`);
  }
  if (flags.json) printJson({ removed: names });
}

// ------------------------------------------------------------------------------------------ runs

function runName(run: Pick<Run, 'kind' | 'workflow' | 'mode'>): string {
  return run.kind === 'chat' ? `chat ${run.mode ?? ''}`.trim() : (run.workflow ?? '-');
}

interface RunsListFlags extends ConnectionFlags, JsonFlag {
  workflow?: string;
  status?: Run['status'];
  limit?: number;
  before?: string;
}

async function runsList(flags: RunsListFlags): Promise<void> {
  const { client } = connect(flags);
  const runs = await client.runs.list({
    ...(flags.workflow !== undefined ? { workflow: flags.workflow } : {}),
    ...(flags.status !== undefined ? { status: flags.status } : {}),
    ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
    ...(flags.before !== undefined ? { before: flags.before } : {}),
  });
  if (flags.json) return printJson(runs);
  if (runs.length === 0) {
    process.stderr.write('no runs\n');
    return;
  }
  const style = stdoutStyle();
  const columns: Column[] = [
    { header: 'RUN' },
    { header: 'NAME', flex: true },
    { header: 'STATUS', color: statusColor(style) },
    { header: 'TOKENS', align: 'right' },
    { header: 'COST', align: 'right' },
    { header: 'CREATED' },
    { header: 'DURATION', align: 'right' },
  ];
  const rows = runs.map((r) => [r.run_id, runName(r), r.status, formatNumber(r.usage.total_tokens), formatCost(r.cost_usd), formatTime(r.created_at), formatDuration(between(r.started_at, r.finished_at))]);
  process.stdout.write(renderTable(columns, rows, { style, maxWidth: terminalWidth() }));
}

async function runsShow(runId: string, flags: ConnectionFlags & JsonFlag): Promise<void> {
  const { client } = connect(flags);
  const run = await client.runs.get(runId);
  if (flags.json) return printJson(run);
  const style = stdoutStyle();
  const tty = Boolean(process.stdout.isTTY);
  printFields(style, [
    ['run', style.bold(run.run_id)],
    [run.kind === 'chat' ? 'chat' : 'workflow', run.kind === 'chat' ? `mode ${run.mode ?? '-'}` : `${run.workflow ?? '-'}${run.workflow_version !== null ? ` (version ${run.workflow_version})` : ''}`],
    ['status', statusColor(style)(run.status)],
    ['created', formatTime(run.created_at)],
    ['duration', formatDuration(between(run.started_at, run.finished_at))],
    ['tokens', tokensPhrase(run.usage)],
    ['cost', formatCost(run.cost_usd)],
    ['user', run.user ?? undefined],
    ['input', truncate(oneLine(typeof run.input === 'string' ? run.input : JSON.stringify(run.input)), 200)],
    ['context', Object.keys(run.context).length > 0 ? JSON.stringify(run.context) : undefined],
    ['error', run.error ? style.red(errorText(run.error)) : undefined],
  ]);
  if (run.steps.length > 0) {
    print('');
    const columns: Column[] = [
      { header: 'STEP' },
      { header: 'AGENT' },
      { header: 'STATUS', color: statusColor(style) },
      { header: 'TRIES', align: 'right' },
      { header: 'TIME', align: 'right' },
      { header: 'TOKENS', align: 'right' },
      { header: 'COST', align: 'right' },
      { header: 'NOTE', flex: true },
    ];
    const rows = run.steps.map((s) => [
      s.step_id,
      s.agent,
      s.status,
      String(s.attempts),
      formatDuration(s.latency_ms ?? between(s.started_at, s.finished_at)),
      s.usage ? formatNumber(s.usage.total_tokens) : '',
      s.usage ? formatCost(s.cost_usd) : '',
      oneLine(s.error ? errorText(s.error) : (s.reason ?? '')),
    ]);
    process.stdout.write(renderTable(columns, rows, { style, maxWidth: terminalWidth() }));
  }
  const output = outputText(run.output);
  if (output) {
    print('');
    print(style.dim('output'));
    print(tty ? sanitize(output) : output);
  }
}

async function runsCancel(runIds: string[], flags: ConnectionFlags & JsonFlag): Promise<void> {
  const { client } = connect(flags);
  const runs: Run[] = [];
  for (const runId of runIds) {
    const run = await client.runs.cancel(runId);
    runs.push(run);
    if (!flags.json) print(`run ${run.run_id}: ${run.status === 'running' || run.status === 'queued' ? 'cancelling' : run.status}`);
  }
  if (flags.json) printJson(runIds.length === 1 ? runs[0] : runs);
}

async function runsEvents(runId: string, flags: ConnectionFlags & JsonFlag & { after?: number }): Promise<void> {
  const { client } = connect(flags);
  const run = await client.runs.get(runId);
  const events = client.runs.events(runId, flags.after ? { lastEventId: flags.after } : {});
  if (flags.json) {
    for await (const event of events) process.stdout.write(`${JSON.stringify(event)}\n`);
    return;
  }
  const tracker = new RunTracker(run.kind === 'chat' ? `chat (${run.mode ?? ''})` : `workflow ${run.workflow ?? ''}`);
  tracker.runId = run.run_id;
  const log = new PlainLog((line) => print(line), { verbose: true });
  for await (const event of events) {
    const view = { event: event.event, data: event.data };
    log.event(view, tracker, tracker.apply(view));
  }
}

// ----------------------------------------------------------------------------------------- usage

interface UsageFlags extends ConnectionFlags, JsonFlag {
  by?: string[];
  from?: string;
  to?: string;
}

async function usageCommand(flags: UsageFlags): Promise<void> {
  const groups = [...new Set(flags.by ?? [])] as UsageGroup[];
  for (const group of groups) if (!USAGE_GROUPS.includes(group)) throw usageError(`--by ${group}: expected one of ${USAGE_GROUPS.join(', ')}`);
  const { client } = connect(flags);
  const report = await client.usage({ ...(flags.from ? { from: flags.from } : {}), ...(flags.to ? { to: flags.to } : {}), ...(groups.length > 0 ? { groupBy: groups } : {}) });
  if (flags.json) return printJson(report);
  const style = stdoutStyle();
  const figures = (t: typeof report.totals) => [formatNumber(t.requests), formatNumber(t.errors), formatNumber(t.input_tokens), formatNumber(t.output_tokens), formatNumber(t.total_tokens), formatCost(t.cost_usd)];
  const columns: Column[] = [
    ...groups.map((g): Column => ({ header: g.toUpperCase(), flex: true })),
    ...['REQUESTS', 'ERRORS', 'INPUT', 'OUTPUT', 'TOKENS', 'COST'].map((header): Column => ({ header, align: 'right' })),
  ];
  const rows = report.data.map((row) => [...groups.map((g) => row.group[g] ?? '-'), ...figures(row)]);
  if (groups.length > 0) rows.push(['total', ...groups.slice(1).map(() => ''), ...figures(report.totals)]);
  else rows.push(figures(report.totals));
  process.stdout.write(renderTable(columns, rows, { style, maxWidth: terminalWidth() }));
}

// ---------------------------------------------------------------------------------- registration

export function registerClientCommands(program: Command): void {
  const agents = program.command('agents').description("Manage the app's agents (an LLM on a provider, with a role and a system prompt)");
  withConnection(agents.command('list').alias('ls').description('List agents'))
    .option('--role <role>', 'only agents with this role')
    .option('--provider <provider>', 'only agents on this provider')
    .option('--active', 'only active agents')
    .option('--inactive', 'only inactive agents')
    .option('--json', 'print JSON')
    .action(agentsList);
  withConnection(agents.command('show').description('Show one agent').argument('<name>', 'agent name or id'))
    .option('--json', 'print JSON')
    .action(agentsShow);
  withConnection(
    agents
      .command('add')
      .description('Register an agent')
      .argument('<name>', 'agent name: lowercase letters, digits, ., _, - (up to 64)')
      .addOption(new Option('--provider <provider>', 'LLM provider').choices(PROVIDERS).makeOptionMandatory())
      .requiredOption('--model <model>', "the provider's model name, e.g. claude-sonnet-4-5, gpt-4.1-mini, llama3.2"),
  )
    .option('--api-key <key>', 'provider API key (- reads it from standard input); default: --api-key-env, else the provider\'s usual variable (ANTHROPIC_API_KEY, OPENAI_API_KEY, ...)')
    .option('--api-key-env <variable>', 'read the provider API key from this environment variable')
    .option('--no-api-key', 'store no key: the server uses the key of its own environment')
    .option('--base-url <url>', 'provider endpoint (self-hosted Ollama, OpenAI-compatible servers, proxies)')
    .option('--role <role>', 'role, e.g. reviewer, coder, leader')
    .option('--system-prompt <text>', 'system prompt, TEXT or @file')
    .option('--temperature <n>', 'sampling temperature (0-2)', numberArg({ min: 0, max: 2 }))
    .option('--max-tokens <n>', 'output token limit', numberArg({ integer: true, min: 1, max: 1_000_000 }))
    .option('--max-retries <n>', 'retries of a failed call (0-10)', numberArg({ integer: true, min: 0, max: 10 }))
    .option('--timeout-ms <ms>', 'time limit of one call', numberArg({ integer: true, min: 1, max: 3_600_000 }))
    .addOption(new Option('--openai-api <api>', 'OpenAI only: chat for OpenAI-compatible servers').choices(['responses', 'chat']))
    .option('--inactive', 'register it inactive')
    .option('--json', 'print the agent as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ ensemble agents add claude-reviewer --provider anthropic --model claude-sonnet-4-5 \\
      --role reviewer --system-prompt @prompts/reviewer.md      # key from $ANTHROPIC_API_KEY
  $ ensemble agents add llama --provider ollama --model llama3.2
  $ pass show openai | ensemble agents add gpt-coder --provider openai --model gpt-4.1-mini --api-key -`,
    )
    .action(agentsAdd);
  withConnection(agents.command('test').description('Send the agent a prompt and show its answer, tokens and cost (exit 1 when the provider fails)').argument('<name>', 'agent name or id'))
    .option('--prompt <text>', 'prompt, TEXT or @file (default: "Hello, are you working?")')
    .option('--user <user>', 'the end user the call is made for (per-user budgets)')
    .option('--json', 'print JSON')
    .action(agentsTest);
  withConnection(agents.command('rm').alias('remove').description('Remove agents').argument('<names...>', 'agent names or ids'))
    .option('--json', 'print JSON')
    .action(agentsRemove);

  const workflows = program.command('workflows').description('Manage workflows (DAGs of agent steps, written in YAML or JSON)');
  withConnection(workflows.command('apply').description('Save workflow files: create each, or replace the workflow of the same name (a new version)'))
    .requiredOption('-f, --file <file>', 'workflow file, YAML or JSON (- for standard input); repeatable', collect)
    .option('--json', 'print JSON: [{file, result: created|updated|unchanged, workflow}]')
    .action(workflowsApply);
  withConnection(workflows.command('list').alias('ls').description('List workflows'))
    .option('--json', 'print JSON')
    .action(workflowsList);
  withConnection(workflows.command('show').description('Print a workflow as it was saved').argument('<name>', 'workflow name or id'))
    .option('--json', 'print the workflow object (with its compiled definition) as JSON')
    .action(workflowsShow);
  withConnection(workflows.command('rm').alias('remove').description('Remove workflows').argument('<names...>', 'workflow names or ids'))
    .option('--json', 'print JSON')
    .action(workflowsRemove);

  const runs = program.command('runs').description('Inspect, follow and cancel runs (of workflows and chats)');
  withConnection(runs.command('list').alias('ls').description('List runs, newest first'))
    .option('--workflow <name>', 'only runs of this workflow')
    .addOption(new Option('--status <status>', 'only runs in this status').choices(RUN_STATUSES))
    .option('--limit <n>', 'at most this many (default 50)', numberArg({ integer: true, min: 1, max: 500 }))
    .option('--before <run_id>', 'runs created before this one (paging)')
    .option('--json', 'print JSON')
    .action(runsList);
  withConnection(runs.command('show').description('Show a run: status, steps, usage, output').argument('<run_id>', 'run id'))
    .option('--json', 'print JSON')
    .action(runsShow);
  withConnection(runs.command('cancel').description('Cancel runs (running provider calls are aborted)').argument('<run_ids...>', 'run ids'))
    .option('--json', 'print JSON')
    .action(runsCancel);
  withConnection(runs.command('events').description("Print a run's events from the start, then follow it until it ends").argument('<run_id>', 'run id'))
    .option('--after <seq>', 'start after this event number', numberArg({ integer: true, min: 0, max: Number.MAX_SAFE_INTEGER }))
    .option('--json', 'print one JSON event per line: {id, event, data}')
    .action(runsEvents);

  withConnection(program.command('usage').description('Requests, tokens and cost, in total or grouped'))
    .option('--by <groups>', `group by ${USAGE_GROUPS.join('|')} (comma-separated or repeated)`, collectList)
    .option('--from <time>', 'from this time (RFC 3339 or YYYY-MM-DD)')
    .option('--to <time>', 'until this time (RFC 3339 or YYYY-MM-DD)')
    .option('--json', 'print JSON')
    .action(usageCommand);
}
