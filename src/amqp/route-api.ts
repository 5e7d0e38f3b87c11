import type { RouteApi } from "../contract/route-calls";
import type { AmqpRoute } from "./amqp-route";

/**
 * The calls of the contract's `RouteApi` (src/contract/route-calls.ts), each of which a route
 * shard (`AmqpRoute`) answers: the Node and Deno servers forward them by name
 * (src/server/local-routes.ts), the Durable Object one forwarder each (route-object.ts).
 */
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
  "push",
  "metrics",
  "deadLetters",
  "redrive",
  "managementPublish",
  "managementGet",
] as const satisfies ReadonlyArray<keyof AmqpRoute & keyof RouteApi>;

type Missing = Exclude<keyof RouteApi, (typeof ROUTE_CALLS)[number]>;
/** Compiles only when every call of `RouteApi` is in {@link ROUTE_CALLS} (else its type names the missing one). */
export const EVERY_CALL_LISTED: [Missing] extends [never] ? true : Missing = true;
