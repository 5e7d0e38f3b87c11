import type { AmqpRoute } from "./amqp-route";

/** The calls the HTTP side makes of a route shard, in every runtime. */
export const ROUTE_CALLS = [
  "publishMany",
  "request",
  "reply",
  "consume",
  "cancelWait",
  "settleLeases",
  "refuseAttempt",
  "settle",
  "stats",
  "readiness",
] as const satisfies ReadonlyArray<keyof AmqpRoute>;

export type RouteCall = (typeof ROUTE_CALLS)[number];

/**
 * A route shard as the HTTP side sees it: each call answers later, as across a Durable Object's
 * RPC, also where the route lives in the same process (`src/server/local-routes.ts`), so that the
 * HTTP side is one code for every runtime.
 */
export type RouteApi = {
  [K in RouteCall]: (...args: Parameters<AmqpRoute[K]>) => Promise<Awaited<ReturnType<AmqpRoute[K]>>>;
};

/** Where the HTTP side finds a route shard by its name (see `route-client.ts`). */
export interface RouteDirectory {
  get(name: string, locationHint?: string): RouteApi;
}
