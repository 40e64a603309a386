import { describe, expect, it } from 'vitest';
import { newId } from '../../src/core/index.ts';

describe('newId', () => {
  it('is a UUID v7: the time first, then random bits', async () => {
    const before = Date.now();
    const id = newId();
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const time = Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now());
  });

  it('ids of later milliseconds sort after, and no two are alike', async () => {
    const first = newId();
    await new Promise((resolve) => setTimeout(resolve, 3));
    const later = Array.from({ length: 10_000 }, () => newId());
    expect(later.every((id) => id > first)).toBe(true);
    expect(new Set(later).size).toBe(later.length);
  });
});
