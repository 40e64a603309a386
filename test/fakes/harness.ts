/**
 * Shared plumbing for the fake vendor servers: a real HTTP server on loopback that records every
 * request and answers from a script. Each vendor module (anthropic.ts, openai.ts, ...) only
 * translates a {@link FakeReply} into that vendor's wire format.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One scripted answer. Vendor modules render it in their own wire format. */
export interface FakeReply {
  /** Full answer text. Default: "Hello from the fake <vendor>." */
  text?: string;
  /** How a streamed answer is split into deltas. Default: the text cut into three pieces. */
  chunks?: string[];
  /**
   * Structured-output answer. Rendered the way the vendor returns it for the request's
   * structured-output mode (JSON text, or a tool call where the client asked through a tool).
   */
  json?: unknown;
  /**
   * Tool calls the model makes in this reply (one model step), rendered in the vendor's wire
   * format (and its tool-call stop reason). Text comes first only when `text` or `chunks` is set
   * explicitly, as the words a model writes before calling. Takes precedence over `json`.
   */
  toolCalls?: FakeToolCall[];
  /** Token counts the vendor reports (for this step, with `toolCalls`). Default: input 11, output 7. */
  usage?: FakeUsage;
  /** Why generation stopped. Default: 'stop'. */
  finish?: 'stop' | 'length';
  /** When set (>= 400), answer with this HTTP status and the vendor's error body. */
  status?: number;
  /** Message of the vendor's error body. */
  errorMessage?: string;
  /** Extra response headers, e.g. { 'retry-after': '1' }. */
  headers?: Record<string, string>;
  /** Wait this long before sending the status line (abort and timeout tests). */
  delayMs?: number;
  /** Wait this long between streamed chunks. */
  chunkDelayMs?: number;
}

/** One tool call of a scripted reply. */
export interface FakeToolCall {
  /** The vendor's call id. Default: a random id in the vendor's style (none where the vendor sends none). */
  id?: string;
  name: string;
  /** The arguments, as the model would send them (an object for every real tool). */
  args: unknown;
}

export interface FakeUsage {
  input: number;
  output: number;
  /** Cached input tokens, reported where the vendor has such a field. */
  cached?: number;
  /** Reasoning tokens, reported where the vendor has such a field. */
  reasoning?: number;
}

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  rawBody: string;
  /** Parsed JSON body, or undefined when the body is empty or not JSON. */
  body: any;
  startedAt: number;
  endedAt?: number;
  /** True when the client closed the connection before the answer was complete. */
  closedEarly: boolean;
}

export interface FakeVendor {
  /** Server root, e.g. http://127.0.0.1:34567 */
  readonly url: string;
  /** The vendor's API root as the contract's table writes it (e.g. `${url}/v1`). */
  readonly baseUrl: string;
  /** The key the fake accepts; any other key gets the vendor's 401. */
  readonly apiKey: string;
  /** Every request received, in arrival order (health checks included). */
  readonly requests: RecordedRequest[];
  /** Queue scripted replies for generation requests; used in order, then the default applies. */
  enqueue(...replies: FakeReply[]): void;
  /** Replace the reply used when the queue is empty. */
  setDefault(reply: FakeReply): void;
  /** Requests to generation endpoints only (no model listing). */
  generationRequests(): RecordedRequest[];
  close(): Promise<void>;
}

export interface VendorContext {
  req: IncomingMessage;
  res: ServerResponse;
  record: RecordedRequest;
  /** Next scripted reply (call only for generation endpoints). */
  nextReply(): FakeReply;
  apiKey: string;
  url: string;
}

/** A vendor's routes. Return false when the path is not one of the vendor's (→ 404). */
export type VendorHandler = (ctx: VendorContext) => Promise<boolean> | boolean;

export interface StartOptions {
  apiKey?: string;
  defaultReply?: FakeReply;
}

