/**
 * The daily usage rollups: `aggregate` (whole days from the rollups, partial days from the rows)
 * answers what a plain GROUP BY over the rows answers, on randomized data, for every grouping and
 * ranges with partial days at both edges; concurrent writers lose no increment; the migration
 * backfills existing rows.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { Migrator } from 'kysely/migration';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageReport } from '../../src/governance/analytics.ts';
import { GROUP_COLUMNS, toUsageRow, usageAggregateQuery, wholeDays } from '../../src/storage/governance-store.ts';
import { openStorage, USAGE_GROUPS, type KyselyStorage, type Storage, type UsageGroup, type UsageQuery, type UsageRecord, type UsageRow } from '../../src/storage/index.ts';
import { migrationProvider } from '../../src/storage/migrations.ts';
import { openPostgres } from '../../src/storage/postgres.ts';
import type { Database } from '../../src/storage/schema.ts';
import { openSqlite } from '../../src/storage/sqlite.ts';
import { createTestDatabase } from '../support/postgres.ts';
import { STORAGE_TARGETS } from '../support/storage.ts';

/** Deterministic pseudo-random numbers (a failing case replays). */
function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const DAYS = ['2026-03-01', '2026-03-02', '2026-03-03', '2026-03-04', '2026-03-05'];
const APPS = ['aaaaaaaa-0000-4000-8000-000000000001', 'aaaaaaaa-0000-4000-8000-000000000002'];

function randomRecords(random: () => number, count: number): UsageRecord[] {
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const agents = [
    { name: 'alpha', provider: 'openai', models: ['gpt-a', 'gpt-b'] },
    { name: 'beta', provider: 'anthropic', models: ['claude-a'] },
    { name: 'gamma', provider: 'gemini', models: ['gem-a', 'gem-b'] },
  ];
  return Array.from({ length: count }, () => {
    const day = pick(DAYS);
    const edge = random();
    // Calls at the first and last millisecond of a day, where a range's edge days begin and end.
    const ms = edge < 0.1 ? 0 : edge < 0.2 ? 86_399_999 : Math.floor(random() * 86_400_000);
    const at = new Date(Date.parse(`${day}T00:00:00.000Z`) + ms).toISOString();
    const agent = pick(agents);
    const outcome = pick(['success', 'success', 'success', 'error', 'cancelled'] as const);
    const input = Math.floor(random() * 5000);
    const output = Math.floor(random() * 2000);
    return {
      id: randomUUID(),
      app_id: random() < 0.85 ? APPS[0]! : APPS[1]!,
      agent_id: `id-${agent.name}`,
      agent_name: agent.name,
      workflow_id: null,
      workflow_name: pick(['wf-one', 'wf-two', null, null, '']),
      run_id: null,
      step_id: null,
      provider: agent.provider,
      model: pick(agent.models),
      kind: 'direct',
      user_id: pick(['u1', 'u2', 'u3', null, null, '']),
      token_id: null,
      input_tokens: input,
      output_tokens: output,
      total_tokens: input + output,
      cached_input_tokens: 0,
      reasoning_tokens: 0,
      cost_usd: random() < 0.2 ? 0 : (input * 3 + output * 15) / 1_000_000 + random() * 1e-7,
      price_known: true,
      latency_ms: 1,
      ttft_ms: null,
      outcome,
      error_code: outcome === 'success' ? null : 'x',
      at,
    };
  });
}

/** Writes through `insert` and `insertMany` (batches of random size, many keys repeated within one). */
async function write(storage: Storage, random: () => number, records: UsageRecord[]): Promise<void> {
  for (let i = 0; i < records.length; ) {
    const size = random() < 0.3 ? 1 : 1 + Math.floor(random() * 60);
    const batch = records.slice(i, i + size);
    if (batch.length === 1 && random() < 0.7) await storage.usage.insert(batch[0]!);
    else await storage.usage.insertMany(batch);
    i += batch.length;
  }
}

