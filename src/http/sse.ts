import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { RunEventRecord } from '../storage/index.ts';

/**
 * Streams run events as Server-Sent Events: `id:` is the run's sequence number, `event:` the
 * type, `data:` the JSON payload. The stream always ends: when the source ends (the run's final
 * event), when the client goes away, or on an error (sent as an `error` event first).
 */
export function sendRunEvents(c: Context, source: (signal: AbortSignal) => AsyncIterable<RunEventRecord>): Response {
  c.header('Cache-Control', 'no-cache');
  c.header('X-Accel-Buffering', 'no');
  return streamSSE(
    c,
    async (stream) => {
      const controller = new AbortController();
      stream.onAbort(() => controller.abort());
      for await (const event of source(controller.signal)) {
        if (stream.aborted) break;
        await stream.writeSSE({ id: String(event.seq), event: event.type, data: JSON.stringify(event.data) });
      }
    },
    async (error, stream) => {
      await stream.writeSSE({ event: 'error', data: JSON.stringify({ error: { code: 'internal_error', message: error.message } }) });
    },
  );
}
