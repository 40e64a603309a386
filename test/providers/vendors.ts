/**
 * What the provider tests need to know about each vendor's wire format: where the key, the
 * system prompt, the temperature and the output-token limit travel in a recorded request.
 */
import { startFakeAnthropic } from '../fakes/anthropic.ts';
import { startFakeGemini } from '../fakes/gemini.ts';
import type { FakeVendor, RecordedRequest, StartOptions } from '../fakes/harness.ts';
import { header } from '../fakes/harness.ts';
import { startFakeOllama } from '../fakes/ollama.ts';
import { startFakeGroq, startFakeOpenAI, startFakeOpenRouter } from '../fakes/openai.ts';
import type { ProviderName } from '../../src/providers/index.ts';

export interface VendorCase {
  provider: ProviderName;
  model: string;
  start(options?: StartOptions): Promise<FakeVendor>;
  /** The key as the vendor expects it on the wire. */
  keyOnWire(request: RecordedRequest): string | undefined;
  systemPrompt(body: any): string | undefined;
  temperature(body: any): number | undefined;
  maxTokens(body: any): number | undefined;
}

const bearer = (request: RecordedRequest) => header(request, 'authorization')?.replace(/^Bearer /, '');

function chatSystem(body: any): string | undefined {
  const message = body?.messages?.find((m: any) => m.role === 'system');
  return typeof message?.content === 'string' ? message.content : message?.content?.[0]?.text;
}

export const VENDOR_CASES: VendorCase[] = [
  {
    provider: 'anthropic',
    model: 'claude-sonnet-4-5',
    start: startFakeAnthropic,
    keyOnWire: (r) => header(r, 'x-api-key'),
    systemPrompt: (b) => (typeof b.system === 'string' ? b.system : b.system?.map((p: any) => p.text).join('')),
    temperature: (b) => b.temperature,
    maxTokens: (b) => b.max_tokens,
  },
  {
    provider: 'openai',
    model: 'gpt-4.1-mini',
    start: startFakeOpenAI,
    keyOnWire: bearer,
    systemPrompt: (b) => {
      if (typeof b.instructions === 'string') return b.instructions;
      const message = b.input?.find((m: any) => m.role === 'system' || m.role === 'developer');
      return typeof message?.content === 'string' ? message.content : message?.content?.[0]?.text;
    },
    temperature: (b) => b.temperature,
    maxTokens: (b) => b.max_output_tokens,
  },
  {
    provider: 'gemini',
    model: 'gemini-2.5-flash',
    start: startFakeGemini,
    keyOnWire: (r) => header(r, 'x-goog-api-key') ?? r.query.get('key') ?? undefined,
    systemPrompt: (b) => b.systemInstruction?.parts?.map((p: any) => p.text).join(''),
    temperature: (b) => b.generationConfig?.temperature,
    maxTokens: (b) => b.generationConfig?.maxOutputTokens,
  },
  {
    provider: 'ollama',
    model: 'llama3.2',
    start: (options) => startFakeOllama({ ...options, requireAuth: true }),
    keyOnWire: bearer,
    systemPrompt: chatSystem,
    temperature: (b) => b.options?.temperature,
    maxTokens: (b) => b.options?.num_predict,
  },
  {
    provider: 'openrouter',
    model: 'anthropic/claude-sonnet-4.5',
    start: startFakeOpenRouter,
    keyOnWire: bearer,
    systemPrompt: chatSystem,
    temperature: (b) => b.temperature,
    maxTokens: (b) => b.max_tokens ?? b.max_completion_tokens,
  },
  {
    provider: 'groq',
    model: 'llama-3.3-70b-versatile',
    start: startFakeGroq,
    keyOnWire: bearer,
    systemPrompt: chatSystem,
    temperature: (b) => b.temperature,
    maxTokens: (b) => b.max_tokens ?? b.max_completion_tokens,
  },
];
