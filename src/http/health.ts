import { Hono } from "hono";
import type { GatewayConfig } from "../config/schema";
import type { Env, GatewayEnv } from "../env";
import { createLogger } from "../log";
import { everyShard, routeClient } from "./route-client";

/**
 * `GET /healthz`: the gateway answers (a process manager's liveness check).
 * `GET /readyz`: every shard of every route has its broker connections up, or opens them now
 * (a load balancer's readiness check): 200, else 503. Both are public, so they say no more than
 * how many routes are ready; which route is not, and why, is in the log and in `/amqp`. A probe
 * opens the connections of routes that had let them go while idle, and counts as their request:
 * probed more often than `idle_disconnect_s`, a route stays connected.
 */
export const health = (config: GatewayConfig) => {
  const app = new Hono<GatewayEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  // One round's answer serves every probe for a second after it: a flood of /readyz (public) is
  // about one round of calls to the routes a second, not one per request. (The answer, not the
  // round's promise: in workerd a request must not wait on another request's I/O.)
  let last: { at: number; readiness: Readiness } | undefined;
  app.get("/readyz", async (c) => {
    if (!last || Date.now() - last.at > READINESS_TTL_MS) last = { at: Date.now(), readiness: await readiness(config, c.env) };
    const { ready, notReady } = last.readiness;
    const routes = { ready, not_ready: notReady };
    return notReady === 0 ? c.json({ status: "ready", routes }) : c.json({ status: "not ready", routes }, 503, { "Retry-After": "1" });
  });
  return app;
};

/** How long one readiness round answers for. */
const READINESS_TTL_MS = 1000;

interface Readiness {
  ready: number;
  notReady: number;
}

/** Asks every shard of every route whether it can serve; logs why one cannot. */
const readiness = async (config: GatewayConfig, env: Env): Promise<Readiness> => {
  const shards = everyShard(config.routes);
  const problems = await Promise.all(
    shards.map(async ({ route, shard }) => {
      try {
        const outcome = await routeClient(env, route, shard).object().readiness(route);
        return outcome.ok ? undefined : outcome.message;
      } catch (error) {
        return error instanceof Error ? error.message : String(error);
      }
    }),
  );
  const logger = createLogger(env);
  problems.forEach((problem, index) => {
    const shard = shards[index];
    if (problem !== undefined && shard)
      logger.log("warn", "route not ready", { route: shard.route.id, shard: shard.shard, reason: problem });
  });
  const notReady = new Set(shards.filter((_, index) => problems[index] !== undefined).map(({ route }) => route.id)).size;
  return { ready: config.routes.length - notReady, notReady };
};
