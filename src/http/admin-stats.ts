import { Hono } from "hono";
import { redactUrl } from "../contract/redaction";
import { ZERO_COUNTERS } from "../contract/route-calls";
import type { RouteCounters, RouteStats } from "../contract/route-calls";
import type { GatewayConfig, RouteConfig } from "../config/schema";
import type { Env, GatewayEnv } from "../env";
import { adminAuth, wantsPage } from "./admin-auth";
import { routeClient } from "./route-client";
import { statusPage } from "./status-page";
import { createLogger } from "../log";
import { PROMETHEUS_CONTENT_TYPE, renderMetrics } from "./prometheus";

/**
 * One entry of `GET /amqp`: runway's fields (the password in `url` shown as `***`), summed over
 * the route's shards, and for a sharded route each shard's own figures.
 */
export type RouteStatsEntry = RouteStats & { url: string; shards?: Array<RouteStats & { shard: number }> };

/**
 * `GET /amqp`: per-route counters, read from each route's Durable Objects, as JSON; or, for a
 * browser (`Accept: text/html`), a status page that shows them live. When `ADMIN_TOKEN` is set it
 * requires `Authorization: Bearer <ADMIN_TOKEN>`, or HTTP basic auth with the token as the
 * password (any user name): a browser cannot add a bearer header when it navigates, but it asks
 * for basic credentials when told to.
 */
export const adminStats = (config: GatewayConfig) => {
  const app = new Hono<GatewayEnv>();
  app.use("/amqp", adminAuth);
  app.use("/amqp/metrics", adminAuth);
  // Prometheus' text format, for a scraper (`bearer_token` or `basic_auth` with the admin token).
  app.get("/amqp/metrics", async (c) => {
    const routes = await Promise.all(
      config.routes.map(async (route) => ({
        route: route.id,
        shards: await Promise.all(
          Array.from({ length: route.amqp.shards }, async (_, shard) => {
            try {
              return { shard, ...(await routeClient(c.env, route, shard).object().metrics(route.amqp.url)) };
            } catch (error) {
              // One shard that cannot answer must not fail the scrape: it is left out (its counters too).
              createLogger(c.env).log("warn", "metrics: a route shard did not answer", { route: route.id, shard, error: String(error) });
              return undefined;
            }
          }),
        ).then((shards) => shards.filter((shard) => shard !== undefined)),
      })),
    );
    return c.body(renderMetrics(routes), 200, { "Content-Type": PROMETHEUS_CONTENT_TYPE });
  });
  app.get("/amqp", async (c) => {
    if (wantsPage(c.req.header("accept"))) return c.html(statusPage(config.routes));
    const entries = await Promise.all(config.routes.map(async (route) => [route.id, await routeStats(c.env, route)] as const));
    return c.json(Object.fromEntries(entries));
  });
  return app;
};

const routeStats = async (env: Env, target: RouteConfig): Promise<RouteStatsEntry> => {
  const shards = await Promise.all(
    Array.from({ length: target.amqp.shards }, async (_, shard) => ({
      shard,
      ...(await routeClient(env, target, shard).object().stats(target.amqp.url)),
    })),
  );
  const total = shards.reduce<RouteStats>(
    (sum, one) => {
      const counters = Object.fromEntries(
        (Object.keys(ZERO_COUNTERS) as Array<keyof RouteCounters>).map((name) => [name, sum[name] + one[name]]),
      ) as unknown as RouteCounters;
      const last_error = !sum.last_error || (one.last_error && one.last_error.at > sum.last_error.at) ? one.last_error : sum.last_error;
      return { ...counters, connected: sum.connected || one.connected, last_error };
    },
    { ...ZERO_COUNTERS, connected: false, last_error: null },
  );
  return { url: redactUrl(target.amqp.url), ...total, ...(shards.length > 1 ? { shards } : {}) };
};
