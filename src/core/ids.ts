import { randomUUID } from 'node:crypto';

/** A new random identifier (UUID v4) for any stored object. */
export function newId(): string {
  return randomUUID();
}
