import type { MiddlewareHandler } from 'hono';
import { EnsembleError } from '../../core/index.ts';
import type { AppEnv } from '../env.ts';

const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\b/i;

/**
 * Requests that carry a body must say it is JSON (415 otherwise) and must parse (400 otherwise).
 * Parsing here gives one clear error for every route; Hono caches the parsed body, so route
 * validators do not parse it again. `extraTypes` lets a route accept another type (YAML).
 */
export function jsonBody(accepts: (path: string, contentType: string) => boolean = () => false): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!['POST', 'PUT', 'PATCH'].includes(c.req.method)) return next();
    const length = c.req.header('content-length');
    const hasBody = (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined;
    if (!hasBody) return next();
    const contentType = c.req.header('content-type') ?? '';
    if (accepts(c.req.path, contentType)) return next();
    if (!JSON_TYPE.test(contentType)) {
      throw new EnsembleError('unsupported_media_type', `Content-Type must be application/json (got "${contentType || 'none'}")`);
    }
    try {
      await c.req.json();
    } catch (error) {
      // Only a parse failure is the client's malformed JSON; anything else (the body limit) passes on.
      if (!(error instanceof SyntaxError)) throw error;
      throw new EnsembleError('invalid_request', `Malformed JSON: ${error instanceof Error ? error.message : 'cannot parse'}`, [{ path: '', message: 'Malformed JSON' }]);
    }
    return next();
  };
}
