import type { RouteApi } from "../contract/route-calls";
import type { Env } from "../env";
import { callRouteObject, type RouteOperation } from "./route-object-call";
import type { BrokerTarget, RouteTarget } from "../contract/route-settings";

/**
 * The name of one of a route's Durable Objects. Shard 0 is named after the route itself, so
 * going from one shard to several keeps the first object and its counters.
 */
const shardName = (routeId: string, shard: number): string => (shard === 0 ? routeId : `${routeId}#${shard}`);

/** Every shard of every route, in order: what `/readyz` asks and a server of our own opens at start. */
export const everyShard = <T extends RouteTarget>(routes: readonly T[]): Array<{ route: T; shard: number; name: string }> =>
  routes.flatMap((route) => Array.from({ length: route.amqp.shards }, (_, shard) => ({ route, shard, name: shardName(route.id, shard) })));

/** A shard for one request: uniformly at random, which spreads load without shared state. */
export const pickShard = (target: BrokerTarget): number => Math.floor(Math.random() * target.amqp.shards);

/**
 * One shard of the route: in the same process on Node and Deno (`env.ROUTE_DIRECTORY`), else its
 * Durable Object, placed by the route's location hint if it has one.
 */
export const routeObject = (env: Env, target: BrokerTarget, shard = 0): RouteObjectStub => {
  const name = shardName(target.id, shard);
  const hint = target.amqp.location_hint;
  if (env.ROUTE_DIRECTORY) return env.ROUTE_DIRECTORY.get(name, hint);
  const id = env.AMQP_ROUTE.idFromName(name);
  return hint ? env.AMQP_ROUTE.get(id, { locationHint: hint }) : env.AMQP_ROUTE.get(id);
};

/** A route shard, as `routeObject` gives it. */
export type RouteObjectStub = RouteApi;

/**
 * The HTTP side's way to one shard of a route: which object serves it, and what a call that fails
 * as a call (the object reset, overloaded) becomes for each kind of operation
 * ({@link callRouteObject}: a consume retried once, a publish 504, the rest 503). Handlers say
 * what to ask and turn the object's answer into theirs; they do not name the namespace or catch a
 * failed call themselves.
 */
export interface RouteClient {
  /** Asks the object; a fresh stub for each try. */
  call<T>(operation: RouteOperation, ask: (object: RouteObjectStub) => Promise<T>): Promise<T>;
  /**
   * The stub itself, for the few calls whose failure is an answer of its own and is caught where
   * they are made (a best-effort settle, a refused login's charge, `/amqp`'s stats, a wait's cancel).
   */
  object(): RouteObjectStub;
}

export const routeClient = (env: Env, target: BrokerTarget, shard: number): RouteClient => ({
  call: (operation, ask) => callRouteObject(target.id, operation, () => ask(routeObject(env, target, shard))),
  object: () => routeObject(env, target, shard),
});
