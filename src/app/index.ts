export { startService, buildCore, type Service, type ServiceOptions, type Core } from './service.ts';
export { createEnsemble, type Ensemble, type EnsembleOptions, type RunEvent, type RunHandle } from './library.ts';
