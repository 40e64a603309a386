/**
 * 7. The analytics query of the governance issue, `GET /api/v1/usage` with `group_by`, over
 * 1,000,000 usage rows of one app (written in bulk through the storage layer's
 * `usage.insertMany`, which fills the daily rollups the query reads, as the service's own
 * inserts do).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import type { Kysely } from 'kysely';
import { openStorage, type KyselyStorage, type UsageQuery, type UsageRecord, type UsageStore } from '../../src/storage/index.ts';
import { usageAggregateQuery } from '../../src/storage/governance-store.ts';
import type { Database } from '../../src/storage/schema.ts';
import { createApp, startEnsembleProcess } from '../lib/server.ts';
import { fmtMs, summarize, timed } from '../lib/stats.ts';
import type { Figure, Scenario } from '../lib/types.ts';

const GOAL_MS = 200;
const ROWS_PER_BATCH = 5000; // one insertMany call: one transaction
const DAYS = 90;
const PROVIDERS = [
  ['anthropic', 'claude-sonnet-4-5'],
  ['openai', 'gpt-4.1-mini'],
  ['gemini', 'gemini-2.5-flash'],
  ['groq', 'llama-3.3-70b-versatile'],
] as const;

/** Deterministic pseudo-random numbers, so every run inserts the same data. */
function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Bench-only bulk insert: batches of rows through `insertMany` (rows and rollups, one transaction each). */
export async function insertUsageRows(usage: UsageStore, appId: string, count: number): Promise<void> {
  const random = generator(42);
  const agents = Array.from({ length: 20 }, (_, i) => ({ id: randomUUID(), name: `agent-${String(i).padStart(2, '0')}`, vendor: PROVIDERS[i % PROVIDERS.length]! }));
  const workflows = Array.from({ length: 10 }, (_, i) => ({ id: randomUUID(), name: `workflow-${i}` }));
  const end = Date.now();
  const span = DAYS * 24 * 3600 * 1000;
  for (let written = 0; written < count; ) {
    const batch: UsageRecord[] = [];
    for (let i = 0; i < Math.min(ROWS_PER_BATCH, count - written); i++) {
      const agent = agents[Math.floor(random() * agents.length)]!;
      const workflow = random() < 0.8 ? workflows[Math.floor(random() * workflows.length)]! : null;
      const at = new Date(end - span + Math.floor(((written + i) / count) * span)).toISOString();
      const input = 50 + Math.floor(random() * 2000);
      const output = 10 + Math.floor(random() * 800);
      const failed = random() < 0.02;
      batch.push({
        id: randomUUID(),
        app_id: appId,
        agent_id: agent.id,
        agent_name: agent.name,
        workflow_id: workflow?.id ?? null,
        workflow_name: workflow?.name ?? null,
        run_id: workflow ? randomUUID() : null,
        step_id: workflow ? 'step' : null,
        provider: agent.vendor[0],
        model: agent.vendor[1],
        kind: workflow ? 'step' : 'direct',
        user_id: random() < 0.7 ? `user-${Math.floor(random() * 200)}` : null,
        token_id: null,
        input_tokens: failed ? 0 : input,
        output_tokens: failed ? 0 : output,
        total_tokens: failed ? 0 : input + output,
        cached_input_tokens: 0,
        reasoning_tokens: 0,
        cost_usd: failed ? 0 : (input * 3 + output * 15) / 1_000_000,
        price_known: true,
        latency_ms: 200 + Math.floor(random() * 3000),
        ttft_ms: null,
        outcome: failed ? 'error' : 'success',
        error_code: failed ? 'unavailable' : null,
        at,
      });
    }
    await usage.insertMany(batch);
    written += batch.length;
  }
}

/** EXPLAIN QUERY PLAN of the one statement `GET /usage` runs (KyselyUsageStore.aggregate's own SQL). */
function plan(raw: DatabaseSync, db: Kysely<Database>, appId: string, query: UsageQuery): string {
  const q = usageAggregateQuery(db, appId, query);
  const steps = raw.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...(q.parameters as SQLInputValue[])) as Array<{ detail: string }>;
  return steps.map((p) => p.detail).join(' → ');
}

