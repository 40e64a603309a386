export { createHttpApp, type HttpDeps, type AppEnv } from './app.ts';
export { startHttpServer, type RunningServer } from './server.ts';
export { errorBody, type ErrorBody } from './errors.ts';
export type { HealthSource } from './routes/health.ts';
