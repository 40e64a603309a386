/**
 * What the provider tests need to know about each vendor's wire format: where the key, the
 * system prompt, the temperature and the output-token limit travel in a recorded request, and
 * where tool declarations and tool results travel.
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
  /** The tools a request declares: name and JSON Schema of the arguments. */
  declaredTools(body: any): WireTool[];
  /** The tool results a request sends back to the model, in request order. */
  toolResults(body: any): WireToolResult[];
}

export interface WireTool {
  name: string;
  parameters: unknown;
}

export interface WireToolResult {
  /** The call id the result answers (Gemini: only when the call had one). */
  id: string | undefined;
  /** The result as the model reads it (JSON text for structured results). */
  content: string;
  /** The vendor's own error flag, where its wire format has one (Anthropic's `is_error`). */
  isError?: boolean;
}

const asText = (content: unknown): string =>
  typeof content === 'string'
    ? content
    : Array.isArray(content)
      ? content.map((p: any) => (typeof p === 'string' ? p : (p?.text ?? JSON.stringify(p)))).join('')
      : JSON.stringify(content);

function chatTools(body: any): WireTool[] {
  return (body?.tools ?? []).map((t: any) => ({ name: t.function?.name, parameters: t.function?.parameters }));
}

function chatToolResults(body: any): WireToolResult[] {
  return (body?.messages ?? [])
    .filter((m: any) => m.role === 'tool')
    .map((m: any) => ({ id: m.tool_call_id, content: asText(m.content) }));
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
    declaredTools: (b) => (b.tools ?? []).map((t: any) => ({ name: t.name, parameters: t.input_schema })),
    toolResults: (b) =>
      (b.messages ?? [])
        .flatMap((m: any) => (m.role === 'user' && Array.isArray(m.content) ? m.content : []))
        .filter((block: any) => block.type === 'tool_result')
        .map((block: any) => ({ id: block.tool_use_id, content: asText(block.content), isError: block.is_error === true })),
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
    declaredTools: (b) => (b.tools ?? []).filter((t: any) => t.type === 'function').map((t: any) => ({ name: t.name, parameters: t.parameters })),
    toolResults: (b) =>
      (b.input ?? [])
        .filter((item: any) => item.type === 'function_call_output')
        .map((item: any) => ({ id: item.call_id, content: asText(item.output) })),
  },
  {
    provider: 'gemini',
    model: 'gemini-2.5-flash',
    start: startFakeGemini,
    keyOnWire: (r) => header(r, 'x-goog-api-key') ?? r.query.get('key') ?? undefined,
    systemPrompt: (b) => b.systemInstruction?.parts?.map((p: any) => p.text).join(''),
    temperature: (b) => b.generationConfig?.temperature,
    maxTokens: (b) => b.generationConfig?.maxOutputTokens,
    declaredTools: (b) =>
      (b.tools ?? [])
        .flatMap((t: any) => t.functionDeclarations ?? [])
        .map((d: any) => ({ name: d.name, parameters: d.parametersJsonSchema ?? d.parameters })),
    toolResults: (b) =>
      (b.contents ?? [])
        .flatMap((c: any) => c.parts ?? [])
        .filter((p: any) => p.functionResponse)
        .map((p: any) => ({ id: p.functionResponse.id, content: JSON.stringify(p.functionResponse.response) })),
  },
  {
    provider: 'ollama',
    model: 'llama3.2',
    start: (options) => startFakeOllama({ ...options, requireAuth: true }),
    keyOnWire: bearer,
    systemPrompt: chatSystem,
    temperature: (b) => b.options?.temperature,
    maxTokens: (b) => b.options?.num_predict,
    declaredTools: chatTools,
    toolResults: chatToolResults,
  },
  {
    provider: 'openrouter',
    model: 'anthropic/claude-sonnet-4.5',
    start: startFakeOpenRouter,
    keyOnWire: bearer,
    systemPrompt: chatSystem,
    temperature: (b) => b.temperature,
    maxTokens: (b) => b.max_tokens ?? b.max_completion_tokens,
    declaredTools: chatTools,
    toolResults: chatToolResults,
  },
  {
    provider: 'groq',
    model: 'llama-3.3-70b-versatile',
    start: startFakeGroq,
    keyOnWire: bearer,
    systemPrompt: chatSystem,
    temperature: (b) => b.temperature,
    maxTokens: (b) => b.max_tokens ?? b.max_completion_tokens,
    declaredTools: chatTools,
    toolResults: chatToolResults,
  },
];
