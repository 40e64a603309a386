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

/** `GET /usage`: grouped sums, and totals over the same range, both computed in SQL. */
export async function usageReport(storage: Storage, appId: string, query: { from?: string; to?: string; groupBy: UsageGroup[] }): Promise<UsageReport> {
  const range = { ...(query.from ? { from: query.from } : {}), ...(query.to ? { to: query.to } : {}) };
  const [rows, totals] = await Promise.all([
    query.groupBy.length > 0 ? storage.usage.aggregate(appId, { ...range, groupBy: query.groupBy }) : Promise.resolve([]),
    storage.usage.aggregate(appId, { ...range, groupBy: [] }),
  ]);
  const total = totals[0] ?? { group: {}, requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0, cost_usd: 0 };
  const { group: _unused, ...totalNumbers } = total;
  return {
    data: rows.map((row) => ({ ...row, key: query.groupBy.map((g) => row.group[g] ?? '(none)').join(',') })),
    totals: totalNumbers,
  };
}