/** The reference: one plain GROUP BY over the rows, as `aggregate` was before the rollups. */
async function rawAggregate(db: Kysely<Database>, appId: string, query: UsageQuery): Promise<UsageRow[]> {
  const columns = query.groupBy.map((g) => GROUP_COLUMNS[g]);
  let q = db.selectFrom('usage_records').where('app_id', '=', appId);
  if (query.from) q = q.where('at', '>=', query.from);
  if (query.to) q = q.where('at', '<', query.to);
  const rows = await q
    .select((eb) => [
      ...columns.map((c) => eb.ref(c).as(c)),
      eb.fn.countAll<number>().as('requests'),
      eb.fn.sum<number>(eb.case().when('outcome', '!=', 'success').then(1).else(0).end()).as('errors'),
      eb.fn.sum<number>('input_tokens').as('input_tokens'),
      eb.fn.sum<number>('output_tokens').as('output_tokens'),
      eb.fn.sum<number>('total_tokens').as('total_tokens'),
      eb.fn.sum<number>('cost_usd').as('cost_usd'),
    ])
    .$if(columns.length > 0, (qb) => columns.reduce((ordered, c) => ordered.orderBy(c), qb.groupBy(columns)))
    .execute();
  return rows.map((row) => toUsageRow(row as Record<string, unknown>, query.groupBy));
}

/** Same groups in the same order, the same counts and tokens; costs equal up to float rounding. */
function expectSameRows(actual: UsageRow[], expected: UsageRow[], label: string): void {
  expect(actual.map((r) => r.group), label).toEqual(expected.map((r) => r.group));
  const strip = ({ cost_usd: _cost, ...rest }: UsageRow) => rest;
  expect(actual.map(strip), label).toEqual(expected.map(strip));
  actual.forEach((row, i) => {
    const want = expected[i]!.cost_usd;
    expect(Math.abs(row.cost_usd - want), `${label}: cost of ${JSON.stringify(row.group)}: ${row.cost_usd} vs ${want}`).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(want)));
  });
}

/** Every rollup row equals the GROUP BY of the raw rows over its key. */
async function expectRollupsExact(db: Kysely<Database>): Promise<void> {
  const sums = sql`count(*) as requests, sum(case when outcome != 'success' then 1 else 0 end) as errors, sum(input_tokens) as input_tokens, sum(output_tokens) as output_tokens, sum(total_tokens) as total_tokens, sum(cost_usd) as cost_usd`;
  const checks = [
    {
      rollup: sql`select app_id, day, agent_name, provider, model, workflow_name, requests, errors, input_tokens, output_tokens, total_tokens, cost_usd from usage_daily order by 1, 2, 3, 4, 5, 6`,
      raw: sql`select app_id, day, agent_name, provider, model, coalesce(workflow_name, '') as workflow_name, ${sums} from usage_records group by 1, 2, 3, 4, 5, 6 order by 1, 2, 3, 4, 5, 6`,
    },
    {
      rollup: sql`select app_id, day, user_id, requests, errors, input_tokens, output_tokens, total_tokens, cost_usd from usage_daily_users order by 1, 2, 3`,
      raw: sql`select app_id, day, coalesce(user_id, '') as user_id, ${sums} from usage_records group by 1, 2, 3 order by 1, 2, 3`,
    },
  ];
  for (const { rollup, raw } of checks) {
    const normalize = (rows: unknown[]) => rows.map((row) => Object.fromEntries(Object.entries(row as Record<string, unknown>).map(([k, v]) => [k, typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v])));
    const got = normalize((await rollup.execute(db)).rows);
    const want = normalize((await raw.execute(db)).rows);
    const strip = (rows: Array<Record<string, unknown>>) => rows.map(({ cost_usd: _cost, ...rest }) => rest);
    expect(strip(got)).toEqual(strip(want));
    got.forEach((row, i) => expect(Math.abs(Number(row.cost_usd) - Number(want[i]!.cost_usd))).toBeLessThanOrEqual(1e-12 * Math.max(1, Number(want[i]!.cost_usd))));
  }
}

