import { Hono } from "hono";
import type { GatewayConfig } from "../config/schema";
import type { GatewayEnv } from "../env";
import { createLogger } from "../log";
import { routeObject } from "./route-client";

/**
 * `GET /healthz`: the gateway answers (a process manager's liveness check).
 * `GET /readyz`: every shard of every route has its broker connections up, or opens them now
 * (a load balancer's readiness check): 200, else 503. Both are public, so they say no more than
 * how many routes are ready; which route is not, and why, is in the log and in `/amqp`.
 */
export const health = (config: GatewayConfig) => {
  const app = new Hono<GatewayEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const shards = config.routes.flatMap((route) => Array.from({ length: route.amqp.shards }, (_, shard) => ({ route, shard })));
    const results = await Promise.all(
      shards.map(async ({ route, shard }) => {
        try {
          const outcome = await routeObject(c.env, route, shard).readiness(route);
          return outcome.ok ? undefined : outcome.message;
        } catch (error) {
          return error instanceof Error ? error.message : String(error);
        }
      }),
    );
    const logger = createLogger(c.env);
    results.forEach((problem, index) => {
      const shard = shards[index];
      if (problem !== undefined && shard)
        logger.log("warn", "route not ready", { route: shard.route.id, shard: shard.shard, reason: problem });
    });
    const notReady = new Set(shards.filter((_, index) => results[index] !== undefined).map(({ route }) => route.id)).size;
    const routes = { ready: config.routes.length - notReady, not_ready: notReady };
    return notReady === 0 ? c.json({ status: "ready", routes }) : c.json({ status: "not ready", routes }, 503, { "Retry-After": "1" });
  });
  return app;
};
