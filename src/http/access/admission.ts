import { clientAddresses } from "../client-address";
import type { Context } from "hono";
import type { Admission } from "../../contract/route-calls";
import type { RouteConfig } from "../../config/schema";
import type { GatewayEnv } from "../../env";
import type { RouteFailure } from "../../contract/failures";
import { failureError } from "../gateway-error";
import { pickShard, routeClient } from "../route-client";
import type { BrokerTarget } from "../../contract/route-settings";

/** What `auth` and `rate_limit` need of what they guard: a route, or the management API. */
export type AccessTarget = BrokerTarget & Pick<RouteConfig, "auth" | "rate_limit">;

/**
 * What the route's object needs to apply `rate_limit` to this request: whom it counts (the client's
 * IP, or who `auth` found: an API key's index, a JWT's `sub`) and the limit. Undefined without a
 * `rate_limit`. Checked in the object the request calls anyway: no extra hop.
 */
export const admissionFor = (c: Context<GatewayEnv>, route: Pick<RouteConfig, "rate_limit">): Admission | undefined => {
  const limit = route.rate_limit;
  if (!limit) return undefined;
  const key = limit.key === "ip" ? ipKey(c) : (c.get("caller") ?? "anonymous");
  return { key, requests: limit.requests, periodS: limit.period_s, openWaits: limit.open_waits };
};

/**
 * The client's IP as a bucket key. Deployed, Cloudflare sets CF-Connecting-IP on every request
 * and overwrites a client's own; under `npm start` nothing is in front, so a client can name any IP.
 */
const ipKey = (c: Context<GatewayEnv>): string =>
  `ip:${clientAddresses.get(c.req.raw) ?? (c.env.ROUTE_DIRECTORY ? "local" : c.req.header("cf-connecting-ip")) ?? "local"}`;

/**
 * A refused login on a route with `rate_limit` takes a request from the caller's IP bucket (in the
 * route's object: one extra call, for refused requests only); once it is empty, 429 instead.
 */
export const chargeRefusal = async (c: Context<GatewayEnv>, route: AccessTarget): Promise<void> => {
  const limit = route.rate_limit;
  if (!limit) return;
  const admission: Admission = { key: ipKey(c), requests: limit.requests, periodS: limit.period_s, openWaits: limit.open_waits };
  const target: BrokerTarget = { id: route.id, amqp: route.amqp };
  let refused: RouteFailure | undefined;
  try {
    refused = await routeClient(c.env, target, shardFor(target, admission)).object().refuseAttempt(admission);
  } catch {
    return; // The object is unreachable: the 401 stands.
  }
  if (refused) throw failureError(refused, route.id);
};

/**
 * Takes a request from `admission`'s bucket in the object of the caller's shard, for a request
 * whose own call goes to another shard (a reply id of another shard): 429 once the bucket is
 * empty. The limit then still counts each request once, in one place.
 */
export const chargeCaller = async (c: Context<GatewayEnv>, target: BrokerTarget, admission: Admission): Promise<void> => {
  const refused = await routeClient(c.env, target, shardFor(target, admission)).call("consume", (object) =>
    object.refuseAttempt(admission),
  );
  if (refused) throw failureError(refused, target.id);
};

/**
 * The shard for a request: at random; for one with an `Idempotency-Key` on a deduplicating route
 * the shard the key hashes to, so that its repeats meet the object that remembers it; for a
 * rate-limited one the shard its caller hashes to, so that each caller is counted by one object
 * and the limit holds exactly across shards. (The schema refuses a sharded route with both.)
 */
export const shardFor = (target: BrokerTarget, admission: Admission | undefined, idempotencyKey?: string): number => {
  const key = idempotencyKey ?? admission?.key;
  if (key === undefined || target.amqp.shards === 1) return pickShard(target);
  let hash = 0;
  for (let index = 0; index < key.length; index++) hash = (Math.imul(hash, 31) + key.charCodeAt(index)) >>> 0;
  return hash % target.amqp.shards;
};
