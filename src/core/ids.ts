import { randomUUID } from 'node:crypto';

/**
 * A new identifier for any stored object: a UUID v7 (RFC 9562), its first 48 bits the time in
 * milliseconds and the other 74 random. Ids made one after the other sort together, so the
 * indexes they key (usage records, audit entries, runs) grow at one end instead of touching a
 * random page for every insert: fewer pages written per commit. The creation time it reveals is
 * every object's `created_at` anyway; nothing secret is ever an id.
 */
export function newId(): string {
  const time = Date.now().toString(16).padStart(12, '0');
  // A v4 UUID supplies the random bits and the variant; its version digit becomes 7.
  const random = randomUUID();
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${random.slice(15)}`;
}
