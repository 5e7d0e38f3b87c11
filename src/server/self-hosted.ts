import type { GatewayConfig } from "../config/schema";
import type { Env } from "../env";
import { clientAddresses } from "../http/client-address";
import { createGateway } from "../http/gateway";
import { everyShard } from "../http/route-client";
import { LocalRoutes, type LocalRoutesOptions } from "./local-routes";

/**
 * The gateway on a server of our own (Node, Deno): the Worker's app, unchanged, with every route
 * shard held in this process ({@link LocalRoutes}) instead of in Durable Objects. What differs by
 * runtime (how to listen) is in scripts/start-node.ts and scripts/start-deno.ts.
 */
export interface SelfHostedGateway {
  /** Answers one request; `address` is the client's, from its socket. */
  fetch(request: Request, address: string | undefined): Promise<Response>;
  /** Requests being answered now (until their answer starts). */
  readonly inFlight: number;
  /**
   * The first step of stopping: every later request is refused (503), every long-poll answers now
   * with what it has, and every stream ends. Requests in flight go on.
   */
  stopTaking(): void;
  /** The last: closes the broker connections (what was handed out and not settled goes back to its queue). */
  close(): Promise<void>;
}

/** Throws when the state directory or a shard's storage cannot be used (see {@link LocalRoutes}). */
export const selfHostedGateway = (
  config: GatewayConfig,
  options: LocalRoutesOptions & {
    /** The variables the routes file names, and ADMIN_TOKEN, LOG_LEVEL, LOG_FORMAT. */
    env: Record<string, string>;
  },
): SelfHostedGateway => {
  const routes = new LocalRoutes(options);
  routes.open(everyShard(config.routes).map(({ name }) => name));
  const env = { ...options.env, ROUTE_DIRECTORY: routes } as unknown as Env;
  const gateway = createGateway(config);
  // Push routes start with the server; from then on each shard checks its own push every few
  // seconds (src/amqp/route-push.ts). In a process nothing evicts a shard, so nothing more is
  // needed of what Cloudflare's cron trigger does for the Worker.
  void gateway.scheduled(undefined, env);
  let inFlight = 0;
  let stopping = false;
  return {
    async fetch(request, address) {
      if (stopping) {
        return Response.json({ error: "the gateway is stopping; retry", route: null }, { status: 503, headers: { "Retry-After": "1" } });
      }
      if (address !== undefined) clientAddresses.set(request, address);
      inFlight++;
      try {
        return await gateway.fetch(request, env);
      } finally {
        inFlight--;
      }
    },
    get inFlight() {
      return inFlight;
    },
    stopTaking() {
      stopping = true;
      routes.stopWaits();
    },
    close: () => routes.close(),
  };
};
