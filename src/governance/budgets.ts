import { EnsembleError, newId } from '../core/index.ts';
import type { BudgetClaim, BudgetStore } from '../storage/index.ts';

export interface Budget {
  limit_usd: number;
  period: 'day' | 'month' | 'total';
}

/** A scope a call is charged to, with its budget. */
export interface BudgetScope {
  scope: string;
  label: string;
  budget: Budget;
  /** Which usage records count against it (to start a new period's ledger from them). */
  usage: { appId: string; agentId?: string; workflowId?: string; userId?: string };
}

const NANO_PER_USD = 1_000_000_000;

export function toNano(usd: number): number {
  return Math.ceil(usd * NANO_PER_USD);
}

/** The start of the budget period that contains `now` (UTC). */
export function periodStart(period: Budget['period'], now: Date): string {
  if (period === 'total') return 'total';
  const day = now.toISOString().slice(0, 10);
  return period === 'day' ? day : `${day.slice(0, 7)}-01`;
}

/** How long a reservation may stay unsettled before it is released (its process died). */
export const RESERVATION_TTL_MS = 60 * 60 * 1000;

/** Reserve-then-settle against every budget a call counts against. */
export class BudgetGuard {
  readonly #store: BudgetStore;
  /** The scopes of reservations not settled yet, so a late settlement still finds them. */
  readonly #open = new Map<string, BudgetClaim[]>();

  constructor(store: BudgetStore) {
    this.#store = store;
  }

  /**
   * Reserves the call's worst-case cost in every scope at once, or throws `budget_exceeded`
   * naming the scope that would be passed. Returns the reservation to settle.
   */
  async reserve(scopes: BudgetScope[], worstCaseUsd: number, now = new Date()): Promise<string | undefined> {
    if (scopes.length === 0) return undefined;
    const amountNano = toNano(worstCaseUsd);
    const claims: BudgetClaim[] = scopes.map((s) => {
      const start = periodStart(s.budget.period, now);
      return {
        scope: s.scope,
        periodStart: start,
        limitNano: toNano(s.budget.limit_usd),
        amountNano,
        seed: { ...s.usage, ...(start === 'total' ? {} : { since: `${start}T00:00:00.000Z` }) },
      };
    });
    const id = newId();
    const result = await this.#store.reserve(id, claims, new Date(now.getTime() + RESERVATION_TTL_MS).toISOString());
    if (result.ok) this.#open.set(id, claims);
    if (!result.ok) {
      const scope = scopes.find((s) => s.scope === result.claim.scope)!;
      throw new EnsembleError('budget_exceeded', `The ${scope.label} budget of $${scope.budget.limit_usd} per ${scope.budget.period} would be passed; the provider was not called`, {
        scope: scope.label,
        limit_usd: scope.budget.limit_usd,
        period: scope.budget.period,
        spent_usd: result.spentNano / NANO_PER_USD,
        reserved_usd: result.reservedNano / NANO_PER_USD,
        requested_usd: amountNano / NANO_PER_USD,
      });
    }
    return id;
  }

  async settle(reservationId: string | undefined, actualUsd: number): Promise<void> {
    if (!reservationId) return;
    const claims = this.#open.get(reservationId) ?? [];
    this.#open.delete(reservationId);
    await this.#store.settle(reservationId, toNano(actualUsd), claims);
  }

  releaseExpired(now = new Date()): Promise<number> {
    return this.#store.releaseExpired(now.toISOString());
  }
}
