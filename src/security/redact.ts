/**
 * Removes secrets from text that may leave the process (error messages, logs, audit details).
 * Vendors echo keys back in their error messages ("Incorrect API key provided: sk-..."), so
 * every message that came from a vendor passes through here before anyone else sees it.
 */
const REDACTED = '[REDACTED]';

/** Patterns of well-known credential formats, redacted even when the exact secret is unknown. */
const KNOWN_KEY_PATTERNS: readonly RegExp[] = [
  /\bsk-(?:ant-|proj-|or-v1-|or-)?[A-Za-z0-9_-]{12,}/g, // Anthropic, OpenAI, OpenRouter
  /\bgsk_[A-Za-z0-9]{12,}/g, // Groq
  /\bAIza[0-9A-Za-z_-]{20,}/g, // Google
  /\bens_[A-Za-z0-9_-]{20,}/g, // Ensemble's own tokens
];

/** Shortest secret fragment we search for; shorter ones would redact ordinary words. */
const MIN_SECRET_LENGTH = 6;

/**
 * Replaces every occurrence of the given secrets, and of well-known key formats, by
 * `[REDACTED]`.
 */
export function redactSecrets(text: string, secrets: ReadonlyArray<string | undefined> = []): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret || secret.length < MIN_SECRET_LENGTH) continue;
    out = out.split(secret).join(REDACTED);
  }
  for (const pattern of KNOWN_KEY_PATTERNS) out = out.replace(pattern, REDACTED);
  return out;
}

/** The last four characters of a key, prefixed by an ellipsis, for display. */
export function keyHint(secret: string): string {
  return `…${secret.slice(-4)}`;
}
