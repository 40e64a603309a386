/**
 * The bench's fake vendor, run in a process of its own (so its CPU never competes with the code
 * being measured): an OpenAI Chat Completions server with the same wire shapes as
 * test/fakes/openai.ts (JSON answers and SSE streams with `stream_options.include_usage`), lean on
 * purpose: it records nothing but counters.
 *
 * Settings (IPC message `{ type: 'configure', ... }`): `latencyMs` before the status line (0: the
 * zero-latency fake), `chunks` the streamed deltas, and `gate`: hold every answer until that many
 * requests have arrived (then each still waits its own latency), so N calls are surely in flight
 * at the same time.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { FAKE_API_KEY, FAKE_MODEL, type FakeSettings, type FakeStats } from './fake.ts';

const settings: FakeSettings = { latencyMs: 0, chunks: ['Hello ', 'from the ', 'bench fake.'], gate: 0 };
const stats: FakeStats = { requests: 0, generations: 0, inFlight: 0, peakInFlight: 0 };
let gateOpen: Promise<void> = Promise.resolve();
let openGate: () => void = () => {};
let arrivedAtGate = 0;

function resetGate(): void {
  // Requests held by the previous gate go on.
  openGate();
  arrivedAtGate = 0;
  if (settings.gate > 0) gateOpen = new Promise<void>((resolve) => (openGate = resolve));
  else gateOpen = Promise.resolve();
}

const CREATED = 1_715_000_000;
let counter = 0;
const nextId = () => `chatcmpl-bench${(counter++).toString(36).padStart(8, '0')}`;

function usage(input: number, output: number) {
  return {
    prompt_tokens: input,
    completion_tokens: output,
    total_tokens: input + output,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload).toString(), 'x-request-id': 'req_bench' });
  res.end(payload);
}

async function handle(req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
  stats.requests++;
  const path = (req.url ?? '/').split('?')[0];
  if (req.headers.authorization !== `Bearer ${FAKE_API_KEY}`) {
    sendJson(res, 401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    return;
  }
  if (req.method === 'GET' && path === '/v1/models') {
    sendJson(res, 200, { object: 'list', data: [{ id: FAKE_MODEL, object: 'model', created: CREATED, owned_by: 'system' }] });
    return;
  }
  if (req.method !== 'POST' || path !== '/v1/chat/completions') {
    sendJson(res, 404, { error: { message: `fake: no route ${req.method} ${path}` } });
    return;
  }
  let body: { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean } };
  try {
    body = JSON.parse(raw);
  } catch {
    sendJson(res, 400, { error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null } });
    return;
  }
  stats.generations++;
  stats.inFlight++;
  stats.peakInFlight = Math.max(stats.peakInFlight, stats.inFlight);
  try {
    if (settings.gate > 0) {
      arrivedAtGate++;
      if (arrivedAtGate >= settings.gate) openGate();
    }
    const wait: Array<Promise<unknown>> = [];
    if (settings.latencyMs > 0) wait.push(new Promise((resolve) => setTimeout(resolve, settings.latencyMs)));
    if (settings.gate > 0) wait.push(gateOpen);
    if (wait.length > 0) await Promise.all(wait);
    if (res.destroyed) return;
    const model = body.model ?? FAKE_MODEL;
    const id = nextId();
    const text = settings.chunks.join('');
    const head = { id, created: Math.floor(Date.now() / 1000), model, service_tier: 'default', system_fingerprint: 'fp_fake0001' };
    if (body.stream !== true) {
      sendJson(res, 200, {
        ...head,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
        usage: usage(11, 7),
      });
      return;
    }
    const includeUsage = body.stream_options?.include_usage === true;
    const chunk = (delta: Record<string, unknown>, finish: string | null) =>
      `data: ${JSON.stringify({ ...head, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(includeUsage ? { usage: null } : {}) })}\n\n`;
    let out = chunk({ role: 'assistant', content: '', refusal: null }, null);
    for (const piece of settings.chunks) out += chunk({ content: piece }, null);
    out += chunk({}, 'stop');
    if (includeUsage) out += `data: ${JSON.stringify({ ...head, object: 'chat.completion.chunk', choices: [], usage: usage(11, 7) })}\n\n`;
    out += 'data: [DONE]\n\n';
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-request-id': 'req_bench' });
    res.end(out);
  } finally {
    stats.inFlight--;
  }
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(error) } });
      else res.destroy();
    });
  });
});
server.keepAliveTimeout = 60_000;
let sockets = 0;
server.on('connection', () => sockets++);
server.maxRequestsPerSocket = 0;

type Command =
  | { id: number; type: 'configure'; settings: Partial<FakeSettings> }
  | { id: number; type: 'stats'; reset?: boolean }
  | { id: number; type: 'close' };

process.on('message', (message: Command) => {
  const reply = (value: unknown) => process.send?.({ id: message.id, value });
  if (message.type === 'configure') {
    Object.assign(settings, message.settings);
    resetGate();
    reply({ ...settings });
  } else if (message.type === 'stats') {
    reply({ ...stats, sockets });
    if (message.reset) Object.assign(stats, { requests: 0, generations: 0, peakInFlight: stats.inFlight });
  } else if (message.type === 'close') {
    server.closeAllConnections();
    server.close(() => {
      reply(null);
      process.exit(0);
    });
  }
});

// The bench process went away (crashed or killed): so does its fake.
process.on('disconnect', () => process.exit(0));

server.listen({ port: 0, host: '127.0.0.1', backlog: 8192 }, () => {
  process.send?.({ id: 0, value: { port: (server.address() as AddressInfo).port } });
});
