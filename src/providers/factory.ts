import { EnsembleError } from '../core/index.ts';
import { AiSdkProvider, type ProviderDeps } from './provider.ts';
import { isProviderName, type Provider, type ProviderSettings } from './types.ts';
import { KEY_ENV_VARS, requiresApiKey } from './vendors.ts';

export interface FactoryOptions extends ProviderDeps {
  /** Where vendor keys are looked up when the settings carry none. Default: process.env. */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Builds the provider for an agent's settings. The key is the agent's own, else the vendor's
 * usual environment variable; a vendor that needs a key and has none is refused here, before
 * any request is made.
 */
export function createProvider(settings: ProviderSettings, options: FactoryOptions = {}): Provider {
  if (!isProviderName(settings.provider)) {
    throw new EnsembleError('invalid_request', `Unknown provider "${String(settings.provider)}"`, { field: 'provider' });
  }
  const env = options.env ?? process.env;
  const envVar = KEY_ENV_VARS[settings.provider];
  const apiKey = settings.apiKey || (envVar ? env[envVar] : undefined) || undefined;
  if (!apiKey && requiresApiKey(settings.provider)) {
    throw new EnsembleError('invalid_request', `Provider "${settings.provider}" needs an api_key (or ${envVar} in the environment)`, {
      field: 'api_key',
    });
  }
  return new AiSdkProvider(settings, apiKey, options);
}
