/** The vendor calls' fetch over undici's plain request: what a vendor client relies on, as fetch does it. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestFetch } from '../../src/security/request-fetch.ts';

describe('requestFetch', () => {
  let server: Server;
  let base: string;
  const agent = new Agent();
  const fetchVia = requestFetch(agent);
  const seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }> = [];
  let closedMidStream: Promise<void>;
  let onClosedMidStream: () => void = () => {};

  beforeAll(async () => {
    closedMidStream = new Promise((resolve) => (onClosedMidStream = resolve));
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        if (req.url === '/sse') {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'x-request-id': 'req-1' });
          res.write('data: one\n\n');
          // The second event comes only after the client has read the first: the body streams.
          setTimeout(() => res.end('data: two\n\n'), 50);
        } else if (req.url === '/endless') {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: first\n\n');
          res.on('close', () => onClosedMidStream());
        } else if (req.url === '/empty') {
          res.writeHead(204).end();
        } else if (req.url === '/moved') {
          res.writeHead(302, { location: '/elsewhere' }).end('moved');
        } else if (req.url === '/gzip') {
          // Compressed whatever was asked (some proxies do).
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(JSON.stringify({ ok: true, asked: req.headers['accept-encoding'] ?? null })));
        } else if (req.url === '/cut') {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: partial\n\n');
          setTimeout(() => res.socket?.destroy(), 20);
        } else if (req.url === '/bad-gateway') {
          res.writeHead(502, 'Bad Gateway').end();
        } else if (req.url === '/slow') {
          setTimeout(() => res.writeHead(200).end('late'), 5_000).unref();
        } else {
          res.writeHead(201, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] }).end(JSON.stringify({ echo: body }));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await agent.close();
  });

  it('sends the method, headers and body, and answers with status, headers and body', async () => {
    const res = await fetchVia(`${base}/v1/chat?x=1`, { method: 'post', headers: { Authorization: 'Bearer k', 'Content-Type': 'application/json' }, body: '{"q":1}' });
    expect(res.status).toBe(201);
    expect(res.ok).toBe(true);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('set-cookie')).toBe('a=1, b=2');
    expect(await res.json()).toEqual({ echo: '{"q":1}' });
    const request = seen.at(-1)!;
    expect(request).toMatchObject({ method: 'POST', url: '/v1/chat?x=1', body: '{"q":1}' });
    expect(request.headers).toMatchObject({ authorization: 'Bearer k', 'content-type': 'application/json' });
    expect(request.headers['accept-encoding']).toBe('identity');
  });

  it('streams the body as it arrives', async () => {
    const res = await fetchVia(`${base}/sse`);
    expect(res.headers.get('x-request-id')).toBe('req-1');
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('data: one\n\n');
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    expect(rest).toBe('data: two\n\n');
  });

  it('has no body for 204 and does not follow redirects', async () => {
    const empty = await fetchVia(`${base}/empty`, { method: 'DELETE' });
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
    const moved = await fetchVia(`${base}/moved`);
    expect(moved.status).toBe(302);
    expect(moved.headers.get('location')).toBe('/elsewhere');
    expect(await moved.text()).toBe('moved');
  });

  it('a request that cannot be made fails as fetch fails: TypeError "fetch failed" with the cause', async () => {
    const refused = await fetchVia('http://127.0.0.1:1/').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TypeError);
    expect((refused as TypeError).message).toBe('fetch failed');
    expect((refused as TypeError).cause).toBeInstanceOf(Error);
  });

  it("an abort rejects with the signal's reason, before or during the request, and closes a stream being read", async () => {
    const before = new AbortController();
    before.abort(new DOMException('stopped', 'AbortError'));
    await expect(fetchVia(`${base}/slow`, { signal: before.signal })).rejects.toMatchObject({ name: 'AbortError', message: 'stopped' });

    const during = new AbortController();
    const pending = fetchVia(`${base}/slow`, { signal: during.signal });
    setTimeout(() => during.abort(new DOMException('timeout', 'TimeoutError')), 30);
    await expect(pending).rejects.toMatchObject({ name: 'TimeoutError' });

    const reading = new AbortController();
    const res = await fetchVia(`${base}/endless`, { signal: reading.signal });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: first\n\n');
    reading.abort();
    await expect(reader.read()).rejects.toBeDefined();
    await closedMidStream;
  });

  it('decodes a compressed body, asked for or not; keeps the status text', async () => {
    expect(await (await fetchVia(`${base}/gzip`)).json()).toEqual({ ok: true, asked: 'identity' });
    expect(await (await fetchVia(`${base}/gzip`, { headers: { 'Accept-Encoding': 'gzip' } })).json()).toEqual({ ok: true, asked: 'gzip' });
    const bad = await fetchVia(`${base}/bad-gateway`);
    expect([bad.status, bad.statusText]).toEqual([502, 'Bad Gateway']);
  });

  it('a body cut off mid-stream fails as fetch fails it: TypeError "terminated" with the cause', async () => {
    const reader = (await fetchVia(`${base}/cut`)).body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: partial\n\n');
    const failure = await reader.read().then(() => undefined, (error: unknown) => error);
    expect(failure).toBeInstanceOf(TypeError);
    expect((failure as TypeError).message).toBe('terminated');
    expect((failure as TypeError).cause).toBeInstanceOf(Error);
  });

  it('takes a Request object through undici fetch on the same dispatcher', async () => {
    const res = await fetchVia(new Request(`${base}/req`, { method: 'POST', body: 'as a request' }));
    expect(await res.json()).toEqual({ echo: 'as a request' });
  });
});
