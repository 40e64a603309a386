import { EnsembleError } from '../core/index.ts';

/** Ids are UUIDs; anything else given where an id or a name may stand is a name. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Unique-constraint violations, as both engines report them. */
export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: unknown; errcode?: unknown; message?: unknown };
  return e?.code === '23505' || e?.errcode === 2067 || (typeof e?.message === 'string' && e.message.includes('UNIQUE constraint failed'));
}

/** Runs an insert or update, turning a unique violation into the contract's 409. */
export async function unlessDuplicate<T>(write: () => Promise<T>, what: string): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (isUniqueViolation(error)) throw new EnsembleError('conflict', `${what} already exists`, { field: 'name' });
    throw error;
  }
}

/** JSON columns are text on both engines. */
export function toJson(value: unknown): string {
  return JSON.stringify(value ?? null);
}

export function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}
