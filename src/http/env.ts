import type { Principal } from '../registry/index.ts';

/** Per-request values the middleware sets for the handlers. */
export type AppEnv = { Variables: { requestId: string; principal: Principal } };
