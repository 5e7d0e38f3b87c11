import type { RouteTarget } from "../amqp/route-messages";
import type { Env } from "../env";

/**
 * The name of one of a route's Durable Objects. Shard 0 is named after the route itself, so
 * going from one shard to several keeps the first object and its counters.
 */
const shardName = (routeId: string, shard: number): string => (shard === 0 ? routeId : `${routeId}#${shard}`);

/** A shard for one request: uniformly at random, which spreads load without shared state. */
export const pickShard = (target: RouteTarget): number => Math.floor(Math.random() * target.amqp.shards);

/** The Durable Object of one shard of the route, placed by its location hint if it has one. */
export const routeObject = (env: Env, target: RouteTarget, shard = 0) => {
  const id = env.AMQP_ROUTE.idFromName(shardName(target.id, shard));
  const hint = target.amqp.location_hint;
  return hint ? env.AMQP_ROUTE.get(id, { locationHint: hint }) : env.AMQP_ROUTE.get(id);
};
