/** The design document's three examples, end to end against the fake vendors. */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAS_POSTGRES } from '../support/postgres.ts';
import { overlapped, promptOf, startEnsemble, type Ensemble } from '../support/ensemble.ts';

const example = (name: string) => readFileSync(new URL(`../../examples/${name}.yaml`, import.meta.url), 'utf8');
const engines: Array<'sqlite' | 'postgres'> = HAS_POSTGRES ? ['sqlite', 'postgres'] : ['sqlite'];

describe.each(engines)('examples on %s', (engine) => {
  let e: Ensemble;
  beforeAll(async () => {
    e = await startEnsemble({ engine });
    await e.agent('claude-leader', 'anthropic');
    await e.agent('gpt-coder', 'openai');
    await e.agent('gemini-security', 'gemini');
    await e.agent('claude-researcher', 'anthropic');
    await e.agent('claude-synthesizer', 'anthropic');
    await e.agent('claude-reviewer', 'anthropic');
    for (const name of ['pr_review', 'research', 'code_with_review']) await e.workflow(example(name));
  });
  afterAll(() => e.close());

  const run = (workflow: string, input: string) => e.server.call('POST', `/api/v1/workflows/${workflow}/execute`, { token: e.token, body: { input } });

  it('PR review: analysis first, fixes and security at the same time, then a synthesis that sees both', async () => {
    const claude = e.fake('anthropic');
    const gpt = e.fake('openai');
    const gemini = e.fake('gemini');
    const [c0, g0, m0] = [claude.generationRequests().length, gpt.generationRequests().length, gemini.generationRequests().length];
    claude.enqueue({ text: 'ANALYSIS: touches auth.ts' }, { text: 'FINAL REVIEW' });
    gpt.enqueue({ text: 'FIXES: rename token', delayMs: 300 });
    gemini.enqueue({ text: 'SECURITY: check the JWT expiry', delayMs: 300 });

    const res = await run('pr_review', 'PR #7: add login');
    expect(res.body.status).toBe('completed');
    expect(res.body.output).toBe('FINAL REVIEW');
    expect(res.body.outputs).toMatchObject({ analysis: 'ANALYSIS: touches auth.ts', fixes: 'FIXES: rename token', security: 'SECURITY: check the JWT expiry' });

    const [analysis, synthesis] = claude.generationRequests().slice(c0);
    const fixes = gpt.generationRequests()[g0]!;
    const security = gemini.generationRequests()[m0]!;
    expect(promptOf('anthropic', analysis!.body)).toContain('PR #7: add login');
    expect(analysis!.endedAt!).toBeLessThanOrEqual(fixes.startedAt);
    expect(analysis!.endedAt!).toBeLessThanOrEqual(security.startedAt);
    expect(overlapped(fixes, security)).toBe(true);
    expect(promptOf('openai', fixes.body)).toContain('ANALYSIS: touches auth.ts');
    expect(promptOf('gemini', security.body)).toContain('ANALYSIS: touches auth.ts');
    expect(synthesis!.startedAt).toBeGreaterThanOrEqual(Math.max(fixes.endedAt!, security.endedAt!));
    expect(promptOf('anthropic', synthesis!.body)).toContain('FIXES: rename token');
    expect(promptOf('anthropic', synthesis!.body)).toContain('SECURITY: check the JWT expiry');
    expect(res.body.steps.map((s: any) => s.step_id)).toEqual(['analysis', 'fixes', 'security', 'review']);
  });

  it('research: parallel_count 3 makes three overlapping calls and gives a list', async () => {
    const claude = e.fake('anthropic');
    const c0 = claude.generationRequests().length;
    claude.enqueue({ text: 'FINDING A', delayMs: 250 }, { text: 'FINDING B', delayMs: 250 }, { text: 'FINDING C', delayMs: 250 }, { text: 'REPORT' });
    const res = await run('research', 'Why is the sky blue?');
    expect(res.body.status).toBe('completed');
    expect(res.body.output).toBe('REPORT');
    expect(res.body.outputs.findings).toHaveLength(3);
    expect([...res.body.outputs.findings].sort()).toEqual(['FINDING A', 'FINDING B', 'FINDING C']);
    const requests = claude.generationRequests().slice(c0);
    expect(requests).toHaveLength(4);
    const researchers = requests.slice(0, 3);
    expect(overlapped(researchers[0]!, researchers[1]!) && overlapped(researchers[1]!, researchers[2]!)).toBe(true);
    expect(researchers.map((r) => promptOf('anthropic', r.body).match(/researcher (\d) of 3/)?.[1]).sort()).toEqual(['0', '1', '2']);
    const synthesis = promptOf('anthropic', requests[3]!.body);
    for (const finding of ['FINDING A', 'FINDING B', 'FINDING C']) expect(synthesis).toContain(finding);
    expect(res.body.steps.filter((s: any) => s.step_id.startsWith('findings[')).map((s: any) => s.status)).toEqual(['completed', 'completed', 'completed']);
  });

  it('code with review: the feedback step runs when the review asks for changes', async () => {
    const gpt = e.fake('openai');
    const claude = e.fake('anthropic');
    const g0 = gpt.generationRequests().length;
    gpt.enqueue({ text: 'CODE V1' }, { text: 'CODE V2' });
    claude.enqueue({ json: { needs_changes: true, comments: 'rename x to total' } });
    const res = await run('code_with_review', 'sum a list');
    expect(res.body.status).toBe('completed');
    expect(res.body.outputs.review).toEqual({ needs_changes: true, comments: 'rename x to total' });
    expect(res.body.output).toBe('CODE V2');
    const feedback = gpt.generationRequests()[g0 + 1]!;
    expect(promptOf('openai', feedback.body)).toContain('rename x to total');
    expect(promptOf('openai', feedback.body)).toContain('CODE V1');
  });

  it('code with review: the feedback step is skipped when the review approves', async () => {
    const gpt = e.fake('openai');
    const g0 = gpt.generationRequests().length;
    gpt.enqueue({ text: 'CODE FINE' });
    e.fake('anthropic').enqueue({ json: { needs_changes: false, comments: 'looks good' } });
    const res = await run('code_with_review', 'sum a list');
    expect(res.body.status).toBe('completed');
    expect(gpt.generationRequests().length - g0).toBe(1);
    const skipped = res.body.steps.find((s: any) => s.step_id === 'revised_code');
    expect(skipped).toMatchObject({ status: 'skipped', reason: expect.stringContaining('condition is false') });
    const events = await fetch(`${e.server.url}/api/v1/runs/${res.body.run_id}/events`, { headers: { authorization: `Bearer ${e.token}` } });
    expect(await events.text()).toContain('event: step.skipped');
  });
});
