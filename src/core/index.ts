export { EnsembleError, ERROR_STATUS, isEnsembleError, type ErrorCode } from './errors.ts';
export { newId } from './ids.ts';
export { VERSION } from './version.ts';
export { TurnBatch } from './turn-batch.ts';
