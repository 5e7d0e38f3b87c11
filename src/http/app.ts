import { Hono, type Context, type Next } from "hono";
import { HTTPException } from "hono/http-exception";
import { consumes, isPublishMethod, publishes, type GatewayConfig } from "../config/schema";
import type { GatewayEnv } from "../env";
import { adminStats } from "./admin-stats";
import { consume, publish } from "./amqp-handlers";
import { GatewayError } from "./gateway-error";
import { groupRoutes, routeForMethod, type RouteGroup } from "./route-groups";

/**
 * The gateway for one validated configuration, `${NAME}` resolved: `/amqp` for stats, then each path of
 * routes.yaml. Every failure becomes JSON in `onError`; nothing else writes an error response.
 */
export const createApp = (config: GatewayConfig) => {
  const app = new Hono<GatewayEnv>();
  app.route("/", adminStats(config));
  // A path may be matched by several groups (an exact route and a prefix route on the same base):
  // each group that does not serve the method passes the request on, and the last handler answers
  // 405 (or OPTIONS) with every method that some matching route serves.
  for (const group of groupRoutes(config.routes)) {
    for (const pattern of group.patterns) app.all(pattern, (c, next) => serve(c, group, next));
  }
  app.all("*", (c) => {
    const allowed = c.get("allowed");
    const path = new URL(c.req.url).pathname;
    if (!allowed) return c.json({ error: `no route for ${c.req.method} ${path}`, route: null }, 404);
    const allow = [...allowed, "OPTIONS"].join(", ");
    // OPTIONS never touches the broker; it says what the path accepts (and is where CORS will answer).
    if (c.req.method === "OPTIONS") return c.body(null, 204, { Allow: allow });
    const reason =
      c.req.method === "HEAD"
        ? "HEAD is not served: it would take a message and throw its body away; use GET"
        : `${c.req.method} is not served here`;
    throw new GatewayError(405, reason, (c.get("routeIds") ?? []).join(","), { Allow: allow });
  });
  app.onError((error, c) => {
    if (error instanceof HTTPException) return error.getResponse();
    console.error("unhandled error", error);
    return c.json({ error: "internal error in the gateway", route: null }, 500);
  });
  return app;

  function serve(c: Context<GatewayEnv>, group: RouteGroup, next: Next) {
    const method = c.req.method;
    const route = method === "OPTIONS" ? undefined : routeForMethod(group, method);
    // A route answers a method only if its producer (POST, PUT) or consumer (the rest) serves it:
    // the schema guarantees that for every method in `route.methods`.
    if (route && isPublishMethod(method) && publishes(route)) return publish(c, route);
    if (route && !isPublishMethod(method) && consumes(route)) return consume(c, route);
    c.set("allowed", new Set([...(c.get("allowed") ?? []), ...group.allowed]));
    c.set("routeIds", [...new Set([...(c.get("routeIds") ?? []), ...group.routes.map((one) => one.id)])]);
    return next();
  }
};
