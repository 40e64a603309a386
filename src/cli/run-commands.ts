/**
 * `ensemble run` and `ensemble chat`: start a run and follow it live (one lane per step, with
 * its agent, status, streamed text, tokens and cost), or as plain lines when stdout is not a
 * terminal. `run -f FILE --local` runs a workflow file in this process on the embedded store.
 */
import { Option, type Command } from 'commander';
import { collect, collectList, parseContext, print, printJson, readTextArg, usageError, type ConnectionFlags } from './context.ts';
import { RunTracker } from './live-view.ts';
import { withConnection } from './client-commands.ts';
import { connect } from './server.ts';
import { chatLanes, conclude, expectedFromDefinition, serverSource, watch, type WatchFlags } from './watch.ts';

const CHAT_MODES = ['parallel', 'sequential', 'orchestrated'] as const;

export interface RunFlags extends ConnectionFlags, WatchFlags {
  file?: string;
  local?: boolean;
  agentsFile?: string;
  resume?: boolean;
  input?: string;
  context?: string[];
  user?: string;
  idempotencyKey?: string;
  detach?: boolean;
}

async function runCommand(workflow: string | undefined, flags: RunFlags): Promise<void> {
  if (workflow !== undefined && flags.file !== undefined) throw usageError('give a workflow name or -f FILE, not both');
  if (workflow === undefined && flags.file === undefined) throw usageError('which workflow? ensemble run <workflow> --input TEXT (or ensemble run -f FILE --local)');
  if (flags.file !== undefined && !flags.local) {
    throw usageError('-f runs a workflow file in this process and needs --local; to run it on the server: ensemble workflows apply -f FILE, then ensemble run <name>');
  }
  if (!flags.local) {
    for (const [flag, set] of [['--agents-file', flags.agentsFile], ['--resume', flags.resume]] as const) if (set !== undefined) throw usageError(`${flag} goes with --local`);
  } else {
    for (const [flag, set] of [['--detach', flags.detach], ['--url', flags.url], ['--token', flags.token], ['--idempotency-key', flags.idempotencyKey]] as const) {
      if (set !== undefined) throw usageError(`${flag} does not go with --local (no server is involved)`);
    }
  }
  const input = flags.input !== undefined ? readTextArg(flags.input, '--input') : '';
  const context = parseContext(flags.context ?? []);

  if (flags.local) {
    const { runLocal } = await import('./local.ts');
    process.exitCode = await runLocal({ ...flags, workflow, input, context });
    return;
  }

  const name = workflow!;
  const { client } = connect(flags);
  const request = { input, context, ...(flags.user !== undefined ? { user: flags.user } : {}) };
  const options = flags.idempotencyKey !== undefined ? { idempotencyKey: flags.idempotencyKey } : {};
  if (flags.detach) {
    const started = await client.workflows.start(name, request, options);
    if (flags.json) printJson(started);
    else print(started.run_id);
    return;
  }
  const expected = await client.workflows.get(name).then(
    (saved) => expectedFromDefinition(saved.definition),
    () => [],
  );
  const tracker = new RunTracker(`workflow ${name}`, expected);
  await watch(
    tracker,
    serverSource(client, () => client.workflows.stream(name, request, options)),
    flags,
  );
  process.exitCode = await conclude(tracker, flags, () => client.runs.get(tracker.runId!));
}

interface ChatFlags extends ConnectionFlags, WatchFlags {
  agents: string[];
  mode: (typeof CHAT_MODES)[number];
  aggregator?: string;
  failFast?: boolean;
  context?: string[];
  user?: string;
}

