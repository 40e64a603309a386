import { loadConfig } from '../config/index.ts';
import { rotateKeys } from '../registry/index.ts';
import { Keyring } from '../security/index.ts';
import { openStorage } from '../storage/index.ts';

/**
 * `ensemble keys rotate`: re-wraps every provider key under the first key of
 * ENSEMBLE_MASTER_KEYS. Runs beside a live server (rows are swapped one by one, never
 * overwriting a concurrent change) and can be interrupted and rerun.
 */
export async function rotateKeysCommand(flags: { dataDir?: string }): Promise<void> {
  const config = loadConfig(process.env, flags.dataDir ? { dataDir: flags.dataDir } : {});
  if (!config.masterKeys) {
    process.stderr.write('ensemble keys rotate: set ENSEMBLE_MASTER_KEYS="new:<base64>,old:<base64>" (the first key becomes active)\n');
    process.exitCode = 2;
    return;
  }
  const keyring = Keyring.parse(config.masterKeys);
  const storage = await openStorage({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    const result = await rotateKeys(storage, keyring, (p) => {
      process.stderr.write(`\rre-wrapped ${p.rewrapped}, skipped ${p.skipped}, failed ${p.failed}`);
    });
    process.stderr.write('\n');
    process.stdout.write(`${JSON.stringify({ active_key: keyring.activeId, ...result })}\n`);
    if (result.failed > 0) {
      process.stderr.write('some keys could not be opened with this keyring; keep their old master key in ENSEMBLE_MASTER_KEYS and rerun\n');
      process.exitCode = 1;
    }
  } finally {
    await storage.close();
  }
}
