import type { Context } from "hono";
import type { Admission } from "../../amqp/rate-limiter";
import type { RouteTarget } from "../../amqp/route-messages";
import type { RouteConfig } from "../../config/schema";
import type { GatewayEnv } from "../../env";
import { pickShard } from "../route-target";

/**
 * What the route's object needs to apply `rate_limit` to this request: whom it counts (the client's
 * IP, or who `auth` found: an API key's index, a JWT's `sub`) and the limit. Undefined without a
 * `rate_limit`. Checked in the object the request calls anyway: no extra hop.
 */
export const admissionFor = (c: Context<GatewayEnv>, route: Pick<RouteConfig, "rate_limit">): Admission | undefined => {
  const limit = route.rate_limit;
  if (!limit) return undefined;
  // Cloudflare sets CF-Connecting-IP on every request it forwards; only a local run lacks it.
  const key = limit.key === "ip" ? `ip:${c.req.header("cf-connecting-ip") ?? "local"}` : (c.get("caller") ?? "anonymous");
  return { key, requests: limit.requests, periodS: limit.period_s };
};

/**
 * The shard for a request: at random, or for a rate-limited one the shard its caller hashes to,
 * so that each caller is counted by one object and the limit holds exactly across shards.
 */
export const shardFor = (target: RouteTarget, admission: Admission | undefined): number => {
  if (!admission || target.amqp.shards === 1) return pickShard(target);
  let hash = 0;
  for (let index = 0; index < admission.key.length; index++) hash = (Math.imul(hash, 31) + admission.key.charCodeAt(index)) >>> 0;
  return hash % target.amqp.shards;
};