/** Range edges: open, midnights, date-only, the first and last millisecond of a day, mid-day times. */
function randomBound(random: () => number): string | undefined {
  const r = random();
  const day = DAYS[Math.floor(random() * DAYS.length)]!;
  if (r < 0.15) return undefined;
  if (r < 0.35) return `${day}T00:00:00.000Z`;
  if (r < 0.45) return day;
  if (r < 0.55) return `${day}T23:59:59.999Z`;
  if (r < 0.6) return `${day}T00:00:00.001Z`;
  return new Date(Date.parse(`${day}T00:00:00.000Z`) + Math.floor(random() * 86_400_000)).toISOString();
}

function randomGroups(random: () => number): UsageGroup[] {
  const shuffled = [...USAGE_GROUPS].sort(() => random() - 0.5);
  return shuffled.slice(0, Math.floor(random() * 4));
}

const STORAGE_URL = new URL('../../src/storage/index.ts', import.meta.url).href;
/** A child process's part: its records through insert (one) and insertMany (batches of 1 to 7), all at once. */
const WRITE_SCRIPT = `
  const batches = [];
  for (let i = 0, n = 1; i < records.length; i += n, n = n % 7 + 1) batches.push(records.slice(i, i + n));
  await Promise.all(batches.map((b) => (b.length === 1 ? storage.usage.insert(b[0]) : storage.usage.insertMany(b))));
`;
const MIGRATE_SCRIPT = '';

