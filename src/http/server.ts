import { serve } from '@hono/node-server';
import type { AddressInfo } from 'node:net';

export interface RunningServer {
  readonly port: number;
  readonly host: string;
  /** Stops accepting connections and resolves when open ones have ended. */
  close(): Promise<void>;
  /** Ends every open connection now (event streams included). */
  closeAll(): void;
}

/** Serves a fetch handler on Node's HTTP server. Resolves once it listens. */
export function startHttpServer(fetchHandler: (request: Request) => Response | Promise<Response>, options: { port: number; host: string }): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: fetchHandler, port: options.port, hostname: options.host }, (info: AddressInfo) => {
      resolve({
        port: info.port,
        host: options.host,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Idle keep-alive sockets would hold close() open until they time out.
            if ('closeIdleConnections' in server) server.closeIdleConnections();
          }),
        closeAll: () => {
          if ('closeAllConnections' in server) server.closeAllConnections();
        },
      });
    });
    server.once('error', reject);
  });
}
