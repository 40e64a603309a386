import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../config/index.ts';
import type { AppService } from '../registry/index.ts';
import { Keyring } from '../security/index.ts';

export const MASTER_KEY_FILE = 'master.key';
export const DEFAULT_TOKEN_FILE = 'default-app.token';

/**
 * The keyring: ENSEMBLE_MASTER_KEYS when set. Otherwise, in embedded mode only, a key generated
 * once into a 0600 file of the data directory (with a warning: whoever reads that file can
 * decrypt the provider keys). Shared databases need the variable, so every process agrees.
 */
export function loadKeyring(options: { masterKeys: string | undefined; dataDir: string; embedded: boolean; logger: Logger }): Keyring {
  if (options.masterKeys) return Keyring.parse(options.masterKeys);
  if (!options.embedded) {
    throw new Error('ENSEMBLE_MASTER_KEYS must be set when DATABASE_URL is (every process must share the keyring)');
  }
  const file = join(options.dataDir, MASTER_KEY_FILE);
  if (!existsSync(file)) {
    writeFileSync(file, `local1:${Keyring.generateKey().toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    options.logger.warn({ file }, 'ENSEMBLE_MASTER_KEYS is not set: generated a master key file; back it up, and prefer the variable in production');
  }
  return Keyring.parse(readFileSync(file, 'utf8').trim());
}

/**
 * Embedded single-user start: the `default` app exists and its token is in a 0600 file of the
 * data directory. A saved token that still works is reused; otherwise a new one is written.
 */
export async function ensureDefaultApp(apps: AppService, dataDir: string, logger: Logger): Promise<string> {
  const file = join(dataDir, DEFAULT_TOKEN_FILE);
  const actor = { kind: 'system' as const, name: 'bootstrap' };
  let app = await apps.getByName('default');
  if (!app) {
    const created = await apps.create('default', actor);
    writeFileSync(file, `${created.token}\n`, { mode: 0o600 });
    logger.info({ token_file: file }, 'created the default app; its token is in the token file');
    return file;
  }
  const saved = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  if (saved && (await apps.tokenIsValidFor(app.id, saved))) {
    logger.info({ token_file: file }, 'default app token file');
    return file;
  }
  app = await apps.getByName('default');
  if (!app) throw new Error('the default app vanished during start');
  const { token } = await apps.createToken(app.id, 'default', actor);
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  logger.info({ token_file: file }, 'wrote a new token for the default app');
  return file;
}
