/** The typed client of the server a command talks to, with network failures told plainly. */
import { createClient, type EnsembleClient } from '../client/index.ts';
import { CliError, EXIT, resolveConnection, type Connection, type ConnectionFlags } from './context.ts';

export interface Server {
  client: EnsembleClient;
  connection: Connection;
}

export function connect(flags: ConnectionFlags): Server {
  const connection = resolveConnection(flags);
  const guarded: typeof fetch = async (input, init) => {
    let res: Response;
    try {
      res = await fetch(input, init);
    } catch (error) {
      if (init?.signal?.aborted) throw error;
      const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
      const why = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : (error as Error).message;
      throw new CliError(`cannot reach the server at ${connection.url} (${why}): is \`ensemble serve\` running? --url or ENSEMBLE_URL say where it is`, EXIT.failed);
    }
    if (res.status === 401) {
      await res.body?.cancel().catch(() => {});
      throw new CliError(`the server at ${connection.url} refused the token (from ${connection.tokenSource})`, EXIT.failed);
    }
    return res;
  };
  return { client: createClient({ baseUrl: connection.url, token: connection.token, fetch: guarded }), connection };
}
