/**
 * Envelope encryption of provider keys (AES-256-GCM). Each secret gets a fresh data key; the data
 * key is wrapped by the keyring's active master key. Associated data binds a ciphertext to the
 * row it belongs to, so an envelope copied to another agent fails to open.
 *
 * Rotation re-wraps only the data key: the secret's own ciphertext never changes, and the old
 * master key can leave the keyring once every envelope names the new one.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { EnsembleError } from '../core/index.ts';

const ALGORITHM = 'aes-256-gcm';
const IV_BYTES = 12;
const KEY_BYTES = 32;
const ENVELOPE_VERSION = 1;

export interface MasterKey {
  id: string;
  key: Buffer;
}

/** What a stored envelope holds; every binary field is base64. */
interface Envelope {
  v: number;
  /** Id of the master key that wrapped the data key. */
  kid: string;
  /** The data key, sealed by the master key: iv | tag | ciphertext. */
  dk: string;
  /** The secret, sealed by the data key: iv | tag | ciphertext. */
  ct: string;
}

export class KeyringError extends EnsembleError {
  constructor(message: string) {
    super('internal_error', message);
    this.name = 'KeyringError';
  }
}

export class Keyring {
  readonly #keys: Map<string, Buffer>;
  readonly activeId: string;

  constructor(keys: MasterKey[]) {
    const first = keys[0];
    if (!first) throw new KeyringError('The keyring needs at least one master key');
    this.#keys = new Map();
    for (const { id, key } of keys) {
      if (key.length !== KEY_BYTES) throw new KeyringError(`Master key "${id}" must be ${KEY_BYTES} bytes`);
      if (this.#keys.has(id)) throw new KeyringError(`Master key id "${id}" appears twice`);
      this.#keys.set(id, key);
    }
    this.activeId = first.id;
  }

  /** Parses `ENSEMBLE_MASTER_KEYS`: `id:base64key,id:base64key`; the first is active. */
  static parse(spec: string): Keyring {
    const keys = spec
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean)
      .map((entry) => {
        const colon = entry.indexOf(':');
        if (colon <= 0) throw new KeyringError('ENSEMBLE_MASTER_KEYS entries look like id:base64key');
        return { id: entry.slice(0, colon), key: Buffer.from(entry.slice(colon + 1), 'base64') };
      });
    return new Keyring(keys);
  }

  static generateKey(): Buffer {
    return randomBytes(KEY_BYTES);
  }

  has(kid: string): boolean {
    return this.#keys.has(kid);
  }

  /** Seals a secret for one context (e.g. `agent:<app>:<agent>`). */
  seal(plaintext: string, context: string): string {
    const dataKey = randomBytes(KEY_BYTES);
    const envelope: Envelope = {
      v: ENVELOPE_VERSION,
      kid: this.activeId,
      dk: this.#wrap(dataKey, this.activeId, context),
      ct: encrypt(dataKey, Buffer.from(plaintext, 'utf8'), aad('secret', context)).toString('base64'),
    };
    dataKey.fill(0);
    return JSON.stringify(envelope);
  }

  /** Opens an envelope sealed for `context`; a wrong context or a tampered envelope throws. */
  open(sealed: string, context: string): string {
    const envelope = parseEnvelope(sealed);
    const dataKey = this.#unwrap(envelope, context);
    try {
      return decrypt(dataKey, Buffer.from(envelope.ct, 'base64'), aad('secret', context)).toString('utf8');
    } catch {
      throw new KeyringError('The stored key cannot be decrypted for this agent (it was sealed for another row, or altered)');
    } finally {
      dataKey.fill(0);
    }
  }

  /** The master key id an envelope names. */
  static keyIdOf(sealed: string): string {
    return parseEnvelope(sealed).kid;
  }

  /** Re-wraps the data key under the active master key; the secret's ciphertext is unchanged. */
  rewrap(sealed: string, context: string): string {
    const envelope = parseEnvelope(sealed);
    if (envelope.kid === this.activeId) return sealed;
    const dataKey = this.#unwrap(envelope, context);
    try {
      return JSON.stringify({ ...envelope, kid: this.activeId, dk: this.#wrap(dataKey, this.activeId, context) });
    } finally {
      dataKey.fill(0);
    }
  }

  #wrap(dataKey: Buffer, kid: string, context: string): string {
    const master = this.#keys.get(kid);
    if (!master) throw new KeyringError(`Master key "${kid}" is not in the keyring`);
    return encrypt(master, dataKey, aad(`wrap:${kid}`, context)).toString('base64');
  }

  #unwrap(envelope: Envelope, context: string): Buffer {
    const master = this.#keys.get(envelope.kid);
    if (!master) throw new KeyringError(`Master key "${envelope.kid}" is not in the keyring (ENSEMBLE_MASTER_KEYS)`);
    try {
      return decrypt(master, Buffer.from(envelope.dk, 'base64'), aad(`wrap:${envelope.kid}`, context));
    } catch {
      throw new KeyringError('The stored key cannot be decrypted for this agent (it was sealed for another row, or altered)');
    }
  }
}

function aad(purpose: string, context: string): Buffer {
  return Buffer.from(`ensemble:v${ENVELOPE_VERSION}:${purpose}:${context}`, 'utf8');
}

function encrypt(key: Buffer, plaintext: Buffer, associated: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv);
  cipher.setAAD(associated);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

function decrypt(key: Buffer, sealed: Buffer, associated: Buffer): Buffer {
  const iv = sealed.subarray(0, IV_BYTES);
  const tag = sealed.subarray(IV_BYTES, IV_BYTES + 16);
  const body = sealed.subarray(IV_BYTES + 16);
  const decipher = createDecipheriv(ALGORITHM, key, iv);
  decipher.setAAD(associated);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(body), decipher.final()]);
}

function parseEnvelope(sealed: string): Envelope {
  try {
    const envelope = JSON.parse(sealed) as Envelope;
    if (envelope.v === ENVELOPE_VERSION && typeof envelope.kid === 'string' && typeof envelope.dk === 'string' && typeof envelope.ct === 'string') {
      return envelope;
    }
  } catch {
    // fall through
  }
  throw new KeyringError('The stored key envelope is malformed');
}
