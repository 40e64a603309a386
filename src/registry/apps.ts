import { EnsembleError, newId } from '../core/index.ts';
import { randomBytes } from 'node:crypto';
import { constantTimeEqual, generateToken, hashToken, type Keyring } from '../security/index.ts';
import type { AppRecord, Storage } from '../storage/index.ts';
import type { AuditWriter} from './audit.ts';
import { type Actor } from './audit.ts';

export type Principal = { kind: 'admin' } | { kind: 'app'; appId: string; tokenId: string };

/** Apps (the tenants) and their bearer tokens. */
export class AppService {
  readonly #storage: Storage;
  readonly #audit: AuditWriter;
  readonly #adminToken: string | undefined;
  readonly #keyring: Keyring | undefined;

  constructor(storage: Storage, audit: AuditWriter, adminToken: string | undefined, keyring?: Keyring) {
    this.#storage = storage;
    this.#audit = audit;
    this.#adminToken = adminToken;
    this.#keyring = keyring;
  }

  /** A new webhook signing secret for the app (replacing any old one); shown once, stored sealed. */
  async rotateWebhookSecret(appId: string, actor: Actor): Promise<string> {
    if (!this.#keyring) throw new EnsembleError('internal_error', 'No keyring to seal webhook secrets');
    if (!(await this.#storage.apps.get(appId))) throw new EnsembleError('not_found', 'No such app');
    const secret = `whsec_${randomBytes(32).toString('base64url')}`;
    await this.#storage.apps.setWebhookSecret(appId, this.#keyring.seal(secret, `webhook:${appId}`));
    await this.#audit.record({ actor, app_id: appId, action: 'app.webhook_secret_rotate', target_type: 'app', target_id: appId, outcome: 'success', details: {} });
    return secret;
  }

  /** The app's webhook secret in plain text, for signature checks; undefined when none is set. */
  async webhookSecret(appId: string): Promise<string | undefined> {
    const sealed = await this.#storage.apps.getWebhookSecret(appId);
    if (!sealed || !this.#keyring) return undefined;
    return this.#keyring.open(sealed, `webhook:${appId}`);
  }

  get(appId: string): Promise<AppRecord | undefined> {
    return this.#storage.apps.get(appId);
  }

  /** Resolves a bearer token to who holds it; undefined for unknown or revoked tokens. */
  async authenticate(token: string): Promise<Principal | undefined> {
    if (this.#adminToken !== undefined && constantTimeEqual(token, this.#adminToken)) return { kind: 'admin' };
    const hash = hashToken(token);
    const record = await this.#storage.tokens.findActiveByHash(hash);
    if (!record) return undefined;
    return { kind: 'app', appId: record.app_id, tokenId: record.id };
  }

  async create(name: string, actor: Actor): Promise<{ app: AppRecord; token: string; tokenId: string }> {
    const app: AppRecord = { id: newId(), name, settings: {}, created_at: new Date().toISOString() };
    await this.#storage.apps.create(app);
    await this.#audit.record({ actor, app_id: app.id, action: 'app.create', target_type: 'app', target_id: app.id, outcome: 'success', details: { name } });
    const { id: tokenId, token } = await this.createToken(app.id, 'default', actor);
    return { app, token, tokenId };
  }

  list(): Promise<AppRecord[]> {
    return this.#storage.apps.list();
  }

  getByName(name: string): Promise<AppRecord | undefined> {
    return this.#storage.apps.getByName(name);
  }

  async createToken(appId: string, name: string, actor: Actor): Promise<{ id: string; token: string }> {
    if (!(await this.#storage.apps.get(appId))) throw new EnsembleError('not_found', 'No such app');
    const token = generateToken();
    const id = newId();
    await this.#storage.tokens.create({ id, app_id: appId, name, token_hash: hashToken(token), created_at: new Date().toISOString(), revoked_at: null });
    await this.#audit.record({ actor, app_id: appId, action: 'token.create', target_type: 'token', target_id: id, outcome: 'success', details: { name } });
    return { id, token };
  }

  async revokeToken(appId: string, tokenId: string, actor: Actor): Promise<void> {
    const revoked = await this.#storage.tokens.revoke(appId, tokenId, new Date().toISOString());
    if (!revoked) throw new EnsembleError('not_found', 'No such token');
    await this.#audit.record({ actor, app_id: appId, action: 'token.revoke', target_type: 'token', target_id: tokenId, outcome: 'success', details: {} });
  }

  /** Whether a token (in plain text) is still valid for the app: used to reuse a saved token. */
  async tokenIsValidFor(appId: string, token: string): Promise<boolean> {
    const principal = await this.authenticate(token);
    return principal?.kind === 'app' && principal.appId === appId;
  }
}