/** Opens the storage (migrating it) in a separate Node process, and runs `body` with `records`. */
function inChild(dataDir: string, databaseUrl: string | undefined, body: string, records: UsageRecord[]): Promise<{ code: number | null; stderr: string }> {
  const script = `
    const { openStorage } = await import(${JSON.stringify(STORAGE_URL)});
    const records = JSON.parse(process.env.RECORDS);
    const storage = await openStorage({ dataDir: ${JSON.stringify(dataDir)}, databaseUrl: ${JSON.stringify(databaseUrl)} });
    try { ${body} } finally { await storage.close(); }
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RECORDS: JSON.stringify(records) } });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

describe('wholeDays', () => {
  it('takes the days a range covers entirely, by UTC day', () => {
    expect(wholeDays(undefined, undefined)).toEqual({});
    expect(wholeDays('2026-03-02T00:00:00.000Z', '2026-03-04T00:00:00.000Z')).toEqual({ start: '2026-03-02', end: '2026-03-04' });
    expect(wholeDays('2026-03-02', '2026-03-04')).toEqual({ start: '2026-03-02', end: '2026-03-04' });
    expect(wholeDays('2026-03-02T00:00:00.001Z', '2026-03-04T12:00:00.000Z')).toEqual({ start: '2026-03-03', end: '2026-03-04' });
    expect(wholeDays('2026-02-28T10:00:00.000Z', undefined)).toEqual({ start: '2026-03-01' });
    expect(wholeDays(undefined, '2026-03-01T00:00:00.000Z')).toEqual({ end: '2026-03-01' });
    expect(wholeDays('2026-12-31T23:00:00.000Z', '2027-01-03T00:00:00.000Z')).toEqual({ start: '2027-01-01', end: '2027-01-03' });
    // Within one day, or across one midnight only: no whole day.
    expect(wholeDays('2026-03-02T01:00:00.000Z', '2026-03-02T05:00:00.000Z')).toBeUndefined();
    expect(wholeDays('2026-03-02T01:00:00.000Z', '2026-03-03T05:00:00.000Z')).toBeUndefined();
    expect(wholeDays('2026-03-02T00:00:00.000Z', '2026-03-02T23:59:59.999Z')).toBeUndefined();
    expect(wholeDays('2026-03-05T00:00:00.000Z', '2026-03-02T00:00:00.000Z')).toBeUndefined();
    // What is not a date stays with the rows.
    expect(wholeDays('yesterday', undefined)).toBeUndefined();
    expect(wholeDays('2026-02-30T10:00:00.000Z', undefined)).toBeUndefined();
  });
});

describe.each(STORAGE_TARGETS)('usage rollups on $engine', (target) => {
  let opened: Awaited<ReturnType<typeof target.open>>;
  let storage: KyselyStorage;
  const random = generator(20260301);
  let records: UsageRecord[];

  beforeAll(async () => {
    opened = await target.open();
    storage = opened.storage as KyselyStorage;
    records = randomRecords(random, 1500);
    await write(storage, random, records);
  }, 60_000);
  afterAll(() => opened?.cleanup());

  it('keeps every rollup row equal to the sums of its rows; empty names are stored as none', async () => {
    await expectRollupsExact(storage.db);
    const empty = await storage.db.selectFrom('usage_records').select('id').where((eb) => eb.or([eb('workflow_name', '=', ''), eb('user_id', '=', '')])).execute();
    expect(empty).toEqual([]);
  });

  it('answers like a GROUP BY over the rows: every grouping, partial days at both edges, ranges inside one day', async () => {
    const queries: UsageQuery[] = [
      ...USAGE_GROUPS.map((g) => ({ groupBy: [g] })),
      { groupBy: [] },
      { groupBy: ['agent', 'day'] },
      { groupBy: ['user', 'day'], from: '2026-03-02T06:00:00.000Z', to: '2026-03-04T18:00:00.000Z' },
      { groupBy: ['workflow', 'provider', 'model'], from: '2026-03-01T23:59:59.999Z', to: '2026-03-05T00:00:00.001Z' },
      { groupBy: ['agent'], from: '2026-03-03T00:00:00.000Z', to: '2026-03-04T00:00:00.000Z' },
      { groupBy: ['day'], from: '2026-03-03T08:00:00.000Z', to: '2026-03-03T09:30:00.000Z' },
      { groupBy: ['user', 'agent'], from: '2026-03-02T06:00:00.000Z' },
      { groupBy: [], from: '2026-03-03', to: '2026-03-04' },
      { groupBy: ['model'], from: '2026-03-04T00:00:00.000Z', to: '2026-03-02T00:00:00.000Z' },
    ];
    for (let i = 0; i < 150; i++) {
      const from = randomBound(random);
      const to = randomBound(random);
      queries.push({ groupBy: randomGroups(random), ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) });
    }
    let fromRollup = 0;
    for (const query of queries) {
      for (const appId of APPS) {
        const label = `${appId} ${JSON.stringify(query)}`;
        expectSameRows(await storage.usage.aggregate(appId, query), await rawAggregate(storage.db, appId, query), label);
        if (usageAggregateQuery(storage.db, appId, query).sql.includes('usage_daily')) fromRollup++;
      }
    }
    // The comparison is only worth something if most queries did read the rollups.
    expect(fromRollup).toBeGreaterThan(100);
  });

  it('reads the rollup of its groups, and the rows only for groups no rollup holds', () => {
    const sqlOf = (query: UsageQuery) => usageAggregateQuery(storage.db, APPS[0]!, query).sql;
    expect(sqlOf({ groupBy: ['agent', 'day'] })).toMatch(/from "usage_daily" where/);
    expect(sqlOf({ groupBy: ['agent', 'day'] })).not.toMatch(/usage_records/);
    expect(sqlOf({ groupBy: ['user'] })).toMatch(/from "usage_daily_users"/);
    expect(sqlOf({ groupBy: [] })).toMatch(/from "usage_daily" where/);
    expect(sqlOf({ groupBy: ['agent'], from: '2026-03-02T06:00:00.000Z', to: '2026-03-04T18:00:00.000Z' }).match(/usage_records/g)).toHaveLength(2);
    expect(sqlOf({ groupBy: ['agent', 'user'] })).not.toMatch(/usage_daily/);
    expect(sqlOf({ groupBy: ['agent'], runId: 'r' })).not.toMatch(/usage_daily/);
  });

  it('reports totals as the sum of the groups, equal to the ungrouped aggregate', async () => {
    const range = { from: '2026-03-01T12:00:00.000Z', to: '2026-03-05T12:00:00.000Z' };
    const whole = await storage.usage.aggregate(APPS[0]!, { ...range, groupBy: [] });
    for (const groupBy of [[], ['agent', 'day'], ['user'], ['workflow', 'user']] as UsageGroup[][]) {
      const report = await usageReport(storage, APPS[0]!, { ...range, groupBy });
      expect(report.data).toHaveLength(groupBy.length === 0 ? 0 : report.data.length);
      const { cost_usd, ...counts } = report.totals;
      const { group: _group, cost_usd: wholeCost, ...wholeCounts } = whole[0]!;
      expect(counts).toEqual(wholeCounts);
      expect(Math.abs(cost_usd - wholeCost)).toBeLessThanOrEqual(1e-12 * Math.max(1, wholeCost));
    }
    const empty = await usageReport(storage, APPS[0]!, { from: '2999-01-01T00:00:00.000Z', groupBy: ['agent'] });
    expect(empty).toEqual({ data: [], totals: { requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0 } });
  });

  it('loses no increment when several processes write the same keys at once', async () => {
    const hot = randomRecords(generator(7), 400).map((r) => ({ ...r, app_id: APPS[1]!, at: `2026-03-09T${r.at.slice(11)}`, agent_name: 'alpha', provider: 'openai', model: 'gpt-a' }));
    const share = Math.ceil(hot.length / 4);
    const results = await Promise.all([0, 1, 2, 3].map((i) => inChild(opened.dataDir, opened.databaseUrl, WRITE_SCRIPT, hot.slice(i * share, (i + 1) * share))));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    await expectRollupsExact(storage.db);
    const query: UsageQuery = { groupBy: ['day', 'workflow'], from: '2026-03-09T00:00:00.000Z', to: '2026-03-10T00:00:00.000Z' };
    const rows = await storage.usage.aggregate(APPS[1]!, query);
    expect(rows.reduce((n, r) => n + r.requests, 0)).toBe(hot.length);
    expectSameRows(rows, await rawAggregate(storage.db, APPS[1]!, query), 'hot day');
  }, 60_000);
});

describe.each(STORAGE_TARGETS)('the rollup migration on $engine', (target) => {
  it('backfills the rollups from the rows already recorded, once, with several processes starting at once', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ensemble-rollup-migrate-'));
    const database = target.engine === 'postgres' ? await createTestDatabase() : undefined;
    // The database as the previous release left it: schema up to 0006, rows but no rollups.
    const old = database ? openPostgres(database.url) : openSqlite(join(dataDir, 'ensemble.db'));
    try {
      const migrator = new Migrator({ db: old, provider: migrationProvider(target.engine), migrationTableName: 'ensemble_migrations', migrationLockTableName: 'ensemble_migrations_lock' });
      expect((await migrator.migrateTo('0006_run_control')).error).toBeUndefined();
      const records = randomRecords(generator(99), 800);
      for (let i = 0; i < records.length; i += 200) {
        await old
          .insertInto('usage_records')
          .values(records.slice(i, i + 200).map((r) => ({ ...r, price_known: 1, day: r.at.slice(0, 10) })))
          .execute();
      }
      await old.destroy();
      const results = await Promise.all([1, 2, 3].map(() => inChild(dataDir, database?.url, MIGRATE_SCRIPT, [])));
      for (const result of results) expect(result.code, result.stderr).toBe(0);
      const storage = (await openStorage({ dataDir, databaseUrl: database?.url })) as KyselyStorage;
      try {
        await expectRollupsExact(storage.db);
        const queries: UsageQuery[] = [{ groupBy: ['agent', 'day'] }, { groupBy: ['user', 'workflow'] }, { groupBy: ['user'], from: '2026-03-02T10:00:00.000Z' }, { groupBy: [], to: '2026-03-04T10:00:00.000Z' }];
        for (const query of queries) expectSameRows(await storage.usage.aggregate(APPS[0]!, query), await rawAggregate(storage.db, APPS[0]!, query), JSON.stringify(query));
      } finally {
        await storage.close();
      }
    } finally {
      await old.destroy().catch(() => {});
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
