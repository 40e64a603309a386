/**
 * Triggers: events that start workflows. A workflow names its event in `trigger`; an app posts the
 * event (`POST /api/v1/triggers/{trigger}`) or a signed webhook delivers it
 * (`POST /hooks/{app_id}/{trigger}`), and every active workflow of the app bound to it starts.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { EnsembleError } from '../core/index.ts';
import type { Actor, AppService } from '../registry/index.ts';
import type { Storage } from '../storage/index.ts';
import type { RunService } from './runs.ts';
import { toWorkflowView } from './workflows.ts';

/** How old an Ensemble-signed webhook may be. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

export interface TriggeredRun {
  run_id: string;
  workflow: string;
}

export interface TriggerEvent {
  input: string;
  context: Record<string, unknown>;
  user?: string | undefined;
}

export class TriggerService {
  readonly #storage: Storage;
  readonly #runs: RunService;
  readonly #apps: AppService;

  constructor(storage: Storage, runs: RunService, apps: AppService) {
    this.#storage = storage;
    this.#runs = runs;
    this.#apps = apps;
  }

  /** Starts every active workflow of the app bound to `trigger`; 404 when there is none. */
  async fire(appId: string, trigger: string, event: TriggerEvent, actor: Actor): Promise<TriggeredRun[]> {
    const workflows = (await this.#storage.workflows.list(appId)).filter((w) => w.is_active && w.trigger === trigger);
    if (workflows.length === 0) throw new EnsembleError('not_found', `No active workflow is bound to trigger "${trigger}"`);
    const started: TriggeredRun[] = [];
    for (const workflow of workflows) {
      const { run } = await this.#runs.startWorkflowRun(appId, toWorkflowView(workflow), { input: event.input, context: { ...event.context, trigger }, user: event.user }, actor);
      started.push({ run_id: run.id, workflow: workflow.name });
    }
    return started;
  }

  /**
   * Verifies a webhook's signature with the app's secret, in constant time. Two schemes:
   * `X-Ensemble-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<trigger>.<body>">` (refused
   * when older than {@link WEBHOOK_TOLERANCE_SECONDS}; the trigger is signed so a delivery cannot
   * be replayed to another trigger), and GitHub's `X-Hub-Signature-256:
   * sha256=<hex HMAC-SHA256 of the body>` (replays refused by `X-GitHub-Delivery` id).
   */
  async verify(appId: string, trigger: string, headers: (name: string) => string | undefined, rawBody: string, now = Date.now()): Promise<'ensemble' | 'github'> {
    const app = await this.#apps.get(appId);
    const secret = app ? await this.#apps.webhookSecret(appId) : undefined;
    const refuse = (why: string) => new EnsembleError('unauthorized', `Webhook refused: ${why}`);
    if (!secret) throw refuse('the app has no webhook secret');
    const ensemble = headers('x-ensemble-signature');
    if (ensemble) {
      const parts = Object.fromEntries(ensemble.split(',').map((p) => p.trim().split('=', 2) as [string, string]));
      const timestamp = Number(parts.t);
      if (!Number.isFinite(timestamp) || !parts.v1) throw refuse('malformed X-Ensemble-Signature');
      if (Math.abs(now / 1000 - timestamp) > WEBHOOK_TOLERANCE_SECONDS) throw refuse('stale timestamp');
      if (!safeEqualHex(hmac(secret, `${parts.t}.${trigger}.${rawBody}`), parts.v1)) throw refuse('bad signature');
      return 'ensemble';
    }
    const github = headers('x-hub-signature-256');
    if (github) {
      const given = github.replace(/^sha256=/, '');
      if (!safeEqualHex(hmac(secret, rawBody), given)) throw refuse('bad signature');
      const delivery = headers('x-github-delivery');
      if (!delivery) throw refuse('missing X-GitHub-Delivery');
      if (!(await this.#storage.users.recordDelivery(appId, delivery, new Date(now).toISOString()))) throw refuse('delivery already received');
      return 'github';
    }
    throw refuse('unsigned');
  }
}

function hmac(secret: string, payload: string): string {
  return createHmac('sha256', secret).update(payload, 'utf8').digest('hex');
}

function safeEqualHex(expected: string, given: string): boolean {
  const a = Buffer.from(expected, 'hex');
  const b = Buffer.from(/^[0-9a-f]+$/i.test(given) ? given : '', 'hex');
  if (a.length !== b.length || a.length === 0) {
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/** The input a `pr_review` workflow gets from a GitHub `pull_request` event. */
interface PullRequestEvent {
  action?: string;
  diff?: unknown;
  repository?: { full_name?: string };
  pull_request?: { number?: number; title?: string; body?: string | null; diff_url?: string; html_url?: string; user?: { login?: string } };
}

export function pullRequestInput(value: unknown): TriggerEvent | undefined {
  const payload = value as PullRequestEvent | undefined;
  const pr = payload?.pull_request;
  if (!pr || !['opened', 'reopened', 'synchronize', 'ready_for_review', 'edited'].includes(payload?.action ?? '')) return undefined;
  const lines = [`Pull request #${pr.number}: ${pr.title ?? ''}`, '', pr.body ?? '(no description)', '', `Diff: ${pr.diff_url ?? pr.html_url ?? ''}`];
  if (typeof payload?.diff === 'string') lines.push('', payload.diff);
  return {
    input: lines.join('\n'),
    context: {
      source: 'github',
      action: payload?.action,
      repository: payload?.repository?.full_name ?? null,
      number: pr.number,
      title: pr.title ?? null,
      author: pr.user?.login ?? null,
      diff_url: pr.diff_url ?? null,
      html_url: pr.html_url ?? null,
    },
    ...(pr.user?.login ? { user: String(pr.user.login) } : {}),
  };
}
