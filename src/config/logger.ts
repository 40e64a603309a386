import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Paths pino blanks in every log line, wherever a secret could sit in a logged object. Message
 * text is not covered by this; code that logs vendor messages redacts them first.
 */
export const REDACTED_LOG_PATHS = [
  'api_key',
  'apiKey',
  'token',
  'authorization',
  '*.api_key',
  '*.apiKey',
  '*.token',
  '*.authorization',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers["x-goog-api-key"]',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'ensemble' },
      redact: { paths: REDACTED_LOG_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? process.stdout,
  );
}
