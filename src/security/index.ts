export { redactSecrets, keyHint } from './redact.ts';
