import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Dispatcher } from 'undici';
import { fetch as undiciFetch } from 'undici';

/** Statuses whose responses have no body (the Response constructor refuses one). */
const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([101, 103, 204, 205, 304]);

/**
 * `fetch` for vendor calls over a dispatcher's plain `request`. undici's `fetch` builds a
 * `Request`, a fetch controller, timing records and a web stream with async generators for even a
 * string body: about 21 KB per request in flight and a measurable share of a call's CPU
 * (bench/FIXES.md, "Many runs in flight"); `request` holds about 9 KB. What a vendor client
 * relies on behaves as fetch does: a `Response` whose body streams, headers, the status, a
 * `TypeError('fetch failed', { cause })` when the request cannot be made, the signal's reason
 * when it is aborted. Two differences, both on purpose: redirects are not followed (a vendor API
 * does not redirect, and an outbound guard should not be led elsewhere: the 3xx is returned as it
 * came), and `accept-encoding: identity` is sent unless the caller sets its own (a compressed
 * answer is still decoded). Anything this path
 * does not take (a `Request` object, a streamed or form body) goes through undici's `fetch` on
 * the same dispatcher.
 */
export function requestFetch(dispatcher: Dispatcher): typeof fetch {
  const viaFetch = (input: Parameters<typeof fetch>[0], init: RequestInit) => {
    // A Request of the global fetch is not one of this undici's: it goes as its parts.
    const parts = input instanceof Request ? { method: input.method, headers: input.headers, body: input.body, signal: input.signal, duplex: 'half' } : {};
    const url = input instanceof Request ? input.url : input;
    return undiciFetch(url as never, { ...parts, ...(init as object), dispatcher } as never) as unknown as Promise<Response>;
  };
  return (async (input: Parameters<typeof fetch>[0], init: RequestInit = {}): Promise<Response> => {
    const body = init.body;
    if ((typeof input !== 'string' && !(input instanceof URL)) || (body != null && typeof body !== 'string' && !(body instanceof Uint8Array))) return viaFetch(input, init);
    const url = new URL(input);
    const signal = init.signal ?? undefined;
    signal?.throwIfAborted();
    const headers = headerList(init.headers);
    // No compressed answers unless the caller asks for them (then they are decoded, as by fetch).
    headers['accept-encoding'] ??= 'identity';
    let response: Dispatcher.ResponseData;
    try {
      response = await dispatcher.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: (init.method ?? 'GET').toUpperCase() as Dispatcher.HttpMethod,
        headers,
        body: body ?? null,
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw new TypeError('fetch failed', { cause: error });
    }
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      if (Array.isArray(value)) for (const v of value) responseHeaders.append(name, v);
      else if (value !== undefined) responseHeaders.append(name, value);
    }
    const meta = { status: response.statusCode, statusText: response.statusText ?? '', headers: responseHeaders };
    if (NULL_BODY_STATUSES.has(response.statusCode) || init.method?.toUpperCase() === 'HEAD') {
      response.body.resume();
      return new Response(null, meta);
    }
    return new Response(webBody(decoded(response.body, responseHeaders.get('content-encoding')), signal), meta);
  }) as typeof fetch;
}

/** The body with its content coding undone (gzip, deflate, br), as fetch hands it out. */
function decoded(body: Readable, coding: string | null): Readable {
  const decoder = { gzip: createGunzip, 'x-gzip': createGunzip, deflate: createInflate, br: createBrotliDecompress }[coding?.trim().toLowerCase() ?? ''];
  if (!decoder) return body;
  const stream = decoder();
  // A broken body breaks the decoded one (pipe alone would leave it waiting).
  body.on('error', (error) => stream.destroy(error));
  return body.pipe(stream);
}

/**
 * The body as a web stream whose failures look like fetch's: the signal's reason after an abort,
 * otherwise `TypeError('terminated', { cause })` (what callers test to call it a network failure).
 */
function webBody(source: Readable, signal: AbortSignal | undefined): ReadableStream<Uint8Array> {
  const chunks = source[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await chunks.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(signal?.aborted ? signal.reason : new TypeError('terminated', { cause: error }));
      }
    },
    cancel() {
      source.destroy();
    },
  });
}

function headerList(headers: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  // Header names are case-insensitive: one entry per name, as Headers would have it.
  for (const [name, value] of new Headers(headers)) out[name] = value;
  return out;
}
