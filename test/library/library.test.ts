/** Ensemble as a library: the same engine and governance in-process, no HTTP. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnsemble, type Ensemble } from '../../src/index.ts';
import type { FakeVendor } from '../fakes/harness.ts';
import { VENDOR_CASES } from '../providers/vendors.ts';
import { readEvents, startEnsemble, type Ensemble as ServerEnsemble } from '../support/ensemble.ts';

const fakes = new Map<string, FakeVendor>();
let dataDir: string;
let lib: Ensemble;
const prReview = readFileSync(new URL('../../examples/pr_review.yaml', import.meta.url), 'utf8');
const AGENTS = [
  ['claude-leader', 'anthropic'],
  ['gpt-coder', 'openai'],
  ['gemini-security', 'gemini'],
] as const;

function scriptPrReview(f: (p: string) => FakeVendor) {
  f('anthropic').enqueue({ chunks: ['ANAL', 'YSIS'] }, { chunks: ['FINAL ', 'REVIEW'] });
  f('openai').enqueue({ chunks: ['FIX', 'ES'], delayMs: 100 });
  f('gemini').enqueue({ chunks: ['SECU', 'RITY'], delayMs: 100 });
}

beforeAll(async () => {
  for (const [, provider] of AGENTS) {
    const vendor = VENDOR_CASES.find((v) => v.provider === provider)!;
    fakes.set(provider, await vendor.start({ apiKey: `lib-key-${provider}-12345` }));
  }
  dataDir = mkdtempSync(join(tmpdir(), 'ensemble-lib-'));
  lib = await createEnsemble({ storage: { dataDir }, allowedPrivateHosts: [...fakes.values()].map((f) => new URL(f.url).host) });
  for (const [name, provider] of AGENTS) {
    const vendor = VENDOR_CASES.find((v) => v.provider === provider)!;
    await lib.agents.create({ name, provider, model: vendor.model, api_key: `lib-key-${provider}-12345`, config: { base_url: fakes.get(provider)!.baseUrl } });
  }
  await lib.workflows.create(prReview);
});
afterAll(async () => {
  await lib.close();
  for (const fake of fakes.values()) await fake.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The events of a run as comparable facts: per step, the sequence of event types and texts. */
function shape(events: Array<{ event?: string; type?: string; data: any }>) {
  const byStep: Record<string, string[]> = {};
  for (const e of events) {
    const type = e.event ?? e.type!;
    const key = e.data.step_id ?? '(run)';
    (byStep[key] ??= []).push(type === 'step.delta' ? `delta:${e.data.text}` : type);
  }
  return byStep;
}

describe('createEnsemble', () => {
  it('runs the PR-review example in-process, with events matching the server’s for the same run', async () => {
    scriptPrReview((p) => fakes.get(p)!);
    const handle = await lib.startWorkflow('pr_review', 'PR #1: fix login');
    const events = [];
    for await (const event of handle.events()) events.push(event);
    const run = await handle.result();
    expect(run).toMatchObject({ status: 'completed', output: 'FINAL REVIEW', workflow: 'pr_review' });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));

    const server: ServerEnsemble = await startEnsemble();
    try {
      for (const [name, provider] of AGENTS) await server.agent(name, provider);
      await server.workflow(prReview);
      scriptPrReview((p) => server.fake(p));
      const res = await fetch(`${server.server.url}/api/v1/workflows/pr_review/execute`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ input: 'PR #1: fix login', stream: true }),
      });
      const served = await readEvents(res);
      expect(shape(events)).toEqual(shape(served));
      expect(served.at(-1)!.data.output).toBe(events.at(-1)!.data.output);
    } finally {
      await server.close();
    }
  });

  it('executeParallel, chain, chat, usage and audit use the same engine and governance', async () => {
    fakes.get('openai')!.enqueue({ text: 'from gpt' });
    fakes.get('gemini')!.enqueue({ text: 'from gemini' });
    expect(await lib.executeParallel(['gpt-coder', 'gemini-security'], ['write', 'check'])).toEqual(['from gpt', 'from gemini']);

    fakes.get('openai')!.enqueue({ text: 'draft' });
    fakes.get('anthropic')!.enqueue({ text: 'polished' });
    const before = fakes.get('anthropic')!.generationRequests().length;
    expect(await lib.chain([['gpt-coder', 'Write a limerick'], ['claude-leader', 'Polish this']])).toBe('polished');
    const second = JSON.stringify(fakes.get('anthropic')!.generationRequests()[before]!.body);
    expect(second).toContain('Polish this');
    expect(second).toContain('draft');

    const chat = await lib.chat({ message: 'hi', agents: ['gpt-coder', 'gemini-security'], mode: 'parallel' });
    expect(chat.status).toBe('completed');
    const usage = await lib.usage({ groupBy: ['agent'] });
    expect(usage.totals.requests).toBeGreaterThanOrEqual(9);
    expect((await lib.audit({ action: 'agent.invoke' })).length).toBe(usage.totals.requests);
    expect((await lib.runs.list()).length).toBeGreaterThanOrEqual(4);
  });

  it('runs an inline workflow document without saving it', async () => {
    fakes.get('gemini')!.enqueue({ text: 'inline answer' });
    const run = await lib.executeWorkflow({ name: 'inline', steps: [{ id: 'only', agent: 'gemini-security' }] }, 'q');
    expect(run).toMatchObject({ status: 'completed', output: 'inline answer' });
    expect((await lib.workflows.list()).map((w) => w.name)).toEqual(['pr_review']);
  });
});

describe('the package surface', () => {
  beforeAll(() => {
    if (!existsSync(new URL('../../dist/index.js', import.meta.url))) execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  });

  /** Resolves a specifier the way a program depending on the package does (Node, from the package root). */
  function resolveLikeAConsumer(specifier: string): string {
    const script = `import(${JSON.stringify(specifier)}).then((m) => console.log('ok:' + Object.keys(m).sort().join(',')), (e) => console.log('error:' + e.code))`;
    return execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url), encoding: 'utf8' }).trim();
  }

  it('exports createEnsemble and the client; internals are not reachable by deep imports', () => {
    expect(resolveLikeAConsumer('ensemble')).toMatch(/^ok:.*createEnsemble/);
    expect(resolveLikeAConsumer('ensemble/client')).toMatch(/^ok:.*createClient/);
    expect(resolveLikeAConsumer('ensemble/src/registry/index.ts')).toBe('error:ERR_PACKAGE_PATH_NOT_EXPORTED');
    expect(resolveLikeAConsumer('ensemble/dist/registry/index.js')).toBe('error:ERR_PACKAGE_PATH_NOT_EXPORTED');
  });
});
