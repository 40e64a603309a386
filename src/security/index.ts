export { redactSecrets, keyHint } from './redact.ts';
export { Keyring, KeyringError, type MasterKey } from './keyring.ts';
export { generateToken, hashToken, constantTimeEqual } from './tokens.ts';
export { OutboundPolicy, OutboundRefusedError, isPrivateAddress } from './outbound.ts';
