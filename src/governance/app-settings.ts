import { z } from 'zod';
import type { Storage } from '../storage/index.ts';

/** An app's governance settings (set by the admin: `PATCH /api/v1/apps/{app_id}`). */
export const AppSettingsSchema = z
  .object({
    /** Spending limit of the whole app. */
    budget: z.object({ limit_usd: z.number().nonnegative(), period: z.enum(['day', 'month', 'total']) }).strict().optional(),
    /** Requests per minute allowed to each of the app's tokens. */
    rate_limit: z.object({ requests_per_minute: z.number().int().positive() }).strict().optional(),
    /** Store prompts and outputs in `agent.invoke` audit entries (off by default). */
    audit_payloads: z.boolean().optional(),
  })
  .strict();

export type AppSettings = z.infer<typeof AppSettingsSchema>;

/** App settings read through a short cache: they are checked on every call. */
export class AppSettingsCache {
  readonly #storage: Storage;
  readonly #ttlMs: number;
  readonly #entries = new Map<string, { at: number; settings: AppSettings }>();

  constructor(storage: Storage, ttlMs = 2000) {
    this.#storage = storage;
    this.#ttlMs = ttlMs;
  }

  async get(appId: string): Promise<AppSettings> {
    const cached = this.#entries.get(appId);
    if (cached && Date.now() - cached.at < this.#ttlMs) return cached.settings;
    const app = await this.#storage.apps.get(appId);
    const parsed = AppSettingsSchema.safeParse(app?.settings ?? {});
    const settings = parsed.success ? parsed.data : {};
    this.#entries.set(appId, { at: Date.now(), settings });
    return settings;
  }

  forget(appId: string): void {
    this.#entries.delete(appId);
  }
}

/** End users' budgets, read through a short cache (checked on every call made for a user). */
export class UserBudgetCache {
  readonly #storage: Storage;
  readonly #ttlMs: number;
  readonly #entries = new Map<string, { at: number; budget: { limit_usd: number; period: 'day' | 'month' | 'total' } | undefined }>();

  constructor(storage: Storage, ttlMs = 2000) {
    this.#storage = storage;
    this.#ttlMs = ttlMs;
  }

  async get(appId: string, user: string): Promise<{ limit_usd: number; period: 'day' | 'month' | 'total' } | undefined> {
    const key = `${appId}\u0000${user}`;
    const cached = this.#entries.get(key);
    if (cached && Date.now() - cached.at < this.#ttlMs) return cached.budget;
    const found = await this.#storage.users.getBudget(appId, user);
    const budget = found ? { limit_usd: found.limit_usd, period: found.period } : undefined;
    this.#entries.set(key, { at: Date.now(), budget });
    return budget;
  }

  forget(appId: string, user: string): void {
    this.#entries.delete(`${appId}\u0000${user}`);
  }
}
