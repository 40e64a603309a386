import type { Storage, UsageGroup, UsageRow } from '../storage/index.ts';

export interface UsageReportRow extends Omit<UsageRow, 'group'> {
  /** The group's values joined with commas, in `group_by` order (`null` values as "(none)"). */
  key: string;
  group: UsageRow['group'];
}

export interface UsageReport {
  data: UsageReportRow[];
  totals: Omit<UsageRow, 'group'>;
}

type Totals = UsageReport['totals'];

function addUp(rows: readonly UsageRow[]): Totals {
  const totals: Totals = { requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0 };
  for (const row of rows) {
    totals.requests += row.requests;
    totals.errors += row.errors;
    totals.input_tokens += row.input_tokens;
    totals.output_tokens += row.output_tokens;
    totals.total_tokens += row.total_tokens;
    totals.cost_usd += row.cost_usd;
  }
  return totals;
}

/**
 * `GET /usage`: grouped sums over the range, in one aggregate (the storage reads whole days from
 * the daily rollups); the totals are the sum of the groups, every call being in exactly one.
 */
export async function usageReport(storage: Storage, appId: string, query: { from?: string; to?: string; groupBy: UsageGroup[] }): Promise<UsageReport> {
  const range = { ...(query.from ? { from: query.from } : {}), ...(query.to ? { to: query.to } : {}) };
  const rows = await storage.usage.aggregate(appId, { ...range, groupBy: query.groupBy });
  const totals = addUp(rows);
  return {
    data: query.groupBy.length > 0 ? rows.map((row) => ({ ...row, key: query.groupBy.map((g) => row.group[g] ?? '(none)').join(',') })) : [],
    totals,
  };
}
