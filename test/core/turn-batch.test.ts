import { describe, expect, it } from 'vitest';
import { TurnBatch } from '../../src/core/index.ts';

describe('TurnBatch', () => {
  it('hands on what one turn added in one call, and answers each caller with that call', async () => {
    const calls: number[][] = [];
    const batch = new TurnBatch<number>(async (items) => void calls.push(items));
    const first = [batch.add(1), batch.add(2), batch.add(3)];
    expect(calls).toEqual([]);
    await Promise.all(first);
    expect(calls).toEqual([[1, 2, 3]]);
    await batch.add(4);
    expect(calls).toEqual([[1, 2, 3], [4]]);
  });

  it('a failed batch is handed on item by item: a bad item fails its own caller only', async () => {
    const calls: string[][] = [];
    const batch = new TurnBatch<string>(async (items) => {
      calls.push(items);
      if (items.includes('bad')) throw new Error(`refused ${items.join(',')}`);
    });
    const results = await Promise.allSettled([batch.add('a'), batch.add('bad'), batch.add('b')]);
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'ok'))).toEqual(['ok', 'refused bad', 'ok']);
    expect(calls).toEqual([['a', 'bad', 'b'], ['a'], ['bad'], ['b']]);
    await expect(batch.add('c')).resolves.toBeUndefined();
  });

  it('what is added while a batch is being handed on goes into the next one', async () => {
    const calls: string[][] = [];
    let release: () => void = () => {};
    const batch = new TurnBatch<string>(async (items) => {
      calls.push(items);
      if (items[0] === 'a') await new Promise<void>((resolve) => (release = resolve));
    });
    const a = batch.add('a');
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const b = batch.add('b');
    release();
    await Promise.all([a, b]);
    expect(calls).toEqual([['a'], ['b']]);
  });
});

describe('TurnBatch, full', () => {
  it('a full batch is handed on at once; what follows starts the next one', async () => {
    const calls: number[][] = [];
    const batch = new TurnBatch<number>(async (items) => void calls.push(items), { maxItems: 3 });
    const adds = [1, 2, 3, 4, 5].map((n) => batch.add(n));
    await adds[0];
    expect(calls).toEqual([[1, 2, 3]]);
    await Promise.all(adds);
    expect(calls).toEqual([[1, 2, 3], [4, 5]]);
  });
});
