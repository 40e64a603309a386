/** How the `ensemble` command reports an error, and the exit code it goes with. */
import { CliError, EXIT } from './context.ts';
import { errorText, oneLine } from './format.ts';

/** An error answer of the API (client) or the engine (`--local`): both carry a stable `code`. */
interface CodedError {
  code: string;
  message: string;
  details?: unknown;
}

function isCoded(error: unknown): error is CodedError {
  return error instanceof Error && typeof (error as Partial<CodedError>).code === 'string' && !(error as NodeJS.ErrnoException).syscall;
}

function detailLines(details: unknown): string[] {
  if (details === null || details === undefined) return [];
  if (Array.isArray(details)) {
    return details.map((item) => {
      if (item && typeof item === 'object') {
        const { path, message } = item as { path?: unknown; message?: unknown };
        if (typeof message === 'string') return `  - ${typeof path === 'string' && path && !message.includes(path) ? `${path}: ` : ''}${message}`;
      }
      return `  - ${typeof item === 'string' ? item : JSON.stringify(item)}`;
    });
  }
  const text = JSON.stringify(details);
  return text && text !== '{}' ? [`  ${text}`] : [];
}

/** An error the CLI explains in a line or a few (anything else is a bug and keeps its stack). */
export function isReportable(error: unknown): boolean {
  return error instanceof CliError || isCoded(error) || (error instanceof Error && Array.isArray((error as { issues?: unknown }).issues));
}

/** Writes the error to stderr; returns the exit code. */
export function reportError(error: unknown, write: (text: string) => void = (text) => process.stderr.write(text)): number {
  if (error instanceof CliError) {
    write(`ensemble: ${error.message}\n`);
    return error.exitCode;
  }
  if (isCoded(error)) {
    const message = oneLine(error.message);
    const details = detailLines(error.details);
    // A detail the message already says (a single problem) is not repeated.
    const lines = [`ensemble: ${error.code}: ${message}`, ...(details.every((line) => message.includes(line.replace(/^ {2}(- )?/, ''))) ? [] : details)];
    write(`${lines.join('\n')}\n`);
    return EXIT.failed;
  }
  if (error && typeof error === 'object' && Array.isArray((error as { issues?: unknown }).issues)) {
    // A zod error (an agents file the engine refused).
    const issues = (error as { issues: Array<{ path?: unknown[]; message?: string }> }).issues;
    write(`ensemble: invalid_request: ${issues.map((i) => `${(i.path ?? []).join('.')}: ${i.message ?? ''}`).join('; ')}\n`);
    return EXIT.failed;
  }
  write(`ensemble: ${error instanceof Error ? error.message : errorText(error)}\n`);
  if (process.env.ENSEMBLE_DEBUG && error instanceof Error && error.stack) write(`${error.stack}\n`);
  return EXIT.failed;
}
