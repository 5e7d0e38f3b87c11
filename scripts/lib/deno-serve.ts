import { urlHost, type Serve } from "./self-hosted-start";

/** The part of Deno's API used here (the type check has no Deno types). */
declare const Deno: {
  serve(
    options: { hostname: string; port: number; onListen?: (address: { port: number }) => void },
    handler: (request: Request, info: { remoteAddr: { hostname: string } }) => Response | Promise<Response>,
  ): { shutdown(): Promise<void> };
};

/** Serves the gateway with `Deno.serve`; the client's address is its connection's. */
export const denoServe: Serve = (gateway, host, port) =>
  new Promise((resolve) => {
    const server = Deno.serve(
      {
        hostname: host,
        port,
        onListen: (address) =>
          resolve({
            url: `http://${urlHost(host)}:${address.port}`,
            // Deno's shutdown ends the bodies still arriving too: it waits until every request
            // being answered has its answer started (new ones are refused meanwhile).
            close: async () => {
              while (gateway.inFlight > 0) await new Promise((done) => setTimeout(done, 20));
              await server.shutdown();
            },
            // The process exits next, which cuts them. (Aborting the server's signal after a
            // shutdown makes Deno throw from inside its own listener, an uncaught error.)
            closeAll: () => undefined,
          }),
      },
      (request, info) => gateway.fetch(request, info.remoteAddr.hostname),
    );
  });
