/**
 * `ensemble run --local`: a workflow (a file, or one saved in the store) runs in this process
 * on the embedded store of the data directory, with the same engine, governance and records as
 * the server, and no server. Agents come from that store (the ones `ensemble agents add` put
 * there while a server served the directory) and, with `--agents-file`, from a YAML file that
 * is created or updated into it first.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { createEnsemble, type Ensemble } from '../app/index.ts';
import { openStorage } from '../storage/index.ts';
import { compileWorkflow, parseWorkflowSource } from '../workflow/index.ts';
import { CliError, dataDirOf, EXIT, readFileArg, usageError } from './context.ts';
import type { ExpectedStep, ViewEvent } from './live-view.ts';
import { RunTracker } from './live-view.ts';
import { conclude, expectedFromDefinition, watch, type WatchFlags } from './watch.ts';

export interface LocalRunOptions extends WatchFlags {
  workflow?: string | undefined;
  file?: string | undefined;
  input: string;
  context: Record<string, unknown>;
  user?: string | undefined;
  agentsFile?: string | undefined;
  dataDir?: string | undefined;
  resume?: boolean | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * An agents file: a list of agents (or `agents:` holding one), each as `POST /agents` takes
 * it. `api_key_env: VAR` reads the key from that variable; an agent without a key uses the
 * provider's usual variable (ANTHROPIC_API_KEY, ...) of this environment at call time.
 */
export function readAgentsFile(path: string, env: Env = process.env): Array<Record<string, unknown>> {
  const text = readFileArg(path, 'agents');
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw usageError(`agents file ${path}: ${(error as Error).message}`);
  }
  const list = Array.isArray(doc) ? doc : (doc as { agents?: unknown } | null)?.agents;
  if (!Array.isArray(list)) throw usageError(`agents file ${path}: expected a list of agents, or \`agents:\` with one`);
  return list.map((item: unknown, i) => {
    if (!item || typeof item !== 'object' || typeof (item as { name?: unknown }).name !== 'string') throw usageError(`agents file ${path}: agent ${i + 1} needs a name`);
    const { api_key_env: keyEnv, ...agent } = item as Record<string, unknown>;
    if (keyEnv !== undefined) {
      const key = typeof keyEnv === 'string' ? env[keyEnv]?.trim() : undefined;
      if (!key) throw usageError(`agents file ${path}: ${String(agent.name)}: api_key_env ${String(keyEnv)} is not set`);
      agent.api_key = key;
    }
    return agent;
  });
}

/** Creates each agent, or updates the one of the same name. */
async function upsertAgents(ensemble: Ensemble, agents: Array<Record<string, unknown>>): Promise<{ created: string[]; updated: string[] }> {
  const created: string[] = [];
  const updated: string[] = [];
  for (const agent of agents) {
    const name = agent.name as string;
    const exists = await ensemble.agents.get(name).then(
      () => true,
      (error: unknown) => {
        if ((error as { code?: unknown }).code === 'not_found') return false;
        throw error;
      },
    );
    if (exists) {
      const { name: _name, ...patch } = agent;
      await ensemble.agents.update(name, patch);
      updated.push(name);
    } else {
      await ensemble.agents.create(agent);
      created.push(name);
    }
  }
  return { created, updated };
}

/**
 * Opening a store resumes its unfinished runs in this process. If a server serves the same
 * directory they are its runs, and would run twice: refuse unless `--resume` says otherwise.
 */
async function guardUnfinished(dataDir: string, resume: boolean): Promise<void> {
  if (resume || !existsSync(join(dataDir, 'ensemble.db'))) return;
  const storage = await openStorage({ dataDir });
  try {
    const unfinished = await storage.runs.listUnfinished();
    if (unfinished.length > 0) {
      throw new CliError(
        `${dataDir} has ${unfinished.length} unfinished run${unfinished.length === 1 ? '' : 's'} (${unfinished
          .slice(0, 3)
          .map((r) => r.id)
          .join(', ')}${unfinished.length > 3 ? ', …' : ''}); a server using this directory may be executing them. ` +
          'Stop that server or use another --data-dir; --resume lets this process resume them.',
        EXIT.failed,
      );
    }
  } finally {
    await storage.close();
  }
}

function allowedPrivateHosts(env: Env): string[] | undefined {
  const value = env.ENSEMBLE_ALLOWED_PRIVATE_HOSTS;
  if (value === undefined || value === '') return undefined;
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
}

async function* engineEvents(events: AsyncIterable<{ type: string; data: Record<string, unknown> }>): AsyncGenerator<ViewEvent> {
  for await (const event of events) yield { event: event.type, data: event.data };
}

export async function runLocal(options: LocalRunOptions, env: Env = process.env): Promise<number> {
  const dataDir = dataDirOf(options, env);
  let document: string | undefined;
  let expected: ExpectedStep[] = [];
  let title = `workflow ${options.workflow ?? options.file ?? ''} (local)`;
  if (options.file !== undefined) {
    document = readFileArg(options.file, 'workflow');
    // A one-line document would be read as a workflow name.
    if (!document.includes('\n')) document += '\n';
    try {
      const compiled = compileWorkflow(parseWorkflowSource(document, /\.json$/i.test(options.file) ? 'json' : 'yaml'));
      expected = expectedFromDefinition(compiled);
      title = `workflow ${compiled.name} (local)`;
    } catch {
      // the engine reports what is wrong with it when the run starts
    }
  }
  const agents = options.agentsFile !== undefined ? readAgentsFile(options.agentsFile, env) : [];
  await guardUnfinished(dataDir, options.resume ?? false);

  const hosts = allowedPrivateHosts(env);
  const ensemble = await createEnsemble({
    storage: { dataDir },
    ...(env.ENSEMBLE_MASTER_KEYS ? { masterKeys: env.ENSEMBLE_MASTER_KEYS } : {}),
    ...(hosts ? { allowedPrivateHosts: hosts } : {}),
    env,
  });
  try {
    if (agents.length > 0) {
      const { created, updated } = await upsertAgents(ensemble, agents);
      if (!options.json && !options.quiet) {
        const parts = [created.length > 0 ? `created ${created.join(', ')}` : '', updated.length > 0 ? `updated ${updated.join(', ')}` : ''].filter(Boolean);
        process.stderr.write(`agents: ${parts.join('; ')}\n`);
      }
    }
    if (document === undefined) {
      const saved = await ensemble.workflows.get(options.workflow!);
      expected = expectedFromDefinition(saved.definition);
      title = `workflow ${saved.name} (local)`;
    }
    const handle = await ensemble.startWorkflow(document ?? options.workflow!, options.input, options.context, options.user !== undefined ? { user: options.user } : {});
    const tracker = new RunTracker(title, expected);
    tracker.runId = handle.runId;
    await watch(
      tracker,
      {
        events: engineEvents(handle.events()),
        cancel: async (runId) => {
          await ensemble.runs.cancel(runId);
        },
      },
      options,
    );
    return await conclude(tracker, options, () => handle.result());
  } finally {
    await ensemble.close();
  }
}
