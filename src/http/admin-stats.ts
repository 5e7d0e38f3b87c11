import { Hono } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import { redactUrl } from "../amqp/broker-url";
import type { RouteStats } from "../amqp/route-messages";
import type { GatewayConfig } from "../config/schema";
import type { Env, GatewayEnv } from "../env";
import { resolvedRoutes } from "./resolved-config";
import { routeObject, routeTarget } from "./route-target";

/**
 * One entry of `GET /amqp`: runway's fields (the password in `url` shown as `***`), summed over
 * the route's shards, and for a sharded route each shard's own figures.
 */
export type RouteStatsEntry = RouteStats & { url: string; shards?: Array<RouteStats & { shard: number }> };

/**
 * `GET /amqp`: per-route counters, read from each route's Durable Objects. When `ADMIN_TOKEN` is
 * set it requires `Authorization: Bearer <ADMIN_TOKEN>`.
 */
export const adminStats = (config: GatewayConfig) => {
  const app = new Hono<GatewayEnv>();
  app.use("/amqp", async (c, next) => {
    const token = c.env.ADMIN_TOKEN;
    if (!token) return next();
    const failure = await bearerFailure(c.req.header("authorization"), token);
    if (failure) return c.json({ error: failure, route: null }, 401, { "WWW-Authenticate": 'Bearer realm="amqp"' });
    return next();
  });
  app.get("/amqp", async (c) => {
    const routes = [...resolvedRoutes(config, c.env).values()].filter((route) => route.amqp?.enabled);
    const entries = await Promise.all(routes.map(async (route) => [route.id, await routeStats(c.env, config, route.id)] as const));
    return c.json(Object.fromEntries(entries));
  });
  return app;
};

/**
 * Why `header` does not carry `Bearer <token>`, or undefined when it does. The token after the
 * scheme is compared as it was sent (in constant time), not parsed as RFC 6750's token68, which
 * hono's bearerAuth requires: an ADMIN_TOKEN such as `Adm!n:T0ken` would otherwise lock `/amqp`.
 */
const bearerFailure = async (header: string | undefined, token: string): Promise<string | undefined> => {
  if (header === undefined) return "this endpoint requires Authorization: Bearer <ADMIN_TOKEN>";
  const match = /^Bearer +(.*)$/i.exec(header);
  if (!match) return "malformed Authorization header; expected Bearer <ADMIN_TOKEN>";
  // HTTP drops a header value's outer spaces, so a token's own could never arrive: compare without them.
  return (await timingSafeEqual(token.trim(), match[1] ?? "")) ? undefined : "invalid token";
};

const routeStats = async (env: Env, config: GatewayConfig, routeId: string): Promise<RouteStatsEntry> => {
  const route = resolvedRoutes(config, env).get(routeId);
  if (!route) throw new Error(`unknown route ${routeId}`);
  const target = routeTarget(config, env, route);
  const shards = await Promise.all(
    Array.from({ length: target.amqp.shards }, async (_, shard) => ({
      shard,
      ...(await routeObject(env, target, shard).stats(target.amqp.url)),
    })),
  );
  const total = shards.reduce<RouteStats>(
    (sum, one) => ({
      total_requests: sum.total_requests + one.total_requests,
      total_errors: sum.total_errors + one.total_errors,
      published: sum.published + one.published,
      consumed: sum.consumed + one.consumed,
      connected: sum.connected || one.connected,
      last_error: !sum.last_error || (one.last_error && one.last_error.at > sum.last_error.at) ? one.last_error : sum.last_error,
    }),
    { total_requests: 0, total_errors: 0, published: 0, consumed: 0, connected: false, last_error: null },
  );
  return { url: redactUrl(target.amqp.url), ...total, ...(shards.length > 1 ? { shards } : {}) };
};