export const analytics: Scenario = {
  id: 'analytics',
  title: '7. Analytics: GET /api/v1/usage with group_by over 1,000,000 usage rows',
  async run(ctx) {
    const tiny = ctx.scale === 'tiny';
    const rows = tiny ? 2000 : 1_000_000;
    const n = tiny ? 2 : 15;
    const server = await startEnsembleProcess({ allowedHosts: [], cpuProfDir: ctx.cpuProfDir });
    try {
      const { api, appId } = await createApp(server);
      // Written by the bench process into the server's database file (WAL: the server keeps serving).
      const storage = (await openStorage({ dataDir: server.dataDir })) as KyselyStorage;
      const plans: string[] = [];
      let sizes = '';
      // A range whose first day is partial: that day comes from the raw rows, the rest from the rollup.
      const last168h = new Date(Date.now() - 7 * 24 * 3600 * 1000).toISOString();
      let insertMs: number;
      try {
        insertMs = (await timed(() => insertUsageRows(storage.usage, appId, rows))).ms;
        const raw = new DatabaseSync(join(server.dataDir, 'ensemble.db'), { readOnly: true });
        const planned: Array<[string, UsageQuery]> = [
          ['group_by=agent,day', { groupBy: ['agent', 'day'] }],
          ['totals (no group_by)', { groupBy: [] }],
          ['group_by=user', { groupBy: ['user'] }],
          ['group_by=agent,day over the last 168 hours (partial first day)', { groupBy: ['agent', 'day'], from: last168h }],
        ];
        for (const [label, query] of planned) plans.push(`${label}: ${plan(raw, storage.db, appId, query)}`);
        const rollupRows = raw.prepare('select (select count(*) from usage_daily) as daily, (select count(*) from usage_daily_users) as users').get() as { daily: number; users: number };
        sizes = `daily rollups: usage_daily ${rollupRows.daily.toLocaleString('en-US')} rows, usage_daily_users ${rollupRows.users.toLocaleString('en-US')} rows`;
        raw.close();
      } finally {
        await storage.close();
      }
      ctx.log(`analytics: ${rows} rows inserted in ${(insertMs / 1000).toFixed(1)} s`);
      const check = await api.ok('GET', '/api/v1/usage');
      if (check.totals.requests !== rows) throw new Error(`expected ${rows} usage rows, the API counts ${check.totals.requests}`);
      const last7 = new Date(Date.now() - 7 * 24 * 3600 * 1000).toISOString().slice(0, 10);
      // Each query is repeated up to `n` times, and for at most its time budget (a slow query gets fewer samples).
      const queries: Array<[string, string, number]> = [
        ['group_by=agent,day', '/api/v1/usage?group_by=agent,day', tiny ? 1_000 : 30_000],
        ['group_by=agent', '/api/v1/usage?group_by=agent', tiny ? 1_000 : 10_000],
        ['group_by=user', '/api/v1/usage?group_by=user', tiny ? 1_000 : 10_000],
        ['totals only (no group_by)', '/api/v1/usage', tiny ? 1_000 : 10_000],
        ['group_by=agent,day, last 7 days', `/api/v1/usage?group_by=agent,day&from=${last7}`, tiny ? 1_000 : 10_000],
        ['group_by=agent,day, last 168 hours', `/api/v1/usage?group_by=agent,day&from=${last168h}`, tiny ? 1_000 : 10_000],
        ['group_by=agent,user (no rollup: raw rows)', '/api/v1/usage?group_by=agent,user', tiny ? 1_000 : 10_000],
      ];
      const times = new Map<string, number[]>(queries.map(([label]) => [label, []]));
      await api.ok('GET', queries[0]![1]);
      for (const [label, path, budgetMs] of queries) {
        const started = performance.now();
        const list = times.get(label)!;
        while (list.length < n && (list.length < 3 || performance.now() - started < budgetMs)) {
          const { ms, value } = await timed(() => api.ok('GET', path));
          if (!Array.isArray(value.data)) throw new Error(`GET ${path}: no data`);
          list.push(ms);
        }
      }
      const figures: Figure[] = queries.map(([label, path]) => {
        const s = summarize(times.get(label)!);
        const name = `GET ${path.replace(/from=\d{4}-\d{2}-\d{2}$/, 'from=<7 days ago>').replace(/from=[^&]+T[^&]+/, 'from=<168 hours ago>')}`;
        return { name, p50: s.p50, p99: s.p99, n: s.n, ...(label.includes('no rollup') ? { note: 'user with another dimension: no rollup holds it' } : {}) };
      });
      figures.push({ name: 'bulk insert of the rows (bench setup, not a goal)', value: insertMs, unit: 'ms', note: `${Math.round(rows / (insertMs / 1000))} rows/s` });
      const main = summarize(times.get('group_by=agent,day')!);
      const met = main.p50 <= GOAL_MS;
      ctx.log(`analytics: group_by=agent,day p50 ${fmtMs(main.p50)} p99 ${fmtMs(main.p99)}`);
      return {
        goal: `≤ ${GOAL_MS} ms (judged at p50; p99 shown)`,
        met,
        verdict: `${met ? 'met' : 'not met'}: group_by=agent,day p50 ${fmtMs(main.p50)} (p99 ${fmtMs(main.p99)}) over ${rows.toLocaleString('en-US')} rows`,
        figures,
        setup: [
          `${rows.toLocaleString('en-US')} rows in one app over ${DAYS} days: 20 agents on 4 providers/models, 10 workflows (20 % direct calls), 200 users (30 % none), 2 % errors; written with \`usage.insertMany\`, ${ROWS_PER_BATCH} rows per call (one transaction: the rows and their daily rollups)`,
          `each query up to ${n} times (at least 3, within a time budget per query: a slow one gets fewer samples, so its p99 is close to its maximum), after one warm-up query, over HTTP with the app's token; every answer also carries the totals (summed from the same groups)`,
        ],
        notes: [sizes, ...plans.map((p) => `EXPLAIN QUERY PLAN ${p}`), met ? 'Before → after (the daily rollups): bench/FIXES.md, "Analytics".' : 'Why, and what would fix it (measured on this data): bench/FIXES.md, "Analytics".'],
      };
    } finally {
      await server.stop();
    }
  },
};
