/** Helpers shared by the provider wire tests. */
import { isProviderError, type ProviderError } from '../../src/providers/index.ts';

/** The ProviderError a call fails with (anything else is rethrown; success fails the test). */
export async function rejection(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    if (isProviderError(error)) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

/** Waits until `check` holds, polling every 10 ms. */
export async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
