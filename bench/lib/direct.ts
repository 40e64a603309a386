/**
 * "Straight to the fake": the same HTTP requests Ensemble's agents make (OpenAI Chat Completions,
 * streamed, through the same AI SDK provider that src/providers builds), without Ensemble.
 */
import { createProvider, type Provider } from '../../src/providers/index.ts';
import { FAKE_API_KEY, FAKE_MODEL } from './fake.ts';

export function directProvider(baseUrl: string): Provider {
  return createProvider({ provider: 'openai', model: FAKE_MODEL, apiKey: FAKE_API_KEY, baseUrl, openaiApi: 'chat', maxRetries: 0 });
}

/** One streamed call, as a workflow step makes it; resolves with the text. */
export async function streamCall(provider: Provider, message: string, systemPrompt: string): Promise<string> {
  for await (const part of provider.stream(message, { systemPrompt })) {
    if (part.type === 'finish') return part.text;
  }
  throw new Error('stream ended without finish');
}

/** Time to the first text delta of a streamed call; the rest is read to the end. */
export async function streamFirstDelta(provider: Provider, message: string, systemPrompt: string): Promise<number> {
  const started = performance.now();
  let first: number | undefined;
  for await (const part of provider.stream(message, { systemPrompt })) {
    if (part.type === 'text-delta') first ??= performance.now() - started;
  }
  if (first === undefined) throw new Error('no delta');
  return first;
}

/** The PR-review DAG straight to the fake: analysis → (fixes ∥ security) → synthesis. */
export async function directPrReview(provider: Provider, input: string): Promise<string> {
  const analysis = await streamCall(provider, `Analyse this pull request.\n\n${input}`, 'You are claude-leader.');
  const [fixes, security] = await Promise.all([
    streamCall(provider, `Action: suggest_fixes\n\n${analysis}`, 'You are gpt-coder.'),
    streamCall(provider, `Action: security_review\n\n${analysis}`, 'You are gemini-security.'),
  ]);
  return streamCall(provider, `Write one review.\n\nSuggested fixes:\n${fixes}\n\nSecurity review:\n${security}`, 'You are claude-leader.');
}

/** A raw fetch of one non-streamed chat completion (what a gateway forwards). */
export async function rawChatCompletion(url: string, headers: Record<string, string>, message: string): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${FAKE_API_KEY}`, ...headers },
    body: JSON.stringify({ model: FAKE_MODEL, messages: [{ role: 'system', content: 'You are bench-agent.' }, { role: 'user', content: message }] }),
  });
  const body = (await res.json()) as { choices?: unknown[] };
  if (!res.ok || !Array.isArray(body.choices)) throw new Error(`chat completion failed: ${res.status} ${JSON.stringify(body)}`);
  return body;
}
