/**
 * Memory of in-flight provider calls alone, without Ensemble: a bare process (run with
 * --expose-gc) holds `count` streamed calls through the same AI SDK provider in flight against
 * the fake (its gate keeps them open), then reports the live heap and RSS per call. The in-flight
 * scenario runs it to tell the provider layer's share of a run's memory from Ensemble's own.
 */
import { directProvider, streamCall } from './direct.ts';
import { startFakeVendor } from './fake.ts';

const count = Number(process.argv[2] ?? 1000);
const fake = await startFakeVendor({ latencyMs: 0 });
const provider = directProvider(fake.baseUrl);
for (let i = 0; i < 20; i++) await streamCall(provider, 'warm-up', 'You are waiter.');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
gc();
gc();
const before = process.memoryUsage();
await fake.stats(true);
// The gate never opens by itself (count + 1): every call stays in flight until it is released below.
await fake.configure({ latencyMs: 0, gate: count + 1 });
const calls = Array.from({ length: count }, (_, i) => streamCall(provider, `request ${i}`, 'You are waiter.'));
while ((await fake.stats()).generations < count) await new Promise((resolve) => setTimeout(resolve, 50));
await new Promise((resolve) => setTimeout(resolve, 200));
if ((await fake.stats()).inFlight !== count) throw new Error('the calls are not all in flight');
gc();
gc();
const during = process.memoryUsage();
await fake.configure({ gate: 0 });
await Promise.all(calls);
await fake.close();
process.stdout.write(`${JSON.stringify({ count, heapPerCall: (during.heapUsed - before.heapUsed) / count, rssPerCall: (during.rss - before.rss) / count })}\n`);
