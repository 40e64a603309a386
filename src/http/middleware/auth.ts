import type { MiddlewareHandler } from 'hono';
import { EnsembleError } from '../../core/index.ts';
import type { AppSettingsCache, RateLimits } from '../../governance/index.ts';
import type { Actor, AppService, Principal } from '../../registry/index.ts';
import type { AppEnv } from '../env.ts';

/** Paths any caller may read without a token. */
const PUBLIC_PATHS = new Set(['/api/v1/health', '/api/v1/openapi.json']);

/** Resolves `Authorization: Bearer <token>` to a principal; 401 when missing, unknown or revoked. */
export function authenticate(apps: AppService): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (PUBLIC_PATHS.has(c.req.path)) return next();
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const principal = match?.[1] ? await apps.authenticate(match[1]) : undefined;
    if (!principal) throw new EnsembleError('unauthorized', match ? 'Unknown or revoked token' : 'Missing bearer token');
    c.set('principal', principal);
    return next();
  };
}

/** The admin token only: apps and tokens. */
export function requireAdmin(principal: Principal | undefined): Actor {
  if (principal?.kind !== 'admin') throw new EnsembleError('forbidden', 'This route needs the admin token');
  return principal;
}

/** An app token only; returns the app the caller acts for. */
export function requireApp(principal: Principal | undefined): { appId: string; actor: Actor } {
  if (principal?.kind !== 'app') throw new EnsembleError('forbidden', 'This route needs an app token, not the admin token');
  return { appId: principal.appId, actor: principal };
}

/** The app's per-token request limit (`settings.rate_limit.requests_per_minute`), on every app route. */
export function tokenRateLimit(settings: AppSettingsCache, limits: RateLimits): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const principal = c.get('principal');
    if (principal?.kind !== 'app') return next();
    const limit = (await settings.get(principal.appId)).rate_limit?.requests_per_minute;
    if (limit) await limits.take('token-rpm', principal.tokenId, limit, 1, `${limit} requests per minute for this token`);
    return next();
  };
}