async function chatCommand(words: string[], flags: ChatFlags): Promise<void> {
  let message: string;
  if (words.length === 1 && words[0] === '-') message = readTextArg('@-', 'message');
  else if (words.length === 1) message = readTextArg(words[0]!, 'message');
  else message = words.join(' ');
  if (!message.trim()) throw usageError('what should the agents be asked? ensemble chat --agents a,b "MESSAGE" (or @file, or - for standard input)');
  if (flags.agents.length === 0) throw usageError('--agents needs at least one agent name');
  if (flags.mode === 'orchestrated' && flags.agents.length < 2) throw usageError('orchestrated needs a leader and at least one other agent: --agents leader,worker[,...]');
  const context = parseContext(flags.context ?? []);
  const { client } = connect(flags);
  const request = {
    message,
    agents: flags.agents,
    mode: flags.mode,
    ...(flags.aggregator !== undefined ? { aggregator: flags.aggregator } : {}),
    ...(flags.failFast ? { fail_fast: true } : {}),
    ...(Object.keys(context).length > 0 ? { context } : {}),
    ...(flags.user !== undefined ? { user: flags.user } : {}),
  };
  const tracker = new RunTracker(`chat (${flags.mode}): ${flags.agents.join(', ')}`, chatLanes(flags.agents, flags.mode, flags.aggregator), { synthesizer: flags.aggregator });
  await watch(
    tracker,
    serverSource(client, () => client.chat.stream(request)),
    flags,
  );
  process.exitCode = await conclude(tracker, flags, () => client.runs.get(tracker.runId!));
}

function viewOptions(command: Command): Command {
  return command
    .option('--json', 'print no progress, then the finished run as JSON (as `runs show --json`)')
    .option('--plain', 'plain lines even on a terminal (no live view)')
    .option('-q, --quiet', 'no progress lines, only the output')
    .option('-v, --verbose', 'plain lines include each step\'s output');
}

export function registerRunCommands(program: Command): void {
  viewOptions(
    withConnection(
      program
        .command('run')
        .description('Run a workflow and follow it live (one lane per step); the output goes to stdout')
        .argument('[workflow]', 'name or id of a saved workflow')
        .option('-i, --input <text>', 'the workflow input: TEXT, @file, or @- for standard input'),
      "data directory: the embedded server's token file; with --local, the store to run on",
    ),
  )
    .option('-c, --context <key=value>', 'a context value ({{context.key}}); JSON values are parsed, @file reads a file; repeatable', collect)
    .option('--user <user>', 'the end user the run is made for (per-user cost and budgets)')
    .option('--idempotency-key <key>', 'the same key within 24 h returns the same run')
    .option('--detach', 'start the run, print its id and return (follow it with `ensemble runs events <id>`)')
    .option('-f, --file <file>', 'with --local: a workflow file (YAML or JSON) to run in this process')
    .option('--local', 'run in this process on the embedded store (the data directory); no server needed')
    .option('--agents-file <file>', 'with --local: agents (YAML) to create or update in the store first')
    .option('--resume', 'with --local: also resume unfinished runs found in the store (only when no server uses it)')
    .addHelpText(
      'after',
      `
Exit codes: 0 the run completed (or ended partial), 1 it failed or was cancelled, 2 usage error.
Ctrl-C cancels the run; a second Ctrl-C stops waiting.

Examples:
  $ ensemble run pr_review --input @pr-7.diff --context repo=acme/api
  $ git diff | ensemble run pr_review --input @- > review.md
  $ ensemble run -f examples/research.yaml --local --agents-file agents.yaml --input "Why is the sky blue?"`,
    )
    .action(runCommand);

  viewOptions(
    withConnection(
      program
        .command('chat')
        .description('Put several agents on one message and follow them live')
        .argument('[message...]', 'the message: words, @file, or - for standard input')
        .requiredOption('-a, --agents <names>', 'agent names, comma-separated, in order (orchestrated: the first leads)', collectList)
        .addOption(new Option('-m, --mode <mode>', 'how the agents work').choices(CHAT_MODES).default('parallel')),
    ),
  )
    .option('--aggregator <agent>', 'an agent that synthesizes the answers (parallel, orchestrated)')
    .option('--fail-fast', 'any failed agent fails the run')
    .option('-c, --context <key=value>', 'a context value stored with the run; repeatable', collect)
    .option('--user <user>', 'the end user the chat is made for (per-user cost and budgets)')
    .addHelpText(
      'after',
      `
Exit codes: 0 the run completed (or ended partial), 1 it failed or was cancelled, 2 usage error.

Examples:
  $ ensemble chat --agents claude-reviewer,gpt-coder --aggregator claude-leader "Review: def add(a, b): return a - b"
  $ ensemble chat --agents gpt-coder,claude-reviewer --mode sequential @task.md
  $ ensemble chat --agents claude-leader,gpt-coder,gemini-security --mode orchestrated "Build and review a rate limiter"`,
    )
    .action(chatCommand);
}