export const DEFAULT_USAGE: FakeUsage = { input: 11, output: 7 };

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Splits text into `parts` roughly equal pieces (at least one). */
export function splitText(text: string, parts = 3): string[] {
  if (text.length === 0) return [''];
  const size = Math.max(1, Math.ceil(text.length / parts));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/** The chunks a streamed reply is sent as. */
export function replyChunks(reply: FakeReply, fallbackText: string): string[] {
  if (reply.chunks) return reply.chunks;
  return splitText(replyText(reply, fallbackText));
}

/** The full text of a reply: its JSON answer serialized, else its text, else the fallback. */
export function replyText(reply: FakeReply, fallbackText: string): string {
  if (reply.json !== undefined) return JSON.stringify(reply.json);
  if (reply.chunks) return reply.chunks.join('');
  return reply.text ?? fallbackText;
}

/** Text a tool-calling reply writes before its calls: only what the script set explicitly. */
export function toolReplyText(reply: FakeReply): string | undefined {
  if (reply.chunks) return reply.chunks.join('');
  return reply.text;
}

/** The pieces a tool call's JSON arguments are streamed in (never empty). */
export function argumentPieces(args: string): string[] {
  return splitText(args, 3);
}

export function replyUsage(reply: FakeReply): FakeUsage {
  return reply.usage ?? DEFAULT_USAGE;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload).toString(),
    ...headers,
  });
  res.end(payload);
}

/** Starts an event stream response (SSE or NDJSON) with the given content type. */
export function startStream(
  res: ServerResponse,
  contentType: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache', ...headers });
}

/** Writes one SSE event; `event` is omitted for vendors that send data-only events. */
export function writeSse(res: ServerResponse, data: unknown, event?: string): void {
  const payload = typeof data === 'string' ? data : JSON.stringify(data);
  res.write(`${event ? `event: ${event}\n` : ''}data: ${payload}\n\n`);
}

/**
 * Starts a fake vendor server on 127.0.0.1 with an ephemeral port.
 * `baseUrlFor` maps the server root to the vendor's documented API root.
 */
export async function startFake(
  handler: VendorHandler,
  baseUrlFor: (url: string) => string,
  options: StartOptions & { isGeneration: (path: string) => boolean },
): Promise<FakeVendor> {
  const apiKey = options.apiKey ?? 'test-key-0123456789abcdef';
  const queue: FakeReply[] = [];
  let defaultReply: FakeReply = options.defaultReply ?? {};
  const requests: RecordedRequest[] = [];
  let url = '';

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const parsed = new URL(req.url ?? '/', 'http://fake');
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = rawBody ? JSON.parse(rawBody) : undefined;
      } catch {
        body = undefined;
      }
      const record: RecordedRequest = {
        method: req.method ?? 'GET',
        path: parsed.pathname,
        query: parsed.searchParams,
        headers: { ...req.headers },
        rawBody,
        body,
        startedAt: Date.now(),
        closedEarly: false,
      };
      requests.push(record);
      res.on('close', () => {
        record.endedAt = Date.now();
        if (!res.writableFinished) record.closedEarly = true;
      });
      const ctx: VendorContext = {
        req,
        res,
        record,
        apiKey,
        url,
        nextReply: () => queue.shift() ?? defaultReply,
      };
      Promise.resolve(handler(ctx))
        .then((handled) => {
          if (!handled && !res.headersSent) {
            sendJson(res, 404, { error: { message: `fake: no route ${req.method} ${parsed.pathname}` } });
          }
        })
        .catch((err: unknown) => {
          if (!res.headersSent) sendJson(res, 500, { error: { message: String(err) } });
          else res.destroy();
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  url = `http://127.0.0.1:${port}`;

  return {
    url,
    baseUrl: baseUrlFor(url),
    apiKey,
    requests,
    enqueue: (...replies) => queue.push(...replies),
    setDefault: (reply) => {
      defaultReply = reply;
    },
    generationRequests: () => requests.filter((r) => options.isGeneration(r.path)),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Applies the common parts of a reply before the vendor renders it: the delay (aborting early
 * when the client goes away). Returns false when the client disconnected during the delay.
 */
export async function applyDelay(ctx: VendorContext, reply: FakeReply): Promise<boolean> {
  if (!reply.delayMs) return true;
  await Promise.race([
    sleep(reply.delayMs),
    new Promise<void>((resolve) => ctx.res.once('close', () => resolve())),
  ]);
  return !ctx.res.destroyed && !ctx.record.closedEarly && !ctx.req.socket.destroyed;
}

export function header(record: RecordedRequest, name: string): string | undefined {
  const value = record.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
