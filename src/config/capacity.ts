import { MAX_SHARDS, type GatewayConfig } from "./schema";

/**
 * Requests a second one route object serves: Cloudflare's soft limit per Durable Object (an
 * object is single-threaded; past this its requests queue and are refused as overloaded).
 */
export const OBJECT_RPS = 1000;

/**
 * One line per route whose `expected_rps` needs more objects than its `shards`: a warning, not an
 * error (the figure is the user's estimate), naming the shards that would serve it.
 */
export const capacityWarnings = (config: GatewayConfig): string[] =>
  config.routes.flatMap((route) => {
    const expected = route.amqp?.expected_rps;
    if (expected === undefined || !route.amqp) return [];
    const needed = Math.ceil(expected / OBJECT_RPS);
    if (needed <= route.amqp.shards) return [];
    const advice =
      needed <= MAX_SHARDS
        ? `shards: ${needed} would serve it`
        : `more than the ${MAX_SHARDS} shards a route can have serve it; split its traffic over several routes`;
    return [
      `route "${route.id}": expected_rps ${expected} is more than ${route.amqp.shards} object(s) serve (about ${OBJECT_RPS} requests a second each); ${advice}`,
    ];
  });
