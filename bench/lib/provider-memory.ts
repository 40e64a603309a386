/**
 * Memory of in-flight provider calls alone, without Ensemble: a bare process (run with
 * --expose-gc) holds `count` streamed calls through the same AI SDK provider in flight against
 * the fake (its gate keeps them open), then reports the live heap and RSS per call. Then the same
 * again with bare `fetch` requests of the same shape (the HTTP request alone, no SDK), to tell the
 * transport's share of a call from the SDK's. The in-flight scenario runs it to tell the provider
 * layer's share of a run's memory from Ensemble's own.
 */
import { directProvider, streamCall } from './direct.ts';
import { FAKE_API_KEY, FAKE_MODEL, startFakeVendor, type FakeVendorProcess } from './fake.ts';

const count = Number(process.argv[2] ?? 1000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

/** One streamed chat completion by fetch alone, read to the end. */
async function rawCall(baseUrl: string, message: string): Promise<string> {
  const res = await fetch(`${baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${FAKE_API_KEY}` },
    body: JSON.stringify({ model: FAKE_MODEL, messages: [{ role: 'system', content: 'You are waiter.' }, { role: 'user', content: message }], stream: true, stream_options: { include_usage: true } }),
  });
  return res.text();
}

/**
 * Live heap (after a full GC) and RSS per call while `count` calls are held at the fake. Each
 * measure has a fake of its own, so every call opens its own connection, as in the server.
 */
async function perCall(caller: (fake: FakeVendorProcess) => (message: string) => Promise<string>): Promise<{ heap: number; rss: number }> {
  const fake = await startFakeVendor({ latencyMs: 0 });
  const call = caller(fake);
  for (let i = 0; i < 20; i++) await call('warm-up');
  gc!();
  gc!();
  const before = process.memoryUsage();
  await fake.stats(true);
  // The gate never opens by itself (count + 1): every call stays in flight until it is released below.
  await fake.configure({ latencyMs: 0, gate: count + 1 });
  const calls = Array.from({ length: count }, (_, i) => call(`request ${i}`));
  while ((await fake.stats()).generations < count) await new Promise((resolve) => setTimeout(resolve, 50));
  await new Promise((resolve) => setTimeout(resolve, 200));
  if ((await fake.stats()).inFlight !== count) throw new Error('the calls are not all in flight');
  gc!();
  gc!();
  const during = process.memoryUsage();
  await fake.configure({ gate: 0 });
  await Promise.all(calls);
  await fake.close();
  return { heap: (during.heapUsed - before.heapUsed) / count, rss: (during.rss - before.rss) / count };
}

const call = await perCall((fake) => {
  const provider = directProvider(fake.baseUrl);
  return (message) => streamCall(provider, message, 'You are waiter.');
});
const request = await perCall((fake) => (message) => rawCall(fake.baseUrl, message));
process.stdout.write(`${JSON.stringify({ count, heapPerCall: call.heap, rssPerCall: call.rss, fetchHeapPerCall: request.heap })}\n`);
