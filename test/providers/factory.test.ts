import { describe, expect, it } from 'vitest';
import { EnsembleError } from '../../src/core/index.ts';
import { createProvider, normalizeBaseUrl, PROVIDER_NAMES } from '../../src/providers/index.ts';
import { redactSecrets } from '../../src/security/index.ts';

describe('createProvider', () => {
  it('builds every vendor', () => {
    for (const provider of PROVIDER_NAMES) {
      const built = createProvider({ provider, model: 'm', apiKey: 'k-123456789' }, { env: {} });
      expect(built.name).toBe(provider);
      expect(built.model).toBe('m');
    }
  });

  it('refuses a vendor that needs a key and has none, naming the field', () => {
    try {
      createProvider({ provider: 'anthropic', model: 'm' }, { env: {} });
      throw new Error('expected a refusal');
    } catch (error) {
      expect(error).toBeInstanceOf(EnsembleError);
      expect((error as EnsembleError).code).toBe('invalid_request');
      expect((error as EnsembleError).details).toEqual({ field: 'api_key' });
    }
  });

  it("takes the key from the vendor's environment variable, and Ollama needs none", () => {
    expect(createProvider({ provider: 'groq', model: 'm' }, { env: { GROQ_API_KEY: 'gsk_envkey' } }).name).toBe('groq');
    expect(createProvider({ provider: 'ollama', model: 'llama3.2' }, { env: {} }).name).toBe('ollama');
  });

  it('refuses an unknown provider', () => {
    expect(() => createProvider({ provider: 'watson' as never, model: 'm', apiKey: 'k' })).toThrow(/Unknown provider/);
  });
});

describe('normalizeBaseUrl', () => {
  it('uses the documented defaults and accepts an Ollama root with or without /api', () => {
    expect(normalizeBaseUrl('anthropic', undefined)).toBe('https://api.anthropic.com/v1');
    expect(normalizeBaseUrl('groq', undefined)).toBe('https://api.groq.com/openai/v1');
    expect(normalizeBaseUrl('ollama', 'http://gpu-box:11434/api/')).toBe('http://gpu-box:11434');
    expect(normalizeBaseUrl('ollama', 'http://gpu-box:11434')).toBe('http://gpu-box:11434');
    expect(normalizeBaseUrl('openai', 'https://proxy.example.com/openai/v1/')).toBe('https://proxy.example.com/openai/v1');
  });
});

describe('redactSecrets', () => {
  it('removes given secrets and well-known key formats', () => {
    expect(redactSecrets('key=abcdef123456 end', ['abcdef123456'])).toBe('key=[REDACTED] end');
    expect(redactSecrets('sk-ant-api03-AAAAAAAAAAAAAAAAAAAA and gsk_BBBBBBBBBBBBBBBBBB')).toBe('[REDACTED] and [REDACTED]');
    expect(redactSecrets('AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI')).toBe('[REDACTED]');
    expect(redactSecrets('short key abc', ['abc'])).toBe('short key abc');
  });
});
