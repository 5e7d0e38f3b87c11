import { serve } from "@hono/node-server";
import type { Server } from "node:http";
import { urlHost, type Serve } from "./self-hosted-start";

/** Serves the gateway with @hono/node-server; the client's address is its socket's. */
export const nodeServe: Serve = (gateway, host, port) =>
  new Promise((resolve) => {
    const server = serve(
      {
        fetch: (request: Request, bindings: { incoming: { socket: { remoteAddress?: string | undefined } } }) =>
          gateway.fetch(request, bindings.incoming.socket.remoteAddress),
        hostname: host,
        port,
      },
      (info) => {
        const http = server as Server;
        resolve({
          url: `http://${urlHost(host)}:${info.port}`,
          close: () =>
            new Promise((closed) => {
              // Idle keep-alive connections would hold close() open: closed now, and as each request ends.
              const idle = setInterval(() => http.closeIdleConnections(), 100);
              http.close(() => {
                clearInterval(idle);
                closed();
              });
              http.closeIdleConnections();
            }),
          closeAll: () => http.closeAllConnections(),
        });
      },
    );
  });
